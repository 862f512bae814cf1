"""Refinement on DuckDB: processed rows replace by (tag, ts), rollups are recomputed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import duckdb
import numpy as np
import pyarrow as pa

from werk.core.clock import NS_PER_S
from werk.core.errors import ValidationFailed
from werk.historian.duckdb_raw import assign_seqs
from werk.historian.duckdb_schema import State, checked_rows, micros, registered, us_array
from werk.historian.layers import ROLLUP_WIDTHS_S, ProcessedColumns, Rollup, RollupKey

_STAGE_PROCESSED: Final = """
    CREATE OR REPLACE TEMP TABLE incoming_processed AS
    SELECT * FROM staged_processed
    QUALIFY row_number() OVER (PARTITION BY tag_id, ts ORDER BY ord DESC) = 1
"""
_REPLACE_PROCESSED: Final = (
    """DELETE FROM processed p USING incoming_processed i
       WHERE p.tag_id = i.tag_id AND p.ts = i.ts
         AND p.ts BETWEEN (SELECT min(ts) FROM incoming_processed)
                      AND (SELECT max(ts) FROM incoming_processed)""",
    """INSERT INTO processed
       SELECT i.tag_id, i.ts, i.value, i.text, i.quality, i.flags, s.msg_seq
       FROM incoming_processed i JOIN seqs s USING (msg_id, ingest_ts)""",
)
LATEST_PROCESSED: Final = """
    INSERT INTO latest_processed
    SELECT tag_id, s.ts, s.value, s.text, s.quality, s.flags, s.msg_id, s.ingest_ts FROM (
        SELECT tag_id, arg_max({'ts': ts, 'value': value, 'text': text, 'quality': quality,
            'flags': flags, 'msg_id': msg_id, 'ingest_ts': ingest_ts}, ts) AS s
        FROM {source} GROUP BY tag_id)
    ON CONFLICT (tag_id) DO UPDATE SET ts = excluded.ts, value = excluded.value,
        text = excluded.text, quality = excluded.quality, flags = excluded.flags,
        msg_id = excluded.msg_id, ingest_ts = excluded.ingest_ts
    WHERE excluded.ts >= latest_processed.ts
"""
_LATEST_OF_INCOMING: Final = LATEST_PROCESSED.replace("{source}", "incoming_processed")

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
      AND p.ts >= (SELECT min(start) FROM rollup_keys WHERE width_s = 60)
      AND p.ts < (SELECT max(start) FROM rollup_keys WHERE width_s = 60) + INTERVAL 60 SECOND
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
      AND r.start >= (SELECT min(start) FROM rollup_keys WHERE width_s = $width)
      AND r.start < (SELECT max(start) FROM rollup_keys WHERE width_s = $width)
                    + to_seconds($width)
    GROUP BY k.tag_id, k.start
"""

_ROLLUPS: Final = """
    SELECT width_s, epoch_us(start), count, min, max, sum, first, last,
           epoch_us(first_ts), epoch_us(last_ts), flagged, bad
    FROM rollups
    WHERE tag_id = ? AND width_s = ? AND start >= make_timestamp(?) AND start < make_timestamp(?)
    ORDER BY start
"""

_PROCESSED_SCHEMA: Final = pa.schema(
    [
        ("tag_id", pa.int32()),
        ("ts", pa.timestamp("us")),
        ("value", pa.float64()),
        ("text", pa.string()),
        ("quality", pa.uint8()),
        ("flags", pa.uint16()),
        ("msg_id", pa.int64()),
        ("ingest_ts", pa.timestamp("us")),
        ("ord", pa.int64()),
    ]
)


def refine(
    cur: duckdb.DuckDBPyConnection,
    state: State,
    rows: ProcessedColumns,
    keys: Sequence[RollupKey],
    through: int,
) -> None:
    """Upsert processed rows, recompute rollups, move the mark (in the caller's transaction)."""
    if not 0 <= through <= state.last_batch:
        raise ValidationFailed(
            f"cannot mark batch {through} refined: the newest write batch is {state.last_batch}",
            code="bad_batch",
        )
    if len(rows):
        _upsert_processed(cur, state, rows)
    if keys:
        recompute(cur, state, keys)
    cur.execute("INSERT OR REPLACE INTO meta VALUES ('refined_through', ?)", [through])
    state.refined = through


def _upsert_processed(cur: duckdb.DuckDBPyConnection, state: State, rows: ProcessedColumns) -> None:
    if len(rows.flags) != len(rows) or any(
        len(c) != len(rows)
        for c in (rows.ts_ns, rows.ingest_ns, rows.value, rows.text, rows.quality, rows.msg_id)
    ):
        raise ValidationFailed("processed columns differ in length", code="bad_rows")
    state.register(cur, rows.tag, rows.boolean_tags)
    with checked_rows("processed rows"):
        staged = _processed_table(state, rows)
    with registered(cur, "staged_processed", staged):
        cur.execute(_STAGE_PROCESSED)
    state.next_seq = assign_seqs(cur, state, "incoming_processed", reuse=True)
    for statement in _REPLACE_PROCESSED:
        cur.execute(statement)
    cur.execute(_LATEST_OF_INCOMING)
    cur.execute("DROP TABLE incoming_processed")
    cur.execute("DROP TABLE seqs")


def _processed_table(state: State, rows: ProcessedColumns) -> pa.Table:
    count = len(rows)
    arrays = [
        pa.array(list(map(state.ids.__getitem__, rows.tag)), pa.int32()),
        us_array(micros(rows.ts_ns)),
        pa.array(rows.value, pa.float64()),
        pa.array(rows.text, pa.string()),
        pa.array(np.asarray(rows.quality, dtype=np.uint8)),
        pa.array(np.asarray(rows.flags, dtype=np.uint16)),
        pa.array(rows.msg_id, pa.int64()),
        us_array(micros(rows.ingest_ns)),
        pa.array(np.arange(count, dtype=np.int64)),
    ]
    return pa.Table.from_arrays(arrays, schema=_PROCESSED_SCHEMA)


def recompute(cur: duckdb.DuckDBPyConnection, state: State, keys: Sequence[RollupKey]) -> None:
    """Recompute rollup keys, narrowest width first, deleting those left without samples."""
    table = _keys_table(state, keys)
    with registered(cur, "rollup_keys", table):
        for index, width in enumerate(ROLLUP_WIDTHS_S):
            if not any(k.width_s == width for k in keys):
                continue
            cur.execute(_DELETE_KEYS, {"width": width})
            if index == 0:
                cur.execute(_FROM_SAMPLES)
                continue
            params = {
                "width": width,
                "width_us": width * 1_000_000,
                "narrower": ROLLUP_WIDTHS_S[index - 1],
            }
            cur.execute(_FROM_NARROWER, params)


def _keys_table(state: State, keys: Sequence[RollupKey]) -> pa.Table:
    for key in keys:
        if key.width_s not in ROLLUP_WIDTHS_S or key.start_ns % (key.width_s * NS_PER_S):
            raise ValidationFailed(
                f"rollup key {key.tag!r} {key.width_s} s at {key.start_ns} is not a bucket "
                f"of width {', '.join(map(str, ROLLUP_WIDTHS_S))} s starting on its width",
                code="bad_rollup_key",
            )
    known = list(dict.fromkeys(k for k in keys if k.tag in state.ids))
    return pa.table(
        {
            "tag_id": pa.array([state.ids[k.tag] for k in known], pa.int32()),
            "width_s": pa.array([k.width_s for k in known], pa.int32()),
            "start": us_array(micros([k.start_ns for k in known])),
        }
    )


def rollups(
    cur: duckdb.DuckDBPyConnection, state: State, tag: str, width_s: int, span: tuple[int, int]
) -> list[Rollup]:
    """Rollups of one tag and width whose bucket starts in [start, end)."""
    tag_id = state.ids.get(tag)
    if tag_id is None:
        return []
    params = [tag_id, width_s, -(-span[0] // 1000), -(-span[1] // 1000)]
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
