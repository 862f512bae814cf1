"""Choose the historian backend from one setting, `WERK_HISTORIAN_URL`."""

from __future__ import annotations

from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from werk.core.errors import ValidationFailed
from werk.historian.duckdb_store import DuckDBStore
from werk.historian.store import HistorianStore

_POSTGRES_SCHEMES: Final = frozenset({"postgresql", "postgres", "postgresql+psycopg"})


def store_for(url: str | None, default_file: Path) -> HistorianStore:
    """A (not yet opened) store for a historian URL; None means the default DuckDB file.

    `duckdb:///abs/file.duckdb`, `duckdb://relative/file.duckdb`, `duckdb://:memory:`,
    `postgresql://user:password@host:port/database`.
    """
    if url is None or not url.strip():
        return DuckDBStore(default_file)
    scheme = urlsplit(url).scheme.lower()
    if scheme == "duckdb":
        target = url.split("://", 1)[1]
        return DuckDBStore(None if target == ":memory:" else Path(target))
    if scheme in _POSTGRES_SCHEMES:
        from werk.historian.postgres_store import PostgresStore  # psycopg only when used

        return PostgresStore("postgresql://" + url.split("://", 1)[1])
    raise ValidationFailed(
        f"historian URL scheme {scheme or '(none)'!r} is not supported; "
        "use duckdb:///path/file.duckdb or postgresql://user@host/db",
        code="bad_historian_url",
    )


def describe(url: str | None, default_file: Path) -> str:
    """The backend and where it is, without credentials, for logs and health."""
    if url is None or not url.strip() or urlsplit(url).scheme.lower() == "duckdb":
        target = default_file if url is None or not url.strip() else url.split("://", 1)[1]
        return f"duckdb {target}"
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql {host}{port}{parts.path}"
