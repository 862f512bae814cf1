"""Use cases of the historian: history queries over the raw layer."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Final

from werk.core.clock import NS_PER_S, from_datetime, now_ns, to_datetime
from werk.core.errors import NotFound, ValidationFailed
from werk.historian.layers import Flag, Layer
from werk.historian.models import Bucket, Point
from werk.historian.schemas import BucketRead, GridRead, HistoryQuery, HistoryRead, PointRead
from werk.historian.store import HistorianStore

_QUALITY: Final = ("good", "uncertain", "bad", "stale")
_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)\Z")
_UNIT_S: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_BUCKETS: Final = 100_000
MAX_GRID_POINTS: Final = 1_000_000


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
    store: HistorianStore,
    query: HistoryQuery,
) -> HistoryRead:
    """Samples, a resampled grid or bucketed aggregates of one tag from one layer."""
    if not store.knows(query.tag):
        raise NotFound(f"the historian has no samples of {query.tag!r}", tag=query.tag)
    result = HistoryRead(
        tag=query.tag,
        layer=query.layer,
        start=to_datetime(query.start_ns),
        end=to_datetime(query.end_ns),
    )
    if query.bucket_s is not None:
        _fill_buckets(store, query, result)
    elif query.layer is Layer.BUSINESS:
        raise ValidationFailed(
            "the business layer holds rollups: give a bucket such as 1m, 1h or 1d",
            code="bucket_required",
        )
    elif query.interval_s is not None:
        _fill_grid(store, query, result)
    else:
        _fill_points(store, query, result)
    return result


def _fill_points(store: HistorianStore, query: HistoryQuery, result: HistoryRead) -> None:
    limit = query.limit
    points = store.points(
        query.tag, query.start_ns, query.end_ns, limit + 1, newest=query.newest, layer=query.layer
    )
    kept = points[1:] if query.newest and len(points) > limit else points[:limit]
    result.points = [point_read(p) for p in kept]
    result.truncated = len(points) > limit


def _fill_buckets(store: HistorianStore, query: HistoryQuery, result: HistoryRead) -> None:
    assert query.bucket_s is not None
    _check_count(query, query.bucket_s)
    result.bucket_s = query.bucket_s
    bucket_ns = int(query.bucket_s * NS_PER_S)
    start_ns = query.start_ns
    if query.layer is Layer.BUSINESS:
        # Rollups are whole buckets: the one the range starts in counts entirely.
        start_ns -= start_ns % bucket_ns
    buckets = store.buckets(query.tag, start_ns, query.end_ns, bucket_ns, layer=query.layer)
    result.buckets = [bucket_read(b) for b in buckets]


def _fill_grid(store: HistorianStore, query: HistoryQuery, result: HistoryRead) -> None:
    assert query.interval_s is not None
    _check_count(query, query.interval_s)
    layer = query.layer
    points = store.points(query.tag, query.start_ns, query.end_ns, MAX_GRID_POINTS + 1, layer=layer)
    if len(points) > MAX_GRID_POINTS:
        raise ValidationFailed(
            f"the range holds more than {MAX_GRID_POINTS} samples to interpolate; "
            "use a shorter range or bucketed aggregates",
            code="range_too_large",
        )
    from werk.historian.resample import resample

    before = _neighbour(store, query, before=True)
    after = _neighbour(store, query, before=False)
    grid = resample(
        points,
        query.start_ns,
        query.end_ns,
        int(query.interval_s * NS_PER_S),
        query.fill,
        before=before,
        after=after,
    )
    result.interval_s = query.interval_s
    result.fill = query.fill
    result.samples = [GridRead(ts=to_datetime(ts), value=value) for ts, value in grid]


def _neighbour(store: HistorianStore, query: HistoryQuery, *, before: bool) -> Point | None:
    """The processed sample just outside the range (the raw layer has no neighbour query)."""
    if query.layer is not Layer.PROCESSED:
        return None
    if before:
        return store.previous(query.tag, query.start_ns)
    return store.next_after(query.tag, query.end_ns - 1)


def _check_count(query: HistoryQuery, step_s: float) -> None:
    if (query.end_ns - query.start_ns) / (step_s * NS_PER_S) > MAX_BUCKETS:
        raise ValidationFailed(
            f"the range holds more than {MAX_BUCKETS} steps of {step_s:g} s; use a larger one",
            code="too_many_buckets",
        )


def point_read(point: Point) -> PointRead:
    """The API view of a stored sample."""
    return PointRead(
        ts=to_datetime(point.ts_ns),
        ingest_ts=to_datetime(point.ingest_ns),
        value=point.value,
        quality=quality_name(point.quality),
        flags=flag_names(point.flags),
        message_id=message_hex(point.msg_id),
    )


def quality_name(code: int) -> str:
    """The name of a quality code."""
    return _QUALITY[code] if 0 <= code < len(_QUALITY) else "bad"


def flag_names(flags: int) -> list[str]:
    """The names of the rule flags set in `flags`, lowest bit first."""
    return [str(f.name).lower() for f in Flag if flags & f]


def message_hex(msg_id: int) -> str:
    """A message id as the API shows it (16 hex digits)."""
    return f"{msg_id & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def parse_message_id(text: str) -> int:
    """A message id from its hex form (as the API shows it)."""
    try:
        value = int(text, 16)
    except ValueError:
        raise ValidationFailed(
            f"message id {text!r} is not hexadecimal", code="bad_message_id"
        ) from None
    if not 0 <= value < 1 << 64:
        raise ValidationFailed(f"message id {text!r} is out of range", code="bad_message_id")
    return value - (1 << 64) if value >= 1 << 63 else value


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
