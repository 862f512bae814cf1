"""The raw layer on DuckDB: one narrow table, tags in a dictionary table, Arrow batches."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import duckdb
import pyarrow as pa

from werk.core.errors import StorageUnavailable
from werk.historian.models import Bucket, Point, RawColumns, TagLast

_LOGGER = logging.getLogger(__name__)

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS tags (
        tag_id INTEGER PRIMARY KEY,
        path VARCHAR NOT NULL UNIQUE
    )""",
    "ALTER TABLE tags ADD COLUMN IF NOT EXISTS boolean BOOLEAN DEFAULT false",
    """CREATE TABLE IF NOT EXISTS raw (
        tag_id INTEGER NOT NULL,
        ts TIMESTAMP NOT NULL,
        ingest_ts TIMESTAMP NOT NULL,
        value DOUBLE,
        text VARCHAR,
        quality UTINYINT NOT NULL,
        msg_id BIGINT NOT NULL
    )""",
)
_ARROW_SCHEMA: Final = pa.schema(
    [
        ("tag_id", pa.int32()),
        ("ts", pa.timestamp("us")),
        ("ingest_ts", pa.timestamp("us")),
        ("value", pa.float64()),
        ("text", pa.string()),
        ("quality", pa.uint8()),
        ("msg_id", pa.int64()),
    ]
)
_POINT_COLUMNS: Final = "epoch_us(ts), epoch_us(ingest_ts), value, text, quality, msg_id"


class DuckDBRawStore:
    """Raw layer in a DuckDB file (or in memory with path None)."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._tag_ids: dict[str, int] = {}
        self._boolean: set[str] = set()
        self._write_lock = threading.Lock()
        self._writer: duckdb.DuckDBPyConnection | None = None

    def open(self) -> None:
        """Open the file, create the schema and load the tag dictionary."""
        target = ":memory:" if self._path is None else str(self._path)
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        with _mapped_errors("open the historian"):
            self._conn = duckdb.connect(target)
            for statement in _SCHEMA:
                self._conn.execute(statement)
            rows = self._conn.execute("SELECT path, tag_id, boolean FROM tags").fetchall()
        self._tag_ids = {path: tag_id for path, tag_id, _ in rows}
        self._boolean = {path for path, _, boolean in rows if boolean}
        _LOGGER.info("historian open at %s with %d tags", target, len(self._tag_ids))

    def close(self) -> None:
        """Checkpoint and close."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._conn is not None:
            with _mapped_errors("close the historian"):
                self._conn.execute("CHECKPOINT")
                self._conn.close()
            self._conn = None

    @property
    def _db(self) -> duckdb.DuckDBPyConnection:
        if self._conn is None:
            raise StorageUnavailable("the historian is not open", code="historian_closed")
        return self._conn

    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        cursor = self._db.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    def write(self, rows: RawColumns) -> int:
        """Append rows in one transaction; new tags join the dictionary in the same one."""
        if not rows:
            return 0
        with self._write_lock, _mapped_errors("write to the historian"):
            cur = self._writer_cursor()
            if self._tag_ids.keys() >= set(rows.tag):
                _insert_raw(cur, self._arrow(rows))
                return len(rows)
            cur.execute("BEGIN TRANSACTION")
            try:
                new_tags = self._register_tags(cur, rows)
                _insert_raw(cur, self._arrow(rows))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                for tag in new_tags:
                    self._tag_ids.pop(tag, None)
                    self._boolean.discard(tag)
                raise
        return len(rows)

    def _writer_cursor(self) -> duckdb.DuckDBPyConnection:
        """One cursor kept for writes (only used under the write lock)."""
        if self._writer is None:
            self._writer = self._db.cursor()
        return self._writer

    def _register_tags(self, cur: duckdb.DuckDBPyConnection, rows: RawColumns) -> list[str]:
        known = self._tag_ids
        new = [t for t in dict.fromkeys(rows.tag) if t not in known]
        if not new:
            return []
        first = len(known) + 1
        for offset, tag in enumerate(new):
            known[tag] = first + offset
        booleans = [t in rows.boolean_tags for t in new]
        self._boolean.update(t for t, b in zip(new, booleans, strict=True) if b)
        table = pa.table(
            {
                "tag_id": pa.array(range(first, first + len(new)), pa.int32()),
                "path": new,
                "boolean": pa.array(booleans, pa.bool_()),
            }
        )
        cur.register("new_tags", table)
        cur.execute("INSERT INTO tags SELECT * FROM new_tags")
        cur.unregister("new_tags")
        return new

    def _arrow(self, rows: RawColumns) -> pa.Table:
        ids = self._tag_ids
        arrays = [
            pa.array(list(map(ids.__getitem__, rows.tag)), pa.int32()),
            _micros(rows.ts_ns),
            _micros(rows.ingest_ns),
            pa.array(rows.value, pa.float64()),
            pa.array(rows.text, pa.string()),
            pa.array(rows.quality, pa.uint8()),
            pa.array(rows.msg_id, pa.int64()),
        ]
        return pa.Table.from_arrays(arrays, schema=_ARROW_SCHEMA)

    def existing(self, tags: list[str], stamps_ns: list[int]) -> set[tuple[str, int]]:
        """Stored (tag, ts) pairs among the given ones, as the pairs were given."""
        ids = self._tag_ids
        known = [(ids[t], t, ts) for t, ts in zip(tags, stamps_ns, strict=True) if t in ids]
        if not known:
            return set()
        wanted = pa.table(
            {
                "tag_id": pa.array([k[0] for k in known], pa.int32()),
                "ts": _micros([k[2] for k in known]),
            }
        )
        sql = """
            SELECT DISTINCT w.tag_id, epoch_us(w.ts) FROM wanted w
            JOIN raw r ON r.tag_id = w.tag_id AND r.ts = w.ts
            WHERE r.ts BETWEEN make_timestamp($low) AND make_timestamp($high)
        """
        low, high = min(k[2] for k in known) // 1000, max(k[2] for k in known) // 1000
        with _mapped_errors("query the historian"), self._cursor() as cur:
            cur.register("wanted", wanted)
            found = set(cur.execute(sql, {"low": low, "high": high}).fetchall())
        return {(t, ts) for tag_id, t, ts in known if (tag_id, ts // 1000) in found}

    def points(
        self, tag: str, start_ns: int, end_ns: int, limit: int, *, newest: bool = False
    ) -> list[Point]:
        """Samples of `tag` in [start, end), oldest first; `newest` keeps the newest `limit`."""
        tag_id = self._tag_ids.get(tag)
        if tag_id is None:
            return []
        sql = (
            f"SELECT {_POINT_COLUMNS} FROM raw WHERE tag_id = ? "
            "AND ts >= make_timestamp(?) AND ts < make_timestamp(?) "
            f"ORDER BY ts {'DESC' if newest else 'ASC'} LIMIT ?"
        )
        params = [tag_id, start_ns // 1000, end_ns // 1000, limit]
        points = [_point(row, tag in self._boolean) for row in self._query(sql, params)]
        return points[::-1] if newest else points

    def buckets(self, tag: str, start_ns: int, end_ns: int, bucket_ns: int) -> list[Bucket]:
        """Aggregates per bucket; buckets are aligned to the Unix epoch."""
        tag_id = self._tag_ids.get(tag)
        if tag_id is None:
            return []
        bucket_us = max(bucket_ns // 1000, 1)
        sql = """
            SELECT (epoch_us(ts) // $b) * $b AS bucket, count(*), min(value), max(value),
                   avg(value), arg_min(value, ts), arg_max(value, ts)
            FROM raw
            WHERE tag_id = $tag AND ts >= make_timestamp($start) AND ts < make_timestamp($end)
            GROUP BY bucket ORDER BY bucket
        """
        params = {"b": bucket_us, "tag": tag_id, "start": start_ns // 1000, "end": end_ns // 1000}
        return [_bucket(row) for row in self._query(sql, params)]

    def last(self, tags: list[str]) -> list[TagLast]:
        """Newest sample of each tag."""
        ids = [self._tag_ids[t] for t in tags if t in self._tag_ids]
        if not ids:
            return []
        sql = f"""
            SELECT t.path, {_POINT_COLUMNS} FROM raw JOIN tags t USING (tag_id)
            WHERE list_contains(?, tag_id)
            QUALIFY row_number() OVER (PARTITION BY tag_id ORDER BY ts DESC) = 1
        """
        rows = self._query(sql, [ids])
        return [TagLast(row[0], _point(row[1:], row[0] in self._boolean)) for row in rows]

    def recent_message_ids(self, since_ingest_ns: int) -> set[int]:
        """Message ids ingested since the given time."""
        sql = "SELECT DISTINCT msg_id FROM raw WHERE ingest_ts >= make_timestamp(?)"
        return {row[0] for row in self._query(sql, [since_ingest_ns // 1000])}

    def tag_paths(self) -> list[str]:
        """Every tag in the dictionary."""
        return list(self._tag_ids)

    def knows(self, tag: str) -> bool:
        """Whether the tag is in the dictionary."""
        return tag in self._tag_ids

    def count(self) -> int:
        """Stored samples."""
        return int(self._query("SELECT count(*) FROM raw", [])[0][0])

    def _query(self, sql: str, params: list[Any] | dict[str, Any]) -> list[tuple[Any, ...]]:
        with _mapped_errors("query the historian"), self._cursor() as cur:
            return cur.execute(sql, params).fetchall()


def _micros(stamps_ns: list[int]) -> pa.Array:
    """Nanosecond stamps as a microsecond timestamp array (truncated, in Arrow's C code)."""
    return pa.array(stamps_ns, pa.timestamp("ns")).cast(pa.timestamp("us"), safe=False)


def _insert_raw(cur: duckdb.DuckDBPyConnection, incoming: pa.Table) -> None:
    """Append an Arrow table (found by DuckDB's replacement scan of `incoming`)."""
    cur.execute("INSERT INTO raw SELECT * FROM incoming")


def _point(row: tuple[Any, ...], boolean: bool) -> Point:
    ts_us, ingest_us, value, text, quality, msg_id = row
    typed = text if text is not None else bool(value) if boolean and value is not None else value
    return Point(ts_us * 1000, ingest_us * 1000, typed, quality, msg_id)


def _bucket(row: tuple[Any, ...]) -> Bucket:
    start_us, count, low, high, mean, first, last = row
    return Bucket(start_us * 1000, count, low, high, mean, first, last)


@contextmanager
def _mapped_errors(action: str) -> Iterator[None]:
    try:
        yield
    except duckdb.Error as exc:
        raise StorageUnavailable(f"could not {action}: {exc}", action=action) from exc
