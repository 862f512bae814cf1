"""The change feed: revocations and principal changes carried between werk processes.

Each process holds principals, API keys, web sessions and revoked token ids in memory
(`werk.iam.authn_cache`) and drops them on a change it makes itself. When several werk
processes share one database, each change is also written to `iam_changes`; every process
polls the table (by default every second) and applies the others' changes the same way,
so a change made through one process reaches all of them within one poll interval.

Two things could lose a change, and neither does:
- a write that fails is queued and written again on the next poll (what is held in memory
  is also reloaded after `CACHE_TTL_S`, which bounds even a crash before the write);
- on PostgreSQL a transaction may commit a lower `seq` after a higher one was read: the
  numbers skipped are remembered and looked up again for `_GAP_WAIT_S` seconds, timed on
  the reader's own clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal
from uuid import uuid4

from sqlalchemy import ColumnElement, delete, func, insert, select
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
# A skipped number is looked for this long: a transaction commits well within it.
_GAP_WAIT_S: Final = 60.0
_MAX_GAP: Final = 1000  # numbers one jump may skip before it counts as a reset
_MAX_MISSING: Final = 10_000
_MAX_QUEUED: Final = 10_000
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

    def __init__(
        self,
        sessions: sessionmaker[Session],
        apply: Apply,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.origin = uuid4().hex
        self._sessions = sessions
        self._apply = apply
        self._clock = clock
        self._after: int | None = None
        self._missing: dict[int, float] = {}
        self._queued: deque[dict[str, object]] = deque(maxlen=_MAX_QUEUED)
        self._write_lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def publish(self, kind: ChangeKind, subject: str, expires_at: float | None = None) -> None:
        """Tell the other processes; a failed write is queued and tried again."""
        row: dict[str, object] = {
            "at": utc_now(), "origin": self.origin, "kind": kind, "subject": subject[:64],
            "expires_at": None if expires_at is None else datetime.fromtimestamp(expires_at, UTC),
        }  # fmt: skip
        with self._write_lock:
            if len(self._queued) == _MAX_QUEUED:
                _LOGGER.error("IAM change queue full: the oldest unsent change is dropped")
            self._queued.append(row)
        self._flush()

    @property
    def queued(self) -> int:
        """Changes of this process not yet written."""
        return len(self._queued)

    def poll(self) -> int:
        """Write what is queued; apply the changes other processes made since; how many."""
        self._flush()
        with self._poll_lock:
            if self._after is None:
                self._after = self._newest()
                return 0
            applied = self._late()
            while page := self._read(ChangeRecord.seq > self._after):
                applied += self._take(page)
            now = self._clock()
            for seq in [s for s, since in self._missing.items() if now - since > _GAP_WAIT_S]:
                del self._missing[seq]
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
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(interval_s,), name="werk-iam-changes", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """End the polling thread (waits for a poll in progress)."""
        self._stop.set()
        thread = self._thread
        if thread is None:
            return
        thread.join(10.0)
        if thread.is_alive():
            _LOGGER.warning("the IAM change feed is still busy after 10 s at stop")
            return
        self._thread = None

    def _loop(self, interval_s: float) -> None:
        polls = 0
        while True:
            self._poll_logged()
            polls += 1
            if polls % 600 == 0:
                self._prune_logged()
            if self._stop.wait(interval_s):
                return

    def _poll_logged(self) -> None:
        try:
            self.poll()
        except SQLAlchemyError as exc:
            if not self._failing:
                _LOGGER.warning("cannot read IAM changes of other processes: %s", exc)
            self._failing = True
            return
        except Exception:  # the thread must live on to read the next changes
            _LOGGER.exception("reading IAM changes of other processes failed")
            return
        if self._failing:
            _LOGGER.info("reading IAM changes of other processes again")
        self._failing = False

    def _prune_logged(self) -> None:
        try:
            self.prune()
        except SQLAlchemyError as exc:
            _LOGGER.warning("cannot prune old IAM changes: %s", exc)

    def _flush(self) -> None:
        with self._write_lock:
            if not self._queued:
                return
            rows = list(self._queued)
            try:
                with session_scope(self._sessions) as session:
                    session.execute(insert(ChangeRecord), rows)
            except SQLAlchemyError as exc:
                _LOGGER.warning(
                    "cannot announce %d IAM changes yet (trying again on the next poll): %s",
                    len(rows), exc,
                )  # fmt: skip
                return
            for _ in rows:
                self._queued.popleft()

    def _late(self) -> int:
        """Changes with numbers skipped earlier that have committed since."""
        applied = 0
        missing = sorted(self._missing)
        for start in range(0, len(missing), _PAGE):
            chunk = missing[start : start + _PAGE]
            found = self._read(ChangeRecord.seq.in_(chunk))
            for record in found:
                del self._missing[record.seq]
            applied += self._apply_all(found)
        return applied

    def _take(self, page: list[ChangeRecord]) -> int:
        assert self._after is not None
        now = self._clock()
        for record in page:
            skipped = record.seq - self._after - 1
            if 0 < skipped <= _MAX_GAP and len(self._missing) + skipped <= _MAX_MISSING:
                self._missing.update(dict.fromkeys(range(self._after + 1, record.seq), now))
            self._after = record.seq
        return self._apply_all(page)

    def _apply_all(self, records: Iterable[ChangeRecord]) -> int:
        applied = 0
        for record in records:
            change = _change(record)
            if record.origin != self.origin and change is not None:
                self._apply_logged(change)
                applied += 1
        return applied

    def _apply_logged(self, change: Change) -> None:
        try:
            self._apply(change)
        except Exception:  # one bad change must not stop the others
            _LOGGER.exception("applying the IAM change %s failed", change.seq)

    def _newest(self) -> int:
        with session_scope(self._sessions) as session:
            return session.scalar(select(func.max(ChangeRecord.seq))) or 0

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
