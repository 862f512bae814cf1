"""The audit log: hash chain, append-only storage, own-organisation reads, exports."""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from tests.postgres_server import PostgresServer

from werk.core.db import create_db_engine, upgrade_schema
from werk.core.errors import Forbidden, ValidationFailed
from werk.iam.audit import GENESIS_HASH, AuditLog, chain_hash
from werk.iam.scopes import Grant, OrgKind, Principal, PrincipalKind, Scope

OPERATOR, NORTHWIND, CONTOSO = "o" * 32, "n" * 32, "c" * 32


def _principal(name: str, org_id: str, permissions: set[str], org: str = "own") -> Principal:
    kind = OrgKind.OPERATOR if org_id == OPERATOR else OrgKind.PARTNER
    grant = Grant("r", frozenset(permissions), Scope(org=org))  # type: ignore[arg-type]
    return Principal(f"{name:x<32}"[:32], PrincipalKind.USER, name, org_id, kind, (grant,))


AUDITOR = _principal("auditor", OPERATOR, {"audit:read"}, org="any")
NW_AUDITOR = _principal("nw-auditor", NORTHWIND, {"audit:read"})
CO_USER = _principal("co-user", CONTOSO, {"uns:read"})


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    built = create_db_engine(f"sqlite:///{tmp_path / 'werk.db'}")
    upgrade_schema(built)
    yield built
    built.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@pytest.fixture
def log(sessions: sessionmaker[Session]) -> AuditLog:
    return AuditLog(sessions)


def _fill(log: AuditLog) -> None:
    log.record(action="auth.login", outcome="ok", actor=NW_AUDITOR, ip="10.0.0.7")
    log.record(action="auth.login", outcome="failed", actor_name="mallory", ip="10.0.0.9")
    log.record(
        action="iam.user.create", outcome="ok", actor=AUDITOR, target="nw-bob", org_id=NORTHWIND
    )
    log.record(action="http.write", outcome="denied", actor=CO_USER, target="/api/v1/x", status=403)
    log.record(
        action="mqtt.denied", outcome="denied", actor=CO_USER, target="uns/v1/acme/x",
        detail={"topic": "uns/v1/acme/x", "qos": 1, "nested": {"ok": [1, 2.5, None]}},
    )  # fmt: skip


def test_events_chain_by_hash_and_verify(log: AuditLog) -> None:
    _fill(log)
    events = log.query(AUDITOR)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    prev = GENESIS_HASH
    for event in events:
        assert event.prev_hash == prev
        prev = event.hash
    assert events[-1].detail == {
        "topic": "uns/v1/acme/x",
        "qos": 1,
        "nested": {"ok": [1, 2.5, None]},
    }
    assert events[0].ts.tzinfo is not None
    result = log.verify()
    assert result.ok and result.checked == 5 and result.last_hash == events[-1].hash
    assert len({e.hash for e in events}) == 5
    assert chain_hash(GENESIS_HASH, "x") != chain_hash(GENESIS_HASH, "y")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET outcome = 'ok' WHERE seq = 2",
        "DELETE FROM audit_events WHERE seq = 2",
    ],
)
def test_the_database_refuses_to_change_or_delete_events(
    log: AuditLog, engine: Engine, statement: str
) -> None:
    _fill(log)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(text(statement))
    assert log.query(AUDITOR)[1].outcome == "failed"
    assert log.verify().ok


def _drop_triggers(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("DROP TRIGGER audit_events_no_update"))
        connection.execute(text("DROP TRIGGER audit_events_no_delete"))


def test_verify_finds_an_event_changed_behind_the_triggers(log: AuditLog, engine: Engine) -> None:
    _fill(log)
    _drop_triggers(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET outcome = 'ok' WHERE seq = 2"))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 2 and result.checked == 1
    assert "changed" in result.reason


def test_verify_finds_a_deleted_event(log: AuditLog, engine: Engine) -> None:
    _fill(log)
    _drop_triggers(engine)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq = 3"))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 4 and "missing" in result.reason


def test_verify_finds_a_rewritten_chain_tail(log: AuditLog, engine: Engine) -> None:
    _fill(log)
    _drop_triggers(engine)
    forged = chain_hash(GENESIS_HASH, "forged")
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET hash = :h WHERE seq = 4"), {"h": forged})
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 4


def test_readers_with_own_scope_see_only_their_organisations_events(log: AuditLog) -> None:
    _fill(log)
    mine = log.query(NW_AUDITOR)
    assert [e.action for e in mine] == ["auth.login", "iam.user.create"]
    assert {e.org_id for e in mine} == {NORTHWIND}
    assert len(log.query(AUDITOR)) == 5
    with pytest.raises(Forbidden):
        log.query(CO_USER)
    with pytest.raises(Forbidden):
        log.export(CO_USER, fmt="jsonl")


def test_filters_and_cursor_pages_cover_every_event_once(log: AuditLog) -> None:
    for i in range(23):
        log.record(action=f"auth.token.{i % 3}", outcome="ok", actor=AUDITOR)
    seen: list[int] = []
    after = None
    while page := log.query(AUDITOR, after_seq=after, limit=5):
        seen += [e.seq for e in page]
        after = page[-1].seq
    assert seen == list(range(1, 24))
    assert {e.action for e in log.query(AUDITOR, action="auth.token.1", limit=100)} == {
        "auth.token.1"
    }
    assert len(log.query(AUDITOR, action="auth.*", limit=100)) == 23
    assert log.query(AUDITOR, action="auth_*") == []  # `_` is no LIKE wildcard here
    newest = log.query(AUDITOR, newest_first=True, limit=2)
    assert [e.seq for e in newest] == [23, 22]
    future = datetime.now(UTC) + timedelta(minutes=1)
    assert log.query(AUDITOR, since=future) == []
    assert len(log.query(AUDITOR, until=future, limit=1000)) == 23


def test_csv_export_parses_back_and_defuses_formulas(log: AuditLog) -> None:
    _fill(log)
    log.record(action="http.write", outcome="ok", actor=AUDITOR, target="=HYPERLINK(1)")
    body = "".join(log.export(AUDITOR, fmt="csv"))
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [int(r["seq"]) for r in rows] == [1, 2, 3, 4, 5, 6, 7]
    assert rows[6]["action"] == "audit.export"  # the export itself is on record
    assert rows[4]["actor_name"] == "co-user"
    assert json.loads(rows[4]["detail"])["nested"] == {"ok": [1, 2.5, None]}
    assert rows[5]["target"] == "'=HYPERLINK(1)"
    assert rows[0]["hash"] == log.query(AUDITOR)[0].hash


def test_jsonl_export_streams_every_matching_event(log: AuditLog) -> None:
    for i in range(1100):
        log.record(action="mqtt.connect", outcome="ok", actor=CO_USER, target=f"c{i}")
    log.record(action="auth.login", outcome="ok", actor=CO_USER)
    chunks = list(log.export(AUDITOR, fmt="jsonl", action="mqtt.connect"))
    assert len(chunks) == 2  # pages of 1000
    lines = [json.loads(line) for chunk in chunks for line in chunk.splitlines()]
    assert [line["target"] for line in lines] == [f"c{i}" for i in range(1100)]
    assert lines[0]["hash"] and lines[0]["prev_hash"] == GENESIS_HASH
    exports = log.query(AUDITOR, action="audit.export")
    assert exports and exports[-1].actor_id == AUDITOR.id


def test_an_unknown_format_or_filter_is_refused(log: AuditLog) -> None:
    with pytest.raises(ValidationFailed):
        log.export(AUDITOR, fmt="xml")
    with pytest.raises(ValidationFailed):
        log.export(AUDITOR, fmt="csv", colour="red")


def test_long_and_odd_values_are_cut_and_kept_verifiable(log: AuditLog) -> None:
    weird: dict[str, Any] = {"when": datetime(2030, 1, 1, tzinfo=UTC), "nan": float("nan")}
    log.record(action="x" * 200, outcome="maybe", actor=AUDITOR, user_agent="u" * 5000)
    log.record(action="odd", outcome="ok", actor=AUDITOR, detail=weird)
    first, second = log.query(AUDITOR)
    assert len(first.action) == 64 and len(first.user_agent) == 512 and first.outcome == "error"
    assert "repr" in second.detail
    assert log.verify().ok


def test_record_never_raises_and_retries_when_the_store_returns(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'late.db'}")
    log = AuditLog(sessionmaker(engine, expire_on_commit=False))
    log.record(action="auth.login", outcome="ok", actor=AUDITOR)  # no schema yet
    log.record(action="auth.logout", outcome="ok", actor=AUDITOR)
    assert log.pending == 2
    upgrade_schema(engine)
    assert log.flush() == 0
    assert [e.action for e in log.query(AUDITOR)] == ["auth.login", "auth.logout"]
    assert log.verify().ok
    engine.dispose()


def test_concurrent_writers_keep_one_chain(sessions: sessionmaker[Session]) -> None:
    logs = [AuditLog(sessions), AuditLog(sessions)]  # as two processes would

    def write(log: AuditLog, n: int) -> None:
        for i in range(40):
            log.record(action="http.write", outcome="ok", actor=AUDITOR, target=f"{n}/{i}")

    threads = [threading.Thread(target=write, args=(logs[n % 2], n)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(log.pending for log in logs) == 0
    result = logs[0].verify()
    assert result.ok and result.checked == 160


def test_postgresql_refuses_to_change_events(postgres: PostgresServer) -> None:
    engine = create_db_engine(postgres.new_database())
    upgrade_schema(engine)
    log = AuditLog(sessionmaker(engine, expire_on_commit=False))
    _fill(log)
    for statement in (
        "UPDATE audit_events SET outcome = 'ok' WHERE seq = 2",
        "DELETE FROM audit_events WHERE seq = 2",
        "TRUNCATE audit_events",
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))
    result = log.verify()
    assert result.ok and result.checked == 5
    engine.dispose()
