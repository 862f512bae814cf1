"""The historian on DuckDB: every layer in one embedded file (or in memory).

Threads: the ingest writer, the refiner and the lifecycle worker change data under
one write lock on one kept cursor, each change one transaction; queries (API threads)
run on a cursor of their own per call and see committed data only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from werk.core.errors import StorageUnavailable
from werk.historian import (
    duckdb_business,
    duckdb_exchange,
    duckdb_lifecycle,
    duckdb_query,
    duckdb_raw,
    duckdb_refine,
    duckdb_rollups,
    duckdb_schema,
)
from werk.historian.duckdb_schema import (
    State,
    checkpoint,
    first_row,
    mapped_errors,
    scalar,
    transaction,
)
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

_LOGGER = logging.getLogger(__name__)


class DuckDBStore:
    """Raw, processed and business layers in a DuckDB file (in memory with path None)."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._writer: duckdb.DuckDBPyConnection | None = None
        self._state = State()
        self._lock = threading.Lock()

    @property
    def path(self) -> Path | None:
        """The database file (None: in memory)."""
        return self._path

    def open(self) -> None:
        """Open the file, create or migrate the tables and load the tag dictionary."""
        target = ":memory:" if self._path is None else str(self._path)
        with self._lock, mapped_errors("open the historian"):
            if self._conn is not None:
                return
            if self._path is not None:
                self._path.parent.mkdir(parents=True, exist_ok=True)
            conn = duckdb.connect(target)
            try:
                with conn.cursor() as setup:
                    duckdb_schema.create(setup)
                    self._state.load(setup)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        _LOGGER.info("historian open at %s with %d tags", target, len(self._state.ids))

    def close(self) -> None:
        """Checkpoint and close."""
        with self._lock, mapped_errors("close the historian"):
            writer, self._writer = self._writer, None
            conn, self._conn = self._conn, None
            if writer is not None:
                writer.close()
            if conn is not None:
                try:
                    checkpoint(conn)  # a reader still busy defers it to the next open
                finally:
                    conn.close()

    def size_bytes(self) -> int:
        """Bytes of used blocks and WAL after a checkpoint (memory in use when in memory)."""
        with self._lock, mapped_errors("measure the historian"):
            cur = self._writer_cursor()
            checkpoint(cur)
            if self._path is None:
                return scalar(cur, "SELECT sum(memory_usage_bytes) FROM duckdb_memory()", [])
            row = first_row(cur, "PRAGMA database_size", [])
            used = int(row[2]) * int(row[4]) if row is not None else 0
        wal = self._path.with_name(self._path.name + ".wal")
        return used + (wal.stat().st_size if wal.exists() else 0)

    @property
    def _db(self) -> duckdb.DuckDBPyConnection:
        conn = self._conn
        if conn is None:
            raise StorageUnavailable("the historian is not open", code="historian_closed")
        return conn

    def _check_open(self) -> None:
        self._db  # noqa: B018 (raises when closed)

    def _writer_cursor(self) -> duckdb.DuckDBPyConnection:
        """The one cursor for changes (used under the write lock only)."""
        if self._writer is None:
            self._writer = self._db.cursor()
        return self._writer

    @contextmanager
    def _writing(self, action: str) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock, mapped_errors(action):
            cur = self._writer_cursor()
            with transaction(cur, self._state):
                yield cur

    @contextmanager
    def _reading(self, action: str) -> Iterator[duckdb.DuckDBPyConnection]:
        with mapped_errors(action):
            cur = self._db.cursor()
            try:
                yield cur
            finally:
                cur.close()

    # -- raw layer ---------------------------------------------------------------------

    def write(self, rows: RawColumns) -> int:
        """Append rows in one transaction as the next write batch; return how many."""
        if not rows:
            return 0
        with self._writing("write to the historian") as cur:
            return duckdb_raw.write(cur, self._state, rows)

    def existing(self, tags: list[str], stamps_ns: list[int]) -> set[tuple[str, int]]:
        """Those (tag, ts) pairs that already have a raw sample (microsecond precision)."""
        with self._reading("query the historian") as cur:
            return duckdb_raw.existing(cur, self._state, tags, stamps_ns)

    def recent_message_ids(self, since_ingest_ns: int) -> set[int]:
        """Ids of messages ingested since `since_ingest_ns` (to drop redeliveries)."""
        with self._reading("query the historian") as cur:
            return duckdb_query.recent_message_ids(cur, since_ingest_ns)

    def message_points(self, msg_id: int) -> list[TagLast]:
        """The raw samples one message brought, by tag then time."""
        with self._reading("query the historian") as cur:
            return duckdb_query.message_points(cur, self._state, msg_id)

    def tag_paths(self) -> list[str]:
        """Every tag with stored samples."""
        self._check_open()
        return list(self._state.ids)

    def knows(self, tag: str) -> bool:
        """Whether any sample of `tag` was ever stored."""
        self._check_open()
        return tag in self._state.ids

    def count(self, layer: Layer = Layer.RAW) -> int:
        """Stored samples of a layer (the business layer counts rollup rows)."""
        with self._reading("count in the historian") as cur:
            return duckdb_query.count(cur, layer)

    # -- queries over raw and processed samples -----------------------------------------

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
        """Samples of `tag` with start <= ts < end, oldest first, at most `limit`."""
        with self._reading("query the historian") as cur:
            return duckdb_query.points(
                cur, self._state, tag, (start_ns, end_ns), limit, newest=newest, layer=layer
            )

    def buckets(
        self, tag: str, start_ns: int, end_ns: int, bucket_ns: int, *, layer: Layer = Layer.RAW
    ) -> list[Bucket]:
        """Aggregates of `tag` per epoch-aligned bucket (numeric values only)."""
        with self._reading("query the historian") as cur:
            return duckdb_query.buckets(cur, self._state, tag, (start_ns, end_ns), bucket_ns, layer)

    def last(self, tags: list[str], *, layer: Layer = Layer.RAW) -> list[TagLast]:
        """The newest sample of each tag that has one (RAW or PROCESSED)."""
        with self._reading("query the historian") as cur:
            return duckdb_query.last(cur, self._state, tags, layer)

    def previous(self, tag: str, ts_ns: int) -> Point | None:
        """The newest processed sample of `tag` strictly before `ts_ns`."""
        with self._reading("query the historian") as cur:
            return duckdb_query.neighbour(cur, self._state, tag, ts_ns, before=True)

    def next_after(self, tag: str, ts_ns: int) -> Point | None:
        """The oldest processed sample of `tag` strictly after `ts_ns`."""
        with self._reading("query the historian") as cur:
            return duckdb_query.neighbour(cur, self._state, tag, ts_ns, before=False)

    # -- refinement: raw -> processed -> business ----------------------------------------

    def raw_after(self, batch: int, max_rows: int) -> RawBatch:
        """Raw rows of the write batches after `batch`, whole batches, about `max_rows`."""
        with self._reading("read raw batches") as cur:
            return duckdb_raw.raw_after(cur, batch, max_rows)

    def refine(self, rows: ProcessedColumns, rollups: Sequence[RollupKey], through: int) -> None:
        """In one transaction: append processed rows, recompute the rollups, move the mark."""
        with self._writing("refine into the historian") as cur:
            duckdb_refine.refine(cur, self._state, rows, rollups, through)

    def refined_through(self) -> int:
        """The newest write batch whose rows are in the processed layer (0 for none)."""
        self._check_open()
        return self._state.refined

    def rollups(self, tag: str, width_s: int, start_ns: int, end_ns: int) -> list[Rollup]:
        """Rollups of `tag` of one width whose bucket starts in [start, end), oldest first."""
        with self._reading("query the historian") as cur:
            return duckdb_rollups.rollups(cur, self._state, tag, width_s, (start_ns, end_ns))

    def write_kpis(self, kpis: Sequence[Kpi]) -> int:
        """Store KPI values; a value with the same name and ts replaces the stored one."""
        if not kpis:
            return 0
        with self._writing("write KPIs to the historian") as cur:
            return duckdb_business.write_kpis(cur, kpis)

    def kpis(self, name: str, start_ns: int, end_ns: int, limit: int) -> list[Kpi]:
        """Values of one KPI with start <= ts < end, oldest first."""
        with self._reading("query the historian") as cur:
            return duckdb_business.kpis(cur, name, (start_ns, end_ns), limit)

    def kpi_names(self) -> list[str]:
        """Names of every KPI with stored values."""
        with self._reading("query the historian") as cur:
            return duckdb_business.kpi_names(cur)

    # -- records of business datasets ----------------------------------------------------

    def write_records(self, records: Sequence[Record]) -> int:
        """Append records; a record equal in dataset, key, ts and msg_id is stored once."""
        if not records:
            return 0
        with self._writing("write records to the historian") as cur:
            return duckdb_business.write_records(cur, records)

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
        """Records of a dataset with start <= ts < end, oldest first."""
        with self._reading("query the historian") as cur:
            return duckdb_business.records(
                cur, dataset, (start_ns, end_ns), limit, key=key, latest=latest
            )

    def datasets(self) -> dict[str, int]:
        """Every dataset with its number of stored records."""
        with self._reading("query the historian") as cur:
            return duckdb_business.datasets(cur)

    # -- lifecycle of stored data --------------------------------------------------------

    def delete(self, table: Table, before_ns: int, names: Sequence[str] | None = None) -> int:
        """Delete rows older than `before_ns`; `names` narrows to tags, KPIs or datasets."""
        with self._writing("delete from the historian") as cur:
            return duckdb_lifecycle.delete(cur, self._state, table, before_ns, names)

    def compact(
        self, table: Table, start_ns: int, end_ns: int, names: Sequence[str] | None = None
    ) -> int:
        """Rewrite [start, end) sorted by name and time without exact duplicates."""
        with self._writing("compact the historian") as cur:
            kept = duckdb_lifecycle.compact(cur, self._state, table, (start_ns, end_ns), names)
        with self._lock, mapped_errors("compact the historian"):
            checkpoint(self._writer_cursor())
        return kept

    def scan(
        self,
        table: Table,
        start_ns: int,
        end_ns: int,
        *,
        names: Sequence[str] | None = None,
        chunk_rows: int = 100_000,
    ) -> Iterator[pa.Table]:
        """Rows of [start, end) in chunks of the table's Arrow schema (layers.SCHEMAS)."""
        params = duckdb_exchange.scan_params(self._state, table, (start_ns, end_ns), names)
        with self._reading("scan the historian") as cur:
            yield from duckdb_exchange.scan(cur, table, params, chunk_rows)

    def estimate(self, table: Table, start_ns: int, end_ns: int) -> int:
        """How many rows `scan` would yield for the range without names (for progress)."""
        with self._reading("count in the historian") as cur:
            return duckdb_exchange.estimate(cur, table, (start_ns, end_ns))

    def load(self, table: Table, data: pa.Table) -> int:
        """Append rows of the table's Arrow schema; raw rows form one new write batch."""
        duckdb_exchange.check_schema(table, data)
        if not data.num_rows:
            return 0
        with self._writing("load into the historian") as cur:
            return duckdb_exchange.load(cur, self._state, table, data)
