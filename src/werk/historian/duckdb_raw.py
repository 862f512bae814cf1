"""Writing the raw layer of the DuckDB historian, and reading it back batch by batch."""

from __future__ import annotations

from typing import Final

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from werk.core.errors import ValidationFailed
from werk.historian.duckdb_schema import (
    State,
    checked_rows,
    int64s,
    micros,
    query,
    registered,
    scalar,
    us_array,
)
from werk.historian.layers import RawBatch
from werk.historian.models import RawColumns

_RAW_SCHEMA: Final = pa.schema(
    [
        ("tag_id", pa.int32()),
        ("ts", pa.timestamp("us")),
        ("value", pa.float64()),
        ("text", pa.string()),
        ("quality", pa.uint8()),
        ("msg_seq", pa.int64()),
    ]
)

_LATEST_RAW: Final = """
    INSERT INTO latest_raw SELECT * FROM incoming_latest
    ON CONFLICT (tag_id) DO UPDATE SET ts = excluded.ts, value = excluded.value,
        text = excluded.text, quality = excluded.quality, msg_id = excluded.msg_id,
        ingest_ts = excluded.ingest_ts
    WHERE excluded.ts >= latest_raw.ts
"""

_BATCHES_AFTER: Final = """
    SELECT batch, first_seq, end_seq FROM (
        SELECT batch, first_seq, end_seq, rows,
               sum(rows) OVER (ORDER BY batch) AS running
        FROM batches WHERE batch > ?)
    WHERE running - rows < ? ORDER BY batch
"""

_RAW_OF_SEQS: Final = """
    SELECT t.path, epoch_us(r.ts) * 1000 AS ts_ns, epoch_us(m.ingest_ts) * 1000 AS ingest_ns,
           r.value, r.text, r.quality, m.msg_id
    FROM raw r JOIN messages m USING (msg_seq) JOIN tags t USING (tag_id)
    WHERE r.msg_seq >= ? AND r.msg_seq < ? AND m.msg_seq >= ? AND m.msg_seq < ?
    ORDER BY r.msg_seq, r.tag_id, r.ts
"""

_EXISTING: Final = """
    SELECT DISTINCT w.tag_id, epoch_us(w.ts) FROM wanted w
    JOIN raw r ON r.tag_id = w.tag_id AND r.ts = w.ts
    WHERE r.ts BETWEEN make_timestamp(?) AND make_timestamp(?)
"""


def write(cur: duckdb.DuckDBPyConnection, state: State, rows: RawColumns) -> int:
    """Append rows as the next write batch (inside the caller's transaction)."""
    _check_lengths(rows)
    tag_ids = _tag_ids(cur, state, rows)
    with checked_rows("raw rows"):
        ids, ingest, stamps = int64s(rows.msg_id), micros(rows.ingest_ns), micros(rows.ts_ns)
        messages, seqs = _messages(ids, ingest, state.next_seq)
        raw = _raw_table(rows, tag_ids, stamps, seqs)
        by_tag = tag_ids.to_numpy()
        newest = newest_rows(by_tag, stamps)
        latest = raw.take(newest).drop_columns(["msg_seq"])
        latest = latest.append_column("msg_id", pa.array(ids[newest]))
        latest = latest.append_column("ingest_ts", us_array(ingest[newest]))
        raw = raw.take(np.argsort(by_tag, kind="stable"))
    first, end = state.next_seq, state.next_seq + messages.num_rows
    with (
        registered(cur, "incoming_messages", messages),
        registered(cur, "incoming_raw", raw),
        registered(cur, "incoming_latest", latest),
    ):
        cur.execute("INSERT INTO messages SELECT * FROM incoming_messages")
        cur.execute("INSERT INTO raw SELECT * FROM incoming_raw")
        cur.execute(_LATEST_RAW)
    add_batch(cur, state, first, end, len(rows))
    return len(rows)


def _tag_ids(cur: duckdb.DuckDBPyConnection, state: State, rows: RawColumns) -> pa.Array:
    """The rows' tag ids, registering unknown tags (and newly boolean ones) on the way."""
    if not rows.boolean_tags <= state.boolean:
        state.register(cur, rows.tag, rows.boolean_tags)
    try:
        return pa.array(list(map(state.ids.__getitem__, rows.tag)), pa.int32())
    except KeyError:
        state.register(cur, rows.tag, rows.boolean_tags)
        return pa.array(list(map(state.ids.__getitem__, rows.tag)), pa.int32())


def newest_rows(
    tag_ids: npt.NDArray[np.int32], stamps: npt.NDArray[np.int64]
) -> npt.NDArray[np.intp]:
    """Index of the newest row of each tag; of rows equally new, the last one."""
    best = np.full(int(tag_ids.max()) + 1, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(best, tag_ids, stamps)
    newest = np.flatnonzero(stamps == best[tag_ids])[::-1]
    _, first = np.unique(tag_ids[newest], return_index=True)
    return newest[first]


def add_batch(
    cur: duckdb.DuckDBPyConnection, state: State, first_seq: int, end_seq: int, rows: int
) -> None:
    """Record the next write batch as the message range [first_seq, end_seq)."""
    batch = state.last_batch + 1
    cur.execute("INSERT INTO batches VALUES (?, ?, ?, ?)", [batch, first_seq, end_seq, rows])
    state.last_batch = batch
    state.next_seq = end_seq


def _check_lengths(rows: RawColumns) -> None:
    columns = (rows.ts_ns, rows.ingest_ns, rows.value, rows.text, rows.quality, rows.msg_id)
    if any(len(column) != len(rows.tag) for column in columns):
        raise ValidationFailed("raw columns differ in length", code="bad_rows")


def _messages(
    ids: npt.NDArray[np.int64], ingest: npt.NDArray[np.int64], first_seq: int
) -> tuple[pa.Table, npt.NDArray[np.int64]]:
    """The batch's messages, numbered from `first_seq`, and each row's message number.

    Rows of one message usually sit together, so the work is per run of equal
    (msg_id, ingest) pairs; a message split over several runs keeps one number.
    """
    run_start = np.empty(len(ids), dtype=np.bool_)
    run_start[0] = True
    np.not_equal(ids[1:], ids[:-1], out=run_start[1:])
    run_start[1:] |= ingest[1:] != ingest[:-1]
    starts = np.flatnonzero(run_start)
    numbers: dict[tuple[int, int], int] = {}
    run_seq = [
        numbers.setdefault(key, first_seq + len(numbers))
        for key in zip(ids[starts].tolist(), ingest[starts].tolist(), strict=True)
    ]
    seqs = np.asarray(run_seq, dtype=np.int64)[np.cumsum(run_start) - 1]
    table = pa.table(
        {
            "msg_seq": pa.array(np.arange(first_seq, first_seq + len(numbers)), pa.int64()),
            "msg_id": pa.array([key[0] for key in numbers], pa.int64()),
            "ingest_ts": us_array(np.asarray([key[1] for key in numbers], dtype=np.int64)),
        }
    )
    return table, seqs


def _raw_table(
    rows: RawColumns,
    tag_ids: pa.Array,
    stamps: npt.NDArray[np.int64],
    seqs: npt.NDArray[np.int64],
) -> pa.Table:
    count = len(rows)
    text = (
        pa.nulls(count, pa.string())
        if rows.text.count(None) == count
        else pa.array(rows.text, pa.string())
    )
    quality = rows.quality
    arrays = [
        tag_ids,
        us_array(stamps),
        pa.array(rows.value, pa.float64()),
        text,
        pa.array(np.full(count, quality[0], dtype=np.uint8))
        if quality.count(quality[0]) == count
        else pa.array(np.asarray(quality, dtype=np.uint8)),
        pa.array(seqs, pa.int64()),
    ]
    return pa.Table.from_arrays(arrays, schema=_RAW_SCHEMA)


def existing(
    cur: duckdb.DuckDBPyConnection, state: State, tags: list[str], stamps_ns: list[int]
) -> set[tuple[str, int]]:
    """Stored (tag, ts) pairs among the given ones, as the pairs were given."""
    ids = state.ids
    known = [(ids[t], t, ts) for t, ts in zip(tags, stamps_ns, strict=True) if t in ids]
    if not known:
        return set()
    stamps = micros([k[2] for k in known])
    wanted = pa.table(
        {"tag_id": pa.array([k[0] for k in known], pa.int32()), "ts": us_array(stamps)}
    )
    with registered(cur, "wanted", wanted):
        bounds = [int(stamps.min()), int(stamps.max())]
        found = set(cur.execute(_EXISTING, bounds).fetchall())
    return {(t, ts) for tag_id, t, ts in known if (tag_id, ts // 1000) in found}


def raw_after(cur: duckdb.DuckDBPyConnection, batch: int, max_rows: int) -> RawBatch:
    """Raw rows of whole write batches after `batch`, about `max_rows` of them."""
    batches = cur.execute(_BATCHES_AFTER, [batch, max(max_rows, 1)]).fetchall()
    if not batches:
        return RawBatch(RawColumns(), batch)
    first, end = batches[0][1], batches[-1][2]
    table: pa.Table = query(cur, _RAW_OF_SEQS, [first, end, first, end]).to_arrow_table()
    rows = columns_of(table)
    rows.boolean_tags = boolean_tags(cur, rows.tag)
    return RawBatch(rows, batches[-1][0])


def columns_of(table: pa.Table) -> RawColumns:
    """Raw columns from an Arrow result of path, ts_ns, ingest_ns, value, text, quality, id."""
    tag, ts_ns, ingest_ns, value, text, quality, msg_id = (
        table.column(i).to_pylist() for i in range(7)
    )
    return RawColumns(tag, ts_ns, ingest_ns, value, text, quality, msg_id)


def boolean_tags(cur: duckdb.DuckDBPyConnection, tags: list[str]) -> set[str]:
    """Those of the tags marked boolean in the dictionary."""
    sql = "SELECT path FROM tags WHERE boolean AND list_contains(?, path)"
    distinct = list(dict.fromkeys(tags))
    return {row[0] for row in cur.execute(sql, [distinct]).fetchall()} if distinct else set()


_PAIRS: Final = {
    "incoming_processed": """CREATE OR REPLACE TEMP TABLE pairs AS
        SELECT DISTINCT msg_id, ingest_ts FROM incoming_processed""",
    "loading": """CREATE OR REPLACE TEMP TABLE pairs AS
        SELECT DISTINCT msg_id, ingest_ts FROM loading""",
}
_KNOWN_SEQS: Final = """
    CREATE OR REPLACE TEMP TABLE seqs AS
    SELECT p.msg_id, p.ingest_ts, min(m.msg_seq) AS msg_seq
    FROM pairs p JOIN messages m ON m.msg_id = p.msg_id AND m.ingest_ts = p.ingest_ts
    WHERE m.ingest_ts BETWEEN (SELECT min(ingest_ts) FROM pairs)
                          AND (SELECT max(ingest_ts) FROM pairs)
    GROUP BY p.msg_id, p.ingest_ts
"""
_NO_SEQS: Final = """
    CREATE OR REPLACE TEMP TABLE seqs (msg_id BIGINT, ingest_ts TIMESTAMP, msg_seq BIGINT)
"""
_NEW_SEQS: Final = """
    INSERT INTO seqs SELECT p.msg_id, p.ingest_ts,
        ? + row_number() OVER (ORDER BY p.ingest_ts, p.msg_id) - 1
    FROM pairs p ANTI JOIN seqs s USING (msg_id, ingest_ts)
"""


def assign_seqs(cur: duckdb.DuckDBPyConnection, state: State, source: str, *, reuse: bool) -> int:
    """Fill temp table `seqs(msg_id, ingest_ts, msg_seq)` for the messages of `source`.

    With `reuse` a message already stored keeps its number; the others are added to
    `messages` with the next numbers. `source` names one of the staging tables above.
    Returns the first number after those given.
    """
    cur.execute(_PAIRS[source])
    cur.execute(_KNOWN_SEQS if reuse else _NO_SEQS)
    new = scalar(cur, _NEW_SEQS, [state.next_seq])
    cur.execute(
        "INSERT INTO messages SELECT msg_seq, msg_id, ingest_ts FROM seqs WHERE msg_seq >= ?",
        [state.next_seq],
    )
    cur.execute("DROP TABLE pairs")
    return state.next_seq + new
