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
    run_start: IntArray  # flat run (valid where has_run)
    has_run: BoolArray
    run_value: FloatArray


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


def flatline(
    limit_s: float, tolerance: float, series: Series, state: Before
) -> tuple[BoolArray, IntArray, FloatArray]:
    """Finite samples that stayed within `tolerance` of their run's first value too long.

    Returns the flags and each sample's run start and run value. A step larger than
    twice the tolerance always begins a new run, so runs are found with array
    operations; only stretches of small steps that drift are walked one by one.
    """
    ts, values, group = series.ts, series.values, series.group
    firsts = np.flatnonzero(series.first)
    carried = group[firsts]
    continues = state.has_run[carried] & (
        np.abs(values[firsts] - state.run_value[carried]) <= tolerance
    )
    breaks = series.first.copy()
    breaks[1:] |= np.abs(np.diff(values)) > 2 * tolerance
    starts = np.flatnonzero(breaks)
    segment = np.cumsum(breaks) - 1
    origin_ts, origin_values = ts[starts], values[starts]
    resumed = segment[firsts[continues]]
    origin_ts[resumed] = state.run_start[carried[continues]]
    origin_values[resumed] = state.run_value[carried[continues]]
    run_ts, run_values = origin_ts[segment], origin_values[segment]
    if tolerance > 0:
        drifted = np.abs(values - run_values) > tolerance
        if drifted.any():
            chosen = _stretches(ns(limit_s), series, starts, origin_ts, segment[drifted])
            origins = (origin_ts, origin_values)
            _walk(chosen, starts, series, origins, tolerance, run_ts, run_values)
    return ts - run_ts > ns(limit_s), run_ts, run_values


def _stretches(
    limit_ns: int, series: Series, starts: IntArray, origin_ts: IntArray, drifting: IntArray
) -> IntArray:
    """Segments to walk: drifting ones that could last too long or end their group."""
    chosen = np.unique(drifting)
    ends = np.append(starts[1:], len(series.ts))[chosen]
    long_enough = series.ts[ends - 1] - origin_ts[chosen] > limit_ns
    walked: IntArray = chosen[long_enough | series.last[ends - 1]]
    return walked


def _walk(
    chosen: IntArray,
    starts: IntArray,
    series: Series,
    origins: tuple[IntArray, FloatArray],
    tolerance: float,
    run_ts: IntArray,
    run_values: FloatArray,
) -> None:
    """Find the runs of the chosen segments sample by sample (in place)."""
    begins = starts[chosen]
    lengths = np.append(starts[1:], len(series.ts))[chosen] - begins
    offsets = np.cumsum(lengths) - lengths
    index = np.arange(int(lengths.sum())) + np.repeat(begins - offsets, lengths)
    ts, values = series.ts[index].tolist(), series.values[index].tolist()
    found_ts: list[int] = []
    found_values: list[float] = []
    pieces = zip(origins[0][chosen].tolist(), origins[1][chosen].tolist(),
                 offsets.tolist(), lengths.tolist(), strict=True)  # fmt: skip
    for start, reference, offset, length in pieces:
        end = offset + length
        for t, value in zip(ts[offset:end], values[offset:end], strict=True):
            if abs(value - reference) > tolerance:
                start, reference = t, value
            found_ts.append(start)
            found_values.append(reference)
    run_ts[index] = found_ts
    run_values[index] = found_values
