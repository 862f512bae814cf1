"""Revocations that must not be lost between processes: failed writes, late commits, races, skew."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert
from tests.postgres_server import PostgresServer
from tests.unit.iam.test_authn import PASSWORD as WORLD_PASSWORD
from tests.unit.iam.test_authn import World, make_world
from tests.unit.iam.test_changes import (
    IP,
    PASSWORD,
    Process,
    _service_key,
    _user,
    migrated,
    process_pair,
    refusal,
)

from werk.iam.authn import Authenticator
from werk.iam.bootstrap import SYSTEM
from werk.iam.changes import Change
from werk.iam.models import ChangeRecord, utc_now


@pytest.fixture
def pg_pair(postgres: PostgresServer, tmp_path: Path) -> Iterator[tuple[Process, Process]]:
    url = postgres.new_database().replace("postgresql://", "postgresql+psycopg://", 1)
    yield from process_pair(migrated(url), tmp_path)


@pytest.fixture
def sqlite_pair(tmp_path: Path) -> Iterator[tuple[Process, Process]]:
    yield from process_pair(migrated(f"sqlite:///{tmp_path / 'werk.db'}"), tmp_path)


def test_a_gap_row_stamped_more_than_ten_seconds_back_is_still_applied(
    pg_pair: tuple[Process, Process],
) -> None:
    # A publisher whose clock is 15 s behind (or whose row waited 15 s for a pooled
    # connection before its INSERT) commits a lower seq after a higher one was read.
    a, b = pg_pair
    principal_id, _ = _service_key(a.iam)
    b.iam.changes.poll()
    with a.engine.connect() as connection:
        late = connection.begin()
        connection.execute(
            insert(ChangeRecord).values(
                at=utc_now() - timedelta(seconds=15), origin="other-process",
                kind="principal", subject=principal_id,
            )
        )  # fmt: skip
        a.iam.changes.publish("principal", "someone-else")  # higher seq, committed first
        b.iam.changes.poll()
        late.commit()
    b.changed.clear()
    b.iam.changes.poll()
    assert principal_id in b.changed


def test_a_gap_row_is_found_among_more_than_a_page_of_recent_changes(
    pg_pair: tuple[Process, Process],
) -> None:
    a, b = pg_pair
    b.iam.changes.poll()
    rows = [
        {"at": utc_now(), "origin": "other", "kind": "session", "subject": f"s{n}"}
        for n in range(1100)
    ]
    with a.engine.begin() as connection:
        connection.execute(insert(ChangeRecord), rows)
    with a.engine.connect() as connection:
        late = connection.begin()
        connection.execute(
            insert(ChangeRecord).values(
                at=utc_now(), origin="other-process", kind="principal", subject="late-one"
            )
        )
        a.iam.changes.publish("principal", "someone-else")
        b.iam.changes.poll()
        late.commit()
    b.changed.clear()
    b.iam.changes.poll()
    assert "late-one" in b.changed


def test_an_api_key_revoked_while_the_feed_write_fails_is_refused_elsewhere(
    sqlite_pair: tuple[Process, Process],
) -> None:
    # publish() logs and drops a failed write ("they catch up by TTL"), but API keys and
    # web sessions are cached without any TTL: the other process accepts the key forever.
    a, b = sqlite_pair
    principal_id, key = _service_key(a.iam)
    b.iam.changes.poll()
    assert b.iam.authn.verify(key).id == principal_id
    with a.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE iam_changes RENAME TO iam_changes_away")
    key_id = a.iam.directory.list_api_keys(SYSTEM, principal_id=principal_id)[0].id
    a.iam.directory.revoke_api_key(SYSTEM, key_id)
    with a.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE iam_changes_away RENAME TO iam_changes")
    a.iam.changes.publish("principal", "someone-else")  # the feed works again
    for _ in range(3):
        b.iam.changes.poll()
    assert refusal(b.iam.authn.verify, key) == "key_revoked"


def test_a_revocation_noted_while_a_first_load_runs_is_not_lost(
    pg_pair: tuple[Process, Process],
) -> None:
    a, b = pg_pair
    _user(a.iam)
    token = a.iam.authn.issue(a.iam.authn.login_password("alice", PASSWORD, ip=IP), ip=IP)
    entered, release = threading.Event(), threading.Event()
    request = threading.Thread(target=lambda: refusal(b.iam.authn.verify, token.access_token))

    def pause(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if threading.current_thread() is request and "iam_revoked_tokens" in statement:
            entered.set()
            release.wait(10)

    event.listen(b.engine, "after_cursor_execute", pause)
    try:
        request.start()  # b's first request: loads the revoked ids, read before the revoke
        assert entered.wait(10)
        a.iam.authn.revoke(token.access_token)
        b.iam.changes.poll()  # b's feed thread notes the revocation
        release.set()
        request.join(10)
    finally:
        release.set()
        event.remove(b.engine, "after_cursor_execute", pause)
    assert refusal(b.iam.authn.verify, token.access_token) == "token_revoked"


def test_expired_revocations_noted_from_other_processes_are_dropped(
    sqlite_pair: tuple[Process, Process],
) -> None:
    _, b = sqlite_pair
    authn = b.iam.authn
    for n in range(500):
        authn.apply(Change(n + 1, "token", f"jti-{n}", 1.0))  # expired long ago
    assert len(authn._revoked) == 0  # a process that only notes grows without bound


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(
        tmp_path, access_token_ttl_s=60, refresh_token_idle_s=120, refresh_token_max_s=300
    )


def test_a_login_ended_by_a_process_with_a_slower_clock_stays_ended(world: World) -> None:
    # Process `fast` runs 30 s ahead (within the 60 s iat leeway every verifier accepts).
    fast = Authenticator(
        world.sessions, world.settings, world.iam.directory, world.iam.audit,
        clock=lambda: world.clock() + 30,
    )  # fmt: skip
    world.user()
    pair = fast.issue(fast.login_password("alice", WORLD_PASSWORD, ip=IP), ip=IP)
    world.authn.revoke(pair.refresh_token or "")  # `werk logout` through the slow process
    assert refusal(world.authn.verify, pair.access_token) == "token_revoked"
    world.clock.advance(61)
    other = world.authn.issue(world.authn.login_password("alice", WORLD_PASSWORD, ip=IP), ip=IP)
    world.authn.revoke(other.access_token)  # any later revocation prunes expired ids
    refused = {"token_revoked", "token_expired"}
    assert refusal(world.authn.verify, pair.access_token) in refused
    assert refusal(world.authenticator().verify, pair.access_token) in refused
