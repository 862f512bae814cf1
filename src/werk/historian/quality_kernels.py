"""The quality rules as array operations over the samples of many tags at once.

Samples come as one array of groups (one group per tag, each sorted by time), with the
state of each group's tag as arrays indexed by group. A value that does not exist (no
previous sample yet) is NaN, so comparisons with it are false and flag nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
_A = TypeVar("_A", IntArray, FloatArray)

_NS_PER_S: Final = 1_000_000_000


def ns(seconds: float) -> int:
    """Seconds as whole nanoseconds."""
    return round(seconds * _NS_PER_S)


@dataclass(frozen=True, slots=True)
class Before:
    """What each group's tag remembers, as arrays indexed by group."""

    last_ts: IntArray  # newest sample (valid where has_last)
    has_last: BoolArray
    prev_ts: IntArray  # newest finite sample (valid where prev_value is not NaN)
    prev_value: FloatArray
    prev2_value: FloatArray


@dataclass(frozen=True, slots=True)
class Series:
    """Samples of one or more groups: times, values, and where each group begins."""

    ts: IntArray
    values: FloatArray
    group: IntArray  # group of each sample
    first: BoolArray  # the first sample of its group

    @classmethod
    def of(cls, ts: IntArray, values: FloatArray, group: IntArray) -> Series:
        """Samples whose group numbers are sorted."""
        first = np.ones(len(ts), dtype=np.bool_)
        first[1:] = group[1:] != group[:-1]
        return cls(ts, values, group, first)

    @property
    def last(self) -> BoolArray:
        """The last sample of its group."""
        last = np.ones(len(self.ts), dtype=np.bool_)
        last[:-1] = self.first[1:]
        return last


def _previous(array: _A, series: Series, carried: _A) -> _A:
    """The value of the sample before each one; a group's first takes its carried value."""
    before = np.empty_like(array)
    before[1:] = array[:-1]
    before[series.first] = carried[series.group[series.first]]
    return before


def gap(stale_s: float, series: Series, state: Before) -> BoolArray:
    """Samples that came longer than `stale_s` after the sample before them (any value)."""
    carried = np.where(state.has_last, state.last_ts, 0)
    before = _previous(series.ts, series, carried)
    known = np.ones(len(series.ts), dtype=np.bool_)
    known[series.first] = state.has_last[series.group[series.first]]
    return known & (series.ts - before > ns(stale_s))


def out_of_range(low: float | None, high: float | None, values: FloatArray) -> BoolArray:
    """Values below `low` or above `high`."""
    outside = np.zeros(len(values), dtype=np.bool_)
    if low is not None:
        outside |= values < low
    if high is not None:
        outside |= values > high
    return outside


def too_fast(max_rate: float, series: Series, state: Before) -> BoolArray:
    """Finite samples that changed faster than `max_rate` per second since the one before."""
    known = ~np.isnan(state.prev_value)
    carried_ts = np.where(known, state.prev_ts, 0)
    before_ts = _previous(series.ts, series, carried_ts)
    before = _previous(series.values, series, state.prev_value)
    return np.abs(series.values - before) > (series.ts - before_ts) * (max_rate / _NS_PER_S)


def spikes(threshold: float, series: Series, state: Before) -> tuple[BoolArray, BoolArray]:
    """Lone jumps among finite samples, and per group whether the carried previous was one.

    A group's last sample has no next neighbour yet; the next batch decides it.
    """
    values = series.values
    before = _previous(values, series, state.prev_value)
    after = np.full(len(values), np.nan)
    after[:-1] = values[1:]
    after[series.last] = np.nan
    lone = _lone(before, values, after, threshold)
    next_of_carried = np.full(len(state.prev_value), np.nan)
    next_of_carried[series.group[series.first]] = values[series.first]
    carried = _lone(state.prev2_value, state.prev_value, next_of_carried, threshold)
    return lone, carried


def _lone(before: FloatArray, value: FloatArray, after: FloatArray, threshold: float) -> BoolArray:
    return (
        (np.abs(value - before) > threshold)
        & (np.abs(value - after) > threshold)
        & (np.abs(after - before) <= threshold)
    )
