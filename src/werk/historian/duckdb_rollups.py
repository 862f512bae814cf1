"""Rollups on DuckDB: recomputed per key from processed samples or narrower rollups."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from typing import Any, Final

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from werk.core.clock import NS_PER_S
from werk.core.errors import ValidationFailed
from werk.historian.duckdb_schema import State, ceil_us, int64s, registered, us_array
from werk.historian.layers import ROLLUP_WIDTHS_S, Rollup, RollupKey

_KEYS: Final = "CREATE OR REPLACE TEMP TABLE rollup_keys AS SELECT DISTINCT * FROM asked_keys"
_DELETE_KEYS: Final = """
    DELETE FROM rollups r USING rollup_keys k
    WHERE r.tag_id = k.tag_id AND r.width_s = k.width_s AND r.start = k.start
      AND k.width_s = $width
"""
# Width 60 from processed samples: bad quality is counted apart, text is left out.
_FROM_SAMPLES: Final = """
    INSERT INTO rollups
    SELECT k.tag_id, 60, k.start,
        count(*) FILTER (WHERE p.quality <> 2),
        min(p.value) FILTER (WHERE p.quality <> 2), max(p.value) FILTER (WHERE p.quality <> 2),
        coalesce(sum(p.value) FILTER (WHERE p.quality <> 2), 0),
        arg_min(p.value, p.ts) FILTER (WHERE p.quality <> 2),
        arg_max(p.value, p.ts) FILTER (WHERE p.quality <> 2),
        min(p.ts) FILTER (WHERE p.quality <> 2), max(p.ts) FILTER (WHERE p.quality <> 2),
        count(*) FILTER (WHERE p.quality <> 2 AND p.flags <> 0),
        count(*) FILTER (WHERE p.quality = 2)
    FROM rollup_keys k JOIN processed p
      ON p.tag_id = k.tag_id AND epoch_us(p.ts) // 60000000 * 60000000 = epoch_us(k.start)
    WHERE k.width_s = 60 AND p.value IS NOT NULL
      AND p.ts >= make_timestamp($first) AND p.ts < make_timestamp($end)
    GROUP BY k.tag_id, k.start
"""
# Wider widths merge the next narrower rollups of their bucket.
_FROM_NARROWER: Final = """
    INSERT INTO rollups
    SELECT k.tag_id, $width, k.start, sum(r.count), min(r.min), max(r.max), sum(r.sum),
        arg_min(r.first, r.first_ts), arg_max(r.last, r.last_ts),
        min(r.first_ts), max(r.last_ts), sum(r.flagged), sum(r.bad)
    FROM rollup_keys k JOIN rollups r
      ON r.tag_id = k.tag_id AND epoch_us(r.start) // $width_us * $width_us = epoch_us(k.start)
    WHERE k.width_s = $width AND r.width_s = $narrower
      AND r.start >= make_timestamp($first) AND r.start < make_timestamp($end)
    GROUP BY k.tag_id, k.start
"""

_ROLLUPS: Final = """
    SELECT width_s, epoch_us(start), count, min, max, sum, first, last,
           epoch_us(first_ts), epoch_us(last_ts), flagged, bad
    FROM rollups
    WHERE tag_id = ? AND width_s = ? AND start >= make_timestamp(?) AND start < make_timestamp(?)
    ORDER BY start
"""


def recompute(cur: duckdb.DuckDBPyConnection, state: State, keys: Sequence[RollupKey]) -> None:
    """Recompute rollup keys, narrowest width first, deleting those left without samples."""
    asked, spans = _keys_table(state, keys)
    with registered(cur, "asked_keys", asked):
        cur.execute(_KEYS)
    for index, width in enumerate(ROLLUP_WIDTHS_S):
        if width not in spans:
            continue
        cur.execute(_DELETE_KEYS, {"width": width})
        first, last = spans[width]
        params = {"first": first, "end": last + width * 1_000_000}
        if index == 0:
            cur.execute(_FROM_SAMPLES, params)
            continue
        params.update(width=width, width_us=width * 1_000_000, narrower=ROLLUP_WIDTHS_S[index - 1])
        cur.execute(_FROM_NARROWER, params)
    cur.execute("DROP TABLE rollup_keys")


def _keys_table(
    state: State, keys: Sequence[RollupKey]
) -> tuple[pa.Table, dict[int, tuple[int, int]]]:
    """The keys of known tags as a table, and the first and last start (µs) per width."""
    widths, starts = int64s([k.width_s for k in keys]), int64s([k.start_ns for k in keys])
    _check_keys(keys, widths, starts)
    tags = [k.tag for k in keys]
    ids = np.fromiter(map(state.ids.get, tags, repeat(-1)), dtype=np.int32, count=len(keys))
    known = ids >= 0
    widths, starts_us = widths[known], starts[known] // 1000
    table = pa.table(
        {
            "tag_id": pa.array(ids[known]),
            "width_s": pa.array(widths.astype(np.int32)),
            "start": us_array(starts_us),
        }
    )
    spans = {}
    for width in np.unique(widths).tolist():
        of_width = starts_us[widths == width]
        spans[int(width)] = (int(of_width.min()), int(of_width.max()))
    return table, spans


def _check_keys(
    keys: Sequence[RollupKey], widths: npt.NDArray[np.int64], starts: npt.NDArray[np.int64]
) -> None:
    """Refuse a key of a width the business layer does not keep, or not on its bucket."""
    wrong = ~np.isin(widths, ROLLUP_WIDTHS_S)
    wrong |= starts % np.where(wrong, 1, widths * NS_PER_S) != 0
    if wrong.any():
        key = keys[int(np.flatnonzero(wrong)[0])]
        raise ValidationFailed(
            f"rollup key {key.tag!r} {key.width_s} s at {key.start_ns} is not a bucket of "
            f"width {', '.join(map(str, ROLLUP_WIDTHS_S))} s starting on its width",
            code="bad_rollup_key",
        )


def rollups(
    cur: duckdb.DuckDBPyConnection, state: State, tag: str, width_s: int, span: tuple[int, int]
) -> list[Rollup]:
    """Rollups of one tag and width whose bucket starts in [start, end)."""
    tag_id = state.ids.get(tag)
    if tag_id is None:
        return []
    params = [tag_id, width_s, ceil_us(span[0]), ceil_us(span[1])]
    return [rollup(tag, row) for row in cur.execute(_ROLLUPS, params).fetchall()]


def rollup(tag: str, row: tuple[Any, ...]) -> Rollup:
    """A rollup from a row of `_ROLLUPS`; an all-bad bucket has NaN aggregates."""
    width, start, count, low, high, total, first, last, first_us, last_us, flagged, bad = row
    nan = float("nan")
    return Rollup(
        tag=tag,
        width_s=width,
        start_ns=start * 1000,
        count=count,
        min=nan if low is None else low,
        max=nan if high is None else high,
        sum=total,
        first=nan if first is None else first,
        last=nan if last is None else last,
        first_ns=start * 1000 if first_us is None else first_us * 1000,
        last_ns=start * 1000 if last_us is None else last_us * 1000,
        flagged=flagged,
        bad=bad,
    )
