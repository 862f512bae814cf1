"""The change feed: revocations and principal changes carried between werk processes.

Each process holds principals, API keys, web sessions and revoked token ids in memory
(`werk.iam.authn_cache`) and drops them on a change it makes itself. When several werk
processes share one database, each change is also written to `iam_changes`; every process
polls the table (by default every second) and applies the others' changes the same way,
so a change made through one process reaches all of them within one poll interval.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal
from uuid import uuid4

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from werk.core.db import session_scope
from werk.iam.models import ChangeRecord, utc_now

__all__ = ["Announce", "Change", "ChangeFeed", "ChangeKind", "silent"]

_LOGGER = logging.getLogger(__name__)

ChangeKind = Literal["principal", "token", "session", "keys"]
# Changes are kept this long: a process that polls less often misses nothing newer.
KEEP: Final = timedelta(hours=1)
_PAGE: Final = 1000
_LATE: Final = timedelta(seconds=10)
_KINDS: Final[dict[str, ChangeKind]] = {
    "principal": "principal", "token": "token", "session": "session", "keys": "keys"
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Change:
    """One change another process made."""

    seq: int
    kind: ChangeKind
    subject: str
    expires_at: float | None


Apply = Callable[[Change], None]
Announce = Callable[[ChangeKind, str, float | None], None]


def silent(kind: ChangeKind, subject: str, expires_at: float | None) -> None:
    """Announce nothing (a single process, or tests)."""


class ChangeFeed:
    """Write this process's changes; poll and apply the changes of the others."""

    def __init__(self, sessions: sessionmaker[Session], apply: Apply) -> None:
        self.origin = uuid4().hex
        self._sessions = sessions
        self._apply = apply
        self._after: int | None = None
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._recent: dict[int, datetime] = {}

    def publish(self, kind: ChangeKind, subject: str, expires_at: float | None = None) -> None:
        """Tell the other processes; a failed write is logged (they catch up by TTL)."""
        record = ChangeRecord(
            at=utc_now(), origin=self.origin, kind=kind, subject=subject[:64],
            expires_at=None if expires_at is None else datetime.fromtimestamp(expires_at, UTC),
        )  # fmt: skip
        try:
            with session_scope(self._sessions) as session:
                session.add(record)
        except SQLAlchemyError as exc:
            _LOGGER.warning("cannot announce the %s change of %s: %s", kind, subject, exc)

    def poll(self) -> int:
        """Apply every change other processes made since the last poll; how many."""
        with self._poll_lock:
            if self._after is None:
                self._after = self._newest()
                return 0
            # Also the last seconds' rows: a transaction may commit a lower seq after a higher.
            applied = self._take(self._read(ChangeRecord.at >= utc_now() - _LATE))
            while page := self._read(ChangeRecord.seq > self._after):
                applied += self._take(page)
            self._forget_recent()
            return applied

    def prune(self) -> int:
        """Delete changes older than an hour (never the newest, which numbers the next)."""
        cutoff = utc_now() - KEEP
        with session_scope(self._sessions) as session:
            newest = session.scalar(select(func.max(ChangeRecord.seq))) or 0
            result = session.execute(
                delete(ChangeRecord).where(ChangeRecord.at < cutoff, ChangeRecord.seq < newest)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def start(self, interval_s: float) -> None:
        """Poll every `interval_s` seconds in a thread until `stop`."""
        self.poll()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(interval_s,), name="werk-iam-changes", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """End the polling thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def _loop(self, interval_s: float) -> None:
        polls = 0
        while not self._stop.wait(interval_s):
            polls += 1
            try:
                self.poll()
                if polls % 600 == 0:
                    self.prune()
            except SQLAlchemyError as exc:
                if not self._failing:
                    _LOGGER.warning("cannot read IAM changes of other processes: %s", exc)
                self._failing = True
                continue
            if self._failing:
                _LOGGER.info("reading IAM changes of other processes again")
            self._failing = False

    def _apply_logged(self, change: Change) -> None:
        try:
            self._apply(change)
        except Exception:  # one bad change must not stop the others
            _LOGGER.exception("applying the IAM change %s failed", change.seq)

    def _forget_recent(self) -> None:
        horizon = utc_now() - 2 * _LATE
        for seq in [seq for seq, at in self._recent.items() if at < horizon]:
            del self._recent[seq]

    def _newest(self) -> int:
        with session_scope(self._sessions) as session:
            return session.scalar(select(func.max(ChangeRecord.seq))) or 0

    def _take(self, records: list[ChangeRecord]) -> int:
        applied = 0
        for record in records:
            assert self._after is not None
            self._after = max(self._after, record.seq)
            if record.seq in self._recent:
                continue
            self._recent[record.seq] = record.at
            change = _change(record)
            if record.origin != self.origin and change is not None:
                self._apply_logged(change)
                applied += 1
        return applied

    def _read(self, where: ColumnElement[bool]) -> list[ChangeRecord]:
        query = select(ChangeRecord).where(where).order_by(ChangeRecord.seq).limit(_PAGE)
        with session_scope(self._sessions) as session:
            found = list(session.scalars(query))
            session.expunge_all()
            return found


def _change(record: ChangeRecord) -> Change | None:
    kind = _KINDS.get(record.kind)
    if kind is None:
        _LOGGER.warning("IAM change %s of unknown kind %r ignored", record.seq, record.kind)
        return None
    expires = None if record.expires_at is None else record.expires_at.timestamp()
    return Change(record.seq, kind, record.subject, expires)
