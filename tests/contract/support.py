"""Builders for the contract suite: rows, processed rows and whole-table snapshots."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from werk.core.clock import NS_PER_S
from werk.historian import (
    ROLLUP_WIDTHS_S,
    HistorianStore,
    ProcessedColumns,
    RawColumns,
    RollupKey,
    Table,
)

Reopen = Callable[[], HistorianStore]

T0 = 1_794_960_000 * NS_PER_S  # midnight UTC, so minute, hour and day buckets start here
MIN = 60 * NS_PER_S
HOUR = 3600 * NS_PER_S
DAY = 86400 * NS_PER_S
END = T0 + 400 * DAY
TAG = "acme/berlin/machining/line-1/cell-1/cnc-1/temp"
OTHER = "acme/berlin/machining/line-1/cell-1/cnc-1/speed"


def raw(
    values: Sequence[bool | int | float | str],
    *,
    tag: str = TAG,
    start: int = T0,
    step: int = 10 * NS_PER_S,
    msg_id: int = 1,
    quality: int = 0,
    per_message: int = 1,
) -> RawColumns:
    """Samples of one tag, `step` apart; every `per_message` samples share a message."""
    rows = RawColumns()
    for i, value in enumerate(values):
        ts = start + i * step
        first = i - i % per_message  # a message's samples share its ingest time
        ingest = start + first * step + 5 * NS_PER_S
        rows.append(tag, ts, ingest, value, quality, msg_id + i // per_message)
    return rows


def joined(*parts: RawColumns) -> RawColumns:
    """Several column batches as one."""
    rows = RawColumns()
    for part in parts:
        for i in range(len(part)):
            rows.append_row(part, i)
        rows.boolean_tags |= part.boolean_tags
    return rows


def processed(rows: RawColumns, flags: Sequence[int] | None = None) -> ProcessedColumns:
    """Raw rows as processed rows with the given flags (none by default)."""
    out = ProcessedColumns(
        list(rows.tag), list(rows.ts_ns), list(rows.ingest_ns), list(rows.value),
        list(rows.text), list(rows.quality), list(rows.msg_id), set(rows.boolean_tags),
    )  # fmt: skip
    out.flags = list(flags) if flags is not None else [0] * len(rows)
    return out


def keys_for(rows: RawColumns) -> list[RollupKey]:
    """Every rollup key the rows touch, at every width."""
    keys = {
        RollupKey(tag, width, ts - ts % (width * NS_PER_S))
        for tag, ts in zip(rows.tag, rows.ts_ns, strict=True)
        for width in ROLLUP_WIDTHS_S
    }
    return sorted(keys, key=lambda k: (k.width_s, k.tag, k.start_ns))


def refine_all(store: HistorianStore, flags: Sequence[int] | None = None) -> None:
    """Refine every raw batch not refined yet unchanged (optionally with flags)."""
    batch = store.raw_after(store.refined_through(), 10**9)
    store.refine(processed(batch.rows, flags), keys_for(batch.rows), batch.through)


def snapshot(store: HistorianStore, table: Table) -> list[dict[str, Any]]:
    """Every row of a table as dicts, sorted, for comparisons across stores."""
    chunks = list(store.scan(table, 0, END))
    rows = pa.concat_tables(chunks).to_pylist() if chunks else []
    return sorted(rows, key=lambda r: [str(v) for v in r.values()])
