"""Password hashing with argon2id (RFC 9106), and a constant-cost check for unknown users.

Parameters follow RFC 9106's second recommended profile (64 MiB, 3 passes, 4 lanes).
A stored hash made with other parameters still verifies; `needs_rehash` tells the caller
to store a fresh hash after the next successful login.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from typing import Final

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from werk.core.errors import ValidationFailed

__all__ = ["dummy_verify", "hash_password", "needs_rehash", "verify_password"]

TIME_COST: Final = 3
MEMORY_COST_KIB: Final = 64 * 1024
PARALLELISM: Final = 4
HASH_LEN: Final = 32
SALT_LEN: Final = 16


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher(
        time_cost=TIME_COST,
        memory_cost=MEMORY_COST_KIB,
        parallelism=PARALLELISM,
        hash_len=HASH_LEN,
        salt_len=SALT_LEN,
        type=Type.ID,
    )


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # Made once per process from a random value nobody knows, with the current parameters.
    return _hasher().hash(secrets.token_urlsafe(32))


def hash_password(password: str) -> str:
    """Hash `password` with argon2id and a fresh random salt."""
    try:
        return _hasher().hash(password)
    except UnicodeError as exc:
        raise ValidationFailed(
            "a password must be valid Unicode text", code="bad_password"
        ) from exc


def verify_password(password_hash: str, password: str) -> bool:
    """Whether `password` matches `password_hash`; False for a malformed hash, never raises."""
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError, ValueError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether `password_hash` was made with other parameters (or is not argon2 at all)."""
    try:
        return _hasher().check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


def dummy_verify(password: str) -> None:
    """Spend the time of one verification, so an unknown user answers as slowly as a known one."""
    verify_password(_dummy_hash(), password)
