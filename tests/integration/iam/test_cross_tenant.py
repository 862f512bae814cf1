"""Tenant isolation as a property: no route returns or changes anything outside the caller's scope.

Hypothesis generates partner organisations with an administrator, scoped users and
devices, keys, groups, roles and bindings, and tags published into each partner's
subtree (plus a quarantined message there). Then, for every GET operation of the
OpenAPI document, with path and query parameters filled with objects of every tenant,
no response may contain an object outside the caller's scope (tag path levels, principal
ids and names, organisations, keys, groups, roles, bindings, audit events); and every
unsafe IAM operation aimed at another tenant's object answers 403/404 and changes nothing.

Every generated name is a token (`<kind><run><n>z`) that cannot occur inside another one
or inside a hex id, so finding a token in a response body means that object leaked,
whatever the shape of the response (lists, trees, CSV, audit events).
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from tests.conftest import publish, wait_until
from tests.integration.iam.api_support import API, Account, Werk, fill, started_werk

from werk.iam.bootstrap import SYSTEM

RUN = uuid.uuid4().hex[:6]
_N = itertools.count(1)
TOKEN = re.compile(rf"[a-z]{{2}}{RUN}\d+z")
IAM = f"{API}/iam"
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


def token(kind: str) -> str:
    """A fresh name: two letters, this run's id, a number, and a closing z."""
    return f"{kind}{RUN}{next(_N)}z"


@dataclass
class Caller:
    """A principal that reads the API, and where it may."""

    account: Account
    filters: tuple[str, ...]
    admin: bool


@dataclass
class Tenant:
    """One organisation's objects."""

    org_id: str
    slug: str
    principals: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    callers: list[Caller] = field(default_factory=list)
    group_id: str = ""
    role_id: str = ""
    binding_id: str = ""
    key_id: str = ""
    victim: Account | None = None
    victim_token: str = ""
    credential_id: str = ""
    user_id: str = ""
    record_id: str = ""


@dataclass(frozen=True)
class OrgSpec:
    """What hypothesis chose for one partner."""

    areas: int
    tags_per_area: int
    user_areas: tuple[int | None, ...]  # None: the whole partner subtree
    devices: int


org_specs = st.builds(
    OrgSpec,
    areas=st.integers(1, 2),
    tags_per_area=st.integers(1, 2),
    user_areas=st.lists(st.none() | st.integers(0, 1), min_size=1, max_size=2).map(tuple),
    devices=st.integers(0, 1),
)


class World:
    """Every tenant made so far in this werk, and the tag paths published."""

    def __init__(self, werk: Werk) -> None:
        self.werk = werk
        self.tags: list[str] = []
        self.operator = Tenant(werk.operator_org, "operator")

    def build(self, spec: OrgSpec) -> Tenant:
        """Create one partner with its principals, objects and tags."""
        werk, directory = self.werk, self.werk.iam.directory
        slug = token("sl")
        tenant = Tenant(werk.org(slug), slug)
        areas = [token("ar") for _ in range(spec.areas)]
        tenant.tags = [tag_path(slug, a) for a in areas for _ in range(spec.tags_per_area)]
        admin = werk.account(
            tenant.org_id, [("partner-admin", (f"{slug}/#",), "own")], name=token("pa")
        )
        tenant.user_id = admin.id
        tenant.callers.append(Caller(admin, (f"{slug}/#",), admin=True))
        for area in spec.user_areas:
            scope = f"{slug}/#" if area is None else f"{slug}/{areas[min(area, len(areas) - 1)]}/#"
            reader = werk.account(
                tenant.org_id, [("partner-user", (scope,), "own")], kind="service", name=token("su")
            )
            tenant.callers.append(Caller(reader, (scope,), admin=False))
        for _ in range(spec.devices):
            werk.account(
                tenant.org_id,
                [("device", (f"{slug}/{areas[0]}/#",), "own")],
                kind="device",
                name=token("dv"),
            )
        self._objects(tenant, admin.id)
        tenant.principals = [p.id for p in directory.list_principals(SYSTEM, org_id=tenant.org_id)]
        return tenant

    def _objects(self, tenant: Tenant, member: str) -> None:
        werk, directory = self.werk, self.werk.iam.directory
        group = directory.create_group(SYSTEM, org_id=tenant.org_id, name=token("gr"))
        directory.add_member(SYSTEM, group.id, member)
        tenant.group_id = group.id
        tenant.role_id = directory.create_role(
            SYSTEM, org_id=tenant.org_id, name=token("ro"), permissions=["uns:read"]
        ).id
        tenant.binding_id = directory.create_binding(
            SYSTEM, role_id=tenant.role_id, group_id=group.id, namespace=(f"{tenant.slug}/#",)
        ).id
        victim = werk.account(tenant.org_id, kind="service", name=token("vi"))
        tenant.victim, tenant.key_id = victim, victim.key.split("_")[1]
        principal = directory.load_principal(victim.id)
        assert principal is not None
        tenant.victim_token = werk.iam.authn.issue(principal, ip="").access_token
        tenant.credential_id = werk.iam.authn.list_credentials(SYSTEM, victim.id)[0].id

    def publish(self, tenants: list[Tenant]) -> None:
        """Publish every tenant's tags and one bad message each; wait until werk has them."""
        client, headers = self.werk.client, self.werk.admin.headers
        root, port = self.werk.runtime.settings.uns_root, self.werk.runtime.mqtt_port
        topics = {}
        for n, tenant in enumerate(tenants):
            for tag in tenant.tags:
                response = client.post(
                    f"{API}/publish", json={"tag": tag, "value": n + 0.5}, headers=headers
                )
                assert response.status_code < 300, response.text
            bad = f"{tenant.tags[0].rsplit('/', 1)[0]}/{token('qq')}"  # quarantined: not JSON
            topics[f"{root}/{bad}"] = tenant
            publish(port, f"{root}/{bad}", b"{not json")
            self.tags.extend([*tenant.tags, bad])
        for tenant in tenants:
            wait_until(lambda t=tenant: all(_tag_known(client, headers, tag) for tag in t.tags))
        wait_until(lambda: self._records(topics))

    def _records(self, topics: dict[str, Tenant]) -> bool:
        response = self.werk.client.get(
            f"{API}/quarantine", params={"limit": 1000}, headers=self.werk.admin.headers
        )
        for item in response.json()["items"]:
            if item["topic"] in topics:
                topics[item["topic"]].record_id = str(item["id"])
        return all(t.record_id for t in topics.values())

    def forbidden(self, caller_org: str, filters: tuple[str, ...]) -> re.Pattern[str]:
        """A pattern of every token and id the caller must never see."""
        found: set[str] = set()
        directory = self.werk.iam.directory
        org_of = {p.id: p.org_id for p in directory.list_principals(SYSTEM)}
        for org in directory.list_orgs(SYSTEM):
            if org.id != caller_org:
                found |= {org.id, org.slug} if TOKEN.fullmatch(org.slug) else {org.id}
        for p in directory.list_principals(SYSTEM):
            if p.org_id != caller_org:
                found |= {p.id, p.name} if TOKEN.fullmatch(p.name) else {p.id}
        for g in directory.list_groups(SYSTEM):
            if g.org_id != caller_org:
                found |= {g.id, g.name}
        for r in directory.list_roles(SYSTEM):
            if r.org_id is not None and r.org_id != caller_org:
                found |= {r.id, r.name}
        found |= {b.id for b in directory.list_bindings(SYSTEM) if b.org_id != caller_org}
        found |= {
            k.id for k in directory.list_api_keys(SYSTEM) if org_of[k.principal_id] != caller_org
        }
        outside = {lvl for tag in self.tags for lvl in outside_levels(tag, filters)}
        found |= {lvl for lvl in outside if TOKEN.fullmatch(lvl)}
        return re.compile("|".join(re.escape(t) for t in sorted(found, key=len, reverse=True)))


def tag_path(enterprise: str, site: str) -> str:
    """A tag with ISA-95 levels below the tenant's enterprise and site, and a fresh name."""
    return f"{enterprise}/{site}/area-1/line-1/cell-1/{token('lf')}"


def _tag_known(client: Any, headers: dict[str, str], tag: str) -> bool:
    return bool(client.get(f"{API}/tags/{tag}", headers=headers).status_code == 200)


def outside_levels(tag: str, filters: tuple[str, ...]) -> list[str]:
    """Levels of `tag` whose prefix lies outside every filter and above none of them."""
    levels = tag.split("/")
    return [
        level
        for i, level in enumerate(levels)
        if not any(_reaches(levels[: i + 1], f.split("/")) for f in filters)
    ]


def _reaches(prefix: list[str], topic_filter: list[str]) -> bool:
    for i, level in enumerate(prefix):
        if i >= len(topic_filter):
            return False
        if topic_filter[i] == "#":
            return True
        if topic_filter[i] not in ("+", level):
            return False
    return True


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


def fingerprint(werk: Werk) -> str:
    """Everything the directory holds, as the operator sees it (use times aside)."""
    d = werk.iam.directory
    keys = [k.model_dump(exclude={"last_used_at"}) for k in d.list_api_keys(SYSTEM)]
    parts = [d.list_orgs(SYSTEM), d.list_principals(SYSTEM), d.list_groups(SYSTEM),
             d.list_roles(SYSTEM), d.list_bindings(SYSTEM)]  # fmt: skip
    dumped = [[v.model_dump() for v in part] for part in parts]
    return json.dumps([*dumped, keys], default=str, sort_keys=True)


# -- the property -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One werk for the module, with a few operator tags of its own."""
    with started_werk(tmp_path_factory.mktemp("werk")) as werk:
        built = World(werk)
        operator = built.operator
        operator.tags = [tag_path(token("op"), token("ar")) for _ in range(2)]
        operator.user_id = werk.admin.id
        built._objects(operator, werk.admin.id)
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
        admin = own.callers[0].account
        for other in [t for t in [*tenants, world.operator] if t is not own]:
            for method, path in unsafe:
                for url, body in ATTACKS[(method, path)](own, other):
                    response = werk.client.request(
                        method, f"{IAM}{url}", json=body, headers=admin.headers
                    )
                    assert response.status_code in (403, 404), (
                        f"{admin.name} {method} {url} {body}: {response.status_code} {response.text}"
                    )
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


@settings(
    max_examples=3,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(specs=st.lists(org_specs, min_size=2, max_size=4))
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
    partner = world.build(OrgSpec(areas=1, tags_per_area=1, user_areas=(None,), devices=0))
    world.publish([partner])
    other = world.build(OrgSpec(areas=1, tags_per_area=1, user_areas=(None,), devices=0))
    forbidden = world.forbidden(other.org_id, other.callers[0].filters)
    admin = world.werk.admin.headers
    for path in ("/iam/principals", "/iam/orgs", "/iam/api-keys", "/namespace", "/iam/audit"):
        text = world.werk.client.get(f"{API}{path}", headers=admin).text
        assert forbidden.search(text) is not None, path
    own = world.werk.client.get(f"{IAM}/principals", headers=other.callers[0].account.headers)
    assert own.status_code == 200 and forbidden.search(own.text) is None


def test_outside_levels_keeps_ancestors_and_drops_the_rest() -> None:
    filters = ("p1/area-a/#",)
    assert outside_levels("p1/area-a/t", filters) == []
    assert outside_levels("p1/area-b/t", filters) == ["area-b", "t"]
    assert outside_levels("p2/area-a/t", filters) == ["p2", "area-a", "t"]
    assert outside_levels("p1/x/t", ("p1/+/t",)) == []
