"""Business-layer rollups on PostgreSQL: recompute buckets, merge them into query buckets.

Width 60 is computed from processed samples; each wider width from the rollups of the
next narrower width in its bucket. First and last values come from the minimum and
maximum of (time, value) arrays, which PostgreSQL compares element by element.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import psycopg

from werk.core.errors import ValidationFailed
from werk.historian.layers import ROLLUP_WIDTHS_S, Rollup, RollupKey
from werk.historian.models import Bucket
from werk.historian.postgres_pool import stamp
from werk.historian.postgres_schema import statement

_NAN: Final = float("nan")
# Samples of bad quality (2) are left out of the aggregates and counted apart.
_FROM_PROCESSED: Final = """
    SELECT count(*) FILTER (WHERE p.quality <> 2) AS count,
        min(p.value) FILTER (WHERE p.quality <> 2) AS min,
        max(p.value) FILTER (WHERE p.quality <> 2) AS max,
        coalesce(sum(p.value) FILTER (WHERE p.quality <> 2), 0) AS sum,
        (min(ARRAY[extract(epoch FROM p.ts)::float8, p.value])
            FILTER (WHERE p.quality <> 2))[2] AS first,
        (max(ARRAY[extract(epoch FROM p.ts)::float8, p.value])
            FILTER (WHERE p.quality <> 2))[2] AS last,
        min(p.ts) FILTER (WHERE p.quality <> 2) AS first_ts,
        max(p.ts) FILTER (WHERE p.quality <> 2) AS last_ts,
        count(*) FILTER (WHERE p.quality <> 2 AND p.flags <> 0) AS flagged,
        count(*) FILTER (WHERE p.quality = 2) AS bad
    FROM {s}.processed p
    WHERE p.tag_id = k.tag_id AND p.value IS NOT NULL
        AND p.ts >= k.start AND p.ts < k.start + %(width)s * interval '1 second'
"""
_FROM_NARROWER: Final = """
    SELECT coalesce(sum(r.count), 0) AS count,
        min(r.min) AS min, max(r.max) AS max, coalesce(sum(r.sum), 0) AS sum,
        (min(ARRAY[extract(epoch FROM r.first_ts)::float8, r.first])
            FILTER (WHERE r.count > 0))[2] AS first,
        (max(ARRAY[extract(epoch FROM r.last_ts)::float8, r.last])
            FILTER (WHERE r.count > 0))[2] AS last,
        min(r.first_ts) AS first_ts, max(r.last_ts) AS last_ts,
        coalesce(sum(r.flagged), 0) AS flagged, coalesce(sum(r.bad), 0) AS bad
    FROM {s}.rollups r
    WHERE r.tag_id = k.tag_id AND r.width_s = %(narrower)s
        AND r.start >= k.start AND r.start < k.start + %(width)s * interval '1 second'
"""
_RECOMPUTE: Final = """
    WITH k AS (
        SELECT * FROM unnest(%(tag_ids)s::integer[], %(starts)s::timestamptz[]) AS k(tag_id, start)
    ), a AS (
        SELECT k.tag_id, k.start, s.* FROM k CROSS JOIN LATERAL ({source}) s
    ), gone AS (
        DELETE FROM {s}.rollups r USING a
        WHERE r.tag_id = a.tag_id AND r.width_s = %(width)s AND r.start = a.start
            AND a.count = 0 AND a.bad = 0
    )
    INSERT INTO {s}.rollups
    SELECT tag_id, %(width)s, start, count, min, max, sum, first, last, first_ts, last_ts,
        flagged, bad
    FROM a WHERE a.count > 0 OR a.bad > 0
    ON CONFLICT (tag_id, width_s, start) DO UPDATE SET
        count = EXCLUDED.count, min = EXCLUDED.min, max = EXCLUDED.max, sum = EXCLUDED.sum,
        first = EXCLUDED.first, last = EXCLUDED.last, first_ts = EXCLUDED.first_ts,
        last_ts = EXCLUDED.last_ts, flagged = EXCLUDED.flagged, bad = EXCLUDED.bad
"""
_ROLLUPS: Final = """
    SELECT {columns} FROM {s}.rollups
    WHERE tag_id = %s AND width_s = %s AND start >= %s AND start < %s ORDER BY start
"""
_COLUMNS: Final = "start, count, min, max, sum, first, last, first_ts, last_ts, flagged, bad"
_MERGED: Final = """
    SELECT b, sum(count), min(min), max(max), sum(sum) / sum(count),
        (min(ARRAY[extract(epoch FROM first_ts)::float8, first]))[2],
        (max(ARRAY[extract(epoch FROM last_ts)::float8, last]))[2]
    FROM (
        SELECT us - ((us %% %(b)s) + %(b)s) %% %(b)s AS b, * FROM (
            SELECT (extract(epoch FROM start) * 1000000)::int8 AS us, *
            FROM {s}.rollups
            WHERE tag_id = %(tag_id)s AND width_s = %(width)s AND count > 0
                AND start >= %(start)s AND start < %(end)s
        ) r
    ) x
    GROUP BY b ORDER BY b
"""


def check(keys: Sequence[RollupKey]) -> None:
    """Refuse keys of an unknown width or not on a bucket boundary."""
    for key in keys:
        _check(key)


def recompute(cur: psycopg.Cursor[Any], keys: Sequence[RollupKey], ids: Mapping[str, int]) -> None:
    """Recompute the given rollups, narrowest width first; empty buckets lose their row."""
    by_width: dict[int, set[tuple[int, int]]] = {}
    check(keys)
    for key in keys:
        if key.tag in ids:
            by_width.setdefault(key.width_s, set()).add((ids[key.tag], key.start_ns // 1000))
    for width in sorted(by_width):
        tag_ids, starts = zip(*sorted(by_width[width]), strict=True)
        params = {
            "tag_ids": list(tag_ids),
            "starts": [stamp(us) for us in starts],
            "width": width,
            "narrower": _narrower(width),
        }
        source = _FROM_PROCESSED if width == ROLLUP_WIDTHS_S[0] else _FROM_NARROWER
        cur.execute(statement(_RECOMPUTE, source=statement(source)), params)


def _check(key: RollupKey) -> None:
    if key.width_s not in ROLLUP_WIDTHS_S:
        raise ValidationFailed(
            f"rollup width {key.width_s} s is not one of {ROLLUP_WIDTHS_S}",
            code="bad_rollup_width",
        )
    if key.start_ns % (key.width_s * 1_000_000_000):
        raise ValidationFailed(
            f"rollup of {key.tag} starts at {key.start_ns} ns, not on a {key.width_s} s boundary",
            code="bad_rollup_start",
        )


def _narrower(width: int) -> int:
    index = ROLLUP_WIDTHS_S.index(width)
    return ROLLUP_WIDTHS_S[index - 1] if index else width


def rollups(
    cur: psycopg.Cursor[Any], tag: str, tag_id: int, width: int, span: tuple[int, int]
) -> list[Rollup]:
    """Stored rollups of one tag and width whose bucket starts in [start, end)."""
    cur.execute(
        statement(_ROLLUPS, columns=_COLUMNS),
        [tag_id, width, stamp(span[0]), stamp(span[1])],
    )
    return [_rollup(tag, width, row) for row in cur.fetchall()]


def _rollup(tag: str, width: int, row: tuple[Any, ...]) -> Rollup:
    """A stored rollup; a bucket of bad samples only has NaN aggregates."""
    start, count, low, high, total, first, last, first_ts, last_ts, flagged, bad = row
    first_ts, last_ts = (start if t is None else t for t in (first_ts, last_ts))
    low, high, first, last = (_NAN if v is None else v for v in (low, high, first, last))
    return Rollup(
        tag, width, start * 1000, count, low, high, total, first, last,
        first_ts * 1000, last_ts * 1000, flagged, bad,
    )  # fmt: skip


def width_for(bucket_ns: int) -> int:
    """The widest rollup width dividing `bucket_ns`; a bucket must be whole minutes."""
    for width in reversed(ROLLUP_WIDTHS_S):
        if bucket_ns > 0 and bucket_ns % (width * 1_000_000_000) == 0:
            return width
    raise ValidationFailed(
        f"business buckets are whole minutes; {bucket_ns} ns is not", code="bad_bucket"
    )


def merged(
    cur: psycopg.Cursor[Any], tag_id: int, span: tuple[int, int], bucket_ns: int
) -> list[Bucket]:
    """Query buckets merged from the widest rollups that divide them."""
    params = {
        "tag_id": tag_id,
        "width": width_for(bucket_ns),
        "b": bucket_ns // 1000,
        "start": stamp(span[0]),
        "end": stamp(span[1]),
    }
    cur.execute(statement(_MERGED), params)
    return [
        Bucket(b * 1000, int(n), low, high, mean, first, last)
        for b, n, low, high, mean, first, last in cur.fetchall()
    ]
