"""Time in one representation: integer nanoseconds since the Unix epoch, UTC."""

from __future__ import annotations

import time
from datetime import UTC, datetime

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


def now_ns() -> int:
    """Return the current wall-clock time in epoch nanoseconds."""
    return time.time_ns()


def to_datetime(ns: int) -> datetime:
    """Turn epoch nanoseconds into an aware UTC datetime (microsecond precision)."""
    return datetime.fromtimestamp(ns / NS_PER_S, tz=UTC)


def from_datetime(moment: datetime) -> int:
    """Turn a datetime (naive means UTC) into epoch nanoseconds."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000) * 1000


def iso(ns: int) -> str:
    """Format epoch nanoseconds as ISO 8601 with millisecond precision and a Z."""
    return to_datetime(ns).isoformat(timespec="milliseconds").replace("+00:00", "Z")
