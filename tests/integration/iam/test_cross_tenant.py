"""Tenant isolation as a property: no route returns or changes anything outside the caller's scope.

Hypothesis generates partner organisations with an administrator, scoped users, an
engineer and devices, keys, groups, roles and bindings, and tags published into each
partner's subtree (plus a quarantined message there). Then, for every GET operation of
the OpenAPI document, with path and query parameters filled with objects of every
tenant, no response may contain an object outside the caller's scope (tag path levels,
principal ids and names, organisations, keys, groups, roles, bindings, audit events);
and every unsafe IAM operation aimed at another tenant's object answers 403/404 and
changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from tests.integration.iam.api_support import API, Account, Werk, fill, started_werk
from tests.integration.iam.tenant_support import (
    Caller,
    OrgSpec,
    Tenant,
    World,
    fingerprint,
    org_specs,
    outside_levels,
    tag_path,
    token,
)

from werk.iam.bootstrap import SYSTEM

IAM = f"{API}/iam"
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


# -- the operations ---------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    query: frozenset[str]
    required: frozenset[str]


def schema_operations(werk: Werk) -> list[Op]:
    found = []
    for path, item in werk.client.app.openapi()["paths"].items():  # type: ignore[attr-defined]
        for method, op in item.items():
            params = [p for p in op.get("parameters", []) if p["in"] == "query"]
            names = frozenset(p["name"] for p in params)
            required = frozenset(p["name"] for p in params if p.get("required"))
            found.append(Op(method.upper(), path, names, required))
    return found


EPOCH = "2020-01-01T00:00:00Z"
STATIC = {"name": "oee", "dataset": "orders", "table": "raw", "message_id": "0" * 32,
          "group": "acme", "edge_node": "node", "command_id": "1"}  # fmt: skip
PATH_OBJECTS: dict[str, Callable[[Tenant], str]] = {
    "org_id": lambda t: t.org_id,
    "principal_id": lambda t: t.user_id,
    "group_id": lambda t: t.group_id,
    "role_id": lambda t: t.role_id,
    "path": lambda t: t.tags[0],
    "tag": lambda t: t.tags[0],
    "record_id": lambda t: t.record_id,
}
QUERY_OBJECTS: dict[str, Callable[[Tenant], str]] = {
    "org_id": lambda t: t.org_id,
    "principal_id": lambda t: t.user_id,
    "actor_id": lambda t: t.user_id,
    "group_id": lambda t: t.group_id,
    "prefix": lambda t: t.tags[0].rsplit("/", 1)[0],
    "filter": lambda t: f"{t.slug}/#",
    "subtree": lambda t: t.slug,
    "names": lambda t: t.tags[0],
    "tag": lambda t: t.tags[0],
    "q": lambda t: t.tags[0].rsplit("/", 1)[1],
}
REQUIRED = {"layer": "processed", "start": EPOCH, "ts": EPOCH, "q": "zz", "code": "x", "state": "x"}


@dataclass(frozen=True)
class Probe:
    """One GET: its URL and query, what it sends, and whether it names an object it must not see."""

    url: str
    params: dict[str, str]
    sent: tuple[str, ...]
    names_foreign: bool


def probes(op: Op, tenants: list[Tenant], caller: Caller, own: Tenant) -> Iterator[Probe]:
    """The GETs of `op`, once per tenant whose objects fit its parameters."""
    names = re.findall(r"\{([^}]+)\}", op.path)
    tenant_path = [n for n in names if n in PATH_OBJECTS]
    tenant_query = [q for q in op.query if q in QUERY_OBJECTS]
    base = {q: REQUIRED[q] for q in op.required if q in REQUIRED}
    if not tenant_path and not tenant_query:
        yield Probe(fill(op.path, {n: STATIC.get(n, "x") for n in names}), base, (), False)
        return
    for tenant in tenants:
        values = {
            n: PATH_OBJECTS[n](tenant) if n in PATH_OBJECTS else STATIC.get(n, "x") for n in names
        }
        url = fill(op.path, values)
        foreign = bool(tenant_path) and (
            tenant is not own or bool(outside_levels(tenant.tags[0], caller.filters))
        )
        sent = tuple(values[n] for n in tenant_path)
        if not tenant_query:
            yield Probe(url, base, sent, foreign)
        for q in tenant_query:
            value = QUERY_OBJECTS[q](tenant)
            yield Probe(url, {**base, q: value}, (*sent, value), foreign)


# -- attacks on other tenants' objects ----------------------------------------------------

Attack = Callable[[Tenant, Tenant], list[tuple[str, Any]]]


def _members(own: Tenant, other: Tenant) -> list[tuple[str, Any]]:
    return [
        (f"/groups/{other.group_id}/members/{own.user_id}", None),
        (f"/groups/{own.group_id}/members/{other.user_id}", None),
    ]


def _victim(t: Tenant) -> str:
    assert t.victim is not None
    return t.victim.id


ATTACKS: dict[tuple[str, str], Attack] = {
    ("POST", "/orgs"): lambda o, t: [("/orgs", {"slug": token("sl"), "name": "pwned"})],
    ("PATCH", "/orgs/{org_id}"): lambda o, t: [
        (f"/orgs/{t.org_id}", {"name": "pwned"}), (f"/orgs/{t.org_id}", {"disabled": True}),
    ],
    ("PATCH", "/principals/{principal_id}"): lambda o, t: [
        (f"/principals/{_victim(t)}", {"display_name": "pwned"})
    ],
    ("POST", "/principals/{principal_id}/disable"): lambda o, t: [(f"/principals/{_victim(t)}/disable", None)],
    ("POST", "/principals/{principal_id}/enable"): lambda o, t: [(f"/principals/{_victim(t)}/enable", None)],
    ("POST", "/principals/{principal_id}/revoke-all"): lambda o, t: [
        (f"/principals/{_victim(t)}/revoke-all", None)
    ],
    ("PUT", "/principals/{principal_id}/password"): lambda o, t: [
        (f"/principals/{t.user_id}/password", {"password": "pwned-password-1"})
    ],
    ("POST", "/users"): lambda o, t: [("/users", {"org_id": t.org_id, "name": token("xu"), "password": "p" * 16})],
    ("POST", "/service-accounts"): lambda o, t: [("/service-accounts", {"org_id": t.org_id, "name": token("xs")})],
    ("POST", "/devices"): lambda o, t: [("/devices", {"org_id": t.org_id, "name": token("xd")})],
    ("POST", "/groups"): lambda o, t: [("/groups", {"org_id": t.org_id, "name": token("xg")})],
    ("DELETE", "/groups/{group_id}"): lambda o, t: [(f"/groups/{t.group_id}", None)],
    ("PUT", "/groups/{group_id}/members/{principal_id}"): _members,
    ("DELETE", "/groups/{group_id}/members/{principal_id}"): _members,
    ("POST", "/roles"): lambda o, t: [
        ("/roles", {"org_id": t.org_id, "name": token("xr"), "permissions": ["uns:read"]})
    ],
    ("PATCH", "/roles/{role_id}"): lambda o, t: [(f"/roles/{t.role_id}", {"description": "pwned"})],
    ("DELETE", "/roles/{role_id}"): lambda o, t: [(f"/roles/{t.role_id}", None)],
    ("POST", "/bindings"): lambda o, t: [
        ("/bindings", {"role_id": o.role_id, "principal_id": _victim(t)}),
        ("/bindings", {"role_id": t.role_id, "principal_id": o.user_id}),
        ("/bindings", {"role_id": o.role_id, "group_id": t.group_id}),
    ],
    ("DELETE", "/bindings/{binding_id}"): lambda o, t: [(f"/bindings/{t.binding_id}", None)],
    ("POST", "/api-keys"): lambda o, t: [("/api-keys", {"principal_id": _victim(t), "name": "pwned"})],
    ("DELETE", "/api-keys/{key_id}"): lambda o, t: [(f"/api-keys/{t.key_id}", None)],
    ("POST", "/credentials/{credential_id}/revoke"): lambda o, t: [
        (f"/credentials/{t.credential_id}/revoke", None)
    ],
    ("POST", "/signing-keys/rotate"): lambda o, t: [("/signing-keys/rotate", None)],
}  # fmt: skip


# -- the property -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One werk for the module, with a few operator tags of its own."""
    with started_werk(tmp_path_factory.mktemp("werk")) as werk:
        built = World(werk)
        operator = built.operator
        operator.tags = [tag_path(token("op"), token("ar")) for _ in range(2)]
        operator.user_id = werk.admin.id
        built.add_objects(operator, werk.admin.id)
        built.publish([operator])
        yield built


def check_reads(world: World, tenants: list[Tenant], ops: list[Op]) -> None:
    """No GET answer holds anything outside its caller's scope."""
    everyone = [*tenants, world.operator]
    reads = [o for o in ops if o.method == "GET"]
    audit = [o for o in reads if o.path.startswith(f"{IAM}/audit")]
    # Audit reads first: later probes would put the ids they name into the callers' own log.
    for batch in (audit, [o for o in reads if o not in audit]):
        for tenant in tenants:
            for caller in tenant.callers:
                forbidden = world.forbidden(tenant.org_id, caller.filters)
                for op in batch:
                    for probe in probes(op, everyone, caller, tenant):
                        check_read(world, caller, tenant, forbidden, probe)


def check_read(
    world: World, caller: Caller, own: Tenant, forbidden: re.Pattern[str], probe: Probe
) -> None:
    """One GET: a foreign object is not found, and no answer holds a foreign token."""
    response = world.werk.client.get(probe.url, params=probe.params, headers=caller.account.headers)
    where = f"{caller.account.name} {caller.filters} GET {probe.url} {probe.params}"
    if probe.names_foreign:
        assert response.status_code in (403, 404), (
            f"{where}: {response.status_code} {response.text}"
        )
    text = response.text
    for echoed in probe.sent:  # what the caller sent may come back (problem instance, detail)
        text = text.replace(echoed, "")
    leak = forbidden.search(text)
    assert leak is None, f"{where} got {leak.group()!r}: {response.status_code} {text[:500]}"
    _check_orgs(response, own.org_id, probe.url)


def _check_orgs(response: Any, org_id: str, url: str) -> None:
    """Objects with an organisation all belong to the caller's (built-in roles have none)."""
    if not response.headers.get("content-type", "").startswith("application/json"):
        return
    stack = [response.json()]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            assert item.get("org_id") in (None, org_id), f"GET {url} returned {item}"
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def check_writes(world: World, tenants: list[Tenant], ops: list[Op]) -> None:
    """Every unsafe IAM operation on another tenant's object is refused and changes nothing."""
    werk = world.werk
    unsafe = [
        (o.method, o.path.removeprefix(IAM))
        for o in ops
        if o.method in UNSAFE and o.path.startswith(IAM)
    ]
    unknown = [u for u in unsafe if u not in ATTACKS]
    assert not unknown, f"add an attack for the new IAM operations {unknown}"
    before = fingerprint(werk)
    for own in tenants:
        for other in [t for t in [*tenants, world.operator] if t is not own]:
            for method, path in unsafe:
                for url, body in ATTACKS[(method, path)](own, other):
                    attack(werk, own.callers[0].account, method, url, body)
    assert fingerprint(werk) == before
    for tenant in tenants:
        assert tenant.victim is not None
        for credential in (tenant.victim.key, tenant.victim_token):
            me = werk.client.get(
                f"{API}/auth/me", headers={"Authorization": f"Bearer {credential}"}
            )
            assert me.status_code == 200, me.text
        live = werk.iam.authn.list_credentials(SYSTEM, tenant.victim.id)
        assert [c.revoked_at for c in live if c.id == tenant.credential_id] == [None]


def attack(werk: Werk, admin: Account, method: str, url: str, body: Any) -> None:
    """One write aimed at another tenant's object: it must be refused as forbidden or missing."""
    response = werk.client.request(method, f"{IAM}{url}", json=body, headers=admin.headers)
    where = f"{admin.name} {method} {url} {body}"
    assert response.status_code in (403, 404), f"{where}: {response.status_code} {response.text}"


@settings(
    max_examples=3,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(specs=st.lists(org_specs, min_size=2, max_size=4))
@example(specs=[OrgSpec(2, 2, (None, 1), 1, True), OrgSpec(1, 1, (0,), 0, True)])
def test_no_route_reads_or_changes_another_tenants_objects(
    world: World, specs: list[OrgSpec]
) -> None:
    tenants = [world.build(spec) for spec in specs]
    world.publish(tenants)
    ops = schema_operations(world.werk)
    check_reads(world, tenants, ops)
    check_writes(world, tenants, ops)


def test_the_scan_finds_what_another_tenant_must_not_see(world: World) -> None:
    """The detector itself: the operator's own view of a partner is full of forbidden tokens."""
    partner, other = (
        world.build(OrgSpec(1, 1, user_areas=(None,), devices=0, engineer=True)) for _ in range(2)
    )
    world.publish([partner, other])
    admin = world.werk.admin.headers
    for caller in other.callers:
        forbidden = world.forbidden(other.org_id, caller.filters)
        paths = ["/namespace", "/values"]
        if caller.account.name.startswith("en"):
            paths += ["/quarantine"]
        if caller.admin:
            paths += ["/iam/principals", "/iam/orgs", "/iam/api-keys", "/iam/audit?newest_first=1"]
        for path in paths:
            seen_by_admin = world.werk.client.get(f"{API}{path}", headers=admin).text
            assert forbidden.search(seen_by_admin) is not None, path
            own = world.werk.client.get(f"{API}{path}", headers=caller.account.headers)
            assert own.status_code == 200, f"{caller.account.name} {path}: {own.text}"
            assert forbidden.search(own.text) is None, path


def test_outside_levels_keeps_ancestors_and_drops_the_rest() -> None:
    filters = ("p1/area-a/#",)
    assert outside_levels("p1/area-a/t", filters) == []
    assert outside_levels("p1/area-b/t", filters) == ["area-b", "t"]
    assert outside_levels("p2/area-a/t", filters) == ["p2", "area-a", "t"]
    assert outside_levels("p1/x/t", ("p1/+/t",)) == []
