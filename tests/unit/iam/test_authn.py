"""Authentication on a real SQLite database: password login, lockout, sessions, credentials."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from tests.conftest import make_settings

from werk.core.db import create_db_engine, session_scope, upgrade_schema
from werk.core.errors import NotFound, TooManyAttempts, Unauthenticated
from werk.iam.authn import Authenticator
from werk.iam.bootstrap import SYSTEM, ensure_admin
from werk.iam.models import AuditEventRecord, OrgRecord, PrincipalRecord, RoleRecord
from werk.iam.passwords import needs_rehash
from werk.iam.scopes import Principal
from werk.iam.service import Iam

PASSWORD = "correct horse battery staple"
IP = "192.0.2.10"


class Clock:
    """Wall-clock time plus an offset tests move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class World:
    """A migrated database with IAM, an admin, and an Authenticator on a movable clock."""

    tmp_path: Path
    sessions: sessionmaker[Session]
    iam: Iam
    clock: Clock
    authn: Authenticator
    admin: Principal
    settings: Any

    def authenticator(self) -> Authenticator:
        """Another Authenticator on the same database, as after a restart."""
        authn = Authenticator(
            self.sessions, self.settings, self.iam.directory, self.iam.audit, clock=self.clock
        )
        self.iam.directory.add_listener(authn.forget)
        return authn

    def org(self, slug: str = "operator") -> str:
        with session_scope(self.sessions) as session:
            return session.scalars(select(OrgRecord.id).where(OrgRecord.slug == slug)).one()

    def role(self, name: str) -> str:
        with session_scope(self.sessions) as session:
            query = select(RoleRecord.id).where(RoleRecord.name == name, RoleRecord.builtin)
            return session.scalars(query).one()

    def user(self, name: str = "alice", role: str = "viewer", org: str = "operator") -> str:
        view, _ = self.iam.directory.create_user(
            SYSTEM, org_id=self.org(org), name=name, password=PASSWORD
        )
        self.iam.directory.create_binding(SYSTEM, role_id=self.role(role), principal_id=view.id)
        return view.id

    def service(self, name: str = "mes-sync", role: str = "integration") -> tuple[str, str]:
        view = self.iam.directory.create_service_account(SYSTEM, org_id=self.org(), name=name)
        self.iam.directory.create_binding(SYSTEM, role_id=self.role(role), principal_id=view.id)
        _, key = self.iam.directory.create_api_key(SYSTEM, principal_id=view.id, name="main")
        return view.id, key

    def record(self, principal_id: str) -> PrincipalRecord:
        with session_scope(self.sessions) as session:
            found = session.get(PrincipalRecord, principal_id)
            assert found is not None
            return found

    def events(self, action: str) -> list[AuditEventRecord]:
        with session_scope(self.sessions) as session:
            query = select(AuditEventRecord).where(AuditEventRecord.action == action)
            return list(session.scalars(query.order_by(AuditEventRecord.seq)))


def make_world(tmp_path: Path, **overrides: Any) -> World:
    """Build a `World` with settings `overrides` (short lifetimes for expiry tests)."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'werk.db'}")
    upgrade_schema(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    settings = make_settings(tmp_path, **overrides)
    iam = Iam(sessions, settings)
    assert ensure_admin(iam) is not None
    admin_id = iam.directory.find_by_name("admin")
    admin = iam.directory.load_principal(admin_id) if admin_id else None
    assert admin is not None
    clock = Clock()
    authn = Authenticator(sessions, settings, iam.directory, iam.audit, clock=clock)
    iam.directory.add_listener(authn.forget)
    return World(tmp_path, sessions, iam, clock, authn, admin, settings)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path, session_idle_s=120, session_max_s=600)


def _code(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(Unauthenticated) as caught:
        call(*args, **kwargs)
    return caught.value.code


def test_password_login_gives_the_user_and_is_audited(world: World) -> None:
    alice = world.user()
    principal = world.authn.login_password("alice", PASSWORD, ip=IP)
    assert (principal.id, principal.name, principal.auth_method) == (alice, "alice", "password")
    assert principal.allows("uns:read") and not principal.allows("iam:admin")
    assert _code(world.authn.login_password, "alice", "wrong password!", ip=IP) == (
        "bad_credentials"
    )
    assert _code(world.authn.login_password, "nobody", PASSWORD, ip=IP) == "bad_credentials"
    assert _code(world.authn.login_password, "ALICE", PASSWORD, ip=IP) == "bad_credentials"
    outcomes = [(e.outcome, e.actor_name, e.ip) for e in world.events("auth.login")]
    assert outcomes == [
        ("ok", "alice", IP),
        ("failed", "alice", IP),
        ("failed", "nobody", IP),
        ("failed", "ALICE", IP),
    ]


def test_only_users_log_in_with_a_password(world: World) -> None:
    world.service("robot")
    assert _code(world.authn.login_password, "robot", PASSWORD, ip=IP) == "bad_credentials"


def test_five_failures_lock_the_account_even_for_the_right_password(world: World) -> None:
    alice = world.user()
    for _ in range(5):
        _code(world.authn.login_password, "alice", "not the password", ip=IP)
    with pytest.raises(TooManyAttempts) as caught:
        world.authn.login_password("alice", PASSWORD, ip="198.51.100.1")
    assert 55 <= caught.value.retry_after_s <= 60
    record = world.record(alice)
    assert record.failed_logins == 5
    assert record.locked_until is not None
    assert [e.detail["user_lock_s"] for e in world.events("auth.locked")] == [60]
    assert world.events("auth.login")[-1].outcome == "denied"
    world.clock.advance(61)
    assert world.authn.login_password("alice", PASSWORD, ip=IP).id == alice
    assert world.record(alice).failed_logins == 0
    assert world.record(alice).locked_until is None


def test_a_lock_survives_a_restart(world: World) -> None:
    world.user()
    for _ in range(5):
        _code(world.authn.login_password, "alice", "not the password", ip=IP)
    restarted = world.authenticator()
    with pytest.raises(TooManyAttempts):
        restarted.login_password("alice", PASSWORD, ip="198.51.100.1")
    world.clock.advance(61)
    assert restarted.login_password("alice", PASSWORD, ip="198.51.100.1").name == "alice"


def test_a_hash_with_old_parameters_is_replaced_on_login(world: World) -> None:
    alice = world.user()
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with session_scope(world.sessions) as session:
        session.execute(
            update(PrincipalRecord).where(PrincipalRecord.id == alice).values(password_hash=weak)
        )
    world.authn.login_password("alice", PASSWORD, ip=IP)
    stored = world.record(alice).password_hash
    assert stored is not None and stored != weak and not needs_rehash(stored)
    assert world.authn.login_password("alice", PASSWORD, ip=IP).name == "alice"


def test_a_disabled_user_is_refused_everywhere_at_once(world: World) -> None:
    alice = world.user()
    principal = world.authn.login_password("alice", PASSWORD, ip=IP)
    token = world.authn.issue(principal, ip=IP)
    session = world.authn.open_session(principal, ip=IP, user_agent="test")
    assert world.authn.verify(token.access_token).id == alice
    world.iam.directory.update_principal(world.admin, alice, disabled=True)
    assert _code(world.authn.verify, token.access_token) == "principal_disabled"
    assert _code(world.authn.verify_session, session.cookie) == "principal_disabled"
    assert _code(world.authn.refresh, token.refresh_token or "", ip=IP) == "principal_disabled"
    assert _code(world.authn.login_password, "alice", PASSWORD, ip=IP) == "principal_disabled"
    world.iam.directory.update_principal(world.admin, alice, disabled=False)
    assert world.authn.verify(token.access_token).id == alice


def test_a_changed_grant_applies_on_the_next_request(world: World) -> None:
    alice = world.user()
    token = world.authn.issue(world.authn.login_password("alice", PASSWORD, ip=IP), ip=IP)
    assert world.authn.verify(token.access_token).allows("uns:read")
    (binding,) = world.iam.directory.list_bindings(world.admin, principal_id=alice)
    world.iam.directory.delete_binding(world.admin, binding.id)
    assert not world.authn.verify(token.access_token).allows("uns:read")


def test_session_carries_csrf_and_ends_when_idle(world: World) -> None:
    world.user()
    principal = world.authn.login_password("alice", PASSWORD, ip=IP)
    session = world.authn.open_session(principal, ip=IP, user_agent="Firefox")
    found, csrf = world.authn.verify_session(session.cookie)
    assert (found.name, found.auth_method, found.credential_id) == ("alice", "session", session.id)
    assert csrf == session.csrf and len(csrf) >= 32
    assert _code(world.authn.verify_session, "not-a-cookie") == "bad_session"
    world.clock.advance(110)
    world.authn.verify_session(session.cookie)
    world.clock.advance(110)
    world.authn.verify_session(session.cookie)
    world.clock.advance(121)
    assert _code(world.authn.verify_session, session.cookie) == "session_expired"
    assert [e.outcome for e in world.events("auth.session.open")] == ["ok"]


def test_checks_the_user_did_not_cause_leave_the_idle_time_running(world: World) -> None:
    # An open page's sweep checks its session every few seconds without touching it.
    world.user()
    principal = world.authn.login_password("alice", PASSWORD, ip=IP)
    session = world.authn.open_session(principal, ip=IP, user_agent="")
    world.clock.advance(100)
    world.authn.verify_session(session.cookie)  # the user clicked: idle until 220
    for _ in range(11):
        world.clock.advance(10)
        assert world.authn.verify_session(session.cookie, touch=False)[0].name == "alice"
    world.clock.advance(11)  # 221: idle for 121 s, only swept
    assert _code(world.authn.verify_session, session.cookie, touch=False) == "session_expired"
    assert _code(world.authn.verify_session, session.cookie) == "session_expired"  # a click late


def test_a_session_ended_elsewhere_fails_the_next_sweep_within_a_minute(world: World) -> None:
    # Another process ended it, and its announcement never arrived: the sweep rereads it.
    world.user()
    principal = world.authn.login_password("alice", PASSWORD, ip=IP)
    session = world.authn.open_session(principal, ip=IP, user_agent="")
    elsewhere = world.authenticator()
    elsewhere.close_session(session.cookie)
    world.clock.advance(30)
    world.authn.verify_session(session.cookie, touch=False)  # held in memory
    world.clock.advance(31)
    assert _code(world.authn.verify_session, session.cookie, touch=False) == "bad_session"


def test_session_ends_at_its_absolute_limit_despite_activity(world: World) -> None:
    world.user()
    principal = world.authn.login_password("alice", PASSWORD, ip=IP)
    session = world.authn.open_session(principal, ip=IP, user_agent="")
    for _ in range(11):
        world.clock.advance(50)
        world.authn.verify_session(session.cookie)
    world.clock.advance(50)
    assert _code(world.authn.verify_session, session.cookie) == "session_expired"


def test_session_activity_survives_a_restart(world: World) -> None:
    world.user()
    principal = world.authn.login_password("alice", PASSWORD, ip=IP)
    session = world.authn.open_session(principal, ip=IP, user_agent="")
    world.clock.advance(100)
    world.authn.verify_session(session.cookie)
    world.clock.advance(100)
    assert world.authenticator().verify_session(session.cookie)[0].name == "alice"


def test_logout_closes_the_session(world: World) -> None:
    world.user()
    principal = world.authn.login_password("alice", PASSWORD, ip=IP)
    session = world.authn.open_session(principal, ip=IP, user_agent="")
    world.authn.close_session(session.cookie)
    world.authn.close_session(session.cookie)
    assert _code(world.authn.verify_session, session.cookie) == "bad_session"
    assert _code(world.authenticator().verify_session, session.cookie) == "bad_session"
    assert len(world.events("auth.session.close")) == 1


def test_credentials_are_listed_and_revoked_within_the_tenant(world: World) -> None:
    alice = world.user()
    principal = world.authn.login_password("alice", PASSWORD, ip=IP)
    pair = world.authn.issue(principal, ip=IP)
    session = world.authn.open_session(principal, ip=IP, user_agent="Firefox")
    listed = world.authn.list_credentials(world.admin, alice)
    assert sorted(c.kind for c in listed) == ["refresh", "session"]
    assert world.authn.list_credentials(principal, alice) == listed
    family = next(c.id for c in listed if c.kind == "refresh")
    world.authn.revoke_credential(world.admin, session.id)
    assert _code(world.authn.verify_session, session.cookie) == "bad_session"
    world.authn.revoke_credential(world.admin, family)
    assert _code(world.authn.refresh, pair.refresh_token or "", ip=IP) == "token_revoked"
    assert world.authn.list_credentials(world.admin, alice) == []
    with pytest.raises(NotFound):
        world.authn.revoke_credential(world.admin, "0" * 32)
    with pytest.raises(NotFound):
        world.authn.list_credentials(principal, world.admin.id)


def test_an_administrator_lifts_a_lock_by_setting_a_new_password(world: World) -> None:
    alice = world.user()
    for _ in range(5):
        _code(world.authn.login_password, "alice", "not the password", ip=IP)
    world.iam.directory.set_password(world.admin, alice, "a brand new secret phrase")
    assert world.authn.login_password("alice", "a brand new secret phrase", ip=IP).id == alice


def test_unknown_users_are_throttled_like_known_ones(world: World) -> None:
    for _ in range(5):
        _code(world.authn.login_password, "mallory", "guess", ip=IP)
    with pytest.raises(TooManyAttempts):
        world.authn.login_password("mallory", "guess", ip="198.51.100.1")


def test_one_address_guessing_many_users_is_throttled(world: World) -> None:
    world.user()
    for i in range(20):
        _code(world.authn.login_password, f"user{i}", "guess", ip="203.0.113.9")
    with pytest.raises(TooManyAttempts):
        world.authn.login_password("alice", PASSWORD, ip="203.0.113.9")
    assert world.authn.login_password("alice", PASSWORD, ip=IP).name == "alice"
