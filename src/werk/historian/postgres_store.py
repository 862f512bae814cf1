"""The historian on PostgreSQL (psycopg 3): raw, processed and business layers.

Samples are written with binary COPY into tables split by time (native partitions, or
TimescaleDB hypertables when the extension is there, see `postgres_schema`); threads
share a small pool of connections and every call maps failures to `StorageUnavailable`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any, Final

import numpy as np
import psycopg
import pyarrow as pa
from psycopg import sql

from werk.core.errors import ValidationFailed
from werk.historian import postgres_lifecycle as lifecycle
from werk.historian import postgres_load as bulk
from werk.historian import postgres_queries as queries
from werk.historian import postgres_rollups as rollup_sql
from werk.historian.layers import (
    Kpi,
    Layer,
    ProcessedColumns,
    RawBatch,
    Record,
    Rollup,
    RollupKey,
    Table,
)
from werk.historian.models import Bucket, Point, RawColumns, TagLast
from werk.historian.postgres_copy import copy_into
from werk.historian.postgres_pool import Pool, describe, scalar, stamp
from werk.historian.postgres_schema import Layout, create, statement, table
from werk.historian.postgres_tags import TagDictionary

_LOGGER = logging.getLogger(__name__)

POOL_SIZE: Final = 8
STATEMENT_TIMEOUT_S: Final = 30.0
POOL_WAIT_S: Final = 10.0
_NEXT_BATCH: Final = "UPDATE {s}.meta SET value = value + 1 WHERE key = 'batch' RETURNING value"
_ADD_BATCH: Final = "INSERT INTO {s}.batches VALUES (%s, %s, %s, %s, %s)"
_DATASETS: Final = 'SELECT dataset COLLATE "C", count(*) FROM {s}.records GROUP BY 1 ORDER BY 1'
_MARK: Final = "UPDATE {s}.meta SET value = %s WHERE key = 'refined_through'"
_TABLES: Final = {Layer.RAW: "raw", Layer.PROCESSED: "processed", Layer.BUSINESS: "rollups"}


class PostgresStore:
    """Raw, processed and business layers in a PostgreSQL database given by URL."""

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        self._pool_size = pool_size
        self._pool = Pool(url, pool_size, STATEMENT_TIMEOUT_S, POOL_WAIT_S)
        self._pool.close()  # nothing is connected before open()
        self._tags = TagDictionary()
        self._layout = Layout(timescale=False)

    def __repr__(self) -> str:
        return f"PostgresStore({describe(self.url)!r})"

    def open(self) -> None:
        """Create or migrate the schema, choose the partitioning, load the tag dictionary."""
        self._pool.close()
        self._pool = Pool(self.url, self._pool_size, STATEMENT_TIMEOUT_S, POOL_WAIT_S)
        try:
            self._layout = create(self._pool)
            with self._pool.transaction("load the tag dictionary") as cur:
                self._tags.load(cur)
        except BaseException:
            self._pool.close()
            raise
        _LOGGER.info(
            "historian on %s: %s, %d tags",
            describe(self.url), self._layout.name, len(self._tags.ids),
        )  # fmt: skip

    def close(self) -> None:
        """Close every connection."""
        self._pool.close()

    @property
    def layout(self) -> str:
        """How samples are split by time: native partitions or TimescaleDB hypertables."""
        return self._layout.name

    def size_bytes(self) -> int:
        """Bytes of every table, index and TOAST table of the historian."""
        with self._pool.transaction("measure the historian") as cur:
            return lifecycle.size_bytes(cur, self._layout)

    # -- raw layer ---------------------------------------------------------------

    def write(self, rows: RawColumns) -> int:
        """Append rows with binary COPY in one transaction as the next write batch."""
        if not rows:
            return 0
        ts_us = bulk.micros(rows.ts_ns)
        self._layout.ensure(self._pool, "raw", bulk.spans(ts_us))
        with self._layout.guard("raw"), self._pool.transaction("write to the historian") as cur:
            ids, registered = self._tags.resolve(cur, rows.tag, rows.boolean_tags)
            data = bulk.sample_table(rows, ids, ts_us)
            # sorted by tag and time, the rows reach the (tag, time) index in order
            data = data.sort_by([("tag_id", "ascending"), ("ts", "ascending")])
            batch = _next_batch(cur)
            data = data.append_column("batch", pa.array(np.full(len(rows), batch), pa.int64()))
            copy_into(cur, table("raw"), bulk.RAW_COPY, data)
            low, high, ingest = int(ts_us.min()), int(ts_us.max()), max(rows.ingest_ns) // 1000
            cur.execute(
                statement(_ADD_BATCH), [batch, len(rows), stamp(low), stamp(high), stamp(ingest)]
            )
        self._tags.remember(registered)
        return len(rows)

    def existing(self, tags: list[str], stamps_ns: list[int]) -> set[tuple[str, int]]:
        """Stored (tag, ts) pairs among the given ones, as the pairs were given."""
        ids = self._tags.ids
        known = [(ids[t], t, ts) for t, ts in zip(tags, stamps_ns, strict=True) if t in ids]
        if not known:
            return set()
        with self._pool.transaction("query the historian") as cur:
            found = queries.existing(cur, [k[0] for k in known], [k[2] // 1000 for k in known])
        return {(t, ts) for tag_id, t, ts in known if (tag_id, ts // 1000) in found}

    def recent_message_ids(self, since_ingest_ns: int) -> set[int]:
        """Ids of messages ingested since the given time."""
        with self._pool.transaction("query the historian") as cur:
            return queries.recent_message_ids(cur, since_ingest_ns // 1000)

    def message_points(self, msg_id: int) -> list[TagLast]:
        """The raw samples one message brought, by tag then time."""
        with self._pool.transaction("query the historian") as cur:
            rows = queries.message_points(cur, msg_id)
        boolean = self._tags.boolean
        return [TagLast(row[0], queries.point(row[1:], row[0] in boolean)) for row in rows]

    def tag_paths(self) -> list[str]:
        """Every tag in the dictionary."""
        self._pool.check_open()
        return list(self._tags.ids)

    def knows(self, tag: str) -> bool:
        """Whether the tag is in the dictionary."""
        self._pool.check_open()
        return tag in self._tags.ids

    def count(self, layer: Layer = Layer.RAW) -> int:
        """Stored samples of a layer (rollup rows for the business layer)."""
        with self._pool.transaction("count samples") as cur:
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(table(_TABLES[layer])))
            return int(scalar(cur))

    # -- queries over raw and processed samples --------------------------------------

    def points(
        self,
        tag: str,
        start_ns: int,
        end_ns: int,
        limit: int,
        *,
        newest: bool = False,
        layer: Layer = Layer.RAW,
    ) -> list[Point]:
        """Samples of `tag` in [start, end), oldest first; `newest` keeps the newest `limit`."""
        name = _sample_table(layer)
        tag_id = self._tags.ids.get(tag)
        if tag_id is None or limit <= 0:
            return []
        with self._pool.transaction("query the historian") as cur:
            rows = queries.points(cur, name, tag_id, _span(start_ns, end_ns), limit, newest)
        boolean = tag in self._tags.boolean
        return [queries.point(row, boolean) for row in rows]

    def buckets(
        self, tag: str, start_ns: int, end_ns: int, bucket_ns: int, *, layer: Layer = Layer.RAW
    ) -> list[Bucket]:
        """Aggregates of `tag` per epoch-aligned bucket (numeric values only)."""
        if layer is Layer.BUSINESS:
            rollup_sql.width_for(bucket_ns)
        elif bucket_ns < 1000:
            raise ValidationFailed(f"a bucket of {bucket_ns} ns is too small", code="bad_bucket")
        tag_id = self._tags.ids.get(tag)
        if tag_id is None:
            return []
        span = _span(start_ns, end_ns)
        with self._pool.transaction("query the historian") as cur:
            if layer is Layer.BUSINESS:
                return rollup_sql.merged(cur, tag_id, span, bucket_ns)
            return queries.buckets(cur, _sample_table(layer), tag_id, span, bucket_ns // 1000)

    def last(self, tags: list[str], *, layer: Layer = Layer.RAW) -> list[TagLast]:
        """The newest sample of each tag that has one."""
        name = _sample_table(layer)
        ids = self._tags.ids
        wanted = {ids[t]: t for t in dict.fromkeys(tags) if t in ids}
        if not wanted:
            return []
        with self._pool.transaction("query the historian") as cur:
            found = queries.last(cur, name, list(wanted))
        boolean = self._tags.boolean
        return [
            TagLast(wanted[i], queries.point(found[i], wanted[i] in boolean))
            for i in wanted
            if i in found
        ]

    def previous(self, tag: str, ts_ns: int) -> Point | None:
        """The newest processed sample of `tag` strictly before `ts_ns`."""
        return self._neighbour(tag, ts_ns, before=True)

    def next_after(self, tag: str, ts_ns: int) -> Point | None:
        """The oldest processed sample of `tag` strictly after `ts_ns`."""
        return self._neighbour(tag, ts_ns, before=False)

    def _neighbour(self, tag: str, ts_ns: int, *, before: bool) -> Point | None:
        tag_id = self._tags.ids.get(tag)
        if tag_id is None:
            return None
        # stored stamps are whole microseconds: before = below ts rounded up, after = above
        ts_us = -(-ts_ns // 1000) if before else ts_ns // 1000 + 1
        with self._pool.transaction("query the historian") as cur:
            row = queries.neighbour(cur, tag_id, ts_us, before)
        return None if row is None else queries.point(row, tag in self._tags.boolean)

    # -- refinement: raw -> processed -> business --------------------------------------

    def raw_after(self, batch: int, max_rows: int) -> RawBatch:
        """Raw rows of whole write batches after `batch`, about `max_rows` of them."""
        with self._pool.transaction("read raw batches") as cur:
            through, rows = queries.raw_after(cur, batch, max_rows)
        boolean = self._tags.boolean
        rows.boolean_tags = {t for t in set(rows.tag) if t in boolean}
        return RawBatch(rows, through)

    def refine(self, rows: ProcessedColumns, rollups: Sequence[RollupKey], through: int) -> None:
        """In one transaction: upsert processed rows, recompute rollups, move the mark."""
        rollup_sql.check(rollups)
        ts_us = bulk.micros(rows.ts_ns)
        self._layout.ensure(self._pool, "processed", bulk.spans(ts_us))
        with self._layout.guard("processed"), self._pool.transaction("refine samples") as cur:
            ids, registered = self._tags.resolve(cur, rows.tag, rows.boolean_tags)
            if rows:
                bulk.upsert_processed(cur, bulk.processed_table(rows, ids, ts_us), replace=True)
            rollup_sql.recompute(cur, rollups, {**self._tags.ids, **ids})
            _move_mark(cur, through)
        self._tags.remember(registered)

    def refined_through(self) -> int:
        """The newest write batch whose rows are in the processed layer (0 for none)."""
        with self._pool.transaction("read the refinement mark") as cur:
            cur.execute(statement("SELECT value FROM {s}.meta WHERE key = 'refined_through'"))
            return int(scalar(cur))

    def rollups(self, tag: str, width_s: int, start_ns: int, end_ns: int) -> list[Rollup]:
        """Rollups of `tag` of one width whose bucket starts in [start, end), oldest first."""
        tag_id = self._tags.ids.get(tag)
        if tag_id is None:
            return []
        with self._pool.transaction("query rollups") as cur:
            return rollup_sql.rollups(cur, tag, tag_id, width_s, _span(start_ns, end_ns))

    def write_kpis(self, kpis: Sequence[Kpi]) -> int:
        """Store KPI values; a value with the same name and ts replaces the stored one."""
        if not kpis:
            return 0
        with self._pool.transaction("write KPIs") as cur:
            queries.write_kpis(cur, kpis)
        return len(kpis)

    def kpis(self, name: str, start_ns: int, end_ns: int, limit: int) -> list[Kpi]:
        """Values of one KPI with start <= ts < end, oldest first."""
        with self._pool.transaction("query KPIs") as cur:
            return queries.kpis(cur, name, _span(start_ns, end_ns), limit)

    def kpi_names(self) -> list[str]:
        """Names of every KPI with stored values."""
        with self._pool.transaction("query KPIs") as cur:
            cur.execute(statement('SELECT DISTINCT name COLLATE "C" FROM {s}.kpis ORDER BY 1'))
            return [row[0] for row in cur.fetchall()]

    # -- records of business datasets --------------------------------------------------

    def write_records(self, records: Sequence[Record]) -> int:
        """Append records; one equal in dataset, key, ts and msg_id is stored once."""
        if not records:
            return 0
        with self._pool.transaction("write records") as cur:
            return queries.write_records(cur, records)

    def records(
        self,
        dataset: str,
        start_ns: int,
        end_ns: int,
        limit: int,
        *,
        key: str | None = None,
        latest: bool = False,
    ) -> list[Record]:
        """Records of a dataset in [start, end), oldest first; `latest`: newest per key."""
        with self._pool.transaction("query records") as cur:
            return queries.records(cur, dataset, _span(start_ns, end_ns), limit, key, latest)

    def datasets(self) -> dict[str, int]:
        """Every dataset with its number of stored records."""
        with self._pool.transaction("query records") as cur:
            cur.execute(statement(_DATASETS))
            return {name: int(n) for name, n in cur.fetchall()}

    # -- lifecycle of stored data ------------------------------------------------------

    def delete(self, table: Table, before_ns: int, names: Sequence[str] | None = None) -> int:
        """Delete rows older than `before_ns`; `names` narrows to tags, KPIs or datasets."""
        return lifecycle.delete(self._context(), table, _ceil_us(before_ns), names)

    def compact(
        self, table: Table, start_ns: int, end_ns: int, names: Sequence[str] | None = None
    ) -> int:
        """Drop exact duplicates in [start, end), then sort and pack or compress the spans."""
        return lifecycle.compact(self._context(), table, _span(start_ns, end_ns), names)

    def scan(
        self,
        table: Table,
        start_ns: int,
        end_ns: int,
        *,
        names: Sequence[str] | None = None,
        chunk_rows: int = 100_000,
    ) -> Iterator[pa.Table]:
        """Rows of [start, end) in chunks of the table's Arrow schema."""
        span = _span(start_ns, end_ns)
        yield from lifecycle.scan(self._context(), table, span, names, chunk_rows)

    def estimate(self, table: Table, start_ns: int, end_ns: int) -> int:
        """How many rows `scan` would yield for the range without names."""
        return lifecycle.estimate(self._context(), table, _span(start_ns, end_ns))

    def load(self, table: Table, data: pa.Table) -> int:
        """Append rows of the table's Arrow schema, skipping stored ones; return how many."""
        return bulk.load(self._context(), table, data)

    def _context(self) -> bulk.Context:
        return bulk.Context(self._pool, self._tags, self._layout)


def _sample_table(layer: Layer) -> str:
    if layer is Layer.BUSINESS:
        raise ValidationFailed(
            "business values are rollups: ask for buckets, rollups or KPIs", code="bad_layer"
        )
    return "raw" if layer is Layer.RAW else "processed"


def _move_mark(cur: psycopg.Cursor[Any], through: int) -> None:
    """Set the refinement mark; it cannot pass the newest write batch."""
    cur.execute(statement("SELECT value FROM {s}.meta WHERE key = 'batch'"))
    newest = int(scalar(cur))
    if not 0 <= through <= newest:
        raise ValidationFailed(
            f"cannot mark batch {through} refined: the newest write batch is {newest}",
            code="bad_mark",
        )
    cur.execute(statement(_MARK), [through])


def _next_batch(cur: psycopg.Cursor[Any]) -> int:
    cur.execute(statement(_NEXT_BATCH))
    return int(scalar(cur))


def _ceil_us(ns: int) -> int:
    """The first whole microsecond at or after `ns`."""
    return -(-ns // 1000)


def _span(start_ns: int, end_ns: int) -> tuple[int, int]:
    """A nanosecond range [start, end) as the microsecond stamps it holds."""
    return _ceil_us(start_ns), _ceil_us(end_ns)
