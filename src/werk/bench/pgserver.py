"""A throwaway PostgreSQL server: initdb in a temporary directory, start, stop, remove.

PostgreSQL refuses to run as root, so as root every server binary runs as the
`postgres` user (`runuser -u postgres`) on a directory that user owns. The settings
keep PostgreSQL durable (fsync and synchronous commit stay on) and give it memory and
WAL room suited to bulk loads.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Final

import psycopg
from psycopg import sql

from werk.bench.machine import free_ports
from werk.core.errors import Unavailable

SUPERUSER: Final = "werk"
_INSTALL_ROOT: Final = Path("/usr/lib/postgresql")
_PROGRAMS: Final = ("initdb", "pg_ctl", "postgres")
_TIMEOUT_S: Final = 120.0
_CONNECT_TIMEOUT_S: Final = 5
BENCH_SETTINGS: Final[Mapping[str, str]] = {
    "shared_buffers": "'2GB'",
    "work_mem": "'64MB'",
    "maintenance_work_mem": "'1GB'",
    "max_wal_size": "'8GB'",
    "checkpoint_timeout": "'30min'",
    "max_connections": "100",
    "log_min_messages": "warning",
}
_HBA: Final = f"local all {SUPERUSER} trust\nhost all {SUPERUSER} 127.0.0.1/32 trust\n"


def postgres_binaries(root: Path = _INSTALL_ROOT) -> Path | None:
    """The bin directory of the newest PostgreSQL server installed under `root`."""
    found = [
        path / "bin"
        for path in root.glob("*")
        if all((path / "bin" / name).exists() for name in _PROGRAMS)
    ]
    return max(found, key=_version, default=None)


def _version(bin_dir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", bin_dir.parent.name))


def missing_reason() -> str | None:
    """Why a throwaway server cannot start on this machine, or None when it can."""
    if postgres_binaries() is None:
        return f"no PostgreSQL server binaries ({', '.join(_PROGRAMS)}) under {_INSTALL_ROOT}"
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "running as root and `runuser` is missing (PostgreSQL refuses root)"
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run the server as"
    return None


class ThrowawayPostgres:
    """A PostgreSQL server on a free port of 127.0.0.1, removed with its data on exit."""

    def __init__(self, settings: Mapping[str, str] = BENCH_SETTINGS) -> None:
        self._settings = dict(settings)
        self._bin = postgres_binaries()
        self._as_root = os.geteuid() == 0
        self.host = "127.0.0.1"
        self.port = free_ports(1, self.host)[0]
        self.root: Path | None = None

    @property
    def url(self) -> str:
        """The URL of the `postgres` admin database."""
        return self.url_of("postgres")

    def url_of(self, database: str) -> str:
        """The URL of one database on this server."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    @property
    def data(self) -> Path:
        """The data directory."""
        if self.root is None:
            raise Unavailable("the PostgreSQL server was not started", code="bench_postgres")
        return self.root / "data"

    def __enter__(self) -> ThrowawayPostgres:
        reason = missing_reason()
        if reason is not None:
            raise Unavailable(f"cannot start PostgreSQL: {reason}", code="bench_postgres")
        self.root = Path(tempfile.mkdtemp(prefix="werk-bench-postgres-"))
        try:
            self._init()
            self._ctl("start", "-l", str(self.root / "server.log"))
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._ctl("stop", "-m", "fast")
        finally:
            assert self.root is not None
            shutil.rmtree(self.root, ignore_errors=True)

    def server_pid(self) -> int | None:
        """The postmaster's process id while the server runs."""
        try:
            first = (self.data / "postmaster.pid").read_text(encoding="utf-8").split("\n", 1)[0]
        except OSError:
            return None
        return int(first) if first.strip().isdigit() else None

    def new_database(self, name: str) -> str:
        """Create an empty database; return its URL."""
        with psycopg.connect(self.url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_of(name)

    def _init(self) -> None:
        assert self.root is not None
        if self._as_root:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self._run(
            [self._program("initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-sync"],
        )  # fmt: skip
        self._run(["sh", "-c", f"cat >> '{self.data}/postgresql.conf'"], self._conf())
        self._run(["sh", "-c", f"cat > '{self.data}/pg_hba.conf'"], _HBA)

    def _conf(self) -> str:
        assert self.root is not None
        settings = {
            **self._settings,
            "listen_addresses": f"'{self.host}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
        }
        return "".join(f"{key} = {value}\n" for key, value in settings.items())

    def _ctl(self, action: str, *args: str) -> None:
        timeout = str(int(_TIMEOUT_S / 2))
        self._run(
            [self._program("pg_ctl"), "-D", str(self.data), "-w", "-t", timeout, *args, action]
        )

    def _program(self, name: str) -> str:
        assert self._bin is not None
        return str(self._bin / name)

    def _run(self, command: list[str], stdin: str | None = None) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_root else []
        try:
            done = subprocess.run(
                [*prefix, *command], input=stdin, capture_output=True, text=True,
                timeout=_TIMEOUT_S, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Unavailable(f"{command[0]} failed: {exc}", code="bench_postgres") from exc
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip()
            raise Unavailable(f"{Path(command[0]).name} failed: {detail}", code="bench_postgres")
