"""Use cases of the historian: history queries over the raw layer."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Final

from werk.core.clock import NS_PER_S, from_datetime, now_ns, to_datetime
from werk.core.errors import NotFound, ValidationFailed
from werk.historian.models import Bucket, Point
from werk.historian.schemas import BucketRead, HistoryRead, PointRead
from werk.historian.store import RawStore

_QUALITY: Final = ("good", "uncertain", "bad", "stale")
_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)\Z")
_UNIT_S: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_BUCKETS: Final = 100_000


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``500ms``, ``10s``, ``5m``, ``1h``, ``7d``."""
    match = _DURATION.match(text.strip())
    if match is None or float(match.group(1)) <= 0:
        raise ValidationFailed(
            f"duration {text!r} is not a positive number followed by ms, s, m, h or d",
            code="bad_duration",
        )
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def time_range(start: datetime | None, end: datetime | None, default: timedelta) -> tuple[int, int]:
    """Nanosecond bounds; `end` defaults to now and `start` to `end - default`."""
    end_ns = now_ns() if end is None else from_datetime(end)
    start_ns = (
        end_ns - int(default.total_seconds() * NS_PER_S) if start is None else from_datetime(start)
    )
    if start_ns >= end_ns:
        raise ValidationFailed("start must be before end", code="bad_range")
    return start_ns, end_ns


def history(
    *,
    store: RawStore,
    tag: str,
    start_ns: int,
    end_ns: int,
    bucket_s: float | None,
    limit: int,
    newest: bool = False,
) -> HistoryRead:
    """Raw points (no bucket) or bucketed aggregates of one tag."""
    if not store.knows(tag):
        raise NotFound(f"the historian has no samples of {tag!r}", tag=tag)
    result = HistoryRead(tag=tag, start=to_datetime(start_ns), end=to_datetime(end_ns))
    if bucket_s is None:
        points = store.points(tag, start_ns, end_ns, limit + 1, newest=newest)
        kept = points[1:] if newest and len(points) > limit else points[:limit]
        result.points = [point_read(p) for p in kept]
        result.truncated = len(points) > limit
        return result
    if (end_ns - start_ns) / (bucket_s * NS_PER_S) > MAX_BUCKETS:
        raise ValidationFailed(
            f"the range holds more than {MAX_BUCKETS} buckets of {bucket_s:g} s; "
            "use a larger bucket",
            code="too_many_buckets",
        )
    result.bucket_s = bucket_s
    buckets = store.buckets(tag, start_ns, end_ns, int(bucket_s * NS_PER_S))
    result.buckets = [bucket_read(b) for b in buckets]
    return result


def point_read(point: Point) -> PointRead:
    """The API view of a stored sample."""
    return PointRead(
        ts=to_datetime(point.ts_ns),
        ingest_ts=to_datetime(point.ingest_ns),
        value=point.value,
        quality=_QUALITY[point.quality],
        message_id=f"{point.msg_id:016x}",
    )


def bucket_read(bucket: Bucket) -> BucketRead:
    """The API view of a bucket."""
    return BucketRead(
        start=to_datetime(bucket.start_ns),
        count=bucket.count,
        min=bucket.min,
        max=bucket.max,
        avg=bucket.avg,
        first=bucket.first,
        last=bucket.last,
    )
