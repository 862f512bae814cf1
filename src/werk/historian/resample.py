"""Resampling stored samples onto a regular, epoch-aligned time grid."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from werk.core.errors import ValidationFailed
from werk.historian.models import Point

Method = Literal["step", "linear"]
GridValue = tuple[int, float | None]

_BAD_QUALITY: Final = 2
MAX_GRID: Final = 10_000_000

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def resample(
    points: Sequence[Point],
    start_ns: int,
    end_ns: int,
    interval_ns: int,
    method: Method,
    *,
    before: Point | None = None,
    after: Point | None = None,
) -> list[GridValue]:
    """Values at every multiple of `interval_ns` in [start, end).

    ``step`` takes the last value at or before each grid time (None before any data);
    ``linear`` interpolates between the samples around it (None where one is missing).
    `before` and `after` are the samples just outside the range. Samples of bad quality
    and values that are not finite are left out; text values cannot be resampled.
    """
    if interval_ns <= 0:
        raise ValidationFailed(
            f"the interval must be positive, got {interval_ns} ns", code="bad_interval"
        )
    if method not in ("step", "linear"):
        raise ValidationFailed(
            f"fill {method!r} is neither 'step' nor 'linear'", code="bad_fill", fill=method
        )
    first = -(-start_ns // interval_ns) * interval_ns
    if (end_ns - first) // interval_ns > MAX_GRID:
        raise ValidationFailed(
            f"the grid would hold more than {MAX_GRID} values; use a larger interval",
            code="too_many_steps",
        )
    grid = np.arange(first, end_ns, interval_ns, dtype=np.int64)
    ts, values = _usable(_around(points, before, after))
    if method == "step":
        result, known = _step(ts, values, grid)
    else:
        result, known = _linear(ts, values, grid)
    filled = (v if k else None for v, k in zip(result.tolist(), known.tolist(), strict=True))
    return list(zip(grid.tolist(), filled, strict=True))


def _around(points: Sequence[Point], before: Point | None, after: Point | None) -> list[Point]:
    ordered = list(points)
    if before is not None:
        ordered.insert(0, before)
    if after is not None:
        ordered.append(after)
    return ordered


def _usable(points: Iterable[Point]) -> tuple[IntArray, FloatArray]:
    """Times and values of the samples that count, sorted by time (stable)."""
    stamps: list[int] = []
    values: list[float] = []
    for point in points:
        value = point.value
        if isinstance(value, str):
            raise ValidationFailed(
                "text values cannot be resampled; query the samples instead", code="not_numeric"
            )
        if value is None or point.quality == _BAD_QUALITY or not math.isfinite(value):
            continue
        stamps.append(point.ts_ns)
        values.append(float(value))
    ts = np.asarray(stamps, dtype=np.int64)
    order = np.argsort(ts, kind="stable")
    return ts[order], np.asarray(values, dtype=np.float64)[order]


def _step(ts: IntArray, values: FloatArray, grid: IntArray) -> tuple[FloatArray, BoolArray]:
    left = np.searchsorted(ts, grid, side="right") - 1
    known = left >= 0
    return np.where(known, values[np.maximum(left, 0)] if len(ts) else 0.0, 0.0), known


def _linear(ts: IntArray, values: FloatArray, grid: IntArray) -> tuple[FloatArray, BoolArray]:
    if not len(ts):
        return np.zeros(len(grid)), np.zeros(len(grid), dtype=np.bool_)
    left = np.searchsorted(ts, grid, side="right") - 1
    right = np.searchsorted(ts, grid, side="left")
    has_left = left >= 0
    lo, hi = np.maximum(left, 0), np.minimum(right, len(ts) - 1)
    exact = has_left & (ts[lo] == grid)
    known = exact | (has_left & (right < len(ts)))
    span = np.where(exact | ~known, 1, ts[hi] - ts[lo]).astype(np.float64)
    share = (grid - ts[lo]).astype(np.float64) / span
    interpolated = values[lo] + (values[hi] - values[lo]) * share
    return np.where(exact, values[lo], interpolated), known
