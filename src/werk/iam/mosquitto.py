"""Mosquitto's password and ACL files, written from werk's principals, and its reload.

Mosquitto 2.0 reads `password_file` and `acl_file` at start and on SIGHUP. werk writes
both whenever a principal changes (each atomically: a temporary file renamed over the
old one, keeping the old file's mode and group so Mosquitto can still read it) and then
reloads Mosquitto. A user line holds one hash, so in Mosquitto a principal logs in with
its newest API key that is neither revoked nor expired; older keys stop working there
(the embedded gateway accepts every valid key). On reload Mosquitto 2.0.11 checks the
password of every connected client again and disconnects those that no longer pass, and
applies the new ACL to the next publish and delivery of connected clients.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import shlex
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from werk.core.errors import BrokerUnavailable, TopicError, ValidationFailed
from werk.core.filters import check_levels
from werk.core.settings import Settings
from werk.iam.models import ApiKeyRecord, PrincipalRecord
from werk.iam.mqtt import NodePath, TopicAcl, topic_acl
from werk.iam.scopes import Principal

__all__ = [
    "DEFAULT_ITERATIONS",
    "MosquittoEntry",
    "MosquittoFiles",
    "MosquittoSync",
    "enabled_principals",
    "load_entries",
    "mosquitto_hash",
    "newest_key",
]

_LOGGER = logging.getLogger(__name__)

DEFAULT_ITERATIONS: Final = 101  # mosquitto_passwd's default for sha512-pbkdf2
SALT_BYTES: Final = 12
HASH_BYTES: Final = 64
RELOAD_TIMEOUT_S: Final = 10.0
RESYNC_S: Final = 3600.0
RETRY_MAX_S: Final = 60.0
_ACCESS: Final = {(True, True): "readwrite", (True, False): "read", (False, True): "write"}
_HEADER: Final = "# Written by werk from its principals; changes made here are overwritten.\n"

LoadPrincipal = Callable[[str], Principal | None]


def mosquitto_hash(
    password: str, *, salt: bytes | None = None, iterations: int = DEFAULT_ITERATIONS
) -> str:
    """Hash `password` as Mosquitto 2.0 does: ``$7$<iterations>$<salt b64>$<hash b64>``."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, HASH_BYTES)
    return f"$7${iterations}${_b64(salt)}${_b64(digest)}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, slots=True)
class MosquittoEntry:
    """A principal that logs in to Mosquitto, with the hash of its password (API key)."""

    principal: Principal
    password_hash: str


def newest_key(keys: Iterable[ApiKeyRecord], now: datetime) -> ApiKeyRecord | None:
    """The newest key that is neither revoked nor expired at `now`."""
    valid = [
        k for k in keys if k.revoked_at is None and (k.expires_at is None or k.expires_at > now)
    ]
    return max(valid, key=lambda k: k.created_at, default=None)


def load_entries(
    sessions: sessionmaker[Session], load_principal: LoadPrincipal, now: datetime
) -> tuple[list[MosquittoEntry], datetime | None]:
    """Every enabled principal with a valid API key, and when the first chosen key expires."""
    with sessions() as session:
        keys = session.scalars(
            select(ApiKeyRecord)
            .join(PrincipalRecord, PrincipalRecord.id == ApiKeyRecord.principal_id)
            .where(PrincipalRecord.disabled.is_(False), ApiKeyRecord.revoked_at.is_(None))
        ).all()
    by_principal: dict[str, list[ApiKeyRecord]] = {}
    for key in keys:
        by_principal.setdefault(key.principal_id, []).append(key)
    chosen = {pid: newest_key(own, now) for pid, own in sorted(by_principal.items())}
    entries = [
        MosquittoEntry(principal, key.mosquitto_hash)
        for pid, key in chosen.items()
        if key is not None and (principal := load_principal(pid)) is not None
    ]
    expiries = [k.expires_at for k in chosen.values() if k is not None and k.expires_at is not None]
    return entries, min(expiries, default=None)


def enabled_principals(
    sessions: sessionmaker[Session], load_principal: LoadPrincipal
) -> list[Principal]:
    """Every enabled principal (in an enabled organisation), with its grants."""
    with sessions() as session:
        ids = session.scalars(
            select(PrincipalRecord.id).where(PrincipalRecord.disabled.is_(False))
        ).all()
    return [p for p in (load_principal(i) for i in ids) if p is not None]


class MosquittoFiles:
    """Write Mosquitto's password and ACL files and make Mosquitto read them again."""

    def __init__(self, settings: Settings, *, node_path: NodePath | None = None) -> None:
        if settings.mosquitto_password_file is None or settings.mosquitto_acl_file is None:
            raise ValidationFailed(
                "set mosquitto_password_file and mosquitto_acl_file to let werk manage "
                "Mosquitto's users",
                code="mosquitto_files_missing",
            )
        self._password_file: Path = settings.mosquitto_password_file
        self._acl_file: Path = settings.mosquitto_acl_file
        self._pid_file = settings.mosquitto_pid_file
        self._command = settings.mosquitto_reload_command
        self._root = settings.uns_root
        self._node_path = node_path
        self._internal = _internal_user(settings.broker_url)
        self._lock = threading.Lock()

    def password_text(self, entries: Sequence[MosquittoEntry]) -> str:
        """The password file: one `name:$7$...` line per user."""
        lines = [_HEADER]
        if self._internal is not None and self._internal[1] is not None:
            lines.append(f"{self._internal[0]}:{self._internal[1]}\n")
        lines += [f"{e.principal.name}:{e.password_hash}\n" for e, _ in self._users(entries)]
        return "".join(lines)

    def acl_text(self, entries: Sequence[MosquittoEntry]) -> str:
        """The ACL file: a `user` block per user with its `topic` lines."""
        blocks = [_HEADER]
        if self._internal is not None:
            blocks.append(f"\nuser {self._internal[0]}\ntopic readwrite #\ntopic read $SYS/#\n")
        for entry, acl in self._users(entries):
            blocks.append(f"\nuser {entry.principal.name}\n{_topic_lines(acl)}")
        return "".join(blocks)

    def write(self, entries: Sequence[MosquittoEntry]) -> None:
        """Replace both files atomically, then reload Mosquitto."""
        with self._lock:
            _replace(self._password_file, self.password_text(entries))
            _replace(self._acl_file, self.acl_text(entries))
            self.reload()

    def reload(self) -> None:
        """Make Mosquitto read its files again: SIGHUP to its pid, or the reload command."""
        if self._pid_file is not None:
            _signal_reload(self._pid_file)
        elif self._command:
            _run_reload(self._command)
        else:
            _LOGGER.warning(
                "Mosquitto's files changed but werk cannot reload it: set "
                "mosquitto_pid_file or mosquitto_reload_command"
            )

    def _users(self, entries: Sequence[MosquittoEntry]) -> list[tuple[MosquittoEntry, TopicAcl]]:
        """The entries Mosquitto can take, each name once, with their rights."""
        taken = {self._internal[0]} if self._internal is not None else set()
        users: list[tuple[MosquittoEntry, TopicAcl]] = []
        for entry in entries:
            name = entry.principal.name
            if name in taken or not _safe_name(name) or not _safe_hash(entry.password_hash):
                _LOGGER.error("principal %r cannot be a Mosquitto user; left out", name)
                continue
            acl = topic_acl(entry.principal, self._root, self._node_path)
            if acl.empty:
                continue  # no MQTT permission: no login, as on the embedded gateway
            taken.add(name)
            users.append((entry, acl))
        return users


def _internal_user(broker_url: str | None) -> tuple[str, str | None] | None:
    """werk's own user in `broker_url` (as `werk.uns.broker` reads it), with its hash."""
    if not broker_url:
        return None
    parts = urlsplit(broker_url if "://" in broker_url else f"mqtt://{broker_url}")
    if not parts.username or not _safe_name(parts.username):
        return None
    if parts.password is None:
        _LOGGER.warning("broker_url names user %r without a password", parts.username)
        return parts.username, None
    return parts.username, mosquitto_hash(parts.password)


def _safe_name(name: str) -> bool:
    """Whether both files can carry `name` unchanged."""
    return (
        bool(name)
        and name == name.strip()
        and name[0] != "#"
        and not any(c in name for c in ":\n\r\x00")
    )


def _safe_hash(password_hash: str) -> bool:
    return password_hash.startswith("$7$") and not any(c in password_hash for c in ":\n\r ")


def _topic_lines(acl: TopicAcl) -> str:
    read, write = set(acl.subscribe), set(acl.publish)
    lines: list[str] = []
    for topic_filter in dict.fromkeys((*acl.publish, *acl.subscribe)):
        if not _safe_filter(topic_filter):
            _LOGGER.error(
                "ACL filter %r cannot go into Mosquitto's ACL file; left out", topic_filter
            )
            continue
        access = _ACCESS[(topic_filter in read, topic_filter in write)]
        lines.append(f"topic {access} {topic_filter}\n")
    return "".join(lines)


def _safe_filter(topic_filter: str) -> bool:
    if topic_filter != topic_filter.strip() or any(c in topic_filter for c in "\n\r\x00"):
        return False
    try:
        check_levels(topic_filter)
    except TopicError:
        return False
    return True


def _replace(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`."""
    mode, group = _kept_mode(path)
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise _write_failed(path, exc) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        if group is not None:
            os.chown(temporary, -1, group)
        os.replace(temporary, path)
    except OSError as exc:
        with suppress(OSError):
            os.unlink(temporary)
        raise _write_failed(path, exc) from exc


def _kept_mode(path: Path) -> tuple[int, int | None]:
    """The mode and group of the file being replaced; 0600 and no change for a new one."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return 0o600, None
    except OSError as exc:
        raise _write_failed(path, exc) from exc
    group = stat.st_gid if stat.st_gid != os.getegid() else None
    return stat.st_mode & 0o777, group


def _write_failed(path: Path, exc: OSError) -> BrokerUnavailable:
    return BrokerUnavailable(
        f"cannot write Mosquitto's file {path}: {exc}", code="mosquitto_write_failed"
    )


def _signal_reload(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text(encoding="ascii").strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        raise BrokerUnavailable(
            f"cannot reload Mosquitto through its pid file {pid_file}: {exc}",
            code="mosquitto_reload_failed",
        ) from exc


def _run_reload(command: str) -> None:
    try:
        done = subprocess.run(
            shlex.split(command), capture_output=True, timeout=RELOAD_TIMEOUT_S, check=False
        )
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        raise BrokerUnavailable(
            f"the Mosquitto reload command failed: {exc}", code="mosquitto_reload_failed"
        ) from exc
    if done.returncode != 0:
        error = done.stderr.decode("utf-8", "replace").strip()[-500:]
        raise BrokerUnavailable(
            f"the Mosquitto reload command exited with {done.returncode}: {error}",
            code="mosquitto_reload_failed",
        )


class MosquittoSync:
    """Keep Mosquitto's files in step with IAM: on every change and when a key expires.

    `on_change` (an `Iam.on_change` listener) wakes a worker thread that rewrites the
    files, so a request that changed IAM never waits for Mosquitto. The worker also
    rewrites them when the first chosen key expires, and every hour.
    """

    def __init__(
        self,
        files: MosquittoFiles,
        sessions: sessionmaker[Session],
        load_principal: LoadPrincipal,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._files = files
        self._sessions = sessions
        self._load_principal = load_principal
        self._clock = clock
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_expiry: datetime | None = None
        self._failures = 0

    def sync(self) -> None:
        """Write the files from the database now and reload Mosquitto."""
        entries, self._next_expiry = load_entries(
            self._sessions, self._load_principal, self._clock()
        )
        self._files.write(entries)

    def on_change(self, principal_id: str) -> None:
        """Rewrite the files soon (at once when the worker does not run)."""
        if self._thread is None:
            self._sync_logged(principal_id)
            return
        self._wake.set()

    def start(self) -> None:
        """Write the files once (failing loudly), then start the worker."""
        self.sync()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="werk-mosquitto", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the worker."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=RELOAD_TIMEOUT_S + 5)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._timeout())
            if self._stopping.is_set():
                return
            self._wake.clear()
            self._sync_logged("*")

    def _timeout(self) -> float:
        if self._failures:
            return min(2.0**self._failures, RETRY_MAX_S)
        if self._next_expiry is None:
            return RESYNC_S
        left = (self._next_expiry - self._clock()).total_seconds()
        return min(max(left, 0.0), RESYNC_S)

    def _sync_logged(self, principal_id: str) -> None:
        try:
            self.sync()
        except Exception:
            if not self._failures:
                _LOGGER.exception("could not update Mosquitto after change of %s", principal_id)
            self._failures += 1
            return
        if self._failures:
            _LOGGER.info("Mosquitto's files are up to date again")
        self._failures = 0
