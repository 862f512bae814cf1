"""A small bounded pool of PostgreSQL connections, with werk's error mapping.

Each connection has autocommit off; work runs in explicit transactions. A connection the
server dropped (restart, outage) is noticed before reuse and replaced, so calls succeed
again as soon as the server is back.
"""

from __future__ import annotations

import logging
import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import psycopg
import psycopg.errors
from psycopg.adapt import Buffer, Loader
from psycopg.pq import Format

from werk.core.errors import StorageUnavailable, ValidationFailed

_LOGGER = logging.getLogger(__name__)

CONNECT_TIMEOUT_S: Final = 2  # libpq's minimum; a stopped server answers at once anyway
_PG_EPOCH_US: Final = 946_684_800_000_000  # 2000-01-01 in Unix microseconds
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class MicrosLoader(Loader):
    """Load binary timestamptz as Unix microseconds (int), without datetime objects."""

    format = Format.BINARY

    def load(self, data: Buffer) -> int:
        """Decode one value."""
        return int.from_bytes(data, "big", signed=True) + _PG_EPOCH_US


def stamp(us: int) -> datetime:
    """A Unix microsecond stamp as an aware datetime for query parameters (exact)."""
    return _EPOCH + timedelta(microseconds=us)


def scalar(cur: psycopg.Cursor[Any]) -> Any:
    """The first column of the next row of a query that always returns one."""
    row = cur.fetchone()
    if row is None:
        raise StorageUnavailable("the historian schema is incomplete", code="historian_schema")
    return row[0]


def describe(url: str) -> str:
    """The server and database of a URL, without user or password, for logs and errors."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://{parts.hostname or 'localhost'}{port}{parts.path}"


class Pool:
    """At most `size` connections shared by threads; a caller waits for a free one."""

    def __init__(self, url: str, size: int, statement_timeout_s: float, wait_s: float) -> None:
        self._url = url
        self._size = size
        self._wait_s = wait_s
        self._options = (
            f"-c statement_timeout={int(statement_timeout_s * 1000)} "
            "-c idle_in_transaction_session_timeout=600000 -c lock_timeout=60000"
        )
        self._idle: list[psycopg.Connection[Any]] = []
        self._taken = 0
        self._cond = threading.Condition()
        self._closed = False

    @contextmanager
    def connection(self, action: str) -> Iterator[psycopg.Connection[Any]]:
        """A connection of the pool; library errors become werk errors naming `action`."""
        conn = self._checkout(action)
        try:
            with mapped_errors(action, self._url):
                yield conn
        finally:
            self._checkin(conn)

    @contextmanager
    def transaction(self, action: str) -> Iterator[psycopg.Cursor[Any]]:
        """A binary cursor in one transaction: committed on success, rolled back on error."""
        with self.connection(action) as conn, conn.transaction(), conn.cursor(binary=True) as cur:
            yield cur

    def close(self) -> None:
        """Close every idle connection; connections in use close when given back."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def check_open(self) -> None:
        """Raise `StorageUnavailable` once the pool is closed."""
        if self._closed:
            raise StorageUnavailable("the historian is not open", code="historian_closed")

    def _checkout(self, action: str) -> psycopg.Connection[Any]:
        with self._cond:
            self.check_open()
            if not self._cond.wait_for(
                lambda: self._idle or self._taken < self._size, self._wait_s
            ):
                raise StorageUnavailable(
                    f"could not {action}: every historian connection stayed busy "
                    f"for {self._wait_s:g} s",
                    code="historian_busy",
                    action=action,
                )
            self._taken += 1
            conn = self._idle.pop() if self._idle else None
        try:
            return self._usable(conn, action)
        except BaseException:
            self._release_slot()
            raise

    def _usable(self, conn: psycopg.Connection[Any] | None, action: str) -> psycopg.Connection[Any]:
        if conn is not None and not _dropped(conn):
            return conn
        if conn is not None:
            conn.close()
        with mapped_errors(action, self._url):
            return self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(
            self._url,
            autocommit=False,
            connect_timeout=CONNECT_TIMEOUT_S,
            options=self._options,
            application_name="werk-historian",
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
        )
        conn.adapters.register_loader("timestamptz", MicrosLoader)
        return conn

    def _checkin(self, conn: psycopg.Connection[Any]) -> None:
        healthy = not conn.closed and not conn.broken and not self._closed
        if healthy and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            healthy = _rolled_back(conn)
        with self._cond:
            if healthy:
                self._idle.append(conn)
            self._taken -= 1
            self._cond.notify()
        if not healthy:
            conn.close()

    def _release_slot(self) -> None:
        with self._cond:
            self._taken -= 1
            self._cond.notify()


def _dropped(conn: psycopg.Connection[Any]) -> bool:
    """Whether the server closed an idle connection (it then sends a notice or EOF)."""
    if conn.closed or conn.broken:
        return True
    poller = select.poll()  # not select(): it fails on descriptors above 1023
    try:
        poller.register(conn.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def _rolled_back(conn: psycopg.Connection[Any]) -> bool:
    try:
        conn.rollback()
    except psycopg.Error:
        return False
    return True


@contextmanager
def mapped_errors(action: str, url: str) -> Iterator[None]:
    """Turn psycopg errors into werk errors whose text never shows the password."""
    try:
        yield
    except (psycopg.DataError, psycopg.errors.NotNullViolation) as exc:
        raise ValidationFailed(
            f"could not {action}: PostgreSQL refused a value: {_scrubbed(exc, url)}",
            code="unstorable_value",
            action=action,
        ) from exc
    except psycopg.errors.CheckViolation as exc:  # a partition dropped by another process
        raise StorageUnavailable(
            f"could not {action} ({describe(url)}): {_scrubbed(exc, url)}",
            code="partition_missing",
            action=action,
        ) from exc
    except psycopg.Error as exc:
        raise StorageUnavailable(
            f"could not {action} ({describe(url)}): {_scrubbed(exc, url)}", action=action
        ) from exc


def _scrubbed(exc: BaseException, url: str) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    password = urlsplit(url).password
    for secret in (password, unquote(password or "")):
        if secret:
            text = text.replace(secret, "***")
    return text
