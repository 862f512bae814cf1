"""Password hashing: argon2id, never raising on a broken hash, rehash on changed parameters."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from argon2 import PasswordHasher

from werk.core.errors import ValidationFailed
from werk.iam.passwords import (
    MEMORY_COST_KIB,
    TIME_COST,
    dummy_verify,
    hash_password,
    needs_rehash,
    verify_password,
)


def test_a_hash_verifies_its_password_and_no_other() -> None:
    stored = hash_password("correct horse battery staple")
    assert stored.startswith(f"$argon2id$v=19$m={MEMORY_COST_KIB},t={TIME_COST},")
    assert verify_password(stored, "correct horse battery staple")
    assert not verify_password(stored, "correct horse battery stapler")
    assert not verify_password(stored, "")


def test_the_same_password_hashes_differently_each_time() -> None:
    assert hash_password("same password") != hash_password("same password")


@pytest.mark.parametrize(
    "broken",
    ["", "x", "$argon2id$v=19$m=65536,t=3,p=4$", "$2b$12$abcdefghijklmnopqrstuu", "é\x00"],
)
def test_a_malformed_hash_fails_without_raising(broken: str) -> None:
    assert verify_password(broken, "anything") is False
    assert needs_rehash(broken)


def test_a_password_that_is_not_unicode_text_is_refused() -> None:
    stored = hash_password("fine")
    assert verify_password(stored, "\udc80") is False
    with pytest.raises(ValidationFailed) as caught:
        hash_password("\udc80")
    assert caught.value.code == "bad_password"


def test_a_hash_with_weaker_parameters_verifies_but_asks_for_a_rehash() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("old password")
    assert verify_password(weak, "old password")
    assert needs_rehash(weak)
    assert not needs_rehash(hash_password("old password"))


def test_dummy_verify_costs_about_as_much_as_a_real_one() -> None:
    stored = hash_password("some password")
    dummy_verify("warm-up")
    real = _fastest(lambda: verify_password(stored, "wrong guess"))
    dummy = _fastest(lambda: dummy_verify("wrong guess"))
    assert dummy > real / 3


def _fastest(call: Callable[[], object], repeats: int = 3) -> float:
    """The shortest of a few timings: a pause of the machine does not count."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    return min(timings)
