"""Two werk processes on one database: a change made through one reaches the other.

Each "process" is its own engine, Iam and caches on the same SQLite file (or PostgreSQL
database), exactly what two `werk serve` processes share.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from tests.conftest import make_settings, wait_until
from tests.postgres_server import PostgresServer

from werk.core.db import create_db_engine, session_scope, upgrade_schema
from werk.core.errors import Unauthenticated
from werk.iam.bootstrap import SYSTEM, ensure_admin
from werk.iam.models import ChangeRecord, OrgRecord, RoleRecord, utc_now
from werk.iam.service import Iam

PASSWORD = "correct horse battery staple"
IP = "192.0.2.20"


class Process:
    """One werk process: its own engine, IAM and caches, on the shared database."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.engine = create_db_engine(url)
        self.sessions: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)
        self.iam = Iam(self.sessions, make_settings(tmp_path))
        self.changed: list[str] = []
        self.iam.on_change(self.changed.append)
        self.iam.changes.poll()  # start reading after what is there now

    def close(self) -> None:
        self.iam.changes.stop()
        self.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        found = f"sqlite:///{tmp_path / 'werk.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        found = server.new_database().replace("postgresql://", "postgresql+psycopg://", 1)
    return migrated(found)


def migrated(url: str) -> str:
    """`url`, its database brought to the newest schema."""
    engine = create_db_engine(url)
    upgrade_schema(engine)
    engine.dispose()
    return url


def process_pair(url: str, tmp_path: Path) -> Iterator[tuple[Process, Process]]:
    """Two processes on the database at `url` (the first creates the administrator)."""
    first = Process(url, tmp_path / "a")
    ensure_admin(first.iam)
    second = Process(url, tmp_path / "b")
    yield first, second
    first.close()
    second.close()


def refusal(call: Callable[..., object], *args: object) -> str | None:
    """The code `call(*args)` is refused with, None if it is not refused."""
    try:
        call(*args)
    except Unauthenticated as exc:
        return exc.code
    return None


@pytest.fixture
def pair(url: str, tmp_path: Path) -> Iterator[tuple[Process, Process]]:
    yield from process_pair(url, tmp_path)


def _service_key(iam: Iam) -> tuple[str, str]:
    with session_scope(iam.sessions) as session:
        org = session.scalars(select(OrgRecord.id).where(OrgRecord.slug == "operator")).one()
        role = session.scalars(
            select(RoleRecord.id).where(RoleRecord.name == "integration", RoleRecord.builtin)
        ).one()
    view = iam.directory.create_service_account(SYSTEM, org_id=org, name="mes-sync")
    iam.directory.create_binding(SYSTEM, role_id=role, principal_id=view.id)
    _, secret = iam.directory.create_api_key(SYSTEM, principal_id=view.id, name="main")
    return view.id, secret


def _user(iam: Iam) -> str:
    with session_scope(iam.sessions) as session:
        org = session.scalars(select(OrgRecord.id).where(OrgRecord.slug == "operator")).one()
    view, _ = iam.directory.create_user(SYSTEM, org_id=org, name="alice", password=PASSWORD)
    return view.id


def test_a_principal_disabled_elsewhere_fails_after_one_poll(pair: tuple[Process, Process]) -> None:
    a, b = pair
    principal_id, key = _service_key(a.iam)
    b.iam.changes.poll()
    assert b.iam.authn.verify(key).id == principal_id  # now held in b's memory
    a.iam.directory.update_principal(SYSTEM, principal_id, disabled=True)
    assert b.iam.authn.verify(key).id == principal_id  # b has not heard yet
    assert b.iam.changes.poll() >= 1
    assert refusal(b.iam.authn.verify, key) == "principal_disabled"
    assert principal_id in b.changed  # b's listeners (MQTT gateway, guard) heard of it


def test_a_key_revoked_elsewhere_fails_after_one_poll(pair: tuple[Process, Process]) -> None:
    a, b = pair
    principal_id, key = _service_key(a.iam)
    b.iam.changes.poll()
    b.iam.authn.verify(key)
    key_id = a.iam.directory.list_api_keys(SYSTEM, principal_id=principal_id)[0].id
    a.iam.directory.revoke_api_key(SYSTEM, key_id)
    b.iam.changes.poll()
    assert refusal(b.iam.authn.verify, key) == "key_revoked"


def test_an_access_token_revoked_elsewhere_fails_after_one_poll(
    pair: tuple[Process, Process],
) -> None:
    a, b = pair
    _, key = _service_key(a.iam)
    principal = a.iam.authn.verify(key)
    token = a.iam.authn.access_token(principal, method="api_key").access_token
    assert b.iam.authn.verify(token).id == principal.id
    a.iam.authn.revoke(token)
    b.iam.changes.poll()
    assert refusal(b.iam.authn.verify, token) == "token_revoked"


def test_a_login_ended_elsewhere_ends_its_access_tokens_after_one_poll(
    pair: tuple[Process, Process],
) -> None:
    a, b = pair
    _user(a.iam)
    pair_ = a.iam.authn.issue(a.iam.authn.login_password("alice", PASSWORD, ip=IP), ip=IP)
    assert b.iam.authn.verify(pair_.access_token).name == "alice"
    a.iam.authn.revoke(pair_.refresh_token or "")
    b.iam.changes.poll()
    assert refusal(b.iam.authn.verify, pair_.access_token) == "token_revoked"


def test_a_web_session_ended_elsewhere_fails_after_one_poll(
    pair: tuple[Process, Process],
) -> None:
    a, b = pair
    user_id = _user(a.iam)
    principal = a.iam.authn.login_password("alice", PASSWORD, ip=IP)
    session = a.iam.authn.open_session(principal, ip=IP, user_agent="test")
    b.iam.changes.poll()
    assert b.iam.authn.verify_session(session.cookie)[0].id == user_id
    a.iam.authn.revoke_credential(SYSTEM, session.id)
    b.iam.changes.poll()
    with pytest.raises(Unauthenticated):
        b.iam.authn.verify_session(session.cookie)
    assert user_id not in b.changed  # a web session is no reason to drop MQTT sessions


def test_a_signing_key_rotated_elsewhere_is_used_after_one_poll(
    pair: tuple[Process, Process],
) -> None:
    a, b = pair
    _, key = _service_key(a.iam)
    principal = b.iam.authn.verify(key)
    before = b.iam.authn.access_token(principal, method="api_key").access_token
    kid = a.iam.authn.rotate_signing_key(SYSTEM)
    b.iam.changes.poll()
    after = b.iam.authn.access_token(principal, method="api_key").access_token
    assert before != after
    assert {k.kid for k in b.iam.authn.signing_keys(SYSTEM) if k.active} == {kid}
    assert a.iam.authn.verify(after).id == principal.id


def test_own_changes_are_not_applied_twice(pair: tuple[Process, Process]) -> None:
    a, _ = pair
    principal_id, _ = _service_key(a.iam)
    heard = len(a.changed)
    a.iam.directory.update_principal(SYSTEM, principal_id, disabled=True)
    assert len(a.changed) == heard + 1
    assert a.iam.changes.poll() == 0
    assert len(a.changed) == heard + 1


def test_the_polling_thread_applies_changes_by_itself(pair: tuple[Process, Process]) -> None:
    a, b = pair
    principal_id, key = _service_key(a.iam)
    b.iam.changes.start(0.05)
    b.iam.authn.verify(key)
    started = time.monotonic()
    a.iam.directory.update_principal(SYSTEM, principal_id, disabled=True)

    wait_until(lambda: refusal(b.iam.authn.verify, key), timeout=5)
    assert time.monotonic() - started < 5


def test_old_changes_are_pruned_but_never_the_newest(pair: tuple[Process, Process]) -> None:
    a, _ = pair
    for n in range(3):
        a.iam.changes.publish("principal", f"p{n}")
    with session_scope(a.sessions) as session:
        session.execute(update(ChangeRecord).values(at=utc_now() - timedelta(hours=2)))
    assert a.iam.changes.prune() >= 2
    with session_scope(a.sessions) as session:
        left = session.scalars(select(ChangeRecord.subject)).all()
    assert left == ["p2"]
    a.iam.changes.publish("principal", "p3")
    with session_scope(a.sessions) as session:
        seqs = session.scalars(select(ChangeRecord.seq).order_by(ChangeRecord.seq)).all()
    assert seqs[1] == seqs[0] + 1  # numbering goes on after a prune


def test_the_polling_thread_survives_an_unreadable_feed(pair: tuple[Process, Process]) -> None:
    a, b = pair
    principal_id, key = _service_key(a.iam)
    b.iam.changes.start(0.05)
    b.iam.authn.verify(key)
    with a.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE iam_changes RENAME TO iam_changes_away")
    a.iam.changes.publish("principal", principal_id)  # fails, logged, not raised
    time.sleep(0.3)  # b's thread polls and fails a few times
    with a.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE iam_changes_away RENAME TO iam_changes")
    a.iam.directory.update_principal(SYSTEM, principal_id, disabled=True)

    wait_until(lambda: refusal(b.iam.authn.verify, key), timeout=5)
