"""Refining a stored range of raw samples again with the current rules."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from werk.historian.layers import Flag, Layer, ProcessedColumns, RollupKey
from werk.historian.models import Point
from werk.historian.quality import FlagArray, adjust_quality, evaluate_between
from werk.historian.quality_kernels import BoolArray, FloatArray, IntArray
from werk.historian.refiner_batch import (
    TagUnits,
    append_tail,
    conversion,
    respiked,
    rollup_keys,
)
from werk.historian.refiner_memory import Known, Tail, known_after, numeric, stored_after
from werk.historian.rules import QualityRule
from werk.historian.store import HistorianStore

PAGE_ROWS: Final = 50_000
_US: Final = 1000


@dataclass(slots=True)
class _Page:
    """The raw samples of one page, one per timestamp, as arrays."""

    points: list[Point]
    ts: IntArray
    values: FloatArray
    checked: BoolArray  # numbers of a tag that is not boolean: the rules apply
    numeric: BoolArray  # numbers and booleans: they make the rollups
    boolean: bool


def reprocess_tag(
    store: HistorianStore,
    tag: str,
    rule: QualityRule | None,
    span: tuple[int, int],
    mark: int,
    tag_units: TagUnits | None,
) -> int:
    """Refine the raw samples of `tag` in [start, end) again, page by page.

    Returns how many samples (one per timestamp) were refined.
    """
    start_ns, end_ns = span
    known = known_after(store, tag, rule, store.previous(tag, start_ns))
    cursor, total = start_ns, 0
    while cursor < end_ns:
        page = store.points(tag, cursor, end_ns, PAGE_ROWS, layer=Layer.RAW)
        if not page:
            break
        points, cursor, last = _cut(page, end_ns)
        arrays = _arrays(points)
        rows, keys, known = _refine_page(store, tag, rule, arrays, known, last, tag_units)
        store.refine(rows, keys, mark)
        total += len(arrays.points)
        if last:
            break
    return total


def _cut(page: list[Point], end_ns: int) -> tuple[list[Point], int, bool]:
    """The points to take now, where the next page starts, and whether this is the last.

    A full page leaves out its last timestamp, whose duplicates may continue on the next.
    """
    if len(page) < PAGE_ROWS:
        return page, end_ns, True
    last_ts = page[-1].ts_ns
    kept = [p for p in page if p.ts_ns != last_ts]
    if not kept:
        return page, last_ts + _US, False
    return kept, last_ts, False


def _arrays(points: list[Point]) -> _Page:
    ordered = sorted(points, key=lambda p: (p.ts_ns, p.ingest_ns))
    newest = [p for i, p in enumerate(ordered)
              if i + 1 == len(ordered) or ordered[i + 1].ts_ns != p.ts_ns]  # fmt: skip
    boolean = any(isinstance(p.value, bool) for p in newest)
    numbers = [numeric(p.value) for p in newest]
    checked = np.array([v is not None and not boolean for v in numbers], dtype=np.bool_)
    values = np.array([math.nan if v is None else v for v in numbers], dtype=np.float64)
    ts = np.array([p.ts_ns for p in newest], dtype=np.int64)
    present = np.array([v is not None for v in numbers], dtype=np.bool_)
    return _Page(newest, ts, values, checked, present, boolean)


def _refine_page(
    store: HistorianStore,
    tag: str,
    rule: QualityRule | None,
    page: _Page,
    known: Known,
    last: bool,
    tag_units: TagUnits | None,
) -> tuple[ProcessedColumns, list[RollupKey], Known]:
    flags = np.zeros(len(page.ts), dtype=np.uint16)
    flags[page.checked & _stored_late(store, tag, page.ts)] |= np.uint16(Flag.LATE)
    rows_at = np.flatnonzero(page.checked)
    extra: Tail | None = None
    if len(rows_at):
        known, extra = _check(store, tag, rule, page, rows_at, flags, known, last, tag_units)
    rows = _columns(tag, page, flags)
    ts_numeric = page.ts[page.numeric]
    if extra is not None:
        append_tail(rows, tag, extra)
        ts_numeric = np.sort(np.append(ts_numeric, extra.ts_ns))
    keys = rollup_keys([tag], np.zeros(len(ts_numeric), dtype=np.int64), ts_numeric)
    return rows, keys, _with_tail(known, rows, rows_at, page)


def _check(
    store: HistorianStore,
    tag: str,
    rule: QualityRule | None,
    page: _Page,
    rows_at: IntArray,
    flags: FlagArray,
    known: Known,
    last: bool,
    tag_units: TagUnits | None,
) -> tuple[Known, Tail | None]:
    """Convert and evaluate the numeric rows in place; return the state and a tail to re-store."""
    flags[rows_at[~np.isfinite(page.values[rows_at])]] |= np.uint16(Flag.NOT_FINITE)
    if rule is None:
        return known, None
    convert, impossible = conversion(tag, rule, tag_units)
    if convert is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            page.values[rows_at] = convert(page.values[rows_at])
    if impossible:
        flags[rows_at] |= np.uint16(Flag.UNIT)
    ts, values = page.ts[rows_at], page.values[rows_at]
    after = stored_after(store, tag, int(ts[-1])) if last else None
    result = evaluate_between(rule, known.state, ts, values, after)
    flags[rows_at] |= result.flags
    tail = known.tail
    extra = respiked(tail) if result.spiked_previous and tail is not None else None
    return Known(result.state, tail), extra


def _stored_late(store: HistorianStore, tag: str, ts: IntArray) -> BoolArray:
    """Which samples the processed layer holds as late (arrival order is not in the raw rows)."""
    if not len(ts):
        return np.zeros(0, dtype=np.bool_)
    limit = 2 * len(ts) + 10
    stored = store.points(tag, int(ts[0]), int(ts[-1]) + 1, limit, layer=Layer.PROCESSED)
    late = [p.ts_ns for p in stored if p.flags & Flag.LATE]
    return np.isin(ts, np.asarray(late, dtype=np.int64))


def _columns(tag: str, page: _Page, flags: FlagArray) -> ProcessedColumns:
    points = page.points
    quality = adjust_quality(np.array([p.quality for p in points], dtype=np.uint8), flags)
    values: list[float | None] = page.values.tolist()
    for i in np.flatnonzero(~page.numeric).tolist():
        values[i] = None
    text = [p.value if isinstance(p.value, str) else None for p in points]
    return ProcessedColumns(
        tag=[tag] * len(points),
        ts_ns=page.ts.tolist(),
        ingest_ns=[p.ingest_ns for p in points],
        value=values,
        text=text,
        quality=quality.tolist(),
        msg_id=[p.msg_id for p in points],
        boolean_tags={tag} if page.boolean else set(),
        flags=flags.tolist(),
    )


def _with_tail(known: Known, rows: ProcessedColumns, rows_at: IntArray, page: _Page) -> Known:
    """`known` with the newest finite checked sample of the page as its tail."""
    finite = rows_at[np.isfinite(page.values[rows_at])]
    if not len(finite):
        return known
    i = int(finite[-1])
    tail = Tail(rows.ts_ns[i], rows.ingest_ns[i], float(page.values[i]), rows.quality[i],
                rows.msg_id[i], rows.flags[i])  # fmt: skip
    return Known(known.state, tail)
