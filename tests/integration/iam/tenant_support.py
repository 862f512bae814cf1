"""Tenants for the isolation test: partners with principals, objects and tags, and the scan.

Every generated name is a token (`<kind><run><n>z`) that cannot occur inside another one
or inside a hex id, so finding a token in a response body means that object leaked,
whatever the shape of the response (lists, trees, CSV, audit events).
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from tests.conftest import publish, wait_until
from tests.integration.iam.api_support import API, Account, Werk

from werk.iam.bootstrap import SYSTEM

RUN = uuid.uuid4().hex[:6]
_N = itertools.count(1)
TOKEN = re.compile(rf"[a-z]{{2}}{RUN}\d+z")


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
    engineer: bool  # a reader of quarantine, raw history, commands... within one area


org_specs = st.builds(
    OrgSpec,
    areas=st.integers(1, 2),
    tags_per_area=st.integers(1, 2),
    user_areas=st.lists(st.none() | st.integers(0, 1), min_size=1, max_size=2).map(tuple),
    devices=st.integers(0, 1),
    engineer=st.booleans(),
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
        if spec.engineer:
            scope = f"{slug}/{areas[-1]}/#"
            engineer = werk.account(
                tenant.org_id, [("engineer", (scope,), "own")], kind="service", name=token("en")
            )
            tenant.callers.append(Caller(engineer, (scope,), admin=False))
        for _ in range(spec.devices):
            werk.account(
                tenant.org_id,
                [("device", (f"{slug}/{areas[0]}/#",), "own")],
                kind="device",
                name=token("dv"),
            )
        self.add_objects(tenant, admin.id)
        tenant.principals = [p.id for p in directory.list_principals(SYSTEM, org_id=tenant.org_id)]
        return tenant

    def add_objects(self, tenant: Tenant, member: str) -> None:
        """Give a tenant a group, a role, a binding, and a victim with a key and a login."""
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


def fingerprint(werk: Werk) -> str:
    """Everything the directory holds, as the operator sees it (use times aside)."""
    d = werk.iam.directory
    keys = [k.model_dump(exclude={"last_used_at"}) for k in d.list_api_keys(SYSTEM)]
    parts = [d.list_orgs(SYSTEM), d.list_principals(SYSTEM), d.list_groups(SYSTEM),
             d.list_roles(SYSTEM), d.list_bindings(SYSTEM)]  # fmt: skip
    dumped = [[v.model_dump() for v in part] for part in parts]
    return json.dumps([*dumped, keys], default=str, sort_keys=True)
