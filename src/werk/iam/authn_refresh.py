"""Refresh tokens in `iam_refresh_tokens`: opaque, stored hashed, rotating within a family.

Logging in starts a family. Each use marks the presented token used and issues the next
one of the same family; its lifetime is the idle time, cut at the family's absolute end.
A used token presented again means two parties hold the family, so the whole family is
revoked. Marking a token used is a conditional update, so two concurrent uses of one
token cannot both succeed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from werk.core.db import session_scope
from werk.iam.models import RefreshTokenRecord, new_id
from werk.iam.secrets import new_token, token_hash
from werk.iam.views import CredentialView

__all__ = ["Issued", "RefreshRow", "RefreshStore"]


@dataclass(frozen=True, slots=True)
class RefreshRow:
    """A stored refresh token as found by its text."""

    id: str
    family_id: str
    principal_id: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class Issued:
    """A refresh token just made: its text (given out once) and when it ends."""

    token: str
    family_id: str
    expires_at: datetime


def _row(record: RefreshTokenRecord) -> RefreshRow:
    return RefreshRow(
        record.id, record.family_id, record.principal_id, record.created_at,
        record.expires_at, record.used_at, record.revoked_at,
    )  # fmt: skip


class RefreshStore:
    """Start, find, rotate and revoke refresh-token families."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        idle_s: int,
        max_s: int,
        clock: Callable[[], float],
    ) -> None:
        self._sessions = sessions
        self._idle = timedelta(seconds=idle_s)
        self._max = timedelta(seconds=max_s)
        self._clock = clock

    def start(self, principal_id: str, ip: str) -> Issued:
        """Start a new family for `principal_id`."""
        now = self._now()
        with session_scope(self._sessions) as session:
            return self._add(session, principal_id, new_id(), now, now, ip)

    def find(self, token: str) -> RefreshRow | None:
        """The stored token with this text, whatever its state."""
        query = select(RefreshTokenRecord).where(RefreshTokenRecord.token_hash == token_hash(token))
        with session_scope(self._sessions) as session:
            record = session.scalars(query).first()
            return None if record is None else _row(record)

    def rotate(self, row: RefreshRow, ip: str) -> Issued | None:
        """Mark `row` used and issue the next token; None when it was used meanwhile."""
        now = self._now()
        with session_scope(self._sessions) as session:
            marked = session.execute(
                update(RefreshTokenRecord)
                .where(RefreshTokenRecord.id == row.id, RefreshTokenRecord.used_at.is_(None))
                .where(RefreshTokenRecord.revoked_at.is_(None))
                .values(used_at=now)
            )
            if marked.rowcount != 1:  # type: ignore[attr-defined]
                return None
            started = self._family_start(session, row.family_id)
            return self._add(session, row.principal_id, row.family_id, started, now, ip)

    def revoke_family(self, family_id: str) -> int:
        """Revoke the family's unused token (used ones are spent); return how many were live."""
        with session_scope(self._sessions) as session:
            result = session.execute(
                update(RefreshTokenRecord)
                .where(RefreshTokenRecord.family_id == family_id)
                .where(
                    RefreshTokenRecord.revoked_at.is_(None), RefreshTokenRecord.used_at.is_(None)
                )
                .values(revoked_at=self._now())
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def families(self, principal_id: str) -> list[CredentialView]:
        """The principal's families that still have an unexpired token, newest first."""
        now = self._now()
        with session_scope(self._sessions) as session:
            records = session.scalars(
                select(RefreshTokenRecord)
                .where(RefreshTokenRecord.principal_id == principal_id)
                .order_by(RefreshTokenRecord.created_at)
            ).all()
            return _families(list(records), now)

    def principal_of(self, family_id: str) -> str | None:
        """The principal a family belongs to, None for an unknown family."""
        query = select(RefreshTokenRecord.principal_id).where(
            RefreshTokenRecord.family_id == family_id
        )
        with session_scope(self._sessions) as session:
            return session.scalars(query.limit(1)).first()

    def _add(
        self,
        session: Session,
        principal_id: str,
        family_id: str,
        started: datetime,
        now: datetime,
        ip: str,
    ) -> Issued:
        token = new_token()
        expires = min(now + self._idle, started + self._max)
        session.add(
            RefreshTokenRecord(
                id=new_id(),
                family_id=family_id,
                principal_id=principal_id,
                token_hash=token_hash(token),
                created_at=now,
                expires_at=expires,
                used_at=None,
                revoked_at=None,
                ip=ip[:64],
            )
        )
        return Issued(token, family_id, expires)

    def _family_start(self, session: Session, family_id: str) -> datetime:
        query = select(func.min(RefreshTokenRecord.created_at)).where(
            RefreshTokenRecord.family_id == family_id
        )
        started = session.scalar(query)
        if started is None:
            return self._now()
        return started.replace(tzinfo=UTC) if started.tzinfo is None else started

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)


def _families(records: list[RefreshTokenRecord], now: datetime) -> list[CredentialView]:
    by_family: dict[str, list[RefreshTokenRecord]] = {}
    for record in records:
        by_family.setdefault(record.family_id, []).append(record)
    views = []
    for family_id, members in by_family.items():
        first, last = members[0], members[-1]
        if last.revoked_at is not None or last.expires_at <= now:
            continue
        views.append(
            CredentialView(
                id=family_id,
                principal_id=first.principal_id,
                kind="refresh",
                created_at=first.created_at,
                last_used_at=last.created_at if len(members) > 1 else None,
                expires_at=last.expires_at,
                revoked_at=None,
                ip=last.ip,
            )
        )
    return sorted(views, key=lambda v: v.created_at, reverse=True)
