"""Quality rules evaluated on the samples of tags, vectorised over numpy arrays.

Rules flag samples and lower their quality; they never change or drop a value. A tag's
samples arrive in batches, so evaluation takes and returns a `TagState` per tag that
carries what the rules need from earlier batches. `evaluate_groups` checks the samples
of many tags that share a rule in one pass; `evaluate` is the same for one tag.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from werk.historian import quality_kernels as kernels
from werk.historian.layers import Flag
from werk.historian.quality_kernels import Before, BoolArray, FloatArray, IntArray, Series
from werk.historian.rules import QualityRule

FlagArray = npt.NDArray[np.uint16]
QualityArray = npt.NDArray[np.uint8]

__all__ = [
    "BAD_FLAGS",
    "BoolArray",
    "Evaluation",
    "FlagArray",
    "FloatArray",
    "GroupEvaluation",
    "IntArray",
    "QualityArray",
    "TagState",
    "adjust_quality",
    "evaluate",
    "evaluate_between",
    "evaluate_groups",
    "quality_floor",
    "resume",
]

UNCERTAIN: Final = 1
BAD: Final = 2
BAD_FLAGS: Final = int(Flag.RANGE | Flag.NOT_FINITE)


@dataclass(frozen=True, slots=True)
class TagState:
    """What the rules of one tag remember between batches (timestamps in ns)."""

    last_ts: int | None = None  # newest sample, whatever its value
    prev_ts: int | None = None  # newest finite sample
    prev_value: float = math.nan
    prev2_value: float = math.nan  # the finite sample before it: spikes need two neighbours
    run_start: int | None = None  # when the current flat run began
    run_value: float = math.nan  # the value it began with


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Flags and minimum quality per sample, and the state after the last sample.

    `spiked_previous` says that the state's previous sample (from an earlier batch)
    turned out to be a lone spike: it has to be stored again with `Flag.SPIKE`.
    """

    flags: FlagArray
    floor: QualityArray
    state: TagState
    spiked_previous: bool


@dataclass(frozen=True, slots=True)
class GroupEvaluation:
    """Flags per sample; per group the state after it and whether its previous spiked."""

    flags: FlagArray
    states: list[TagState]
    spiked_previous: BoolArray


def evaluate(
    rule: QualityRule | None, state: TagState, ts_ns: IntArray, values: FloatArray
) -> Evaluation:
    """Check the samples of one tag, sorted by time, against its rule."""
    bounds = np.array([0, len(ts_ns)], dtype=np.int64)
    result = evaluate_groups(rule, [state], ts_ns, values, bounds)
    flags = result.flags
    return Evaluation(flags, quality_floor(flags), result.states[0], bool(result.spiked_previous[0]))


def evaluate_groups(
    rule: QualityRule | None,
    states: Sequence[TagState],
    ts_ns: IntArray,
    values: FloatArray,
    bounds: IntArray,
) -> GroupEvaluation:
    """Check the samples of several tags against one rule in one pass.

    Group g (one tag, sorted by time, state `states[g]`) is ``[bounds[g], bounds[g+1])``.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # huge finite steps overflow to inf
        return _evaluate_groups(rule, states, ts_ns, values, bounds)


def _evaluate_groups(
    rule: QualityRule | None,
    states: Sequence[TagState],
    ts: IntArray,
    values: FloatArray,
    bounds: IntArray,
) -> GroupEvaluation:
    group = np.repeat(np.arange(len(states), dtype=np.int64), np.diff(bounds))
    finite = np.isfinite(values)
    flags = np.where(finite, 0, int(Flag.NOT_FINITE)).astype(np.uint16)
    spiked = np.zeros(len(states), dtype=np.bool_)
    if rule is None or not len(ts):
        return GroupEvaluation(flags, _after(states, None, Series.of(ts, values, group), None), spiked)
    before = _before(states)
    every = bool(finite.all())
    picked = slice(None) if every else np.flatnonzero(finite)
    series = Series.of(ts[picked], values[picked], group[picked])
    if rule.stale_s is not None:
        flags[kernels.gap(rule.stale_s, Series.of(ts, values, group), before)] |= _bit(Flag.GAP)
    runs = None
    if len(series.ts):
        found, spiked, runs = _value_rules(rule, series, before)
        flags[picked] |= found
    return GroupEvaluation(flags, _after(states, rule, series, runs, ts, bounds), spiked)


def _bit(flag: Flag) -> np.uint16:
    return np.uint16(flag)


def _value_rules(
    rule: QualityRule, series: Series, before: Before
) -> tuple[FlagArray, BoolArray, tuple[IntArray, FloatArray] | None]:
    """Flags of the value rules over finite samples, spikes of carried samples, the runs."""
    flags = np.zeros(len(series.ts), dtype=np.uint16)
    if rule.min is not None or rule.max is not None:
        flags[kernels.out_of_range(rule.min, rule.max, series.values)] |= _bit(Flag.RANGE)
    if rule.max_rate is not None:
        flags[kernels.too_fast(rule.max_rate, series, before)] |= _bit(Flag.RATE)
    spiked = np.zeros(len(before.prev_value), dtype=np.bool_)
    if rule.spike is not None:
        lone, spiked = kernels.spikes(rule.spike, series, before)
        flags[lone] |= _bit(Flag.SPIKE)
    runs = None
    if rule.flatline_s is not None:
        tolerance = rule.flatline_tolerance
        flat, run_ts, run_values = kernels.flatline(rule.flatline_s, tolerance, series, before)
        flags[flat] |= _bit(Flag.FLATLINE)
        runs = (run_ts, run_values)
    return flags, spiked, runs


def _before(states: Sequence[TagState]) -> Before:
    """The states as arrays indexed by group."""
    return Before(
        last_ts=np.array([s.last_ts or 0 for s in states], dtype=np.int64),
        has_last=np.array([s.last_ts is not None for s in states], dtype=np.bool_),
        prev_ts=np.array([s.prev_ts or 0 for s in states], dtype=np.int64),
        prev_value=np.array([s.prev_value for s in states], dtype=np.float64),
        prev2_value=np.array([s.prev2_value for s in states], dtype=np.float64),
        run_start=np.array([s.run_start or 0 for s in states], dtype=np.int64),
        has_run=np.array([s.run_start is not None for s in states], dtype=np.bool_),
        run_value=np.array([s.run_value for s in states], dtype=np.float64),
    )


def _after(
    states: Sequence[TagState],
    rule: QualityRule | None,
    series: Series,
    runs: tuple[IntArray, FloatArray] | None,
    ts: IntArray | None = None,
    bounds: IntArray | None = None,
) -> list[TagState]:
    """The state of each group after its samples (`series` holds its finite ones)."""
    after = list(states)
    if ts is None or bounds is None:
        ts, bounds = series.ts, np.searchsorted(series.group, np.arange(len(states) + 1))
    lengths = np.diff(bounds)
    for g, last in zip(np.flatnonzero(lengths).tolist(), (bounds[1:][lengths > 0] - 1).tolist(),
                       strict=True):  # fmt: skip
        after[g] = _replace_last(after[g], int(ts[last]))
    last_at = np.flatnonzero(series.last)
    if not len(last_at):
        return after
    groups = series.group[last_at].tolist()
    prev_ts, prev = series.ts[last_at].tolist(), series.values[last_at].tolist()
    lone = series.first[last_at]
    prev2 = np.where(lone, np.nan, series.values[np.maximum(last_at - 1, 0)]).tolist()
    track = runs is not None and rule is not None and rule.flatline_s is not None
    run_start = runs[0][last_at].tolist() if runs is not None else [None] * len(groups)
    run_value = runs[1][last_at].tolist() if runs is not None else [math.nan] * len(groups)
    rows = zip(groups, prev_ts, prev, prev2, run_start, run_value, strict=True)
    for g, p_ts, p, p2, r_start, r_value in rows:
        old = after[g]
        after[g] = TagState(old.last_ts, p_ts, p, old.prev_value if math.isnan(p2) else p2,
                            r_start if track else None, r_value if track else math.nan)  # fmt: skip
    return after


def _replace_last(state: TagState, last_ts: int) -> TagState:
    return TagState(last_ts, state.prev_ts, state.prev_value, state.prev2_value,
                    state.run_start, state.run_value)  # fmt: skip


def evaluate_between(
    rule: QualityRule | None,
    state: TagState,
    ts_ns: IntArray,
    values: FloatArray,
    after: tuple[int, float] | None,
) -> Evaluation:
    """Check samples that lie between stored ones: `state` is before them, `after` next.

    The flags cover the given samples only; the state is the one after `after`.
    """
    if after is None:
        return evaluate(rule, state, ts_ns, values)
    ts_all = np.append(ts_ns, np.int64(after[0]))
    values_all = np.append(values, after[1])
    result = evaluate(rule, state, ts_all, values_all)
    return Evaluation(result.flags[:-1], result.floor[:-1], result.state, result.spiked_previous)


def resume(
    rule: QualityRule | None, ts_ns: int, value: float, flags: int, before: float | None
) -> TagState:
    """The state after a stored sample (at restart, or before late samples).

    A flat run resumes at that sample, or as already too long when it was flagged.
    """
    finite = math.isfinite(value)
    run_start: int | None = None
    if rule is not None and rule.flatline_s is not None and finite:
        too_long = flags & Flag.FLATLINE
        run_start = ts_ns - kernels.ns(rule.flatline_s) - 1 if too_long else ts_ns
    return TagState(
        last_ts=ts_ns,
        prev_ts=ts_ns if finite else None,
        prev_value=value if finite else math.nan,
        prev2_value=before if finite and before is not None else math.nan,
        run_start=run_start,
        run_value=value,
    )


def quality_floor(flags: FlagArray) -> QualityArray:
    """The quality each sample's flags demand at least (0 good, 1 uncertain, 2 bad)."""
    floor: QualityArray = (flags != 0).astype(np.uint8)
    floor[(flags & BAD_FLAGS) != 0] = BAD
    return floor


def adjust_quality(quality: QualityArray, flags: FlagArray) -> QualityArray:
    """Lower each quality as its flags demand; a worse raw quality (stale, bad) stays."""
    adjusted = quality.astype(np.uint8, copy=True)
    adjusted[(flags != 0) & (adjusted == 0)] = UNCERTAIN
    adjusted[(flags & BAD_FLAGS) != 0] = BAD
    return adjusted
