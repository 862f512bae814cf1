"""Login throttling: sliding windows per user and address, escalating locks, bounded memory."""

from __future__ import annotations

import pytest

from werk.core.errors import TooManyAttempts
from werk.iam.throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def throttle(clock: Clock) -> LoginThrottle:
    return LoginThrottle(5, 900, 60, clock)


def _retry_after(throttle: LoginThrottle, user: str, ip: str) -> int:
    with pytest.raises(TooManyAttempts) as caught:
        throttle.check(user, ip)
    assert caught.value.code == "too_many_attempts"
    return caught.value.retry_after_s


def test_fifth_failure_locks_the_user_for_the_lockout(
    throttle: LoginThrottle, clock: Clock
) -> None:
    for _ in range(4):
        assert not throttle.failed("alice", "10.0.0.1").locked
        throttle.check("alice", "10.0.0.1")
    fifth = throttle.failed("alice", "10.0.0.1")
    assert fifth.user_lock_s == 60
    assert fifth.ip_lock_s == 0
    assert _retry_after(throttle, "alice", "10.0.0.9") == 60
    clock.now += 30
    assert _retry_after(throttle, "alice", "10.0.0.9") == 30
    throttle.check("bob", "10.0.0.1")
    clock.now += 30
    throttle.check("alice", "10.0.0.9")


def test_failures_outside_the_window_do_not_count(throttle: LoginThrottle, clock: Clock) -> None:
    for _ in range(4):
        throttle.failed("alice", "10.0.0.1")
    clock.now += 901
    for _ in range(4):
        assert not throttle.failed("alice", "10.0.0.1").locked
    throttle.check("alice", "10.0.0.1")
    assert throttle.failed("alice", "10.0.0.1").locked


def test_locks_escalate_and_are_capped_at_an_hour(throttle: LoginThrottle, clock: Clock) -> None:
    durations = []
    for _ in range(6):
        for _ in range(4):
            throttle.failed("alice", "10.0.0.1")
        durations.append(throttle.failed("alice", "10.0.0.1").user_lock_s)
        clock.now += durations[-1]
    assert durations == [60, 300, 900, 3600, 3600, 3600]


def test_lock_history_is_forgotten_after_a_quiet_day(throttle: LoginThrottle, clock: Clock) -> None:
    for _ in range(5):
        throttle.failed("alice", "10.0.0.1")
    clock.now += 90_000
    for _ in range(4):
        throttle.failed("alice", "10.0.0.1")
    assert throttle.failed("alice", "10.0.0.1").user_lock_s == 60


def test_success_clears_the_user_but_not_the_address(throttle: LoginThrottle) -> None:
    for _ in range(4):
        throttle.failed("alice", "10.0.0.1")
    throttle.succeeded("alice", "10.0.0.1")
    for _ in range(4):
        assert not throttle.failed("alice", "10.0.0.1").locked
    assert throttle.failed("alice", "10.0.0.1").locked


def test_one_address_trying_many_users_is_locked(throttle: LoginThrottle) -> None:
    results = [throttle.failed(f"user{i}", "203.0.113.7") for i in range(20)]
    assert not any(r.locked for r in results[:19])
    assert results[19].ip_lock_s == 60
    assert _retry_after(throttle, "someone-else", "203.0.113.7") == 60
    throttle.check("someone-else", "203.0.113.8")


def test_usernames_are_compared_without_case(throttle: LoginThrottle) -> None:
    for name in ("Alice", "ALICE", "alice", "aLiCe", "alicE"):
        throttle.failed(name, "10.0.0.1")
    _retry_after(throttle, "alice", "10.0.0.2")


def test_memory_is_bounded(clock: Clock) -> None:
    throttle = LoginThrottle(5, 900, 60, clock, max_keys=100)
    for i in range(1000):
        throttle.failed(f"user{i}", f"10.0.{i // 256}.{i % 256}")
    assert len(throttle) == 100
    throttle.check("user0", "10.0.0.0")


def test_huge_names_are_tracked_by_a_bounded_key(throttle: LoginThrottle) -> None:
    stem = "a" * 300
    for tail in "vwxyz":
        throttle.failed(stem + tail, "10.0.0.1")
    _retry_after(throttle, stem, "10.0.0.2")


def test_checking_only_the_address_ignores_the_users_lock(throttle: LoginThrottle) -> None:
    for _ in range(5):
        throttle.failed("alice", "10.0.0.1")
    throttle.check(None, "10.0.0.1")
    _retry_after(throttle, "alice", "10.0.0.1")


def test_a_lock_lifted_early_starts_a_new_window(throttle: LoginThrottle) -> None:
    for _ in range(5):
        throttle.failed("alice", "10.0.0.1")
    results = [throttle.failed("alice", "10.0.0.1") for _ in range(5)]
    assert [r.user_lock_s for r in results] == [0, 0, 0, 0, 300]
