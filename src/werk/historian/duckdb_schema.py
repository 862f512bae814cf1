"""The DuckDB historian's tables, its in-memory state, and helpers every part shares.

Messages carry the random 64-bit id and the ingest time once (`messages`); raw and
processed rows only name their message by a small sequential `msg_seq`, which DuckDB
compresses to a few bits once compaction sorts a range by tag and time. A write batch
is a contiguous range of message sequence numbers (`batches`). `latest_raw` and
`latest_processed` keep the newest sample of each tag so `last()` never scans history.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from werk.core.errors import StorageUnavailable, ValidationFailed

_LOGGER = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 2
US: Final = pa.timestamp("us")

_TABLES: Final = (
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value BIGINT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS tags (
        tag_id INTEGER PRIMARY KEY, path VARCHAR NOT NULL UNIQUE, boolean BOOLEAN DEFAULT false
    )""",
    "ALTER TABLE tags ADD COLUMN IF NOT EXISTS boolean BOOLEAN DEFAULT false",
    """CREATE TABLE IF NOT EXISTS messages (
        msg_seq BIGINT NOT NULL, msg_id BIGINT NOT NULL, ingest_ts TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS batches (
        batch BIGINT NOT NULL, first_seq BIGINT NOT NULL, end_seq BIGINT NOT NULL,
        rows BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS raw (
        tag_id INTEGER NOT NULL, ts TIMESTAMP NOT NULL, value DOUBLE, text VARCHAR,
        quality UTINYINT NOT NULL, msg_seq BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS processed (
        tag_id INTEGER NOT NULL, ts TIMESTAMP NOT NULL, value DOUBLE, text VARCHAR,
        quality UTINYINT NOT NULL, flags USMALLINT NOT NULL, msg_seq BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS latest_raw (
        tag_id INTEGER PRIMARY KEY, ts TIMESTAMP NOT NULL, value DOUBLE, text VARCHAR,
        quality UTINYINT NOT NULL, msg_id BIGINT NOT NULL, ingest_ts TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS latest_processed (
        tag_id INTEGER PRIMARY KEY, ts TIMESTAMP NOT NULL, value DOUBLE, text VARCHAR,
        quality UTINYINT NOT NULL, flags USMALLINT NOT NULL, msg_id BIGINT NOT NULL,
        ingest_ts TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS rollups (
        tag_id INTEGER NOT NULL, width_s INTEGER NOT NULL, start TIMESTAMP NOT NULL,
        count BIGINT NOT NULL, min DOUBLE, max DOUBLE, sum DOUBLE NOT NULL, first DOUBLE,
        last DOUBLE, first_ts TIMESTAMP, last_ts TIMESTAMP, flagged BIGINT NOT NULL,
        bad BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS kpis (
        name VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, value DOUBLE NOT NULL,
        unit VARCHAR NOT NULL, source VARCHAR NOT NULL, lineage VARCHAR NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS records (
        dataset VARCHAR NOT NULL, key VARCHAR NOT NULL, ts TIMESTAMP NOT NULL,
        ingest_ts TIMESTAMP NOT NULL, payload VARCHAR NOT NULL, msg_id BIGINT NOT NULL,
        source VARCHAR NOT NULL
    )""",
)

# The first layout kept msg_id and ingest_ts on every raw row; move it into messages.
_FROM_V1: Final = (
    "ALTER TABLE raw RENAME TO raw_v1",
    *_TABLES[3:],
    """INSERT INTO messages
       SELECT row_number() OVER (ORDER BY ingest_ts, msg_id) - 1, msg_id, ingest_ts
       FROM (SELECT DISTINCT msg_id, ingest_ts FROM raw_v1)""",
    """INSERT INTO raw SELECT r.tag_id, r.ts, r.value, r.text, r.quality, m.msg_seq
       FROM raw_v1 r JOIN messages m USING (msg_id, ingest_ts)""",
    """INSERT INTO batches SELECT 1, 0, count(*), (SELECT count(*) FROM raw)
       FROM messages HAVING count(*) > 0""",
    """INSERT INTO latest_raw SELECT tag_id, s.ts, s.value, s.text, s.quality, s.msg_id,
           s.ingest_ts
       FROM (SELECT tag_id, arg_max({'ts': ts, 'value': value, 'text': text,
               'quality': quality, 'msg_id': msg_id, 'ingest_ts': ingest_ts}, ts) AS s
             FROM raw_v1 GROUP BY tag_id)""",
    "DROP TABLE raw_v1",
)


def create(cur: duckdb.DuckDBPyConnection) -> None:
    """Create the tables, moving a first-layout raw table into the current layout."""
    cur.execute("BEGIN TRANSACTION")
    try:
        statements = _FROM_V1 if _has_v1_raw(cur) else _TABLES[3:]
        for statement in (*_TABLES[:3], *statements):
            cur.execute(statement)
        cur.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", [SCHEMA_VERSION])
        cur.execute("COMMIT")
    except BaseException:
        rollback(cur)
        raise


def _has_v1_raw(cur: duckdb.DuckDBPyConnection) -> bool:
    sql = """SELECT count(*) FROM information_schema.columns
             WHERE table_name = 'raw' AND column_name = 'msg_id'"""
    return scalar(cur, sql, []) > 0


def rollback(cur: duckdb.DuckDBPyConnection) -> None:
    """Roll back; a connection that broke has nothing left to roll back."""
    with contextlib.suppress(duckdb.Error):
        cur.execute("ROLLBACK")


@dataclass
class State:
    """What the store keeps in memory: the tag dictionary and the next numbers to use.

    Changes are made under the write lock inside a transaction; `rollback` undoes those
    of the transaction that failed.
    """

    ids: dict[str, int] = field(default_factory=dict)
    boolean: set[str] = field(default_factory=set)
    next_seq: int = 0
    last_batch: int = 0
    refined: int = 0
    _added: list[str] = field(default_factory=list)
    _flipped: list[str] = field(default_factory=list)
    _saved: tuple[int, int, int] = (0, 0, 0)

    def load(self, cur: duckdb.DuckDBPyConnection) -> None:
        """Read the tag dictionary and the counters."""
        rows = cur.execute("SELECT path, tag_id, boolean FROM tags").fetchall()
        self.ids = {path: tag_id for path, tag_id, _ in rows}
        self.boolean = {path for path, _, boolean in rows if boolean}
        self.next_seq = scalar(
            cur,
            """SELECT greatest((SELECT max(end_seq) FROM batches),
                               (SELECT max(msg_seq) + 1 FROM messages), 0)""",
            [],
        )
        self.last_batch = scalar(cur, "SELECT max(batch) FROM batches", [])
        self.refined = scalar(cur, "SELECT value FROM meta WHERE key = 'refined_through'", [])

    def begin(self) -> None:
        """Remember the counters so a failed transaction can restore them."""
        self._saved = (self.next_seq, self.last_batch, self.refined)
        self._added.clear()
        self._flipped.clear()

    def rollback(self) -> None:
        """Forget what the failed transaction added."""
        self.next_seq, self.last_batch, self.refined = self._saved
        for tag in self._added:
            self.ids.pop(tag, None)
            self.boolean.discard(tag)
        self.boolean.difference_update(self._flipped)

    def register(
        self, cur: duckdb.DuckDBPyConnection, tags: Iterable[str], booleans: Collection[str]
    ) -> None:
        """Add unknown tags to the dictionary and mark boolean ones, in the transaction."""
        known = self.ids
        new = [t for t in dict.fromkeys(tags) if t not in known]
        if new:
            self._insert_tags(cur, new, booleans)
        flipped = [t for t in booleans if t in known and t not in self.boolean]
        if flipped:
            cur.execute("UPDATE tags SET boolean = true WHERE list_contains(?, path)", [flipped])
            self.boolean.update(flipped)
            self._flipped.extend(flipped)

    def _insert_tags(
        self, cur: duckdb.DuckDBPyConnection, new: list[str], booleans: Collection[str]
    ) -> None:
        first = max(self.ids.values(), default=0) + 1
        flags = [t in booleans for t in new]
        table = pa.table(
            {
                "tag_id": pa.array(range(first, first + len(new)), pa.int32()),
                "path": pa.array(new, pa.string()),
                "boolean": pa.array(flags, pa.bool_()),
            }
        )
        with registered(cur, "new_tags", table):
            cur.execute("INSERT INTO tags SELECT * FROM new_tags")
        for offset, tag in enumerate(new):
            self.ids[tag] = first + offset
        self.boolean.update(t for t, b in zip(new, flags, strict=True) if b)
        self._added.extend(new)

    def tag_ids(self, tags: Iterable[str]) -> list[int]:
        """Ids of those tags the dictionary knows."""
        ids = self.ids
        return [ids[t] for t in tags if t in ids]


@contextmanager
def transaction(cur: duckdb.DuckDBPyConnection, state: State) -> Iterator[None]:
    """One DuckDB transaction; the in-memory state follows its fate."""
    state.begin()
    cur.execute("BEGIN TRANSACTION")
    try:
        yield
        cur.execute("COMMIT")
    except BaseException:
        rollback(cur)
        state.rollback()
        raise


@contextmanager
def registered(cur: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> Iterator[None]:
    """An Arrow table visible to SQL as `name` for the duration of the block."""
    cur.register(name, table)
    try:
        yield
    finally:
        cur.unregister(name)


@contextmanager
def mapped_errors(action: str) -> Iterator[None]:
    """Turn DuckDB failures into `StorageUnavailable`."""
    try:
        yield
    except duckdb.Error as exc:
        raise StorageUnavailable(f"could not {action}: {exc}", action=action) from exc


@contextmanager
def checked_rows(what: str) -> Iterator[None]:
    """Turn values that do not fit their column into `ValidationFailed`."""
    try:
        yield
    except (OverflowError, TypeError, ValueError, pa.ArrowException) as exc:
        raise ValidationFailed(f"{what} do not fit the historian: {exc}", code="bad_rows") from exc


def first_row(
    cur: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | dict[str, Any]
) -> tuple[Any, ...] | None:
    """The first row of a result, read to its end.

    A result left unread keeps its transaction open, which keeps checkpoints from running.
    """
    rows = cur.execute(sql, params).fetchall()
    return rows[0] if rows else None


def scalar(cur: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | dict[str, Any]) -> int:
    """The first column of the first row as an int (0 when NULL or no row)."""
    row = first_row(cur, sql, params)
    return int(row[0]) if row is not None and row[0] is not None else 0


def query(
    cur: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | dict[str, Any]
) -> duckdb.DuckDBPyRelation:
    """A reading query as a relation (for Arrow results without an extra copy)."""
    relation = cur.sql(sql, params=params)
    if relation is None:
        raise StorageUnavailable("a historian query returned no result", code="no_result")
    return relation


def int64s(values: Sequence[int]) -> npt.NDArray[np.int64]:
    """Python ints as a 64-bit array (OverflowError for those that do not fit)."""
    return np.fromiter(values, dtype=np.int64, count=len(values))


def micros(stamps_ns: list[int]) -> npt.NDArray[np.int64]:
    """Nanosecond stamps truncated to microseconds."""
    return int64s(stamps_ns) // 1000


def us_array(micros_: npt.NDArray[np.int64]) -> pa.Array:
    """Microseconds as an Arrow timestamp array."""
    return pa.array(micros_, US)


def ceil_us(ns: int) -> int:
    """The first microsecond at or after `ns` (for half-open ranges given in ns)."""
    return -(-ns // 1000)


def checkpoint(cur: duckdb.DuckDBPyConnection) -> None:
    """Write what sits in the WAL into compressed blocks; a busy database does it later."""
    try:
        cur.execute("CHECKPOINT")
    except duckdb.Error as exc:
        _LOGGER.info("historian checkpoint deferred: %s", exc)
