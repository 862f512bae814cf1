"""The flatline rule over the samples of many tags at once, with array operations only.

A sample is flat when the samples of the last `flatline_s` before it, and the one just
before that span, all lie within ``±tolerance`` of one value (max - min <= 2 tolerance).
Each tag carries the few earlier samples that later windows can still reach: those of
the last `flatline_s` that agree with the newest within the band. A run of equal values
shrinks to its first sample, which a window reaches first and whose value stands for
the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from werk.historian.quality_kernels import BoolArray, FloatArray, IntArray, Series, ns

Tails = dict[int, tuple[tuple[int, ...], tuple[float, ...]]]

_SAMPLE_STEPS: Final = 100_000
_MATRIX_SLACK: Final = 65_536


@dataclass(frozen=True, slots=True)
class Carried:
    """The carried samples of every group, concatenated; group g is [bounds[g], bounds[g+1])."""

    ts: IntArray
    values: FloatArray
    bounds: IntArray

    @classmethod
    def of(cls, tails: list[tuple[tuple[int, ...], tuple[float, ...]]]) -> Carried:
        """Concatenate per-group (times, values)."""
        sizes = np.array([len(t) for t, _ in tails], dtype=np.int64)
        total = int(sizes.sum())
        ts = np.fromiter((x for t, _ in tails for x in t), np.int64, total)
        values = np.fromiter((x for _, v in tails for x in v), np.float64, total)
        return cls(ts, values, np.concatenate(([0], np.cumsum(sizes))))


@dataclass(frozen=True, slots=True)
class _Joined:
    """Carried then new samples of each group, in one array."""

    ts: IntArray
    values: FloatArray
    start: IntArray  # where each group begins
    end: IntArray  # where each group ends (exclusive)
    new_at: IntArray  # where the new samples went, in series order


def flatline(
    limit_s: float, tolerance: float, series: Series, carried: Carried
) -> tuple[BoolArray, Tails]:
    """Flags of the new samples, and what each group that had new samples carries on."""
    limit = max(ns(limit_s), 1)
    joined = _join(series, carried)
    at, start = joined.new_at, joined.start[series.group]
    reach = _last_before(joined.ts, start, at, limit)
    jump = _last_jump(joined.values, tolerance)
    # a window with a step wider than the band in it cannot be flat: no need to measure it
    candidates = np.flatnonzero((reach >= start) & (jump[at] <= reach))
    width = _ranges(joined.values, reach[candidates], at[candidates])
    flat = np.zeros(len(at), dtype=np.bool_)
    flat[candidates[width <= 2 * tolerance]] = True
    groups = np.flatnonzero(np.bincount(series.group, minlength=len(joined.start)))
    tail = _Tail.of(joined, groups, limit, jump)
    return flat, tail.carried(joined, tail.band_starts(joined, tolerance))


def _last_jump(values: FloatArray, tolerance: float) -> IntArray:
    """For each sample, the latest sample at or before it that differs by more than the
    band from the one before it (-1 if none)."""
    wide = np.zeros(len(values), dtype=np.bool_)
    wide[1:] = np.abs(np.diff(values)) > 2 * tolerance
    latest: IntArray = np.maximum.accumulate(np.where(wide, np.arange(len(values)), -1))
    return latest


def _join(series: Series, carried: Carried) -> _Joined:
    groups = len(carried.bounds) - 1
    old = np.diff(carried.bounds)
    new = np.bincount(series.group, minlength=groups)
    end = np.cumsum(old + new)
    start = end - old - new
    old_at = _spread(start, old)
    new_at = _spread(start + old, new)
    size = int(end[-1]) if groups else 0
    ts = np.empty(size, dtype=np.int64)
    values = np.empty(size, dtype=np.float64)
    ts[old_at], values[old_at] = carried.ts, carried.values
    ts[new_at], values[new_at] = series.ts, series.values
    return _Joined(ts, values, start, end, new_at)


def _spread(starts: IntArray, sizes: IntArray) -> IntArray:
    """Positions ``starts[g] + 0 .. sizes[g] - 1`` of every group, concatenated."""
    offsets = np.cumsum(sizes) - sizes
    shift = np.repeat(starts - offsets, sizes)
    spread: IntArray = np.arange(int(sizes.sum()), dtype=np.int64) + shift
    return spread


def _last_before(ts: IntArray, start: IntArray, at: IntArray, back: int) -> IntArray:
    """Per query, the last position in [start, at] with ts < ts[at] - back (start - 1: none).

    A guess from the usual sampling interval settles most queries of regularly sampled
    tags; the rest search back from `at`.
    """
    moment = ts[at] - back
    guess = np.minimum(_typical_steps(ts, back), at - start + 1)
    hit = _found(ts, start, at, moment, guess) & ~_found(ts, start, at, moment, guess - 1)
    before: IntArray = at - guess
    rest = np.flatnonzero(~hit)
    if len(rest):
        before[rest] = _search(ts, start[rest], at[rest], moment[rest])
    return before


def _typical_steps(ts: IntArray, back: int) -> int:
    """How many samples back `back` ns lie if samples come at the usual interval."""
    steps = np.diff(ts[:_SAMPLE_STEPS])
    steps = steps[steps > 0]
    interval = max(float(np.median(steps)), 1.0) if len(steps) else 1.0
    return max(int(back // interval) + 1, 1)


def _found(
    ts: IntArray, start: IntArray, at: IntArray, moment: IntArray, step: IntArray
) -> BoolArray:
    """Whether the sample `step` before `at` is before the moment (or out of the group)."""
    hit: BoolArray = (step > at - start) | (ts[np.maximum(at - step, 0)] < moment)
    return hit


def _search(ts: IntArray, start: IntArray, at: IntArray, moment: IntArray) -> IntArray:
    """Search back from `at` in doubling steps, then halve (touches memory near `at`)."""
    span = at - start + 1
    high = np.ones(len(at), dtype=np.int64)
    while not (done := _found(ts, start, at, moment, high)).all():
        high = np.where(done, high, np.minimum(high * 2, span))
    low = high // 2  # not found at low: it was tried, or it is 0 (ts[at] >= moment)
    while (open_ := high - low > 1).any():
        middle = (low + high) // 2
        hit = _found(ts, start, at, moment, middle)
        high = np.where(open_ & hit, middle, high)
        low = np.where(open_ & ~hit, middle, low)
    before: IntArray = at - high
    return before


def _ranges(values: FloatArray, low: IntArray, high: IntArray) -> FloatArray:
    """max - min of values[low..high] for every pair, one sparse-table level at a time."""
    width = np.empty(len(low), dtype=np.float64)
    length = high - low + 1
    top, bottom = values, values
    lv = 0
    while len(low) and (1 << lv) <= int(length.max()):
        if lv:
            half = 1 << (lv - 1)
            top = np.maximum(top[:-half], top[half:])
            bottom = np.minimum(bottom[:-half], bottom[half:])
        chosen = np.flatnonzero((length >= 1 << lv) & (length < 2 << lv))
        a, b = low[chosen], high[chosen] - (1 << lv) + 1
        width[chosen] = np.maximum(top[a], top[b]) - np.minimum(bottom[a], bottom[b])
        lv += 1
    return width


@dataclass(frozen=True, slots=True)
class _Tail:
    """Per group, the samples later windows can reach: from `first` to `last`."""

    groups: IntArray
    first: IntArray
    last: IntArray

    @classmethod
    def of(cls, joined: _Joined, groups: IntArray, limit: int, jump: IntArray) -> _Tail:
        """Tails from the last sample `limit` before the newest, or the last wide step."""
        start, last = joined.start[groups], joined.end[groups] - 1
        reach = _last_before(joined.ts, start, last, limit - 1)  # ts <= newest - limit
        return cls(groups, np.maximum(np.maximum(reach, start), jump[last]), last)

    def band_starts(self, joined: _Joined, tolerance: float) -> IntArray:
        """Per group, where the samples that lie within the band of the newest begin."""
        sizes = self.last - self.first + 1
        if len(self.groups) * int(sizes.max()) <= 4 * int(sizes.sum()) + _MATRIX_SLACK:
            return self._band_starts_in_rows(joined, sizes, tolerance)
        low = _spread(self.first, sizes)
        banded = _ranges(joined.values, low, np.repeat(self.last, sizes)) <= 2 * tolerance
        owner = np.repeat(np.arange(len(self.groups)), sizes)
        counted: IntArray = self.last + 1 - np.bincount(owner[banded], minlength=len(sizes))
        return counted

    def _band_starts_in_rows(self, joined: _Joined, sizes: IntArray, tolerance: float) -> IntArray:
        """The same with one row per group, right-aligned, and running extremes from the right."""
        rows, width = len(sizes), int(sizes.max())
        column = width - sizes
        at_row = np.repeat(np.arange(rows), sizes)
        at_column = _spread(column, sizes)
        values = joined.values[_spread(self.first, sizes)]
        top = np.full((rows, width), -np.inf)
        bottom = np.full((rows, width), np.inf)
        top[at_row, at_column] = values
        bottom[at_row, at_column] = values
        highest = np.maximum.accumulate(top[:, ::-1], axis=1)[:, ::-1]
        lowest = np.minimum.accumulate(bottom[:, ::-1], axis=1)[:, ::-1]
        real = np.arange(width)[None, :] >= column[:, None]
        banded = real & (highest - lowest <= 2 * tolerance)
        counted: IntArray = self.last + 1 - banded.sum(axis=1)
        return counted

    def carried(self, joined: _Joined, band_start: IntArray) -> Tails:
        """Keep the samples within the band of the newest, each run of equal values once.

        A window that would reach an older sample is not flat either way: finding no
        sample far enough back says the same.
        """
        first = np.maximum(self.first, band_start)
        sizes = self.last - first + 1
        at = _spread(first, sizes)
        values = joined.values[at]
        kept = np.ones(len(values), dtype=np.bool_)
        kept[1:] = values[1:] != values[:-1]
        kept[np.cumsum(sizes) - sizes] = True
        owner = np.repeat(np.arange(len(sizes)), sizes)[kept]
        ends = np.cumsum(np.bincount(owner, minlength=len(sizes)))
        bounds = np.concatenate(([0], ends)).tolist()
        stamps, numbers = joined.ts[at][kept].tolist(), values[kept].tolist()
        return {
            g: (tuple(stamps[bounds[i] : bounds[i + 1]]), tuple(numbers[bounds[i] : bounds[i + 1]]))
            for i, g in enumerate(self.groups.tolist())
        }
