"""The audit log: append-only, hash-chained, queryable within the reader's organisation.

Each event's hash is sha256(previous hash + canonical JSON of the event, its sequence
number included), so changing, removing or reordering a stored event breaks the chain,
and `verify` finds where. The database refuses UPDATE and DELETE on the table besides.
The sequence number is chosen by the writer, so two processes appending at once collide
on the primary key and the loser retries instead of forking the chain.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, TypedDict, Unpack

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from werk.core.db import session_scope
from werk.core.errors import Forbidden, ValidationFailed
from werk.iam.models import AuditEventRecord, utc_now
from werk.iam.scopes import Principal
from werk.iam.views import AuditEventView, AuditVerification

__all__ = ["GENESIS_HASH", "AuditLog", "chain_hash"]

_LOGGER = logging.getLogger(__name__)

GENESIS_HASH: Final = "0" * 64
AUDIT_READ: Final = "audit:read"
OUTCOMES: Final = frozenset({"ok", "denied", "failed", "error"})
MAX_PENDING: Final = 10_000
MAX_LIMIT: Final = 1000
_APPEND_TRIES: Final = 5
_EXPORT_PAGE: Final = 1000
_VERIFY_PAGE: Final = 2000
_LIMITS: Final = {"actor_name": 256, "action": 64, "ip": 64, "target": 2048, "user_agent": 512}
_CSV_FIELDS: Final = (
    "seq", "ts", "actor_id", "actor_name", "org_id", "action", "target", "outcome",
    "status", "ip", "user_agent", "detail", "prev_hash", "hash",
)  # fmt: skip


class AuditFilters(TypedDict, total=False):
    """What an audit query narrows by; `action` may end in `*` for a prefix."""

    action: str | None
    outcome: str | None
    actor_id: str | None
    since: datetime | None
    until: datetime | None
    after_seq: int | None
    before_seq: int | None


_FILTERS: Final = frozenset(AuditFilters.__annotations__)


@dataclass(frozen=True, slots=True)
class _Event:
    ts: datetime
    actor_id: str
    actor_name: str
    org_id: str
    action: str
    target: str
    outcome: str
    status: int
    ip: str
    user_agent: str
    detail: dict[str, Any]

    def canonical(self, seq: int) -> str:
        """The event as the hash covers it: sorted keys, no spaces, UTC microseconds."""
        body = {
            "seq": seq, "ts": _ts_text(self.ts), "actor_id": self.actor_id,
            "actor_name": self.actor_name, "org_id": self.org_id, "action": self.action,
            "target": self.target, "outcome": self.outcome, "status": self.status,
            "ip": self.ip, "user_agent": self.user_agent, "detail": self.detail,
        }  # fmt: skip
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, canonical_event: str) -> str:
    """The hash of an event: sha256 over the previous hash and the event's canonical JSON."""
    return hashlib.sha256((prev_hash + canonical_event).encode("utf-8")).hexdigest()


class AuditLog:
    """Append security events and writes; read, export and verify them."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._lock = threading.Lock()
        self._pending: deque[_Event] = deque()
        self._lost = 0
        self._failing = False

    @property
    def pending(self) -> int:
        """How many events wait for the database to take them."""
        with self._lock:
            return len(self._pending)

    def record(
        self,
        *,
        action: str,
        outcome: str,
        actor: Principal | None = None,
        actor_name: str | None = None,
        target: str = "",
        status: int = 0,
        ip: str = "",
        user_agent: str = "",
        detail: dict[str, Any] | None = None,
        org_id: str | None = None,
    ) -> None:
        """Append an event; on a failing write keep it queued and log, never raise."""
        try:
            event = _event(action, outcome, actor, actor_name, target, status, ip,
                           user_agent, detail, org_id)  # fmt: skip
        except Exception:
            _LOGGER.exception("cannot build the audit event %s", action)
            return
        with self._lock:
            self._pending.append(event)
            self._drain()

    def flush(self) -> int:
        """Write queued events now; return how many still wait."""
        with self._lock:
            self._drain()
            return len(self._pending)

    def _drain(self) -> None:
        while self._pending:
            try:
                self._append(self._pending[0])
            except Exception as exc:
                self._keep_for_later(exc)
                return
            self._pending.popleft()
        if self._failing:
            self._failing = False
            _LOGGER.info("the audit log is writable again; queued events are written")

    def _keep_for_later(self, exc: Exception) -> None:
        if not self._failing:
            self._failing = True
            _LOGGER.error("cannot write the audit log, keeping events to retry: %s", exc)
        while len(self._pending) > MAX_PENDING:
            self._pending.popleft()
            self._lost += 1
            if self._lost % 1000 == 1:
                _LOGGER.error("audit retry queue full: %d events lost so far", self._lost)

    def _append(self, event: _Event) -> None:
        for attempt in range(_APPEND_TRIES):
            try:
                with session_scope(self._sessions) as session:
                    session.add(_chained(session, event))
                return
            except IntegrityError:
                # Another process took this sequence number first: chain after its event.
                if attempt == _APPEND_TRIES - 1:
                    raise

    def query(
        self,
        actor: Principal,
        *,
        newest_first: bool = False,
        limit: int = 100,
        **filters: Unpack[AuditFilters],
    ) -> list[AuditEventView]:
        """Events the actor may read (its own organisation's unless its scope is wider)."""
        statement = self._filtered(actor, filters)
        order = AuditEventRecord.seq.desc() if newest_first else AuditEventRecord.seq.asc()
        statement = statement.order_by(order).limit(max(1, min(limit, MAX_LIMIT)))
        with session_scope(self._sessions) as session:
            return [AuditEventView.of(r) for r in session.scalars(statement)]

    def export(
        self,
        actor: Principal,
        *,
        fmt: Literal["csv", "jsonl"] | str,
        **filters: Unpack[AuditFilters],
    ) -> Iterator[str]:
        """The matching events as CSV or JSON lines, in chunks of text, oldest first."""
        if fmt not in ("csv", "jsonl"):
            raise ValidationFailed(
                f"unknown export format {fmt!r}: use csv or jsonl", code="bad_format", fmt=fmt
            )
        self._filtered(actor, {})  # refuse before the first chunk, while an error can still show
        unknown = set(filters) - (_FILTERS - {"before_seq"})
        if unknown:
            raise ValidationFailed(f"unknown filters {sorted(unknown)}", code="bad_filter")
        self.record(action="audit.export", outcome="ok", actor=actor, detail={"format": fmt})
        return self._chunks(actor, fmt, AuditFilters(**filters))

    def _chunks(self, actor: Principal, fmt: str, filters: AuditFilters) -> Iterator[str]:
        if fmt == "csv":
            yield _csv_text([_CSV_FIELDS])
        while page := self.query(actor, limit=_EXPORT_PAGE, **filters):
            yield _csv_text([_csv_row(e) for e in page]) if fmt == "csv" else _jsonl(page)
            filters["after_seq"] = page[-1].seq

    def _filtered(self, actor: Principal, filters: AuditFilters) -> Select[AuditEventRecord]:
        if not actor.allows(AUDIT_READ):
            raise Forbidden(f"this needs the permission {AUDIT_READ!r}", code="forbidden")
        record = AuditEventRecord
        statement = select(record)
        if not actor.org_wide(AUDIT_READ):
            statement = statement.where(record.org_id == actor.org_id)
        for clause in _clauses(filters):
            statement = statement.where(clause)
        return statement

    def verify(self) -> AuditVerification:
        """Walk the whole chain; report the first event whose hash or link does not hold."""
        prev, checked, expected_seq = GENESIS_HASH, 0, None
        with session_scope(self._sessions) as session:
            for record in _all_events(session):
                problem = _check(record, prev, expected_seq)
                if problem:
                    return AuditVerification(
                        ok=False, checked=checked, first_bad_seq=record.seq, reason=problem,
                        last_hash=prev,
                    )  # fmt: skip
                prev, checked, expected_seq = record.hash, checked + 1, record.seq + 1
        return AuditVerification(ok=True, checked=checked, first_bad_seq=None, last_hash=prev)


def _event(
    action: str,
    outcome: str,
    actor: Principal | None,
    actor_name: str | None,
    target: str,
    status: int,
    ip: str,
    user_agent: str,
    detail: dict[str, Any] | None,
    org_id: str | None,
) -> _Event:
    fields = {
        "actor_name": actor_name if actor_name is not None else (actor.name if actor else ""),
        "action": action, "ip": ip, "target": target, "user_agent": user_agent,
    }  # fmt: skip
    cut = {k: str(v)[: _LIMITS[k]] for k, v in fields.items()}
    return _Event(
        ts=utc_now(), actor_id=actor.id if actor else "",
        org_id=(org_id if org_id is not None else (actor.org_id if actor else ""))[:32],
        outcome=outcome if outcome in OUTCOMES else "error", status=int(status),
        detail=_plain(detail), **cut,
    )  # fmt: skip


def _plain(detail: dict[str, Any] | None) -> dict[str, Any]:
    """Detail as plain JSON data, so the stored value hashes the same when read back."""
    try:
        plain: dict[str, Any] = json.loads(json.dumps(detail or {}, default=str, allow_nan=False))
    except ValueError:
        return {"repr": repr(detail)[:2048]}
    return plain


def _chained(session: Session, event: _Event) -> AuditEventRecord:
    last = session.execute(
        select(AuditEventRecord.seq, AuditEventRecord.hash)
        .order_by(AuditEventRecord.seq.desc())
        .limit(1)
    ).first()
    seq, prev = (last[0] + 1, last[1]) if last is not None else (1, GENESIS_HASH)
    return AuditEventRecord(
        seq=seq, ts=event.ts, actor_id=event.actor_id, actor_name=event.actor_name,
        org_id=event.org_id, action=event.action, target=event.target, outcome=event.outcome,
        status=event.status, ip=event.ip, user_agent=event.user_agent, detail=event.detail,
        prev_hash=prev, hash=chain_hash(prev, event.canonical(seq)),
    )  # fmt: skip


def _clauses(filters: AuditFilters) -> Iterator[Any]:
    record = AuditEventRecord
    if action := filters.get("action"):
        yield _action_clause(action)
    if (outcome := filters.get("outcome")) is not None:
        yield record.outcome == outcome
    if (actor_id := filters.get("actor_id")) is not None:
        yield record.actor_id == actor_id
    if (since := filters.get("since")) is not None:
        yield record.ts >= since
    if (until := filters.get("until")) is not None:
        yield record.ts < until
    if (after_seq := filters.get("after_seq")) is not None:
        yield record.seq > after_seq
    if (before_seq := filters.get("before_seq")) is not None:
        yield record.seq < before_seq


def _action_clause(action: str) -> Any:
    """An exact action, or a prefix when it ends in `*` (`iam.*`, `auth.*`)."""
    if action.endswith("*"):
        prefix = action[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return AuditEventRecord.action.like(f"{prefix}%", escape="\\")
    return AuditEventRecord.action == action


def _all_events(session: Session) -> Iterator[AuditEventRecord]:
    after = 0
    while True:
        page = session.scalars(
            select(AuditEventRecord)
            .where(AuditEventRecord.seq > after)
            .order_by(AuditEventRecord.seq)
            .limit(_VERIFY_PAGE)
        ).all()
        if not page:
            return
        yield from page
        after = page[-1].seq
        session.expunge_all()


def _check(record: AuditEventRecord, prev: str, expected_seq: int | None) -> str:
    if expected_seq is not None and record.seq != expected_seq:
        return f"events {expected_seq}..{record.seq - 1} are missing"
    if record.prev_hash != prev:
        return "the link to the previous event does not match"
    if record.hash != chain_hash(prev, _stored(record).canonical(record.seq)):
        return "the event was changed after it was written"
    return ""


def _stored(record: AuditEventRecord) -> _Event:
    return _Event(
        ts=record.ts, actor_id=record.actor_id, actor_name=record.actor_name,
        org_id=record.org_id, action=record.action, target=record.target,
        outcome=record.outcome, status=record.status, ip=record.ip,
        user_agent=record.user_agent, detail=dict(record.detail),
    )  # fmt: skip


def _ts_text(ts: datetime) -> str:
    return ts.isoformat(timespec="microseconds")


def _csv_text(rows: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _csv_row(event: AuditEventView) -> tuple[Any, ...]:
    values = event.model_dump()
    values["ts"] = _ts_text(event.ts)
    values["detail"] = json.dumps(event.detail, sort_keys=True, separators=(",", ":"))
    return tuple(_no_formula(values[name]) for name in _CSV_FIELDS)


def _no_formula(value: Any) -> Any:
    """Keep spreadsheet programs from running a cell that starts like a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _jsonl(page: list[AuditEventView]) -> str:
    return "".join(e.model_dump_json() + "\n" for e in page)
