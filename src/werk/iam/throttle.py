"""Brute-force throttling of logins: sliding windows per username and per client address.

After `max_failures` failures within `window_s` a username is locked for `lockout_s`;
each further lock of the same key lasts longer (x1, x5, x15, x60, at most one hour).
A client address gets a wider window (`ip_max_failures`), so one address cannot try a
few passwords against every user. Callers check before counting a failure, so failures
arrive only while unlocked; a lock lifted early (an administrator's reset) is simply
followed by a new window. Memory stays bounded: at most `max_keys` keys are
tracked, the least recently touched goes first.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from werk.core.errors import TooManyAttempts

__all__ = ["Failure", "LoginThrottle"]

ESCALATION: Final = (1, 5, 15, 60)
MAX_LOCKOUT_S: Final = 3600.0
MAX_KEYS: Final = 100_000
# Keys are cut to this length, so hostile input cannot make one tracked key large.
MAX_KEY_CHARS: Final = 256
# A key's lock count is forgotten after a day without failures.
STRIKE_MEMORY_S: Final = 86_400.0


@dataclass(frozen=True, slots=True)
class Failure:
    """What one failed login changed: seconds of lock newly put on the user and the address."""

    user_lock_s: float = 0.0
    ip_lock_s: float = 0.0

    @property
    def locked(self) -> bool:
        """Whether this failure started a lock."""
        return self.user_lock_s > 0 or self.ip_lock_s > 0


@dataclass(slots=True)
class _Track:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0
    strikes: int = 0
    last_failure: float = 0.0


class LoginThrottle:
    """Count failed logins per username and per client address; lock on too many."""

    def __init__(
        self,
        max_failures: int,
        window_s: float,
        lockout_s: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        ip_max_failures: int | None = None,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self._limits = {"u": max_failures, "ip": ip_max_failures or 4 * max_failures}
        self._window_s = window_s
        self._lockout_s = lockout_s
        self._clock = clock
        self._max_keys = max_keys
        self._tracks: OrderedDict[tuple[str, str], _Track] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._tracks)

    def check(self, username: str | None, ip: str) -> None:
        """Raise TooManyAttempts while the username (unless None) or the address is locked."""
        wait = max(self.locked_for(username, ip), 0.0)
        if wait > 0:
            seconds = math.ceil(wait)
            raise TooManyAttempts(
                f"too many failed logins; try again in {seconds} s", retry_after_s=seconds
            )

    def locked_for(self, username: str | None, ip: str) -> float:
        """Seconds until the username (unless None) and the address may try again."""
        now = self._clock()
        with self._lock:
            ends = [t.locked_until for t in self._existing(username, ip)]
        return max((end - now for end in ends), default=0.0)

    def failed(self, username: str, ip: str) -> Failure:
        """Count a failed login; lock the username or the address when over the limit."""
        now = self._clock()
        with self._lock:
            user = self._fail(self._track(_user(username)), "u", now)
            addr = self._fail(self._track(_addr(ip)), "ip", now)
            self._evict()
        return Failure(user, addr)

    def succeeded(self, username: str, ip: str) -> None:
        """Forget the username's failures and lock history (the address keeps its count)."""
        with self._lock:
            self._tracks.pop(_user(username), None)

    def _existing(self, username: str | None, ip: str) -> list[_Track]:
        keys = (_addr(ip),) if username is None else (_user(username), _addr(ip))
        return [t for t in (self._tracks.get(k) for k in keys) if t is not None]

    def _track(self, key: tuple[str, str]) -> _Track:
        found = self._tracks.get(key)
        if found is None:
            found = self._tracks[key] = _Track()
        self._tracks.move_to_end(key)
        return found

    def _fail(self, track: _Track, kind: str, now: float) -> float:
        if now - track.last_failure > STRIKE_MEMORY_S:
            track.strikes = 0
        track.last_failure = now
        window = track.failures
        window.append(now)
        while window and window[0] <= now - self._window_s:
            window.popleft()
        if len(window) < self._limits[kind]:
            return 0.0
        window.clear()
        seconds = self._lock_duration(track.strikes)
        track.strikes += 1
        track.locked_until = now + seconds
        return seconds

    def _lock_duration(self, strikes: int) -> float:
        factor = ESCALATION[min(strikes, len(ESCALATION) - 1)]
        return min(self._lockout_s * factor, max(MAX_LOCKOUT_S, self._lockout_s))

    def _evict(self) -> None:
        while len(self._tracks) > self._max_keys:
            self._tracks.popitem(last=False)


def _user(username: str) -> tuple[str, str]:
    return ("u", username[:MAX_KEY_CHARS].casefold())


def _addr(ip: str) -> tuple[str, str]:
    return ("ip", ip[:MAX_KEY_CHARS])
