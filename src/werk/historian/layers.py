"""Value types of the processed and business layers, records, and exchange schemas."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntFlag, StrEnum
from typing import Any, Final

import pyarrow as pa

from werk.historian.models import RawColumns


class Layer(StrEnum):
    """The data layers every history query names."""

    RAW = "raw"
    PROCESSED = "processed"
    BUSINESS = "business"


class Table(StrEnum):
    """What can be exported, imported, retained and compacted, one Arrow schema each."""

    RAW = "raw"
    PROCESSED = "processed"
    ROLLUPS = "rollups"
    KPIS = "kpis"
    RECORDS = "records"

    @property
    def layer(self) -> Layer:
        """The layer the table belongs to."""
        return _TABLE_LAYER[self]


_TABLE_LAYER: Final = {
    Table.RAW: Layer.RAW,
    Table.PROCESSED: Layer.PROCESSED,
    Table.ROLLUPS: Layer.BUSINESS,
    Table.KPIS: Layer.BUSINESS,
    Table.RECORDS: Layer.RAW,
}


class Flag(IntFlag):
    """Why the processed layer doubts a sample; the value is kept, never deleted."""

    RANGE = 1  # outside the tag's valid range
    RATE = 2  # changed faster than the allowed rate
    FLATLINE = 4  # stuck at one value for longer than allowed
    GAP = 8  # arrived after a gap longer than the tag's stale limit
    SPIKE = 16  # a lone jump away from its neighbours
    LATE = 32  # arrived after newer samples of the tag (out of order)
    UNIT = 64  # unit could not be converted to the tag's canonical unit
    NOT_FINITE = 128  # NaN or infinity


ROLLUP_WIDTHS_S: Final = (60, 3600, 86400)


@dataclass(slots=True)
class ProcessedColumns(RawColumns):
    """Processed samples in column form: raw columns plus the rule flags of each row."""

    flags: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RawBatch:
    """Raw rows of whole write batches, and the newest batch number they cover."""

    rows: RawColumns
    through: int


@dataclass(frozen=True, slots=True)
class RollupKey:
    """One business-layer bucket to (re)compute."""

    tag: str
    width_s: int
    start_ns: int


@dataclass(frozen=True, slots=True)
class Rollup:
    """Aggregates of the processed samples of one tag in one bucket.

    Samples of bad quality are left out of the aggregates and counted in `bad`;
    `flagged` counts aggregated samples that carry a rule flag. A bucket with only bad
    samples has count 0, sum 0 and NaN for min, max, first and last.
    """

    tag: str
    width_s: int
    start_ns: int
    count: int
    min: float
    max: float
    sum: float
    first: float
    last: float
    first_ns: int
    last_ns: int
    flagged: int
    bad: int

    @property
    def avg(self) -> float:
        """Mean of the aggregated samples."""
        return self.sum / self.count if self.count else float("nan")


@dataclass(frozen=True, slots=True)
class LineageRef:
    """An input of a business value: the samples of `tag` in [start, end) of `layer`."""

    layer: Layer
    tag: str
    start_ns: int
    end_ns: int


@dataclass(frozen=True, slots=True)
class Kpi:
    """A business-layer value another context computed, with the inputs it came from."""

    name: str
    ts_ns: int
    value: float
    unit: str
    source: str
    lineage: tuple[LineageRef, ...] = ()


@dataclass(frozen=True, slots=True)
class Record:
    """One row of a business dataset (orders, shipments, ...), as it arrived."""

    dataset: str
    key: str
    ts_ns: int
    ingest_ns: int
    payload: dict[str, Any]
    msg_id: int
    source: str


_US_UTC: Final = pa.timestamp("us", tz="UTC")

SCHEMAS: Final[dict[Table, pa.Schema]] = {
    Table.RAW: pa.schema(
        [
            ("tag", pa.string()),
            ("ts", _US_UTC),
            ("ingest_ts", _US_UTC),
            ("value", pa.float64()),
            ("text", pa.string()),
            ("boolean", pa.bool_()),
            ("quality", pa.uint8()),
            ("msg_id", pa.int64()),
        ]
    ),
    Table.PROCESSED: pa.schema(
        [
            ("tag", pa.string()),
            ("ts", _US_UTC),
            ("ingest_ts", _US_UTC),
            ("value", pa.float64()),
            ("text", pa.string()),
            ("boolean", pa.bool_()),
            ("quality", pa.uint8()),
            ("flags", pa.uint16()),
            ("msg_id", pa.int64()),
        ]
    ),
    Table.ROLLUPS: pa.schema(
        [
            ("tag", pa.string()),
            ("width_s", pa.int32()),
            ("start", _US_UTC),
            ("count", pa.int64()),
            ("min", pa.float64()),
            ("max", pa.float64()),
            ("sum", pa.float64()),
            ("first", pa.float64()),
            ("last", pa.float64()),
            ("first_ts", _US_UTC),
            ("last_ts", _US_UTC),
            ("flagged", pa.int64()),
            ("bad", pa.int64()),
        ]
    ),
    Table.KPIS: pa.schema(
        [
            ("name", pa.string()),
            ("ts", _US_UTC),
            ("value", pa.float64()),
            ("unit", pa.string()),
            ("source", pa.string()),
            ("lineage", pa.string()),  # JSON list of {layer, tag, start_ns, end_ns}
        ]
    ),
    Table.RECORDS: pa.schema(
        [
            ("dataset", pa.string()),
            ("key", pa.string()),
            ("ts", _US_UTC),
            ("ingest_ts", _US_UTC),
            ("payload", pa.string()),  # JSON object
            ("msg_id", pa.int64()),
            ("source", pa.string()),
        ]
    ),
}
"""Arrow schema of each table for export, import and moving between backends.

Timestamps are microseconds since the epoch in UTC; `scan` yields and `load` takes
tables of exactly these schemas.
"""
