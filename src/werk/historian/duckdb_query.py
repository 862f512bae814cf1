"""Queries over the raw, processed and business layers of the DuckDB historian."""

from __future__ import annotations

from typing import Any, Final

import duckdb

from werk.core.clock import NS_PER_S
from werk.core.errors import ValidationFailed
from werk.historian.duckdb_schema import State, ceil_us, first_row, scalar
from werk.historian.layers import ROLLUP_WIDTHS_S, Layer
from werk.historian.models import Bucket, Point, TagLast

_POINTS: Final = {
    (Layer.RAW, False): """
        SELECT epoch_us(r.ts), epoch_us(m.ingest_ts), r.value, r.text, r.quality, m.msg_id, 0
        FROM raw r JOIN messages m USING (msg_seq)
        WHERE r.tag_id = ? AND r.ts >= make_timestamp(?) AND r.ts < make_timestamp(?)
        ORDER BY r.ts, r.msg_seq LIMIT ?""",
    (Layer.RAW, True): """
        SELECT epoch_us(r.ts), epoch_us(m.ingest_ts), r.value, r.text, r.quality, m.msg_id, 0
        FROM raw r JOIN messages m USING (msg_seq)
        WHERE r.tag_id = ? AND r.ts >= make_timestamp(?) AND r.ts < make_timestamp(?)
        ORDER BY r.ts DESC, r.msg_seq DESC LIMIT ?""",
    (Layer.PROCESSED, False): """
        SELECT epoch_us(p.ts), epoch_us(m.ingest_ts), p.value, p.text, p.quality, m.msg_id,
               p.flags
        FROM processed p JOIN messages m USING (msg_seq)
        WHERE p.tag_id = ? AND p.ts >= make_timestamp(?) AND p.ts < make_timestamp(?)
        ORDER BY p.ts LIMIT ?""",
    (Layer.PROCESSED, True): """
        SELECT epoch_us(p.ts), epoch_us(m.ingest_ts), p.value, p.text, p.quality, m.msg_id,
               p.flags
        FROM processed p JOIN messages m USING (msg_seq)
        WHERE p.tag_id = ? AND p.ts >= make_timestamp(?) AND p.ts < make_timestamp(?)
        ORDER BY p.ts DESC LIMIT ?""",
}

# NULL values (text samples) drop out of the aggregates; filtering them in WHERE instead
# would make DuckDB read the value column of every row in the time range.
_BUCKETS: Final = {
    Layer.RAW: """
        SELECT epoch_us(ts) // $b * $b AS bucket, count(value), min(value), max(value),
               avg(value), arg_min(value, ts), arg_max(value, ts)
        FROM raw
        WHERE tag_id = $tag AND ts >= make_timestamp($start) AND ts < make_timestamp($end)
        GROUP BY bucket HAVING count(value) > 0 ORDER BY bucket""",
    Layer.PROCESSED: """
        SELECT epoch_us(ts) // $b * $b AS bucket, count(v), min(v), max(v), avg(v),
               arg_min(v, ts), arg_max(v, ts)
        FROM (SELECT ts, CASE WHEN quality <> 2 THEN value END AS v FROM processed
              WHERE tag_id = $tag AND ts >= make_timestamp($start) AND ts < make_timestamp($end))
        GROUP BY bucket HAVING count(v) > 0 ORDER BY bucket""",
    Layer.BUSINESS: """
        SELECT epoch_us(start) // $b * $b AS bucket, sum(count)::BIGINT, min(min), max(max),
               sum(sum) / sum(count), arg_min(first, first_ts), arg_max(last, last_ts)
        FROM rollups
        WHERE tag_id = $tag AND width_s = $width
          AND start >= make_timestamp($start) AND start < make_timestamp($end)
        GROUP BY bucket HAVING sum(count) > 0 ORDER BY bucket""",
}

_LAST: Final = {
    Layer.RAW: """
        SELECT tag_id, epoch_us(ts), epoch_us(ingest_ts), value, text, quality, msg_id, 0
        FROM latest_raw WHERE list_contains(?, tag_id)""",
    Layer.PROCESSED: """
        SELECT tag_id, epoch_us(ts), epoch_us(ingest_ts), value, text, quality, msg_id, flags
        FROM latest_processed WHERE list_contains(?, tag_id)""",
}

_NEIGHBOUR: Final = {
    True: """
        SELECT epoch_us(p.ts), epoch_us(m.ingest_ts), p.value, p.text, p.quality, m.msg_id,
               p.flags
        FROM processed p JOIN messages m USING (msg_seq)
        WHERE p.tag_id = ? AND p.ts < make_timestamp(?) AND p.ts >= make_timestamp(?)
        ORDER BY p.ts DESC LIMIT 1""",
    False: """
        SELECT epoch_us(p.ts), epoch_us(m.ingest_ts), p.value, p.text, p.quality, m.msg_id,
               p.flags
        FROM processed p JOIN messages m USING (msg_seq)
        WHERE p.tag_id = ? AND p.ts > make_timestamp(?) AND p.ts <= make_timestamp(?)
        ORDER BY p.ts LIMIT 1""",
}
# Look close to the stamp first: a neighbour is usually near and the scan stays small.
_NEIGHBOUR_SPANS_US: Final = (3_600_000_000, 86_400_000_000, 32 * 86_400_000_000)
_NEWEST: Final = "SELECT epoch_us(ts) FROM latest_processed WHERE tag_id = ?"

_MESSAGE_POINTS: Final = """
    SELECT t.path, epoch_us(r.ts), epoch_us(m.ingest_ts), r.value, r.text, r.quality,
           m.msg_id, 0
    FROM messages m JOIN raw r USING (msg_seq) JOIN tags t USING (tag_id)
    WHERE m.msg_id = ?
    ORDER BY t.path, r.ts
"""

_COUNT: Final = {
    Layer.RAW: "SELECT count(*) FROM raw",
    Layer.PROCESSED: "SELECT count(*) FROM processed",
    Layer.BUSINESS: "SELECT count(*) FROM rollups",
}


def points(
    cur: duckdb.DuckDBPyConnection,
    state: State,
    tag: str,
    span: tuple[int, int],
    limit: int,
    *,
    newest: bool,
    layer: Layer,
) -> list[Point]:
    """Samples of `tag` in [start, end) of the raw or processed layer."""
    tag_id = state.ids.get(tag)
    if tag_id is None or limit <= 0:
        return []
    sql = _POINTS[(_sample_layer(layer), newest)]
    rows = cur.execute(sql, [tag_id, ceil_us(span[0]), ceil_us(span[1]), limit]).fetchall()
    boolean = tag in state.boolean
    found = [point(row, boolean) for row in rows]
    return found[::-1] if newest else found


def buckets(
    cur: duckdb.DuckDBPyConnection,
    state: State,
    tag: str,
    span: tuple[int, int],
    bucket_ns: int,
    layer: Layer,
) -> list[Bucket]:
    """Aggregates per epoch-aligned bucket; the business layer merges rollups."""
    if bucket_ns <= 0:
        raise ValidationFailed("a bucket must be longer than zero", code="bad_bucket")
    width = business_width(bucket_ns) if layer is Layer.BUSINESS else 0
    tag_id = state.ids.get(tag)
    if tag_id is None:
        return []
    params = {
        "b": max(bucket_ns // 1000, 1),
        "tag": tag_id,
        "start": ceil_us(span[0]),
        "end": ceil_us(span[1]),
    }
    if layer is Layer.BUSINESS:
        params["width"] = width
    return [_bucket(row) for row in cur.execute(_BUCKETS[layer], params).fetchall()]


def business_width(bucket_ns: int) -> int:
    """The widest rollup width that divides the bucket."""
    fitting = [w for w in ROLLUP_WIDTHS_S if bucket_ns % (w * NS_PER_S) == 0]
    if not fitting:
        raise ValidationFailed(
            f"business buckets are whole multiples of {ROLLUP_WIDTHS_S[0]} s "
            f"(merged from rollups), not {bucket_ns / NS_PER_S:g} s",
            code="bad_bucket",
        )
    return fitting[-1]


def last(
    cur: duckdb.DuckDBPyConnection, state: State, tags: list[str], layer: Layer
) -> list[TagLast]:
    """The newest sample of each tag that has one, in the order asked."""
    ids = state.tag_ids(tags)
    if not ids:
        return []
    rows = cur.execute(_LAST[_sample_layer(layer)], [ids]).fetchall()
    by_id = {row[0]: row[1:] for row in rows}
    found = []
    for tag in dict.fromkeys(tags):
        row = by_id.get(state.ids.get(tag, -1))
        if row is not None:
            found.append(TagLast(tag, point(row, tag in state.boolean)))
    return found


def neighbour(
    cur: duckdb.DuckDBPyConnection, state: State, tag: str, ts_ns: int, *, before: bool
) -> Point | None:
    """The processed sample nearest to `ts_ns` strictly before (or after) it."""
    tag_id = state.ids.get(tag)
    row = None if tag_id is None else first_row(cur, _NEWEST, [tag_id])
    if tag_id is None or row is None:
        return None
    newest = int(row[0])
    if before:  # from the newest sample down when asked about a later time
        origin = min(ceil_us(ts_ns), newest + 1)
    elif (origin := ts_ns // 1000) >= newest:
        return None
    for span in (*_NEIGHBOUR_SPANS_US, None):
        far = (0 if before else newest) if span is None else _far(origin, span, before)
        found = first_row(cur, _NEIGHBOUR[before], [tag_id, origin, far])
        if found is not None:
            return point(found, tag in state.boolean)
    return None


def _far(origin: int, span: int, before: bool) -> int:
    return origin - span if before else origin + span


def message_points(cur: duckdb.DuckDBPyConnection, state: State, msg_id: int) -> list[TagLast]:
    """The raw samples one message brought, by tag then time."""
    rows = cur.execute(_MESSAGE_POINTS, [msg_id]).fetchall()
    return [TagLast(row[0], point(row[1:], row[0] in state.boolean)) for row in rows]


def recent_message_ids(cur: duckdb.DuckDBPyConnection, since_ingest_ns: int) -> set[int]:
    """Ids of messages ingested at or after the given time."""
    sql = "SELECT DISTINCT msg_id FROM messages WHERE ingest_ts >= make_timestamp(?)"
    return {row[0] for row in cur.execute(sql, [since_ingest_ns // 1000]).fetchall()}


def count(cur: duckdb.DuckDBPyConnection, layer: Layer) -> int:
    """Stored samples of a layer (rollup rows for the business layer)."""
    return scalar(cur, _COUNT[layer], [])


def _sample_layer(layer: Layer) -> Layer:
    if layer is Layer.BUSINESS:
        raise ValidationFailed(
            "the business layer holds rollups: ask for buckets", code="bucket_required"
        )
    return layer


def point(row: tuple[Any, ...], boolean: bool) -> Point:
    """A point from (ts_us, ingest_us, value, text, quality, msg_id, flags)."""
    ts_us, ingest_us, value, text, quality, msg_id, flags = row
    typed = text if text is not None else bool(value) if boolean and value is not None else value
    return Point(ts_us * 1000, ingest_us * 1000, typed, quality, msg_id, flags)


def _bucket(row: tuple[Any, ...]) -> Bucket:
    start_us, count_, low, high, mean, first, last_ = row
    return Bucket(start_us * 1000, count_, low, high, mean, first, last_)
