"""What request verification needs in memory: principals, API keys and revoked token ids.

Each cache loads from the database on a miss and is dropped per principal by `forget`,
which IAM calls after every change of a principal (disable, grants, keys, revoke-all),
so a change takes effect on the principal's next request. A generation counter keeps a
load that raced with a `forget` from storing what it read before the change.
"""

from __future__ import annotations

import hmac
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Generic, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from werk.core.db import session_scope
from werk.core.errors import Unauthenticated
from werk.iam.models import ApiKeyRecord, RevokedTokenRecord
from werk.iam.scopes import Principal
from werk.iam.secrets import secret_hash

__all__ = ["ALL", "ApiKeyStore", "Known", "PrincipalCache", "RevokedTokens"]

_LOGGER = logging.getLogger(__name__)

ALL: Final = "*"
MAX_ENTRIES: Final = 10_000
# Bounds how stale what is held in memory may be when no announcement of a change arrived.
CACHE_TTL_S: Final = 60.0
# last_used_at of an API key is written at most this often, not on every request.
KEY_TOUCH_S: Final = 60.0

V = TypeVar("V")


def _epoch(moment: datetime | None, default: float) -> float:
    return default if moment is None else moment.timestamp()


class _Lru(Generic[V]):
    """A bounded map that forgets its oldest entries and loads that raced with `clear`."""

    def __init__(self, max_entries: int) -> None:
        self._entries: OrderedDict[str, V] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()
        self.generation = 0

    def get(self, key: str) -> V | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: str, value: V, generation: int) -> None:
        with self._lock:
            if generation != self.generation:
                return
            self._entries[key] = value
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def drop(self, keep: Callable[[str, V], bool]) -> None:
        with self._lock:
            self.generation += 1
            for key in [k for k, v in self._entries.items() if not keep(k, v)]:
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True, slots=True)
class Known:
    """A principal as last loaded: None when missing or disabled; revoke-all time."""

    principal: Principal | None
    valid_after: float
    loaded: float


class PrincipalCache:
    """Principals by id, loaded through `load` (principal, tokens_valid_after epoch)."""

    def __init__(
        self,
        load: Callable[[str], tuple[Principal | None, float]],
        clock: Callable[[], float],
        *,
        ttl_s: float = CACHE_TTL_S,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._load = load
        self._clock = clock
        self._ttl_s = ttl_s
        self._known: _Lru[Known] = _Lru(max_entries)

    def get(self, principal_id: str) -> Known:
        """The principal with `principal_id`, from memory when loaded recently."""
        now = self._clock()
        found = self._known.get(principal_id)
        if found is not None and now - found.loaded < self._ttl_s:
            return found
        generation = self._known.generation
        principal, valid_after = self._load(principal_id)
        found = Known(principal, valid_after, now)
        self._known.put(principal_id, found, generation)
        return found

    def forget(self, principal_id: str) -> None:
        """Drop one principal, or every one for `ALL`."""
        self._known.drop(lambda key, _: principal_id != ALL and key != principal_id)

    def __len__(self) -> int:
        return len(self._known)


@dataclass(slots=True)
class _Key:
    principal_id: str
    secret_hash: str
    expires_at: float
    revoked: bool
    touched: float
    loaded: float


class ApiKeyStore:
    """API keys by id: check a presented secret, note when each key was last used."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Callable[[], float],
        *,
        ttl_s: float = CACHE_TTL_S,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._ttl_s = ttl_s
        self._keys: _Lru[_Key] = _Lru(max_entries)

    def check(self, key_id: str, secret: str) -> str:
        """The principal id of a valid key; Unauthenticated for a wrong, revoked or old one."""
        now = self._clock()
        key = self._keys.get(key_id)
        if key is None or now - key.loaded >= self._ttl_s:
            key = self._load(key_id, now)
        if key is None or not hmac.compare_digest(secret_hash(secret), key.secret_hash):
            raise Unauthenticated("the API key is not valid", code="bad_api_key")
        if key.revoked:
            raise Unauthenticated("the API key has been revoked", code="key_revoked")
        if now >= key.expires_at:
            raise Unauthenticated("the API key has expired", code="key_expired")
        if now - key.touched >= KEY_TOUCH_S:
            key.touched = now
            self._touch(key_id, now)
        return key.principal_id

    def forget(self, principal_id: str) -> None:
        """Drop the keys of one principal, or every key for `ALL`."""
        self._keys.drop(lambda _, key: principal_id != ALL and key.principal_id != principal_id)

    def _load(self, key_id: str, now: float) -> _Key | None:
        generation = self._keys.generation
        with session_scope(self._sessions) as session:
            record = session.get(ApiKeyRecord, key_id)
            if record is None:
                return None
            key = _Key(
                record.principal_id, record.secret_hash, _epoch(record.expires_at, math.inf),
                record.revoked_at is not None, _epoch(record.last_used_at, -math.inf), now,
            )  # fmt: skip
        self._keys.put(key_id, key, generation)
        return key

    def _touch(self, key_id: str, now: float) -> None:
        moment = datetime.fromtimestamp(now, UTC)
        try:
            with session_scope(self._sessions) as session:
                session.execute(
                    update(ApiKeyRecord)
                    .where(ApiKeyRecord.id == key_id)
                    .values(last_used_at=moment)
                )
        except SQLAlchemyError as exc:
            # Only the "last used" column is lost; the request itself is fine.
            _LOGGER.warning("cannot note the use of API key %s: %s", key_id, exc)


class RevokedTokens:
    """Ids of access tokens (jti) and logins (sid) revoked before they expire, in memory.

    Read again from the database every `ttl_s`, so a revocation whose announcement never
    arrived (a process that crashed before writing it) still takes effect.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Callable[[], float],
        *,
        ttl_s: float = CACHE_TTL_S,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._ids: dict[str, float] = {}
        self._loaded = -math.inf
        self._pruned = -math.inf

    def __contains__(self, revoked_id: object) -> bool:
        if self._clock() - self._loaded >= self._ttl_s:
            self.load()
        return revoked_id in self._ids

    def load(self) -> None:
        """Read every unexpired revoked id from the database, adding to what is held."""
        started = self._clock()
        with session_scope(self._sessions) as session:
            rows = session.execute(select(RevokedTokenRecord.jti, RevokedTokenRecord.expires_at))
            found = {revoked_id: expires.timestamp() for revoked_id, expires in rows}
        with self._lock:
            self._ids.update(found)
            self._loaded = started
            self._prune(started)

    def add(self, revoked_id: str, expires_at: float) -> None:
        """Revoke the token or login `revoked_id` (kept until it would have expired anyway)."""
        now = self._clock()
        moment = datetime.fromtimestamp(expires_at, UTC)
        with session_scope(self._sessions) as session:
            session.merge(RevokedTokenRecord(jti=revoked_id, expires_at=moment))
            session.execute(
                delete(RevokedTokenRecord).where(
                    RevokedTokenRecord.expires_at <= datetime.fromtimestamp(now, UTC)
                )
            )
        self.note(revoked_id, expires_at)

    def note(self, revoked_id: str, expires_at: float) -> None:
        """Hold a revocation already in the database (another process wrote it)."""
        now = self._clock()
        with self._lock:
            if expires_at > now:
                self._ids[revoked_id] = max(expires_at, self._ids.get(revoked_id, expires_at))
            self._prune(now)

    def _prune(self, now: float) -> None:
        if now - self._pruned < 1.0:
            return
        self._pruned = now
        for old in [i for i, end in self._ids.items() if end <= now]:
            del self._ids[old]

    def __len__(self) -> int:
        return len(self._ids)
