"""Queries of the PostgreSQL historian: samples, neighbours, batches, KPIs and records.

Each function runs in the caller's transaction and returns plain rows or werk values;
timestamps come back as Unix microseconds (see `postgres_pool.MicrosLoader`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

import psycopg

from werk.core.errors import ValidationFailed
from werk.historian.layers import Kpi, Layer, LineageRef, Record
from werk.historian.models import Bucket, Point, RawColumns
from werk.historian.postgres_pool import stamp
from werk.historian.postgres_schema import statement

Span = tuple[int, int]  # [start, end) in Unix microseconds

_POINT: Final = {
    "raw": "r.ts, r.ingest_ts, r.value, r.text, r.quality, r.msg_id, 0",
    "processed": "r.ts, r.ingest_ts, r.value, r.text, r.quality, r.msg_id, r.flags",
}
# Raw samples of one tag and time (from different messages) keep the order they came in.
_ORDER: Final = {
    ("raw", "ASC"): "r.ts ASC, r.batch ASC",
    ("raw", "DESC"): "r.ts DESC, r.batch DESC",
    ("processed", "ASC"): "r.ts ASC",
    ("processed", "DESC"): "r.ts DESC",
}
_POINTS: Final = """
    SELECT {point} FROM {s}.{t} r
    WHERE r.tag_id = %s AND r.ts >= %s AND r.ts < %s ORDER BY {order} LIMIT %s
"""
_BUCKETS: Final = """
    SELECT b, count(*), min(value), max(value), avg(value),
        (min(ARRAY[us::float8, value]))[2], (max(ARRAY[us::float8, value]))[2]
    FROM (
        SELECT us - ((us %% %(b)s) + %(b)s) %% %(b)s AS b, us, value FROM (
            SELECT (extract(epoch FROM ts) * 1000000)::int8 AS us, value FROM {s}.{t}
            WHERE tag_id = %(tag_id)s AND ts >= %(start)s AND ts < %(end)s
                AND value IS NOT NULL {good}
        ) i
    ) x
    GROUP BY b ORDER BY b
"""
# Range partitions are scanned newest first and the scan stops at the first sample found.
_LAST: Final = """
    SELECT k.tag_id, l.* FROM unnest(%s::integer[]) AS k(tag_id) CROSS JOIN LATERAL (
        SELECT {point} FROM {s}.{t} r WHERE r.tag_id = k.tag_id ORDER BY {order} LIMIT 1
    ) l
"""
_BEFORE: Final = """
    SELECT {point} FROM {s}.processed r
    WHERE r.tag_id = %s AND r.ts < %s ORDER BY r.ts DESC LIMIT 1
"""
_AFTER: Final = """
    SELECT {point} FROM {s}.processed r
    WHERE r.tag_id = %s AND r.ts >= %s ORDER BY r.ts ASC LIMIT 1
"""
_EXISTING: Final = """
    SELECT DISTINCT w.tag_id, w.ts FROM unnest(%s::integer[], %s::timestamptz[]) AS w(tag_id, ts)
    JOIN {s}.raw r ON r.tag_id = w.tag_id AND r.ts = w.ts
    WHERE r.ts >= %s AND r.ts <= %s
"""
_RECENT: Final = """
    WITH b AS (
        SELECT min(batch) AS low, min(min_ts) AS since, max(max_ts) AS until
        FROM {s}.batches WHERE max_ingest >= %(ingest)s
    )
    SELECT DISTINCT r.msg_id FROM {s}.raw r, b
    WHERE r.batch >= b.low AND r.ts >= b.since AND r.ts <= b.until AND r.ingest_ts >= %(ingest)s
"""
_MESSAGE: Final = """
    SELECT t.path, {point} FROM {s}.raw r JOIN {s}.tags t USING (tag_id)
    WHERE r.msg_id = %s ORDER BY t.path COLLATE "C", r.ts, r.batch
"""
# Whole batches after the mark, as many as it takes to reach about `max_rows` rows.
_BATCHES: Final = """
    SELECT max(batch), min(min_ts), max(max_ts) FROM (
        SELECT batch, min_ts, max_ts, sum(rows) OVER (ORDER BY batch) - rows AS before
        FROM {s}.batches WHERE batch > %(after)s AND batch <= %(after)s + %(rows)s
    ) b WHERE before < %(rows)s
"""
_BATCH_ROWS: Final = """
    SELECT t.path, r.ts, r.ingest_ts, r.value, r.text, r.quality, r.msg_id
    FROM {s}.raw r JOIN {s}.tags t USING (tag_id)
    WHERE r.batch > %s AND r.batch <= %s AND r.ts >= %s AND r.ts <= %s
    ORDER BY r.batch, r.ts, r.tag_id
"""
_KPI_UPSERT: Final = """
    INSERT INTO {s}.kpis VALUES (%s, %s, %s, %s, %s, %s::json)
    ON CONFLICT (name, ts) DO UPDATE SET value = EXCLUDED.value, unit = EXCLUDED.unit,
        source = EXCLUDED.source, lineage = EXCLUDED.lineage
"""
_KPIS: Final = """
    SELECT name, ts, value, unit, source, lineage FROM {s}.kpis
    WHERE name = %s AND ts >= %s AND ts < %s ORDER BY ts LIMIT %s
"""
_RECORD_INSERT: Final = """
    INSERT INTO {s}.records VALUES (%s, %s, %s, %s, %s::json, %s, %s)
    ON CONFLICT (dataset, key, ts, msg_id) DO NOTHING
"""
_RECORD_COLUMNS: Final = "dataset, key, ts, ingest_ts, payload, msg_id, source"
_RECORDS: Final = """
    SELECT {columns} FROM {s}.records
    WHERE dataset = %(dataset)s AND ts >= %(start)s AND ts < %(end)s {key}
    ORDER BY ts, key COLLATE "C", ingest_ts, msg_id LIMIT %(limit)s
"""
_LATEST_RECORDS: Final = """
    SELECT {columns} FROM (
        SELECT DISTINCT ON (key) {columns} FROM {s}.records
        WHERE dataset = %(dataset)s AND ts >= %(start)s AND ts < %(end)s {key}
        ORDER BY key, ts DESC, ingest_ts DESC, msg_id DESC
    ) latest
    ORDER BY ts, key COLLATE "C" LIMIT %(limit)s
"""


def point(row: Sequence[Any], boolean: bool) -> Point:
    """A stored sample; booleans of a boolean tag come back as `bool`."""
    ts_us, ingest_us, value, text, quality, msg_id, flags = row
    typed = text if text is not None else bool(value) if boolean and value is not None else value
    return Point(ts_us * 1000, ingest_us * 1000, typed, quality, msg_id, flags)


def points(
    cur: psycopg.Cursor[Any], name: str, tag_id: int, span: Span, limit: int, newest: bool
) -> list[tuple[Any, ...]]:
    """Rows of one tag in a span, oldest first, the newest `limit` ones with `newest`."""
    order = _ORDER[name, "DESC" if newest else "ASC"]
    query = statement(_POINTS, t=name, point=_POINT[name], order=order)
    cur.execute(query, [tag_id, stamp(span[0]), stamp(span[1]), limit])
    rows = cur.fetchall()
    return rows[::-1] if newest else rows


def buckets(
    cur: psycopg.Cursor[Any], name: str, tag_id: int, span: Span, bucket_us: int
) -> list[Bucket]:
    """Numeric aggregates per epoch-aligned bucket; processed ones leave bad samples out."""
    good = "AND quality <> 2" if name == "processed" else ""
    params = {"b": bucket_us, "tag_id": tag_id, "start": stamp(span[0]), "end": stamp(span[1])}
    cur.execute(statement(_BUCKETS, t=name, good=good), params)
    return [Bucket(b * 1000, n, lo, hi, avg, f, la) for b, n, lo, hi, avg, f, la in cur.fetchall()]


def last(cur: psycopg.Cursor[Any], name: str, tag_ids: list[int]) -> dict[int, tuple[Any, ...]]:
    """The newest row of each tag that has one, by tag id."""
    query = statement(_LAST, t=name, point=_POINT[name], order=_ORDER[name, "DESC"])
    cur.execute(query, [tag_ids])
    return {row[0]: row[1:] for row in cur.fetchall()}


def neighbour(
    cur: psycopg.Cursor[Any], tag_id: int, ts_us: int, before: bool
) -> tuple[Any, ...] | None:
    """The processed row just before `ts_us`, or the first at or after it."""
    query = statement(_BEFORE if before else _AFTER, point=_POINT["processed"])
    cur.execute(query, [tag_id, stamp(ts_us)])
    return cur.fetchone()


def existing(
    cur: psycopg.Cursor[Any], tag_ids: list[int], stamps_us: list[int]
) -> set[tuple[int, int]]:
    """The (tag id, microsecond) pairs among the given ones that have a raw sample."""
    low, high = stamp(min(stamps_us)), stamp(max(stamps_us))
    cur.execute(statement(_EXISTING), [tag_ids, [stamp(us) for us in stamps_us], low, high])
    return {(tag_id, us) for tag_id, us in cur.fetchall()}


def recent_message_ids(cur: psycopg.Cursor[Any], since_us: int) -> set[int]:
    """Ids of messages ingested at or after `since_us`."""
    cur.execute(statement(_RECENT), {"ingest": stamp(since_us)})
    return {row[0] for row in cur.fetchall()}


def message_points(cur: psycopg.Cursor[Any], msg_id: int) -> list[tuple[Any, ...]]:
    """Rows of one message: tag path then the point columns."""
    cur.execute(statement(_MESSAGE, point=_POINT["raw"]), [msg_id])
    return cur.fetchall()


def raw_after(cur: psycopg.Cursor[Any], batch: int, max_rows: int) -> tuple[int, RawColumns]:
    """Rows of whole batches after `batch` (about `max_rows`) and the newest batch read."""
    cur.execute(statement(_BATCHES), {"after": batch, "rows": max(max_rows, 1)})
    through, low, high = cur.fetchone() or (None, None, None)
    rows = RawColumns()
    if through is None or low is None or high is None:
        return batch, rows
    cur.execute(statement(_BATCH_ROWS), [batch, through, stamp(low), stamp(high)])
    for path, ts, ingest, value, text, quality, msg_id in cur.fetchall():
        rows.tag.append(path)
        rows.ts_ns.append(ts * 1000)
        rows.ingest_ns.append(ingest * 1000)
        rows.value.append(value)
        rows.text.append(text)
        rows.quality.append(quality)
        rows.msg_id.append(msg_id)
    return int(through), rows


def write_kpis(cur: psycopg.Cursor[Any], kpis: Sequence[Kpi]) -> None:
    """Upsert KPI values."""
    cur.executemany(
        statement(_KPI_UPSERT),
        [
            (k.name, stamp(k.ts_ns // 1000), k.value, k.unit, k.source, lineage_json(k))
            for k in kpis
        ],
    )


def lineage_json(kpi: Kpi) -> str:
    """The lineage of a KPI as the JSON list of the exchange schema (compact form)."""
    items = [
        {"layer": ref.layer.value, "tag": ref.tag, "start_ns": ref.start_ns, "end_ns": ref.end_ns}
        for ref in kpi.lineage
    ]
    return json.dumps(items, separators=(",", ":"))


def kpis(cur: psycopg.Cursor[Any], name: str, span: Span, limit: int) -> list[Kpi]:
    """Values of one KPI in a span, oldest first."""
    cur.execute(statement(_KPIS), [name, stamp(span[0]), stamp(span[1]), limit])
    return [
        Kpi(name, ts * 1000, value, unit, source, lineage_refs(lineage))
        for name, ts, value, unit, source, lineage in cur.fetchall()
    ]


def lineage_refs(items: list[dict[str, Any]]) -> tuple[LineageRef, ...]:
    """Lineage objects back as references."""
    return tuple(
        LineageRef(Layer(i["layer"]), i["tag"], int(i["start_ns"]), int(i["end_ns"])) for i in items
    )


def write_records(cur: psycopg.Cursor[Any], records: Sequence[Record]) -> int:
    """Insert records not stored yet; return how many were added."""
    cur.executemany(
        statement(_RECORD_INSERT),
        [
            (r.dataset, r.key, stamp(r.ts_ns // 1000), stamp(r.ingest_ns // 1000),
             payload_json(r.payload), r.msg_id, r.source)
            for r in records
        ],
    )  # fmt: skip
    return max(cur.rowcount, 0)


def payload_json(payload: Any) -> str:
    """A record payload as compact JSON; NaN, infinity and non-JSON values are refused."""
    try:
        return json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(
            f"a record payload is not storable as JSON: {exc}", code="bad_payload"
        ) from exc


def records(
    cur: psycopg.Cursor[Any], dataset: str, span: Span, limit: int, key: str | None, latest: bool
) -> list[Record]:
    """Records of a dataset in a span, oldest first; with `latest` the newest per key."""
    template = _LATEST_RECORDS if latest else _RECORDS
    only_key = "AND key = %(key)s" if key is not None else ""
    params = {
        "dataset": dataset, "start": stamp(span[0]), "end": stamp(span[1]),
        "key": key, "limit": limit,
    }  # fmt: skip
    cur.execute(statement(template, columns=_RECORD_COLUMNS, key=only_key), params)
    return [
        Record(ds, k, ts * 1000, ingest * 1000, payload, msg_id, source)
        for ds, k, ts, ingest, payload, msg_id, source in cur.fetchall()
    ]
