"""Where `werk login` keeps its tokens: one JSON file, readable by its owner only.

The file maps each server URL to its login (access token, refresh token, expiry). It lives
at `$WERK_CREDENTIALS`, else `$XDG_CONFIG_HOME/werk/credentials.json` (default
`~/.config/werk/credentials.json`), and is written atomically with mode 0600. A lock file
next to it serialises refreshes, so two commands running at once never use the same
rotating refresh token twice (a reuse would revoke the whole login).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from werk.core.errors import ValidationFailed

CREDENTIALS_ENV: Final = "WERK_CREDENTIALS"
_EXPIRY_MARGIN_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class StoredLogin:
    """The tokens of one login at one server (never shown in reprs)."""

    username: str
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: float

    @property
    def expired(self) -> bool:
        """Whether the access token has expired or will within the safety margin."""
        return time.time() >= self.expires_at - _EXPIRY_MARGIN_S


def login_from_token_response(username: str, body: dict[str, Any]) -> StoredLogin:
    """A login from the token endpoint's answer."""
    return StoredLogin(
        username=username,
        access_token=str(body["access_token"]),
        refresh_token=body.get("refresh_token"),
        expires_at=time.time() + float(body.get("expires_in", 0)),
    )


def credentials_path() -> Path:
    """The credentials file of this user."""
    given = os.environ.get(CREDENTIALS_ENV)
    if given:
        return Path(given).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "werk" / "credentials.json"


def server_key(base_url: str) -> str:
    """The file's key for a server: its base URL without a trailing slash."""
    return base_url.rstrip("/")


def load_login(base_url: str) -> StoredLogin | None:
    """The stored login for `base_url`, None when there is none."""
    entry = _read_all().get(server_key(base_url))
    if not isinstance(entry, dict):
        return None
    try:
        return StoredLogin(
            username=str(entry["username"]),
            access_token=str(entry["access_token"]),
            refresh_token=entry.get("refresh_token"),
            expires_at=float(entry["expires_at"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def save_login(base_url: str, login: StoredLogin) -> None:
    """Store (or replace) the login for `base_url`."""
    entries = _read_all()
    entries[server_key(base_url)] = asdict(login)
    _write_all(entries)


def forget_login(base_url: str) -> StoredLogin | None:
    """Delete the login for `base_url`; return what was stored."""
    found = load_login(base_url)
    entries = _read_all()
    if entries.pop(server_key(base_url), None) is not None:
        _write_all(entries)
    return found


@contextmanager
def locked() -> Iterator[None]:
    """Hold the credentials lock (refresh and rewrite by one process at a time)."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_all() -> dict[str, Any]:
    path = credentials_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    try:
        loaded = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(
            f"the credentials file {path} is not valid JSON; delete it and run `werk login`",
            code="bad_credentials_file",
        ) from exc
    return loaded if isinstance(loaded, dict) else {}


def _write_all(entries: dict[str, Any]) -> None:
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(orjson.dumps(entries, option=orjson.OPT_INDENT_2))
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
