"""Rows of every historian table, in the tables' Arrow schemas, for lifecycle tests."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pyarrow as pa

from werk.historian import HistorianStore
from werk.historian.layers import SCHEMAS, ProcessedColumns, Table

US_PER_S = 1_000_000
NS_PER_S = 1_000_000_000
NAMES = ("acme/berlin/machining/line-1/cell-1/cnc-1/temp", "acme/munich/press/line-1/c/p/speed")
KPI_NAMES = ("oee/acme/berlin/line-1", "oee/acme/munich/line-1")
DATASETS = ("erp/orders", "crm/accounts")


def _us(stamps: Sequence[int]) -> pa.Array:
    return pa.array(stamps, pa.timestamp("us", tz="UTC"))


def rows(table: Table, name: str, stamps_us: Sequence[int], msg_id: int = 1) -> pa.Table:
    """Rows of one name at the given microsecond stamps (one row per stamp)."""
    n = len(stamps_us)
    values = [float(i) for i in range(n)]
    columns = _COLUMNS[table](name, stamps_us, values, msg_id)
    return pa.table(columns, schema=SCHEMAS[table])


def _sample(
    name: str, stamps: Sequence[int], values: list[float], msg_id: int
) -> dict[str, object]:
    n = len(stamps)
    return {
        "tag": [name] * n,
        "ts": _us(stamps),
        "ingest_ts": _us([s + 1000 for s in stamps]),
        "value": values,
        "text": [None] * n,
        "boolean": [False] * n,
        "quality": pa.array([0] * n, pa.uint8()),
        "msg_id": [msg_id + i for i in range(n)],
    }


def _processed(
    name: str, stamps: Sequence[int], values: list[float], msg_id: int
) -> dict[str, object]:
    return _sample(name, stamps, values, msg_id) | {
        "flags": pa.array([0] * len(stamps), pa.uint16())
    }


def _rollups(name: str, stamps: Sequence[int], values: list[float], _msg: int) -> dict[str, object]:
    starts = [s // (60 * US_PER_S) * 60 * US_PER_S for s in stamps]
    n = len(stamps)
    return {
        "tag": [name] * n,
        "width_s": pa.array([60] * n, pa.int32()),
        "start": _us(starts),
        "count": [1] * n,
        "min": values,
        "max": values,
        "sum": values,
        "first": values,
        "last": values,
        "first_ts": _us(stamps),
        "last_ts": _us(stamps),
        "flagged": [0] * n,
        "bad": [0] * n,
    }


def _kpis(name: str, stamps: Sequence[int], values: list[float], _msg: int) -> dict[str, object]:
    n = len(stamps)
    lineage = json.dumps([{"layer": "processed", "tag": NAMES[0], "start_ns": 0, "end_ns": 1}])
    return {
        "name": [name] * n,
        "ts": _us(stamps),
        "value": values,
        "unit": ["1"] * n,
        "source": ["test"] * n,
        "lineage": [lineage] * n,
    }


def _records(
    name: str, stamps: Sequence[int], values: list[float], msg_id: int
) -> dict[str, object]:
    n = len(stamps)
    return {
        "dataset": [name] * n,
        "key": [f"order-{i}" for i in range(n)],
        "ts": _us(stamps),
        "ingest_ts": _us([s + 1000 for s in stamps]),
        "payload": [json.dumps({"qty": v}) for v in values],
        "msg_id": [msg_id + i for i in range(n)],
        "source": ["erp"] * n,
    }


_COLUMNS = {
    Table.RAW: _sample,
    Table.PROCESSED: _processed,
    Table.ROLLUPS: _rollups,
    Table.KPIS: _kpis,
    Table.RECORDS: _records,
}


def names_of(table: Table) -> tuple[str, ...]:
    """Two names of the kind the table holds."""
    if table is Table.KPIS:
        return KPI_NAMES
    if table is Table.RECORDS:
        return DATASETS
    return NAMES


def fill(store: HistorianStore, table: Table, stamps_us: Sequence[int]) -> int:
    """Load rows of both names of the table at the stamps; return how many were added.

    Loaded raw rows count as refined, as they are once the refiner has caught up.
    """
    added = 0
    for i, name in enumerate(names_of(table)):
        added += store.load(table, rows(table, name, stamps_us, msg_id=1 + 1_000_000 * i))
    if table is Table.RAW:
        caught_up(store)
    return added


def caught_up(store: HistorianStore) -> None:
    """Move the refinement mark past every raw batch (without processed rows)."""
    mark = store.refined_through()
    while (newest := store.raw_after(mark, 1_000_000).through) > mark:
        mark = newest
    store.refine(ProcessedColumns(), [], mark)


def everything(store: HistorianStore, table: Table) -> pa.Table:
    """Every row of a table, sorted, for comparing two stores."""
    chunks = list(store.scan(table, 0, 2**62))
    data = pa.concat_tables(chunks) if chunks else SCHEMAS[table].empty_table()
    keys = [(c, "ascending") for c in data.column_names if c not in ("lineage",)]
    return data.sort_by(keys)
