"""Random secrets: API keys (`wk_<id>_<secret>`), opaque tokens, and the hashes stored for them.

An API key carries its own lookup id, so verification is one primary-key read and a
constant-time comparison of sha256 digests. The secret has 256 random bits, so a plain
sha256 is enough to store it (there is nothing to guess, unlike a password).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Final

__all__ = [
    "API_KEY_PREFIX",
    "is_api_key",
    "new_api_key",
    "new_token",
    "parse_api_key",
    "secret_hash",
    "token_hash",
]

API_KEY_PREFIX: Final = "wk_"
KEY_ID_BYTES: Final = 6
SECRET_BYTES: Final = 32
_API_KEY: Final = re.compile(r"wk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})", re.ASCII)


def new_api_key() -> tuple[str, str, str]:
    """Make a key: (key id, full key text shown once, sha256 hex of its secret)."""
    key_id = secrets.token_hex(KEY_ID_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return key_id, f"{API_KEY_PREFIX}{key_id}_{secret}", secret_hash(secret)


def parse_api_key(text: str) -> tuple[str, str] | None:
    """Split a key into (key id, secret); None when `text` is not a well-formed werk key."""
    found = _API_KEY.fullmatch(text)
    return None if found is None else (found.group(1), found.group(2))


def is_api_key(text: str) -> bool:
    """Whether `text` looks like a werk API key rather than another credential."""
    return text.startswith(API_KEY_PREFIX)


def secret_hash(secret: str) -> str:
    """The sha256 hex digest stored for an API key secret."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_token(nbytes: int = 32) -> str:
    """A URL-safe random token with `nbytes` bytes of entropy."""
    return secrets.token_urlsafe(nbytes)


def token_hash(text: str) -> str:
    """The sha256 hex digest stored for an opaque token (refresh token, session cookie)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
