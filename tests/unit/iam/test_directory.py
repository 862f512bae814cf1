"""The directory on a real SQLite database: tenants stay apart, and nobody escalates."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker
from tests.conftest import make_settings

from werk.core.db import create_db_engine, session_scope, upgrade_schema
from werk.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from werk.iam.bootstrap import SYSTEM, ensure_admin
from werk.iam.directory_rules import check_name, generate_password
from werk.iam.models import ApiKeyRecord, PrincipalRecord, RoleRecord
from werk.iam.passwords import verify_password
from werk.iam.scopes import Principal
from werk.iam.service import Iam


def _iam(directory: Path) -> Iam:
    engine = create_db_engine(f"sqlite:///{directory / 'werk.db'}")
    upgrade_schema(engine)
    return Iam(sessionmaker(engine, expire_on_commit=False), make_settings(directory))


def _role_id(iam: Iam, name: str) -> str:
    with session_scope(iam.sessions) as session:
        return session.scalars(
            select(RoleRecord.id).where(RoleRecord.builtin, RoleRecord.name == name)
        ).one()


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class World:
    iam: Iam
    admin: Principal
    operator: str
    northwind: str
    contoso: str
    nw_admin: Principal
    co_admin: Principal

    def actor(self, principal_id: str) -> Principal:
        found = self.iam.directory.load_principal(principal_id)
        assert found is not None
        return found

    def partner_admin(self, org_id: str, slug: str) -> Principal:
        """A partner administrator (a service account, so no password hashing is needed)."""
        d = self.iam.directory
        view = d.create_service_account(SYSTEM, org_id=org_id, name=_unique(f"{slug}-admin"))
        d.create_binding(
            SYSTEM, role_id=_role_id(self.iam, "partner-admin"), principal_id=view.id,
            namespace=(f"acme/partners/{slug}/#",),
        )  # fmt: skip
        return self.actor(view.id)


def _build_world(directory: Path) -> World:
    iam = _iam(directory)
    ensure_admin(iam)
    admin_id = iam.directory.find_by_name("admin")
    assert admin_id is not None
    d = iam.directory
    operator = d.list_orgs(SYSTEM)[0].id
    northwind = d.create_org(SYSTEM, slug="northwind", name="Northwind Traders").id
    contoso = d.create_org(SYSTEM, slug="contoso", name="Contoso").id
    world = World(iam, SYSTEM, operator, northwind, contoso, SYSTEM, SYSTEM)
    world.admin = world.actor(admin_id)
    world.nw_admin = world.partner_admin(northwind, "northwind")
    world.co_admin = world.partner_admin(contoso, "contoso")
    return world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Operator, two partners, an admin for each; tests add uniquely named objects."""
    built = _build_world(tmp_path_factory.mktemp("directory"))
    yield built
    _dispose(built.iam)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[World]:
    """A world of one test's own, for tests that change shared state."""
    built = _build_world(tmp_path)
    yield built
    _dispose(built.iam)


def _dispose(iam: Iam) -> None:
    engine = iam.sessions.kw["bind"]
    engine.dispose()


@dataclass
class Tenant:
    """One of every kind of object in an organisation."""

    device: str
    group: str
    role: str
    binding: str
    key: str


def _populate(world: World, org_id: str, slug: str) -> Tenant:
    d = world.iam.directory
    device = d.create_device(SYSTEM, org_id=org_id, name=_unique(f"{slug}-sensor")).id
    group = d.create_group(SYSTEM, org_id=org_id, name=_unique("operators")).id
    role = d.create_role(SYSTEM, org_id=org_id, name=_unique("readers"), permissions=["uns:read"])
    binding = d.create_binding(
        SYSTEM, role_id=role.id, principal_id=device, namespace=(f"acme/partners/{slug}/#",)
    )
    key, _ = d.create_api_key(SYSTEM, principal_id=device, name="sensor")
    return Tenant(device, group, role.id, binding.id, key.id)


def test_a_partner_admin_lists_only_its_own_organisation(world: World) -> None:
    _populate(world, world.northwind, "northwind")
    _populate(world, world.contoso, "contoso")
    d, actor = world.iam.directory, world.nw_admin
    assert [o.slug for o in d.list_orgs(actor)] == ["northwind"]
    assert {p.org_id for p in d.list_principals(actor)} == {world.northwind}
    assert d.list_principals(actor, org_id=world.contoso) == []
    assert {g.org_id for g in d.list_groups(actor)} == {world.northwind}
    assert {r.org_id for r in d.list_roles(actor)} == {None, world.northwind}
    assert {b.org_id for b in d.list_bindings(actor)} == {world.northwind}
    owners = {p.id for p in d.list_principals(actor)}
    assert {k.principal_id for k in d.list_api_keys(actor)} <= owners
    assert len(d.list_orgs(world.admin)) == 3  # the operator's admin sees every tenant


def _attempts(d: Any, other: Tenant, org_id: str) -> list[Callable[[Principal], object]]:
    return [
        lambda a: d.get_org(a, org_id),
        lambda a: d.update_org(a, org_id, name="taken over"),
        lambda a: d.get_principal(a, other.device),
        lambda a: d.update_principal(a, other.device, display_name="mine"),
        lambda a: d.update_principal(a, other.device, disabled=True),
        lambda a: d.revoke_all(a, other.device),
        lambda a: d.create_api_key(a, principal_id=other.device, name="stolen"),
        lambda a: d.revoke_api_key(a, other.key),
        lambda a: d.create_device(a, org_id=org_id, name=_unique("implant")),
        lambda a: d.get_group(a, other.group),
        lambda a: d.add_member(a, other.group, other.device),
        lambda a: d.delete_group(a, other.group),
        lambda a: d.get_role(a, other.role),
        lambda a: d.update_role(a, other.role, description="x"),
        lambda a: d.delete_role(a, other.role),
        lambda a: d.create_binding(a, role_id=other.role, principal_id=other.device),
        lambda a: d.delete_binding(a, other.binding),
        lambda a: d.create_group(a, org_id=org_id, name=_unique("g")),
    ]


def test_objects_of_another_tenant_answer_like_missing_ones(world: World) -> None:
    other = _populate(world, world.contoso, "contoso")
    d = world.iam.directory
    for attempt in _attempts(d, other, world.contoso):
        with pytest.raises(NotFound) as err:
            attempt(world.nw_admin)
        assert err.value.code == "not_found"
    missing = Tenant(*(uuid.uuid4().hex for _ in range(5)))
    for attempt in _attempts(d, missing, uuid.uuid4().hex):
        with pytest.raises(NotFound):
            attempt(world.nw_admin)
    # nothing of contoso's changed
    assert d.get_principal(world.co_admin, other.device).disabled is False
    assert d.get_role(world.co_admin, other.role).description == ""


def test_a_partner_cannot_create_organisations_or_reach_every_organisation(world: World) -> None:
    d, actor = world.iam.directory, world.nw_admin
    with pytest.raises(Forbidden):
        d.create_org(actor, slug=_unique("rogue"), name="Rogue")
    device = d.create_device(actor, org_id=world.northwind, name=_unique("nw-gw")).id
    with pytest.raises(Forbidden) as err:
        d.create_binding(
            actor, role_id=_role_id(world.iam, "partner-user"), principal_id=device,
            namespace=("acme/partners/northwind/#",), org_scope="any",
        )  # fmt: skip
    assert err.value.code == "privilege_escalation"
    with pytest.raises(Forbidden):
        d.update_org(actor, world.northwind, disabled=True)


@pytest.mark.parametrize(
    ("role", "namespace", "layers"),
    [
        ("admin", ("acme/partners/northwind/#",), None),
        ("engineer", ("acme/partners/northwind/#",), None),
        ("viewer", ("acme/partners/northwind/#",), None),  # history:read:raw, quality:read
        ("partner-user", ("#",), None),
        ("partner-user", ("acme/#",), None),
        ("partner-user", ("acme/partners/+/#",), None),
        ("partner-user", ("acme/partners/contoso/#",), None),
    ],
)
def test_a_partner_admin_cannot_grant_beyond_its_own_access(
    world: World, role: str, namespace: tuple[str, ...], layers: tuple[str, ...] | None
) -> None:
    d, actor = world.iam.directory, world.nw_admin
    device = d.create_device(actor, org_id=world.northwind, name=_unique("nw-dev")).id
    with pytest.raises(Forbidden) as err:
        d.create_binding(
            actor, role_id=_role_id(world.iam, role), principal_id=device,
            namespace=namespace, layers=layers,
        )  # fmt: skip
    assert err.value.code == "privilege_escalation"
    assert d.list_bindings(actor, principal_id=device) == []


def test_a_partner_admin_grants_within_its_subtree(world: World) -> None:
    d, actor = world.iam.directory, world.nw_admin
    device = d.create_device(actor, org_id=world.northwind, name=_unique("nw-meter")).id
    binding = d.create_binding(
        actor, role_id=_role_id(world.iam, "device"), principal_id=device,
        namespace=("acme/partners/northwind/site-1/#",),
    )  # fmt: skip
    loaded = world.actor(device)
    assert loaded.allows("mqtt:publish", path="acme/partners/northwind/site-1/meter/power")
    assert not loaded.allows("mqtt:publish", path="acme/berlin/machining/line-1/cell-1/cnc-1")
    d.delete_binding(actor, binding.id)
    assert world.actor(device).grants == ()


def test_roles_hold_only_permissions_their_creator_holds(world: World) -> None:
    d, actor = world.iam.directory, world.nw_admin
    with pytest.raises(Forbidden) as err:
        d.create_role(actor, org_id=world.northwind, name=_unique("r"), permissions=["data:admin"])
    assert err.value.code == "privilege_escalation"
    with pytest.raises(Forbidden):
        d.create_role(actor, org_id=world.northwind, name=_unique("r"), permissions=["history:*"])
    with pytest.raises(ValidationFailed):
        d.create_role(actor, org_id=world.northwind, name=_unique("r"), permissions=["uns:sing"])
    with pytest.raises(Conflict):
        d.create_role(actor, org_id=world.northwind, name="admin", permissions=["uns:read"])
    role = d.create_role(
        actor, org_id=world.northwind, name=_unique("r"), permissions=["history:read:business"]
    )
    with pytest.raises(Forbidden):
        d.update_role(actor, role.id, permissions=["history:read:raw"])
    with pytest.raises(Forbidden) as builtin:
        d.update_role(world.admin, _role_id(world.iam, "viewer"), permissions=["uns:read"])
    assert builtin.value.code == "builtin_role"


def test_a_group_cannot_smuggle_in_grants_the_partner_lacks(world: World) -> None:
    d = world.iam.directory
    group = d.create_group(world.admin, org_id=world.northwind, name=_unique("engineers"))
    d.create_binding(world.admin, role_id=_role_id(world.iam, "engineer"), group_id=group.id)
    device = d.create_device(world.nw_admin, org_id=world.northwind, name=_unique("nw-x")).id
    with pytest.raises(Forbidden) as err:
        d.add_member(world.nw_admin, group.id, device)
    assert err.value.code == "privilege_escalation"
    with pytest.raises(Forbidden):
        d.delete_group(world.nw_admin, group.id)
    assert world.actor(device).grants == ()


def test_a_group_holds_only_principals_of_its_organisation(world: World) -> None:
    d = world.iam.directory
    group = d.create_group(world.admin, org_id=world.northwind, name=_unique("g"))
    outsider = d.create_device(world.admin, org_id=world.contoso, name=_unique("co-x")).id
    with pytest.raises(ValidationFailed):
        d.add_member(world.admin, group.id, outsider)


def test_a_lesser_admin_cannot_take_over_a_stronger_account(world: World) -> None:
    d = world.iam.directory
    role = d.create_role(
        world.admin, org_id=world.operator, name=_unique("user-admins"),
        permissions=["iam:read", "iam:admin"],
    )  # fmt: skip
    helper = d.create_service_account(world.admin, org_id=world.operator, name=_unique("helper"))
    d.create_binding(world.admin, role_id=role.id, principal_id=helper.id)
    actor = world.actor(helper.id)
    for attempt in (
        lambda: d.set_password(actor, world.admin.id, "a brand new password"),
        lambda: d.create_api_key(actor, principal_id=world.admin.id, name="backdoor"),
        lambda: d.update_principal(actor, world.admin.id, disabled=True),
        lambda: d.revoke_all(actor, world.admin.id),
    ):
        with pytest.raises(Forbidden) as err:
            attempt()
        assert err.value.code == "privilege_escalation"
    user, generated = d.create_user(actor, org_id=world.operator, name=_unique("intern"))
    assert generated is not None
    d.set_password(actor, user.id, "correct horse battery staple")
    assert world.actor(world.admin.id).allows("iam:admin", org_id=world.contoso)


def test_load_principal_merges_direct_and_group_grants(world: World) -> None:
    d = world.iam.directory
    device = d.create_device(world.admin, org_id=world.operator, name=_unique("cnc")).id
    group = d.create_group(world.admin, org_id=world.operator, name=_unique("readers"))
    d.create_binding(
        world.admin, role_id=_role_id(world.iam, "viewer"), group_id=group.id,
        namespace=("acme/berlin/#",), layers=("processed",),
    )  # fmt: skip
    d.create_binding(
        world.admin, role_id=_role_id(world.iam, "device"), principal_id=device,
        namespace=("acme/berlin/machining/line-1/#",),
    )  # fmt: skip
    assert {g.role for g in world.actor(device).grants} == {"device"}
    d.add_member(world.admin, group.id, device)
    loaded = world.actor(device)
    assert {g.role for g in loaded.grants} == {"device", "viewer"}
    assert loaded.allows("history:read:processed", path="acme/berlin/x")
    assert not loaded.allows("history:read:raw", path="acme/berlin/x")
    assert loaded.allows("mqtt:publish", path="acme/berlin/machining/line-1/cell-1/cnc-1/speed")
    d.remove_member(world.admin, group.id, device)
    assert {g.role for g in world.actor(device).grants} == {"device"}


def test_disabled_principals_and_organisations_do_not_load(fresh: World) -> None:
    d = fresh.iam.directory
    device = d.create_device(fresh.admin, org_id=fresh.contoso, name="co-sensor").id
    d.update_principal(fresh.admin, device, disabled=True)
    assert d.load_principal(device) is None
    d.update_principal(fresh.admin, device, disabled=False)
    assert d.load_principal(device) is not None
    d.update_org(fresh.admin, fresh.contoso, disabled=True)
    assert d.load_principal(device) is None
    assert d.load_principal(fresh.co_admin.id) is None
    assert d.load_principal(uuid.uuid4().hex) is None
    with pytest.raises(Conflict):
        d.update_org(fresh.admin, fresh.operator, disabled=True)
    with pytest.raises(Conflict):
        d.update_principal(fresh.admin, fresh.admin.id, disabled=True)


def test_listeners_hear_each_change_of_a_principal(fresh: World) -> None:
    heard: list[str] = []
    fresh.iam.on_change(heard.append)
    d = fresh.iam.directory
    device = d.create_device(fresh.admin, org_id=fresh.operator, name="press-gw").id
    binding = d.create_binding(
        fresh.admin, role_id=_role_id(fresh.iam, "device"), principal_id=device
    )
    key, _ = d.create_api_key(fresh.admin, principal_id=device, name="k1")
    d.revoke_api_key(fresh.admin, key.id)
    d.update_principal(fresh.admin, device, disabled=True)
    d.revoke_all(fresh.admin, device)
    d.delete_binding(fresh.admin, binding.id)
    assert heard == [device] * 6
    d.update_org(fresh.admin, fresh.contoso, disabled=True)
    assert heard[-1] == "*"


def test_a_failing_listener_does_not_stop_the_others(fresh: World) -> None:
    heard: list[str] = []

    def broken(_: str) -> None:
        raise RuntimeError("listener down")

    fresh.iam.on_change(broken)
    fresh.iam.on_change(heard.append)
    d = fresh.iam.directory
    device = d.create_device(fresh.admin, org_id=fresh.operator, name="oven-gw").id
    d.update_principal(fresh.admin, device, disabled=True)
    assert heard == [device]
    assert d.get_principal(fresh.admin, device).disabled


def test_api_keys_are_shown_once_and_stored_hashed(world: World) -> None:
    d = world.iam.directory
    device = d.create_device(world.admin, org_id=world.operator, name=_unique("robot")).id
    view, secret = d.create_api_key(world.admin, principal_id=device, name="plant")
    key_id, key_secret = re.fullmatch(r"wk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})", secret).groups()  # type: ignore[union-attr]
    assert key_id == view.id
    assert secret not in view.model_dump_json()
    with session_scope(world.iam.sessions) as session:
        stored = session.get(ApiKeyRecord, view.id)
        assert stored is not None
        assert stored.secret_hash == hashlib.sha256(key_secret.encode()).hexdigest()
        assert stored.mosquitto_hash.startswith("$7$")
        assert key_secret not in stored.mosquitto_hash
    d.revoke_api_key(world.admin, view.id)
    listed = d.list_api_keys(world.admin, principal_id=device)
    assert [k.id for k in listed] == [view.id] and listed[0].revoked_at is not None


def test_generated_passwords_are_long_random_and_stored_hashed(world: World) -> None:
    d = world.iam.directory
    user, password = d.create_user(world.admin, org_id=world.operator, name=_unique("u"))
    assert password is not None and len(password) >= 20
    with session_scope(world.iam.sessions) as session:
        stored = session.get(PrincipalRecord, user.id)
        assert stored is not None and stored.password_hash is not None
        assert password not in stored.password_hash
        assert verify_password(stored.password_hash, password)
    assert d.get_principal(world.admin, user.id).has_password
    for weak in ("short", f"my {user.name} password"):
        with pytest.raises(ValidationFailed):
            d.set_password(world.admin, user.id, weak)
    chosen, returned = d.create_user(
        world.admin, org_id=world.operator, name=_unique("v"), password="twelve chars long!"
    )
    assert returned is None and chosen.has_password


def test_generated_passwords_do_not_repeat() -> None:
    made = [generate_password() for _ in range(500)]
    assert len(set(made)) == len(made)
    assert all(len(p) >= 20 and p.isalnum() and p.isascii() for p in made)
    # every position draws from the whole alphabet, not a fixed pattern
    assert len({p[0] for p in made}) > 40


def test_names_are_checked_and_unique(world: World) -> None:
    d = world.iam.directory
    for bad in ("a", "x" * 65, "with space", "slash/name", "plus+", "ümlaut", ""):
        with pytest.raises(ValidationFailed):
            d.create_device(world.admin, org_id=world.operator, name=bad)
    name = _unique("dup")
    d.create_device(world.admin, org_id=world.operator, name=name)
    with pytest.raises(Conflict):
        d.create_service_account(world.admin, org_id=world.contoso, name=name)
    with pytest.raises(ValidationFailed):
        d.create_org(world.admin, slug="Upper", name="x")
    with pytest.raises(ValidationFailed):
        d.create_device(
            world.nw_admin, org_id=world.northwind, name=_unique("gw"), sparkplug=("acme", "n1")
        )
    gw = d.create_device(
        world.nw_admin, org_id=world.northwind, name=_unique("gw"), sparkplug=("northwind", "n1")
    )
    assert gw.sparkplug == ("northwind", "n1")


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=70))
def test_check_name_accepts_exactly_the_documented_alphabet(name: str) -> None:
    valid = re.fullmatch(r"[A-Za-z0-9._@-]{2,64}", name) is not None
    if valid:
        assert check_name(name) == name
    else:
        with pytest.raises(ValidationFailed):
            check_name(name)


def test_changes_are_audited_in_the_objects_organisation(world: World) -> None:
    d = world.iam.directory
    name = _unique("audited")
    d.create_device(world.admin, org_id=world.northwind, name=name)
    events = world.iam.audit.query(world.admin, action="iam.device.create", newest_first=True)
    event = next(e for e in events if e.target == name)
    assert (event.actor_id, event.org_id, event.outcome) == (
        world.admin.id, world.northwind, "ok"
    )  # fmt: skip
    seen_by_partner = world.iam.audit.query(world.nw_admin, action="iam.device.create")
    assert event.seq in {e.seq for e in seen_by_partner}
    assert all(e.org_id == world.northwind for e in world.iam.audit.query(world.nw_admin))
