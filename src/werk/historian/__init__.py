"""Historian: the raw layer of every accepted sample, and queries over it."""

from werk.historian.duckdb_store import DuckDBRawStore
from werk.historian.models import (
    AGGREGATES,
    Aggregate,
    Bucket,
    Point,
    RawColumns,
    TagLast,
)
from werk.historian.store import RawStore

__all__ = [
    "AGGREGATES",
    "Aggregate",
    "Bucket",
    "DuckDBRawStore",
    "Point",
    "RawColumns",
    "RawStore",
    "TagLast",
]
