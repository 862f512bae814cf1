"""The storage contract every historian backend (DuckDB, PostgreSQL) implements.

Timestamps are nanoseconds since the epoch in the API and microseconds in storage:
a stamp is truncated to the microsecond when stored. Every method raises
`StorageUnavailable` when the backend cannot be reached or fails, and nothing else
for backend trouble.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import pyarrow as pa

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


class HistorianStore(Protocol):
    """Raw, processed and business layers of one historian."""

    def open(self) -> None:
        """Create or migrate the schema and get ready for writes."""

    def close(self) -> None:
        """Flush and release the storage."""

    def size_bytes(self) -> int:
        """Bytes the stored data takes (used blocks or relation sizes, not free space)."""

    # -- raw layer ---------------------------------------------------------------

    def write(self, rows: RawColumns) -> int:
        """Append rows in one transaction as the next write batch; return how many."""

    def existing(self, tags: list[str], stamps_ns: list[int]) -> set[tuple[str, int]]:
        """Those (tag, ts) pairs that already have a raw sample (microsecond precision)."""

    def recent_message_ids(self, since_ingest_ns: int) -> set[int]:
        """Ids of messages ingested since `since_ingest_ns` (to drop redeliveries)."""

    def message_points(self, msg_id: int) -> list[TagLast]:
        """The raw samples one message brought, by tag then time."""

    def tag_paths(self) -> list[str]:
        """Every tag ever stored (deleting its samples keeps it in the dictionary)."""

    def knows(self, tag: str) -> bool:
        """Whether any sample of `tag` was ever stored."""

    def count(self, layer: Layer = Layer.RAW) -> int:
        """Stored samples of a layer (the business layer counts rollup rows)."""

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
        """Samples of `tag` with start <= ts < end, oldest first, at most `limit`.

        With `newest` the limit keeps the newest samples of the range instead of the
        oldest. `layer` is RAW or PROCESSED; processed points carry their flags.
        """

    def buckets(
        self, tag: str, start_ns: int, end_ns: int, bucket_ns: int, *, layer: Layer = Layer.RAW
    ) -> list[Bucket]:
        """Aggregates of `tag` per epoch-aligned bucket (numeric values only).

        RAW and PROCESSED aggregate samples (PROCESSED leaves bad-quality samples out);
        BUSINESS merges the widest rollups whose width divides `bucket_ns`.
        """

    def last(self, tags: list[str], *, layer: Layer = Layer.RAW) -> list[TagLast]:
        """The newest sample of each tag that has one (RAW or PROCESSED)."""

    def previous(self, tag: str, ts_ns: int) -> Point | None:
        """The newest processed sample of `tag` strictly before `ts_ns`."""

    def next_after(self, tag: str, ts_ns: int) -> Point | None:
        """The oldest processed sample of `tag` strictly after `ts_ns`."""

    # -- refinement: raw -> processed -> business --------------------------------------

    def raw_after(self, batch: int, max_rows: int) -> RawBatch:
        """Raw rows of the write batches after `batch`, whole batches, about `max_rows`.

        At least one batch is returned when there is one; `through` is the newest batch
        included (equal to `batch` when nothing is new).
        """

    def refine(self, rows: ProcessedColumns, rollups: Sequence[RollupKey], through: int) -> None:
        """In one transaction: append processed rows, recompute the rollups, move the mark.

        Processed rows replace stored processed rows of the same (tag, ts). Rollup keys
        of width 60 are recomputed from processed samples, wider ones from the next
        narrower rollups, so keys must include every width a sample touches.
        """

    def refined_through(self) -> int:
        """The newest write batch whose rows are in the processed layer (0 for none)."""

    def rollups(self, tag: str, width_s: int, start_ns: int, end_ns: int) -> list[Rollup]:
        """Rollups of `tag` of one width whose bucket starts in [start, end), oldest first."""

    def write_kpis(self, kpis: Sequence[Kpi]) -> int:
        """Store KPI values; a value with the same name and ts replaces the stored one."""

    def kpis(self, name: str, start_ns: int, end_ns: int, limit: int) -> list[Kpi]:
        """Values of one KPI with start <= ts < end, oldest first."""

    def kpi_names(self) -> list[str]:
        """Names of every KPI with stored values."""

    # -- records of business datasets --------------------------------------------------

    def write_records(self, records: Sequence[Record]) -> int:
        """Append records; a record equal in dataset, key, ts and msg_id is stored once."""

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
        """Records of a dataset with start <= ts < end, oldest first.

        With `latest` only the newest version of each key (newest ts, then newest ingest).
        """

    def datasets(self) -> dict[str, int]:
        """Every dataset with its number of stored records."""

    # -- lifecycle of stored data ------------------------------------------------------

    def delete(self, table: Table, before_ns: int, names: Sequence[str] | None = None) -> int:
        """Delete rows older than `before_ns`; `names` narrows to tags, KPIs or datasets."""

    def compact(
        self, table: Table, start_ns: int, end_ns: int, names: Sequence[str] | None = None
    ) -> int:
        """Rewrite [start, end) sorted by name and time without exact duplicates.

        Returns the number of rows kept. The space freed is reused by later writes.
        """

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

    def estimate(self, table: Table, start_ns: int, end_ns: int) -> int:
        """How many rows `scan` would yield for the range without names (for progress)."""

    def load(self, table: Table, data: pa.Table) -> int:
        """Append rows of the table's Arrow schema; raw rows form one new write batch.

        Rows already stored (same natural key) are skipped; returns how many were added.
        """
