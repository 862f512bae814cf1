"""Password checks with throttling and an account lock that survives a restart.

The in-memory throttle counts failures per user name and per client address. A lock it
puts on a user is also written to the principal (`locked_until`, `failed_logins`), so a
restart does not lift it. While locked, even the right password fails. An unknown user
costs as much time as a known one (a dummy argon2 verification).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from werk.core.db import session_scope
from werk.core.errors import TooManyAttempts, Unauthenticated
from werk.core.settings import Settings
from werk.iam.audit import AuditLog
from werk.iam.models import PrincipalRecord
from werk.iam.passwords import dummy_verify, hash_password, needs_rehash, verify_password
from werk.iam.scopes import PrincipalKind
from werk.iam.throttle import Failure, LoginThrottle

__all__ = ["PasswordCheck"]


@dataclass(frozen=True, slots=True)
class _Account:
    id: str
    org_id: str
    password_hash: str | None
    locked_until: float


class PasswordCheck:
    """Check a user name and password; throttle, lock and audit failures."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        audit: AuditLog,
        clock: Callable[[], float],
    ) -> None:
        self._sessions = sessions
        self._audit = audit
        self._clock = clock
        self._throttle = LoginThrottle(
            settings.login_max_failures, settings.login_window_s, settings.login_lockout_s, clock
        )

    def check(self, username: str, password: str, ip: str) -> str:
        """The id of the user whose password this is; TooManyAttempts or Unauthenticated."""
        account = self._account(username)
        self._refuse_throttled(username, ip, account)
        if account is not None and account.locked_until > self._clock():
            self._refuse_locked(username, ip, account)
        if account is None or account.password_hash is None:
            dummy_verify(password)
            self._fail(username, ip, account, "unknown_user")
        if not verify_password(account.password_hash, password):
            self._fail(username, ip, account, "bad_password")
        self._succeed(username, ip, account, password)
        return account.id

    def _refuse_throttled(self, username: str, ip: str, account: _Account | None) -> None:
        try:
            # A known account's lock lives on the principal, where an administrator lifts it.
            self._throttle.check(username if account is None else None, ip)
        except TooManyAttempts as exc:
            self._record("denied", username, ip, account, reason="throttled")
            raise exc from None

    def _refuse_locked(self, username: str, ip: str, account: _Account) -> NoReturn:
        wait = math.ceil(account.locked_until - self._clock())
        self._record("denied", username, ip, account, reason="locked")
        raise TooManyAttempts(f"this account is locked; try again in {wait} s", retry_after_s=wait)

    def _fail(self, username: str, ip: str, account: _Account | None, reason: str) -> NoReturn:
        failure = self._throttle.failed(username, ip)
        if account is not None:
            self._note_failure(account, failure)
        self._record("failed", username, ip, account, reason=reason)
        if failure.locked:
            self._audit.record(
                action="auth.locked", outcome="denied", actor_name=username, target=username,
                ip=ip, org_id=account.org_id if account else None,
                detail={"user_lock_s": failure.user_lock_s, "ip_lock_s": failure.ip_lock_s},
            )  # fmt: skip
        raise Unauthenticated("wrong user name or password", code="bad_credentials")

    def _succeed(self, username: str, ip: str, account: _Account, password: str) -> None:
        self._throttle.succeeded(username, ip)
        values: dict[str, Any] = {"failed_logins": 0, "locked_until": None}
        if account.password_hash is not None and needs_rehash(account.password_hash):
            values["password_hash"] = hash_password(password)
        with session_scope(self._sessions) as session:
            session.execute(
                update(PrincipalRecord).where(PrincipalRecord.id == account.id).values(**values)
            )

    def _note_failure(self, account: _Account, failure: Failure) -> None:
        values: dict[str, Any] = {"failed_logins": PrincipalRecord.failed_logins + 1}
        if failure.user_lock_s > 0:
            until = self._clock() + failure.user_lock_s
            values["locked_until"] = datetime.fromtimestamp(until, UTC)
        with session_scope(self._sessions) as session:
            session.execute(
                update(PrincipalRecord).where(PrincipalRecord.id == account.id).values(**values)
            )

    def _account(self, username: str) -> _Account | None:
        query = select(PrincipalRecord).where(
            PrincipalRecord.name == username, PrincipalRecord.kind == PrincipalKind.USER.value
        )
        with session_scope(self._sessions) as session:
            record = session.scalars(query).first()
            if record is None:
                return None
            locked = record.locked_until.timestamp() if record.locked_until else -math.inf
            return _Account(record.id, record.org_id, record.password_hash, locked)

    def _record(
        self, outcome: str, username: str, ip: str, account: _Account | None, *, reason: str
    ) -> None:
        self._audit.record(
            action="auth.login", outcome=outcome, actor_name=username, target=username, ip=ip,
            org_id=account.org_id if account else None, detail={"reason": reason},
        )  # fmt: skip
