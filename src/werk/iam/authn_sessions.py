"""Web sessions in `iam_web_sessions`: a random cookie (stored hashed) and a CSRF token.

A session ends after `session_idle_s` without a request or `session_max_s` after login,
whichever comes first. Live sessions are held in memory; the database learns of a
session's activity at most once a minute, so a request costs no write.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from werk.core.db import session_scope
from werk.core.errors import Unauthenticated
from werk.iam.models import WebSessionRecord, new_id
from werk.iam.secrets import new_token, token_hash
from werk.iam.views import CredentialView

__all__ = ["LiveSession", "SessionStore"]

MAX_LIVE: Final = 10_000
SEEN_WRITE_S: Final = 60.0


@dataclass(slots=True)
class LiveSession:
    """A session as verification needs it; times are epoch seconds."""

    id: str
    principal_id: str
    csrf: str
    created: float
    expires: float
    written: float
    read: float = -math.inf


class SessionStore:
    """Open, check, close and revoke web sessions."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        idle_s: int,
        max_s: int,
        clock: Callable[[], float],
    ) -> None:
        self._sessions = sessions
        self._idle_s = idle_s
        self._max_s = max_s
        self._clock = clock
        self._live: OrderedDict[str, LiveSession] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, principal_id: str, *, ip: str, user_agent: str) -> tuple[str, LiveSession]:
        """Start a session: the cookie text (given out once) and the session."""
        now = self._clock()
        cookie = new_token()
        live = LiveSession(new_id(), principal_id, new_token(), now, self._end(now, now), now, now)
        with session_scope(self._sessions) as session:
            session.add(
                WebSessionRecord(
                    id=live.id,
                    principal_id=principal_id,
                    token_hash=token_hash(cookie),
                    csrf_token=live.csrf,
                    created_at=_dt(now),
                    last_seen_at=_dt(now),
                    expires_at=_dt(live.expires),
                    revoked_at=None,
                    ip=ip[:64],
                    user_agent=user_agent[:512],
                )
            )
        self._keep(token_hash(cookie), live)
        return cookie, live

    def check(self, cookie: str, *, touch: bool = True) -> LiveSession:
        """The live session of `cookie`; Unauthenticated otherwise.

        `touch` restarts its idle time (the user did something); without it the session
        is only checked, so a page nobody uses still runs out of idle time.
        """
        digest = token_hash(cookie)
        with self._lock:
            live = self._live.get(digest)
        now = self._clock()
        if live is None:
            live = self._load(digest, now)
        elif not touch and now - live.read >= SEEN_WRITE_S:
            self._reread(digest, live, now)
        if now >= live.expires:
            self._drop(digest)
            raise Unauthenticated("the session has expired; log in again", code="session_expired")
        if not touch:
            return live
        live.expires = self._end(live.created, now)
        if now - live.written >= SEEN_WRITE_S:
            live.written = now
            self._write_seen(digest, live, now)
        return live

    def close(self, cookie: str) -> LiveSession | None:
        """End the session of `cookie`; the ended session, None when there was none."""
        digest = token_hash(cookie)
        self._drop(digest)
        with session_scope(self._sessions) as session:
            record = session.scalars(
                select(WebSessionRecord).where(WebSessionRecord.token_hash == digest)
            ).first()
            if record is None or record.revoked_at is not None:
                return None
            record.revoked_at = _dt(self._clock())
            return _live(record)

    def revoke(self, session_id: str) -> bool:
        """End a session by its id; whether it was live."""
        with self._lock:
            for digest in [d for d, s in self._live.items() if s.id == session_id]:
                del self._live[digest]
        with session_scope(self._sessions) as session:
            result = session.execute(
                update(WebSessionRecord)
                .where(WebSessionRecord.id == session_id, WebSessionRecord.revoked_at.is_(None))
                .values(revoked_at=_dt(self._clock()))
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def principal_of(self, session_id: str) -> str | None:
        """The principal a session belongs to, None for an unknown session."""
        with session_scope(self._sessions) as session:
            record = session.get(WebSessionRecord, session_id)
            return None if record is None else record.principal_id

    def listing(self, principal_id: str) -> list[CredentialView]:
        """The principal's unexpired, unrevoked sessions, newest first."""
        now = _dt(self._clock())
        with session_scope(self._sessions) as session:
            records = session.scalars(
                select(WebSessionRecord)
                .where(WebSessionRecord.principal_id == principal_id)
                .where(WebSessionRecord.revoked_at.is_(None), WebSessionRecord.expires_at > now)
                .order_by(WebSessionRecord.created_at.desc())
            ).all()
            return [_view(r) for r in records]

    def forget(self, principal_id: str) -> None:
        """Drop the cached sessions of one principal (every one for "*")."""
        with self._lock:
            for digest in [
                d for d, s in self._live.items() if principal_id in ("*", s.principal_id)
            ]:
                del self._live[digest]

    def _end(self, created: float, now: float) -> float:
        return min(now + self._idle_s, created + self._max_s)

    def _load(self, digest: str, now: float) -> LiveSession:
        found = self._stored(digest)
        found.read = now
        self._keep(digest, found)
        return found

    def _reread(self, digest: str, live: LiveSession, now: float) -> None:
        """Check a session held in memory against the database (ended elsewhere?)."""
        try:
            stored = self._stored(digest)
        except Unauthenticated:
            self._drop(digest)
            raise
        live.expires = max(live.expires, stored.expires)
        live.read = now

    def _stored(self, digest: str) -> LiveSession:
        with session_scope(self._sessions) as session:
            record = session.scalars(
                select(WebSessionRecord).where(WebSessionRecord.token_hash == digest)
            ).first()
            found = None if record is None or record.revoked_at is not None else _live(record)
        if found is None:
            raise Unauthenticated("the session is unknown or has ended", code="bad_session")
        return found

    def _keep(self, digest: str, live: LiveSession) -> None:
        with self._lock:
            self._live[digest] = live
            while len(self._live) > MAX_LIVE:
                self._live.popitem(last=False)

    def _drop(self, digest: str) -> None:
        with self._lock:
            self._live.pop(digest, None)

    def _write_seen(self, digest: str, live: LiveSession, now: float) -> None:
        with session_scope(self._sessions) as session:
            result = session.execute(
                update(WebSessionRecord)
                .where(WebSessionRecord.id == live.id, WebSessionRecord.revoked_at.is_(None))
                .values(last_seen_at=_dt(now), expires_at=_dt(live.expires))
            )
            ended = not result.rowcount  # type: ignore[attr-defined]
        if ended:
            self._drop(digest)
            raise Unauthenticated("the session has ended", code="bad_session")


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _live(record: WebSessionRecord) -> LiveSession:
    seen = record.last_seen_at.timestamp()
    return LiveSession(
        record.id, record.principal_id, record.csrf_token, record.created_at.timestamp(),
        record.expires_at.timestamp(), seen,
    )  # fmt: skip


def _view(record: WebSessionRecord) -> CredentialView:
    return CredentialView(
        id=record.id, principal_id=record.principal_id, kind="session",
        created_at=record.created_at, last_used_at=record.last_seen_at,
        expires_at=record.expires_at, revoked_at=record.revoked_at, ip=record.ip,
        user_agent=record.user_agent,
    )  # fmt: skip
