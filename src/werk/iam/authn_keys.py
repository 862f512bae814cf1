"""The signing keys of access tokens, kept in `iam_signing_keys`.

The newest key without `retired_at` signs. A rotation makes a new key and retires every
other one; a retired key still verifies until `retired_at + access_token_ttl_s`, when
every token it signed has expired, and is then deleted (its private part with it).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from werk.core.db import session_scope
from werk.core.errors import Unauthenticated
from werk.iam.models import SigningKeyRecord
from werk.iam.tokens import ALGORITHM, SigningKey, TokenSigner, generate_signing_key
from werk.iam.views import SigningKeyView

__all__ = ["SigningKeyStore"]

_LOGGER = logging.getLogger(__name__)
# A token naming an unknown key makes werk look for keys another process made, at most
# this often, so made-up key ids cannot turn into a database query per request.
RELOAD_INTERVAL_S: Final = 1.0


def _key(record: SigningKeyRecord) -> SigningKey:
    return SigningKey(
        record.kid, record.private_pem, record.public_pem, record.created_at, record.retired_at
    )


class SigningKeyStore:
    """Load, create, rotate and drop signing keys; hand out the signer made of them."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        issuer: str,
        token_ttl_s: int,
        clock: Callable[[], float],
    ) -> None:
        self._sessions = sessions
        self._issuer = issuer
        self._ttl = timedelta(seconds=token_ttl_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._signer: TokenSigner | None = None
        self._next_drop = math.inf
        self._last_reload = -math.inf

    def signer(self) -> TokenSigner:
        """The signer with the current keys (loaded, or a first key made, on first use)."""
        signer = self._signer
        if signer is None or self._clock() >= self._next_drop:
            return self._reload()
        return signer

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of `token`; keys made by another process are looked up when named."""
        try:
            return self.signer().verify(token)
        except Unauthenticated as exc:
            if exc.code != "unknown_key" or self._clock() - self._last_reload < RELOAD_INTERVAL_S:
                raise
        return self._reload().verify(token)

    def rotate(self) -> tuple[str, list[str]]:
        """Sign with a new key from now on; return its id and the ids of the keys it retired."""
        now = self._now()
        key = generate_signing_key(now)
        with session_scope(self._sessions) as session:
            retired = [r for r in self._records(session) if r.retired_at is None]
            for record in retired:
                record.retired_at = now
            session.add(_record(key))
        self._reload()
        _LOGGER.info("signing key %s made; %s retired", key.kid, [r.kid for r in retired])
        return key.kid, [r.kid for r in retired]

    def reload(self) -> None:
        """Read the keys again (another process rotated them)."""
        self._reload()

    def views(self) -> list[SigningKeyView]:
        """Every key still kept, newest first, without private parts."""
        active = self.signer().active_kid
        with session_scope(self._sessions) as session:
            return [_view(r, r.kid == active) for r in self._records(session)]

    def _reload(self) -> TokenSigner:
        with self._lock:
            with session_scope(self._sessions) as session:
                keys = [_key(r) for r in self._current(session)]
            active, others = keys[0], keys[1:]
            if self._signer is None:
                self._signer = TokenSigner(active, others, issuer=self._issuer, clock=self._clock)
            else:
                self._signer.load(active, others)
            self._next_drop = self._drop_time(others)
            self._last_reload = self._clock()
            return self._signer

    def _drop_time(self, others: Sequence[SigningKey]) -> float:
        ends = [(k.retired_at or k.created_at) + self._ttl for k in others]
        return min((end.timestamp() for end in ends), default=math.inf)

    def _current(self, session: Session) -> list[SigningKeyRecord]:
        """The kept keys, the signing one first; drop expired ones, make one if none signs."""
        now = self._now()
        kept = []
        for record in self._records(session):
            if record.retired_at is not None and record.retired_at + self._ttl <= now:
                session.delete(record)
            else:
                kept.append(record)
        signing = [r for r in kept if r.retired_at is None]
        if not signing:
            signing = [_record(generate_signing_key(now))]
            session.add(signing[0])
            kept.insert(0, signing[0])
        # Two processes may each have made a first key: the newest signs, the others retire.
        for extra in signing[1:]:
            extra.retired_at = now
        return [signing[0], *(r for r in kept if r is not signing[0])]

    def _records(self, session: Session) -> list[SigningKeyRecord]:
        query = select(SigningKeyRecord).order_by(
            SigningKeyRecord.created_at.desc(), SigningKeyRecord.kid
        )
        return list(session.scalars(query))

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)


def _record(key: SigningKey) -> SigningKeyRecord:
    return SigningKeyRecord(
        kid=key.kid, algorithm=ALGORITHM, private_pem=key.private_pem,
        public_pem=key.public_pem, created_at=key.created_at, retired_at=None,
    )  # fmt: skip


def _view(record: SigningKeyRecord, active: bool) -> SigningKeyView:
    return SigningKeyView(
        kid=record.kid, algorithm=record.algorithm, created_at=record.created_at,
        retired_at=record.retired_at, active=active,
    )  # fmt: skip
