"""First run and demo seeding: one admin with a fresh password, idempotent demo tenants."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker
from tests.conftest import make_settings

from werk.core.db import create_db_engine, session_scope, upgrade_schema
from werk.core.errors import ValidationFailed
from werk.iam.bootstrap import (
    SYSTEM,
    DemoDevice,
    demo_devices,
    ensure_admin,
    ensure_builtin_roles,
    seed_demo,
)
from werk.iam.models import (
    ApiKeyRecord,
    BindingRecord,
    OrgRecord,
    PrincipalRecord,
    RoleRecord,
)
from werk.iam.mqtt import topic_acl
from werk.iam.passwords import verify_password
from werk.iam.permissions import BUILTIN_ROLES
from werk.iam.service import Iam
from werk.sim import demo
from werk.sim.plant import DemoPlant, demo_machines


@pytest.fixture
def iam(tmp_path: Path) -> Iterator[Iam]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'werk.db'}")
    upgrade_schema(engine)
    yield Iam(sessionmaker(engine, expire_on_commit=False), make_settings(tmp_path))
    engine.dispose()


def _counts(iam: Iam) -> dict[str, int]:
    with session_scope(iam.sessions) as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (OrgRecord, PrincipalRecord, RoleRecord, BindingRecord)
        }


def _password_hash(iam: Iam, name: str) -> str:
    with session_scope(iam.sessions) as session:
        found = session.scalars(
            select(PrincipalRecord.password_hash).where(PrincipalRecord.name == name)
        ).one()
    assert found is not None
    return found


def test_the_first_run_makes_one_admin_with_a_fresh_password(iam: Iam) -> None:
    first = ensure_admin(iam)
    assert first is not None and first.username == "admin"
    assert len(first.password) >= 20
    assert verify_password(_password_hash(iam, "admin"), first.password)
    admin_id = iam.directory.find_by_name("admin")
    admin = iam.directory.load_principal(admin_id or "")
    assert admin is not None and admin.org_wide("iam:admin") and admin.allows("data:admin")
    roles = {r.name: r for r in iam.directory.list_roles(admin)}
    assert set(roles) == set(BUILTIN_ROLES) and all(r.builtin for r in roles.values())
    before = _counts(iam)
    assert ensure_admin(iam) is None  # never a second password
    assert _counts(iam) == before


def test_another_start_keeps_an_existing_directory_as_it_is(iam: Iam) -> None:
    org = iam.directory.create_org(SYSTEM, slug="operator", name="Operator", kind="operator")
    iam.directory.create_device(SYSTEM, org_id=org.id, name="lone-device")
    assert ensure_admin(iam) is None
    assert iam.directory.find_by_name("admin") is None


def test_builtin_roles_follow_the_code(iam: Iam) -> None:
    assert ensure_builtin_roles(iam) == len(BUILTIN_ROLES)
    with session_scope(iam.sessions) as session:
        viewer = session.scalars(select(RoleRecord).where(RoleRecord.name == "viewer")).one()
        viewer.permissions = ["*"]
    assert ensure_builtin_roles(iam) == 1
    assert ensure_builtin_roles(iam) == 0
    with session_scope(iam.sessions) as session:
        viewer = session.scalars(select(RoleRecord).where(RoleRecord.name == "viewer")).one()
        assert viewer.permissions == list(BUILTIN_ROLES["viewer"][1])


def test_seeding_the_demo_twice_creates_nothing_and_shows_no_password_again(iam: Iam) -> None:
    first_run = ensure_admin(iam)
    assert first_run is not None
    first = seed_demo(iam)
    passwords = [c for c in first if c.kind == "password"]
    assert {(c.org, c.name) for c in passwords} == {
        ("northwind", "northwind-admin"), ("northwind", "northwind-user"),
        ("contoso", "contoso-admin"), ("contoso", "contoso-user"),
    }  # fmt: skip
    secrets = [first_run.password, *(c.secret for c in passwords)]
    assert len(set(secrets)) == len(secrets) and all(len(s) >= 20 for s in secrets)
    for credential in passwords:
        assert verify_password(_password_hash(iam, credential.name), credential.secret)
    before = _counts(iam)
    again = seed_demo(iam)
    assert [c for c in again if c.kind == "password"] == []
    assert _counts(iam) == before
    assert {c.name for c in again} == {c.name for c in first if c.kind == "api_key"}


def test_plant_keys_are_replaced_on_each_start(iam: Iam) -> None:
    ensure_admin(iam)
    old = {c.name: c.secret for c in seed_demo(iam) if c.kind == "api_key"}
    new = {c.name: c.secret for c in seed_demo(iam) if c.kind == "api_key"}
    assert set(old) == set(new) == {"demo-edge", "demo-line-2-cell-3"}
    assert all(old[name] != new[name] for name in old)
    with session_scope(iam.sessions) as session:
        keys = session.scalars(select(ApiKeyRecord)).all()
    live = {k.id for k in keys if k.revoked_at is None}
    assert live == {secret.split("_")[1] for secret in new.values()}


def test_partner_users_are_scoped_to_their_partner(iam: Iam) -> None:
    ensure_admin(iam)
    seed_demo(iam)
    admin = iam.directory.load_principal(iam.directory.find_by_name("northwind-admin") or "")
    assert admin is not None
    assert [g.role for g in admin.grants] == ["partner-admin"]
    assert admin.allows("uns:read", path="acme/partners/northwind/site/line/cell/pump")
    assert not admin.allows("uns:read", path="acme/partners/contoso/site/line/cell/pump")
    assert not admin.allows("uns:read", path="acme/berlin/machining/line-1/cell-1/cnc-1/speed")
    assert not admin.org_wide("iam:admin")
    assert [o.slug for o in iam.directory.list_orgs(admin)] == ["northwind"]


def test_demo_devices_match_the_simulated_plant(iam: Iam) -> None:
    edge, cell = demo_devices()
    assert edge.sparkplug == (demo.GROUP, demo.EDGE_NODE)
    json_plant = DemoPlant("127.0.0.1", 1, root="uns/v1", assets=demo.JSON_ASSETS)
    ensure_admin(iam)
    seed_demo(iam)
    device = iam.directory.load_principal(iam.directory.find_by_name(cell.name) or "")
    node = iam.directory.load_principal(iam.directory.find_by_name(edge.name) or "")
    assert device is not None and node is not None and node.sparkplug == edge.sparkplug
    device_acl = topic_acl(device, "uns/v1")
    topics = json_plant.topics()
    assert topics and all(device_acl.may_publish(t) for t in topics)
    others = [m for m in demo_machines() if m.spec.asset not in demo.JSON_ASSETS]
    assert not device_acl.may_publish(f"uns/v1/{others[0].node.path}/_batch")
    assert not device_acl.may_subscribe("#")
    node_acl = topic_acl(node, "uns/v1")
    assert node_acl.may_publish(f"spBv1.0/{demo.GROUP}/NDATA/{demo.EDGE_NODE}")
    assert not node_acl.may_publish(f"spBv1.0/{demo.GROUP}/NDATA/another-node")
    gateway = demo.GATEWAY_PATH
    assert any(r.path == gateway for r in demo.demo_routes())


def test_the_enterprise_is_one_namespace_level(iam: Iam) -> None:
    ensure_admin(iam)
    with pytest.raises(ValidationFailed):
        seed_demo(iam, "uns/v1")
    custom = seed_demo(iam, "globex", devices=[DemoDevice("meter-7", "Meter", "globex/a/#")])
    assert [c.name for c in custom if c.kind == "api_key"] == ["meter-7"]
    admin = iam.directory.load_principal(iam.directory.find_by_name("contoso-admin") or "")
    assert admin is not None and admin.grants[0].scope.namespace == ("globex/partners/contoso/#",)
