"""Historian: raw, processed and business layers of every accepted sample."""

from werk.historian.duckdb_store import DuckDBStore
from werk.historian.layers import (
    ROLLUP_WIDTHS_S,
    SCHEMAS,
    Flag,
    Kpi,
    Layer,
    LineageRef,
    ProcessedColumns,
    RawBatch,
    Record,
    Rollup,
    RollupKey,
    Table,
)
from werk.historian.models import (
    AGGREGATES,
    Aggregate,
    Bucket,
    Point,
    RawColumns,
    TagLast,
)
from werk.historian.store import HistorianStore

__all__ = [
    "AGGREGATES",
    "ROLLUP_WIDTHS_S",
    "SCHEMAS",
    "Aggregate",
    "Bucket",
    "DuckDBStore",
    "Flag",
    "HistorianStore",
    "Kpi",
    "Layer",
    "LineageRef",
    "Point",
    "ProcessedColumns",
    "RawBatch",
    "RawColumns",
    "Record",
    "Rollup",
    "RollupKey",
    "Table",
    "TagLast",
]
