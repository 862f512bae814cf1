"""Rules that close gaps an attacker would look for first.

- an administrator's `*` is no right to publish over MQTT, so the ingest guard is not
  "everything" (reading is fine);
- an edge node gets its Sparkplug topics only where the routes put it inside its scope;
- an actor's own-organisation grant does not cover principals of other organisations;
- a new password ends every session and token of the account;
- refused anonymous requests are audited once per address and minute, with a count.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker
from tests.conftest import make_settings

from werk.core.db import create_db_engine, session_scope, upgrade_schema
from werk.core.errors import Forbidden, Unauthenticated
from werk.iam.bootstrap import SYSTEM, ensure_admin
from werk.iam.http import AnonymousDenials
from werk.iam.models import RoleRecord
from werk.iam.mqtt import PublishGuard, topic_acl
from werk.iam.scopes import Grant, OrgKind, Principal, PrincipalKind, Scope
from werk.iam.service import Iam

ROOT = "uns/v1"
OUTSIDE = f"{ROOT}/evilcorp/site/area/line/cell/_value/injected"


@pytest.fixture
def iam(tmp_path: Path) -> Iterator[Iam]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'werk.db'}")
    upgrade_schema(engine)
    found = Iam(sessionmaker(engine, expire_on_commit=False), make_settings(tmp_path))
    ensure_admin(found)
    yield found
    engine.dispose()


def _role(iam: Iam, name: str) -> str:
    with session_scope(iam.sessions) as session:
        return session.scalars(
            select(RoleRecord.id).where(RoleRecord.builtin, RoleRecord.name == name)
        ).one()


def _edge(namespace: str, sparkplug: tuple[str, str]) -> Principal:
    grant = Grant("edge-node", frozenset({"mqtt:publish", "mqtt:subscribe"}), Scope((namespace,)))
    return Principal(
        "edge", PrincipalKind.DEVICE, "edge", "org", OrgKind.PARTNER, (grant,), sparkplug=sparkplug
    )


def test_the_administrators_star_is_no_mqtt_right(iam: Iam) -> None:
    guard = PublishGuard(iam.directory.enabled_principals, ROOT)
    assert not guard(OUTSIDE)
    admin = iam.directory.load_principal(iam.directory.find_by_name("admin") or "")
    assert admin is not None
    acl = topic_acl(admin, ROOT)
    assert not acl.may_publish(OUTSIDE) and acl.may_subscribe(f"{ROOT}/#")


def test_a_topic_the_api_publishes_to_passes_the_guard_for_a_while(iam: Iam) -> None:
    guard = PublishGuard(iam.directory.enabled_principals, ROOT)
    guard.expect(OUTSIDE)
    assert guard(OUTSIDE)
    assert not guard(OUTSIDE.replace("injected", "other"))


def test_an_edge_node_publishes_sparkplug_only_where_its_routes_lie_in_scope() -> None:
    edge = _edge("acme/partners/northwind/#", ("northwind", "x"))
    outside = topic_acl(edge, ROOT, lambda g, n: f"{g}/{n}/sparkplug")
    assert not outside.may_publish("spBv1.0/northwind/DDATA/x/any-device")
    assert not outside.may_publish("spBv1.0/northwind/NBIRTH/x")
    inside = topic_acl(edge, ROOT, lambda g, n: f"acme/partners/{g}/{n}")
    assert inside.may_publish("spBv1.0/northwind/DDATA/x/any-device")
    assert inside.may_subscribe("spBv1.0/northwind/NCMD/x")


def test_an_own_org_grant_does_not_reach_other_organisations(iam: Iam) -> None:
    d = iam.directory
    northwind = d.create_org(SYSTEM, slug="northwind", name="Northwind").id
    operator = d.get_principal(SYSTEM, d.find_by_name("admin") or "").org_id
    user, _ = d.create_user(SYSTEM, org_id=operator, name=f"u-{uuid.uuid4().hex[:6]}")
    admins = d.create_role(
        SYSTEM, org_id=operator, name="iam-admins", permissions=["iam:read", "iam:admin"]
    )
    d.create_binding(SYSTEM, role_id=admins.id, principal_id=user.id, org_scope="any")
    d.create_binding(SYSTEM, role_id=_role(iam, "auditor"), principal_id=user.id)
    account = d.create_service_account(SYSTEM, org_id=northwind, name="nw-reader")
    colleague = d.create_service_account(SYSTEM, org_id=operator, name="op-reader")
    actor = d.load_principal(user.id)
    assert actor is not None
    auditor = _role(iam, "auditor")  # the actor holds it for its own organisation only
    d.create_binding(actor, role_id=auditor, principal_id=colleague.id)
    with pytest.raises(Forbidden):
        d.create_binding(actor, role_id=auditor, principal_id=account.id)


def test_a_new_password_ends_the_accounts_sessions_and_tokens(iam: Iam) -> None:
    d = iam.directory
    admin_id = d.find_by_name("admin") or ""
    password = "correct horse battery staple"
    d.set_password(SYSTEM, admin_id, password)
    admin = iam.authn.login_password("admin", password, ip="127.0.0.1")
    tokens = iam.authn.issue(admin, ip="127.0.0.1")
    web = iam.authn.open_session(admin, ip="127.0.0.1", user_agent="test")
    d.set_password(SYSTEM, admin_id, password + " again")
    with pytest.raises(Unauthenticated):
        iam.authn.verify(tokens.access_token)
    with pytest.raises(Unauthenticated):
        iam.authn.verify_session(web.cookie)
    assert tokens.refresh_token is not None
    with pytest.raises(Unauthenticated):
        iam.authn.refresh(tokens.refresh_token, ip="127.0.0.1")


def test_anonymous_denials_are_counted_not_each_audited() -> None:
    denials = AnonymousDenials(window_s=60.0)
    assert denials.count("10.0.0.1") == 0
    assert [denials.count("10.0.0.1") for _ in range(500)] == [None] * 500
    assert denials.count("10.0.0.2") == 0
    later = AnonymousDenials(window_s=0.0)
    assert later.count("10.0.0.1") == 0 and later.count("10.0.0.1") == 0
