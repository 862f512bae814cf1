"""A throwaway PostgreSQL server for tests: initdb, start, fresh databases, stop.

PostgreSQL refuses to run as root, so as root the server binaries run as the `postgres`
user (`runuser`) on a data directory it owns. That directory lives in its own
`/tmp/werk-postgres-*` folder rather than in pytest's temporary tree, which is private
to root (0700) and which pytest sessions running side by side reset to 0700.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final

import psycopg
from psycopg import sql

SUPERUSER: Final = "werk"
_SETTINGS: Final = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "256MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
    "autovacuum_naptime": "5s",
    "log_min_messages": "warning",
}
# The test superuser needs no password; every other role must give its password, so tests
# can create a role with one and see what a wrong password does.
_HBA: Final = f"""\
local all {SUPERUSER} trust
host all {SUPERUSER} 127.0.0.1/32 trust
local all all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
"""


def postgres_binaries() -> Path | None:
    """The bin directory of the newest PostgreSQL installed under /usr/lib/postgresql."""
    found = [
        path / "bin"
        for path in Path("/usr/lib/postgresql").glob("*")
        if all((path / "bin" / name).exists() for name in ("initdb", "pg_ctl", "postgres"))
    ]
    return max(found, key=_version, default=None)


def _version(bin_dir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", bin_dir.parent.name))


class PostgresServer:
    """A PostgreSQL server on a free port of 127.0.0.1 with trust auth for `werk`."""

    def __init__(self, directory: Path) -> None:
        from tests.conftest import free_port  # conftest imports this module

        binaries = postgres_binaries()
        if binaries is None:
            raise RuntimeError("PostgreSQL server binaries are not installed")
        self._bin = binaries
        self._as_root = os.geteuid() == 0
        self.root = (
            Path(tempfile.mkdtemp(prefix="werk-postgres-"))
            if self._as_root
            else directory / "postgres"
        )
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.host = "127.0.0.1"
        self.url = self._url_of("postgres")
        self._numbers = itertools.count(1)

    def __enter__(self) -> PostgresServer:
        try:
            self._init()
            self.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            self.stop(mode="immediate")  # throwaway data: no shutdown checkpoint needed
        finally:
            if self._as_root:
                shutil.rmtree(self.root, ignore_errors=True)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (open sessions are cut) and wait until it is gone."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def new_database(self) -> str:
        """Create a fresh empty database; return its URL."""
        name = f"werk_test_{next(self._numbers)}"
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self._url_of(name)

    def execute(self, statement: str) -> None:
        """Run one statement as the superuser on the admin database."""
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(statement.encode())

    def _url_of(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def _init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("PostgreSQL does not run as root: add a postgres user") from None
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
            "--no-sync", "--encoding=UTF8", "--locale=C",
        )  # fmt: skip
        self._run_sh(f"cat >> {self.data}/postgresql.conf", self._conf())
        self._run_sh(f"cat > {self.data}/pg_hba.conf", _HBA)

    def _conf(self) -> str:
        settings = {
            **_SETTINGS,
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
        }
        return "".join(f"{key} = {value}\n" for key, value in settings.items())

    def _run(self, program: str, *args: str) -> None:
        self._check([str(self._bin / program), *args])

    def _run_sh(self, command: str, stdin: str) -> None:
        self._check(["sh", "-c", command], stdin)

    def _check(self, command: list[str], stdin: str | None = None) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_root else []
        done = subprocess.run(
            [*prefix, *command], input=stdin, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stderr.strip() or done.stdout}")
