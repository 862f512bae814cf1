"""The historian's PostgreSQL schema, and how raw and processed samples are partitioned.

Everything lives in the schema `werk_historian`. Raw and processed samples are split by
time into 7-day spans aligned to the Unix epoch: native declarative partitions created
on demand before a write reaches a new span, or TimescaleDB hypertable chunks of the same
width with native compression when the `timescaledb` extension can be used. The spans
holding data are listed in `werk_historian.spans` for either layout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final

import psycopg
from psycopg import sql

from werk.core.errors import StorageUnavailable, WerkError
from werk.historian.postgres_pool import Pool

_LOGGER = logging.getLogger(__name__)

SCHEMA: Final = "werk_historian"
VERSION: Final = 1
SPAN_US: Final = 7 * 86_400 * 1_000_000
SAMPLE_TABLES: Final = ("raw", "processed")
_LOCK_KEY: Final = 0x7765726B  # advisory lock serialising schema changes of every werk
_PARTITIONS_PER_TRANSACTION: Final = 32
COMPRESS_AFTER: Final = "30 days"

_COMMON: Final = (
    """CREATE TABLE IF NOT EXISTS {s}.meta (
        key text PRIMARY KEY,
        value bigint NOT NULL
    )""",
    "INSERT INTO {s}.meta VALUES ('batch', 0), ('refined_through', 0), ('schema', 1) "
    "ON CONFLICT (key) DO NOTHING",
    """CREATE TABLE IF NOT EXISTS {s}.tags (
        tag_id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        path text NOT NULL UNIQUE,
        boolean boolean NOT NULL DEFAULT false
    )""",
    """CREATE TABLE IF NOT EXISTS {s}.batches (
        batch bigint PRIMARY KEY,
        rows integer NOT NULL,
        min_ts timestamptz NOT NULL,
        max_ts timestamptz NOT NULL,
        max_ingest timestamptz NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS batches_max_ingest ON {s}.batches (max_ingest)",
    """CREATE TABLE IF NOT EXISTS {s}.spans (
        tbl text NOT NULL,
        span bigint NOT NULL,
        PRIMARY KEY (tbl, span)
    )""",
    """CREATE TABLE IF NOT EXISTS {s}.rollups (
        tag_id integer NOT NULL,
        width_s integer NOT NULL,
        start timestamptz NOT NULL,
        count bigint NOT NULL,
        min float8, max float8, sum float8, first float8, last float8,
        first_ts timestamptz, last_ts timestamptz,
        flagged bigint NOT NULL,
        bad bigint NOT NULL,
        PRIMARY KEY (tag_id, width_s, start)
    )""",
    """CREATE TABLE IF NOT EXISTS {s}.kpis (
        name text NOT NULL,
        ts timestamptz NOT NULL,
        value float8 NOT NULL,
        unit text NOT NULL,
        source text NOT NULL,
        lineage json NOT NULL,
        PRIMARY KEY (name, ts)
    )""",
    """CREATE TABLE IF NOT EXISTS {s}.records (
        dataset text NOT NULL,
        key text NOT NULL,
        ts timestamptz NOT NULL,
        ingest_ts timestamptz NOT NULL,
        payload json NOT NULL,
        msg_id bigint NOT NULL,
        source text NOT NULL,
        PRIMARY KEY (dataset, key, ts, msg_id)
    )""",
    "CREATE INDEX IF NOT EXISTS records_dataset_ts ON {s}.records (dataset, ts)",
)
# Columns ordered widest first so rows carry no alignment padding.
_SAMPLES: Final = {
    "raw": """CREATE TABLE IF NOT EXISTS {s}.raw (
        ts timestamptz NOT NULL,
        ingest_ts timestamptz NOT NULL,
        value float8,
        msg_id bigint NOT NULL,
        batch bigint NOT NULL,
        tag_id integer NOT NULL,
        quality smallint NOT NULL,
        text text
    )""",
    "processed": """CREATE TABLE IF NOT EXISTS {s}.processed (
        ts timestamptz NOT NULL,
        ingest_ts timestamptz NOT NULL,
        value float8,
        msg_id bigint NOT NULL,
        tag_id integer NOT NULL,
        flags integer NOT NULL,
        quality smallint NOT NULL,
        text text,
        PRIMARY KEY (tag_id, ts)
    )""",
}
_INDEXES: Final = (
    "CREATE INDEX IF NOT EXISTS raw_tag_ts ON {s}.raw (tag_id, ts)",
    # Rows of a write batch sit together in the heap: a block-range index finds them.
    "CREATE INDEX IF NOT EXISTS raw_batch ON {s}.raw USING brin (batch) "
    "WITH (pages_per_range = 16, autosummarize = on)",
)
_HYPERTABLE: Final = (
    "SELECT create_hypertable(%(table)s::regclass, 'ts', chunk_time_interval => INTERVAL "
    "'7 days', create_default_indexes => false, if_not_exists => true)",
    "ALTER TABLE {s}.{t} SET (timescaledb.compress, timescaledb.compress_segmentby = 'tag_id', "
    "timescaledb.compress_orderby = 'ts')",
    "SELECT add_compression_policy(%(table)s::regclass, INTERVAL '" + COMPRESS_AFTER + "', "
    "if_not_exists => true)",
)


def statement(template: str, **parts: str | sql.Composable) -> sql.Composed:
    """A constant SQL template composed by psycopg; values always go in as parameters.

    `{s}` is the historian's schema and `{t}` one of its tables; any other part is a
    constant fragment of this package (a column list, a sort direction) or composed SQL.
    """
    values = {name: _part(name, value) for name, value in parts.items()}
    return sql.SQL(template).format(s=sql.Identifier(SCHEMA), **values)


def _part(name: str, value: str | sql.Composable) -> sql.Composable:
    if isinstance(value, sql.Composable):
        return value
    return sql.Identifier(value) if name == "t" else sql.SQL(value)


def table(name: str) -> sql.Identifier:
    """The qualified identifier of one of the historian's tables."""
    return sql.Identifier(SCHEMA, name)


class Layout:
    """How the sample tables are split by time, and which spans exist."""

    def __init__(self, timescale: bool) -> None:
        self.timescale = timescale
        # replaced, never changed in place: readers iterate without the lock
        self.spans: dict[str, frozenset[int]] = {name: frozenset() for name in SAMPLE_TABLES}
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """A short description for logs."""
        if self.timescale:
            return "TimescaleDB hypertables with native compression"
        return "native partitions"

    def load(self, cur: psycopg.Cursor[Any]) -> None:
        """Read the spans that hold data."""
        cur.execute(statement("SELECT tbl, span FROM {s}.spans"))
        rows = cur.fetchall()
        with self._lock:
            for name in SAMPLE_TABLES:
                self.spans[name] = frozenset(span for table, span in rows if table == name)

    def ensure(self, pool: Pool, name: str, spans: Iterable[int]) -> None:
        """Make sure every span exists before rows are written into it."""
        missing = sorted(set(spans) - self.spans[name])
        if not missing:
            return
        with self._lock:
            missing = sorted(set(missing) - self.spans[name])
            for start in range(0, len(missing), _PARTITIONS_PER_TRANSACTION):
                chunk = missing[start : start + _PARTITIONS_PER_TRANSACTION]
                with pool.transaction("create partitions") as cur:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
                    for span in chunk:
                        self._add(cur, name, span)
                self.spans[name] = self.spans[name] | set(chunk)

    @contextmanager
    def guard(self, name: str) -> Iterator[None]:
        """Forget the spans of `name` when a write finds a partition gone, so a retry works.

        Another werk process (retention from the command line) may drop partitions this
        one still remembers.
        """
        try:
            yield
        except StorageUnavailable as exc:
            if exc.code == "partition_missing":
                with self._lock:
                    self.spans[name] = frozenset()
            raise

    def forget(self, name: str, spans: Iterable[int]) -> None:
        """Drop spans from the cache after their partitions were dropped."""
        with self._lock:
            self.spans[name] = self.spans[name] - set(spans)

    def _add(self, cur: psycopg.Cursor[Any], name: str, span: int) -> None:
        if not self.timescale:
            cur.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})"
                ).format(
                    partition(name, span),
                    table(name),
                    sql.Literal(span_start(span)),
                    sql.Literal(span_start(span + 1)),
                )
            )
        cur.execute(
            statement("INSERT INTO {s}.spans VALUES (%s, %s) ON CONFLICT DO NOTHING"), [name, span]
        )


def span_start(span: int) -> datetime:
    """The first instant of a span."""
    return datetime.fromtimestamp(span * SPAN_US // 1_000_000, UTC)


def partition(name: str, span: int) -> sql.Identifier:
    """The native partition of a sample table for one span, named by its first day."""
    return sql.Identifier(SCHEMA, f"{name}_{span_start(span):%Y%m%d}")


def partition_name(name: str, span: int) -> str:
    """The qualified name of a partition as text (it needs no quoting)."""
    return f"{SCHEMA}.{name}_{span_start(span):%Y%m%d}"


def create(pool: Pool) -> Layout:
    """Create or migrate the schema; choose and report the layout of the sample tables."""
    with pool.transaction("create the historian schema") as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [SCHEMA])
        if cur.fetchone() is None:
            cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        existing = _existing_layout(cur)
    timescale = existing if existing is not None else _timescale_usable(pool)
    layout = Layout(timescale)
    with pool.transaction("create the historian schema") as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        for template in _COMMON:
            cur.execute(statement(template))
        if existing is None:
            _create_samples(cur, timescale)
        layout.load(cur)
    return layout


def _existing_layout(cur: psycopg.Cursor[Any]) -> bool | None:
    """True for hypertables, False for native partitions, None before the first open."""
    cur.execute(
        "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = 'raw'",
        [SCHEMA],
    )
    row = cur.fetchone()
    if row is None:
        return None
    return bool(row[0] != "p")


def _timescale_usable(pool: Pool) -> bool:
    """Whether TimescaleDB is installed on the server and can be enabled here."""
    with pool.transaction("look for TimescaleDB") as cur:
        cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
        if cur.fetchone() is None:
            _LOGGER.info("TimescaleDB is not installed on the server")
            return False
    try:
        with pool.transaction("enable TimescaleDB") as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except WerkError as exc:  # any refusal means: use native partitions
        _LOGGER.warning("TimescaleDB is installed but cannot be enabled (%s)", exc)
        return False
    return True


def _create_samples(cur: psycopg.Cursor[Any], timescale: bool) -> None:
    for name, template in _SAMPLES.items():
        suffix = "" if timescale else " PARTITION BY RANGE (ts)"
        cur.execute(statement(template + suffix))
        if timescale:
            for step in _HYPERTABLE:
                cur.execute(statement(step, t=name), {"table": f"{SCHEMA}.{name}"})
    for template in _INDEXES:
        cur.execute(statement(template))
