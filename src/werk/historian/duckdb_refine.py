"""Refinement on DuckDB: processed rows replace by (tag, ts), then rollups, then the mark."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from werk.core.errors import ValidationFailed
from werk.historian.duckdb_raw import message_runs, messages_table, tag_id_array
from werk.historian.duckdb_rollups import recompute
from werk.historian.duckdb_schema import (
    State,
    checked_rows,
    int64s,
    micros,
    registered,
    us_array,
)
from werk.historian.layers import ProcessedColumns, RollupKey

_REPLACE: Final = (
    """DELETE FROM processed p USING incoming_processed i
       WHERE p.tag_id = i.tag_id AND p.ts = i.ts
         AND p.ts BETWEEN make_timestamp(?) AND make_timestamp(?)""",
    """INSERT INTO processed SELECT tag_id, ts, value, text, quality, flags, msg_seq
       FROM incoming_processed""",
)
LATEST_PROCESSED: Final = """
    INSERT INTO latest_processed SELECT * FROM incoming_latest
    ON CONFLICT (tag_id) DO UPDATE SET ts = excluded.ts, value = excluded.value,
        text = excluded.text, quality = excluded.quality, flags = excluded.flags,
        msg_id = excluded.msg_id, ingest_ts = excluded.ingest_ts
    WHERE excluded.ts >= latest_processed.ts
"""
_KNOWN_MESSAGES: Final = """
    SELECT p.pair, min(m.msg_seq)
    FROM pairs p JOIN messages m ON m.msg_id = p.msg_id AND m.ingest_ts = p.ingest_ts
    WHERE m.ingest_ts BETWEEN make_timestamp(?) AND make_timestamp(?)
    GROUP BY p.pair
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
        ("msg_seq", pa.int64()),
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
        _upsert(cur, state, rows)
    if keys:
        recompute(cur, state, keys)
    cur.execute("INSERT OR REPLACE INTO meta VALUES ('refined_through', ?)", [through])
    state.refined = through


def _upsert(cur: duckdb.DuckDBPyConnection, state: State, rows: ProcessedColumns) -> None:
    columns = (rows.ts_ns, rows.ingest_ns, rows.value, rows.text, rows.quality, rows.msg_id)
    if any(len(c) != len(rows) for c in (*columns, rows.flags)):
        raise ValidationFailed("processed columns differ in length", code="bad_rows")
    tag_ids = tag_id_array(cur, state, rows.tag, rows.boolean_tags)
    with checked_rows("processed rows"):
        ids, ingest, stamps = int64s(rows.msg_id), micros(rows.ingest_ns), micros(rows.ts_ns)
        seqs = _message_numbers(cur, state, ids, ingest)
        staged = _staged(rows, tag_ids, (stamps, ids, ingest), seqs)
    by_tag = staged.column("tag_id").to_numpy()
    last_of_tag = np.flatnonzero(np.append(by_tag[1:] != by_tag[:-1], True))
    latest = staged.take(last_of_tag).drop_columns(["msg_seq"])
    bounds = [int(stamps.min()), int(stamps.max())]
    with (
        registered(cur, "incoming_processed", staged),
        registered(cur, "incoming_latest", latest),
    ):
        cur.execute(_REPLACE[0], bounds)
        cur.execute(_REPLACE[1])
        cur.execute(LATEST_PROCESSED)


def _staged(
    rows: ProcessedColumns,
    tag_ids: pa.Array,
    numbers: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]],
    seqs: npt.NDArray[np.int64],
) -> pa.Table:
    """The rows sorted by tag and time; of rows with the same tag and time the last one."""
    stamps, ids, ingest = numbers
    by_tag = tag_ids.to_numpy()
    order = np.lexsort((stamps, by_tag))  # stable: equal keys keep their order
    tags, times = by_tag[order], stamps[order]
    keep = np.append((tags[1:] != tags[:-1]) | (times[1:] != times[:-1]), True)
    arrays = [
        tag_ids,
        us_array(stamps),
        pa.array(rows.value, pa.float64()),
        pa.array(rows.text, pa.string()),
        pa.array(np.asarray(rows.quality, dtype=np.uint8)),
        pa.array(np.asarray(rows.flags, dtype=np.uint16)),
        pa.array(ids),
        us_array(ingest),
        pa.array(seqs),
    ]
    table = pa.Table.from_arrays(arrays, schema=_PROCESSED_SCHEMA)
    return table.take(order[keep])


def _message_numbers(
    cur: duckdb.DuckDBPyConnection,
    state: State,
    ids: npt.NDArray[np.int64],
    ingest: npt.NDArray[np.int64],
) -> npt.NDArray[np.int64]:
    """Each row's message number: that of the stored message, or a new one."""
    pairs, row_pair = message_runs(ids, ingest)
    numbers = _stored_numbers(cur, pairs, [int(ingest.min()), int(ingest.max())])
    new = np.flatnonzero(numbers < 0)
    if len(new):
        numbers[new] = np.arange(state.next_seq, state.next_seq + len(new))
        fresh = messages_table([pairs[i] for i in new], numbers[new])
        with registered(cur, "fresh_messages", fresh):
            cur.execute("INSERT INTO messages SELECT * FROM fresh_messages")
        state.next_seq += len(new)
    return numbers[row_pair]


def _stored_numbers(
    cur: duckdb.DuckDBPyConnection, pairs: list[tuple[int, int]], ingest_span: list[int]
) -> npt.NDArray[np.int64]:
    """The stored number of each (msg_id, ingest) pair, -1 for those not stored."""
    numbers = np.full(len(pairs), -1, dtype=np.int64)
    asked = pa.table(
        {
            "pair": pa.array(np.arange(len(pairs)), pa.int64()),
            "msg_id": pa.array([p[0] for p in pairs], pa.int64()),
            "ingest_ts": us_array(np.asarray([p[1] for p in pairs], dtype=np.int64)),
        }
    )
    with registered(cur, "pairs", asked):
        for pair, seq in cur.execute(_KNOWN_MESSAGES, ingest_span).fetchall():
            numbers[pair] = seq
    return numbers
