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
    tag_ids = tag_id_array(cur, state, rows.tag, rows.boolean_tags)
    with checked_rows("raw rows"):
        messages, raw, latest = _tables(rows, tag_ids, state.next_seq)
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


def _tables(
    rows: RawColumns, tag_ids: pa.Array, first_seq: int
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """The batch's new messages, its raw rows, and the newest row of each tag."""
    ids, ingest, stamps = int64s(rows.msg_id), micros(rows.ingest_ns), micros(rows.ts_ns)
    messages, seqs = _messages(ids, ingest, first_seq)
    raw = _raw_table(rows, tag_ids, stamps, seqs)
    by_tag = tag_ids.to_numpy()
    newest = newest_rows(by_tag, stamps)
    latest = raw.take(newest).drop_columns(["msg_seq"])
    latest = latest.append_column("msg_id", pa.array(ids[newest]))
    latest = latest.append_column("ingest_ts", us_array(ingest[newest]))
    # The rows of a tag together: tag_id becomes runs, which DuckDB filters quickly.
    return messages, raw.take(np.argsort(by_tag, kind="stable")), latest


def tag_id_array(
    cur: duckdb.DuckDBPyConnection, state: State, tags: list[str], booleans: set[str]
) -> pa.Array:
    """The ids of the tags, registering unknown tags (and newly boolean ones) on the way."""
    if not booleans <= state.boolean:
        state.register(cur, tags, booleans)
    try:
        return pa.array(list(map(state.ids.__getitem__, tags)), pa.int32())
    except KeyError:
        state.register(cur, tags, booleans)
        return pa.array(list(map(state.ids.__getitem__, tags)), pa.int32())


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


def message_runs(
    ids: npt.NDArray[np.int64], ingest: npt.NDArray[np.int64]
) -> tuple[list[tuple[int, int]], npt.NDArray[np.int64]]:
    """The distinct (msg_id, ingest) pairs in order of appearance, and each row's pair.

    Rows of one message usually sit together, so the work is per run of equal pairs;
    a message split over several runs is still one pair.
    """
    run_start = np.empty(len(ids), dtype=np.bool_)
    run_start[0] = True
    np.not_equal(ids[1:], ids[:-1], out=run_start[1:])
    run_start[1:] |= ingest[1:] != ingest[:-1]
    starts = np.flatnonzero(run_start)
    pairs: dict[tuple[int, int], int] = {}
    run_pair = [
        pairs.setdefault(key, len(pairs))
        for key in zip(ids[starts].tolist(), ingest[starts].tolist(), strict=True)
    ]
    return list(pairs), np.asarray(run_pair, dtype=np.int64)[np.cumsum(run_start) - 1]


def messages_table(pairs: list[tuple[int, int]], seqs: npt.NDArray[np.int64]) -> pa.Table:
    """Rows of `messages` for (msg_id, ingest) pairs numbered `seqs`."""
    return pa.table(
        {
            "msg_seq": pa.array(seqs, pa.int64()),
            "msg_id": pa.array([pair[0] for pair in pairs], pa.int64()),
            "ingest_ts": us_array(np.asarray([pair[1] for pair in pairs], dtype=np.int64)),
        }
    )


def _messages(
    ids: npt.NDArray[np.int64], ingest: npt.NDArray[np.int64], first_seq: int
) -> tuple[pa.Table, npt.NDArray[np.int64]]:
    """The batch's messages, numbered from `first_seq`, and each row's message number."""
    pairs, row_pair = message_runs(ids, ingest)
    seqs = np.arange(first_seq, first_seq + len(pairs), dtype=np.int64)
    return messages_table(pairs, seqs), row_pair + first_seq


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
