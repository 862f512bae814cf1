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
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

from werk.historian import quality_kernels as kernels
from werk.historian.layers import Flag
from werk.historian.quality_flatline import Carried, flatline
from werk.historian.quality_kernels import Before, BoolArray, FloatArray, IntArray, Series
from werk.historian.rules import QualityRule

FlagArray = npt.NDArray[np.uint16]
QualityArray = npt.NDArray[np.uint8]

_Tails = dict[int, tuple[tuple[int, ...], tuple[float, ...]]]

UNCERTAIN: Final = 1
BAD: Final = 2
BAD_FLAGS: Final = int(Flag.RANGE | Flag.NOT_FINITE)


class TagState(NamedTuple):
    """What the rules of one tag remember between batches (timestamps in ns)."""

    last_ts: int | None = None  # newest sample, whatever its value
    prev_ts: int | None = None  # newest finite sample
    prev_value: float = math.nan
    prev2_value: float = math.nan  # the finite sample before it: spikes need two neighbours
    flat_ts: tuple[int, ...] = ()  # samples later flatline windows can reach
    flat_values: tuple[float, ...] = ()


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
    return Evaluation(
        flags, quality_floor(flags), result.states[0], bool(result.spiked_previous[0])
    )


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
    picked: slice | IntArray = slice(None) if finite.all() else np.flatnonzero(finite)
    series = Series.of(ts[picked], values[picked], group[picked])
    spiked = np.zeros(len(states), dtype=np.bool_)
    tails = None
    if rule is not None and len(ts):
        before = _before(states)
        if rule.stale_s is not None:
            gaps = kernels.gap(rule.stale_s, Series.of(ts, values, group), before)
            flags[gaps] |= _bit(Flag.GAP)
        if len(series.ts):
            found, spiked, tails = _value_rules(rule, series, before, states)
            flags[picked] |= found
    return GroupEvaluation(flags, _after(states, series, tails, ts, bounds), spiked)


def _bit(flag: Flag) -> np.uint16:
    return np.uint16(flag)


def _value_rules(
    rule: QualityRule, series: Series, before: Before, states: Sequence[TagState]
) -> tuple[FlagArray, BoolArray, _Tails | None]:
    """Flags of the value rules over finite samples, spikes of carried samples, flat tails."""
    flags = np.zeros(len(series.ts), dtype=np.uint16)
    if rule.min is not None or rule.max is not None:
        flags[kernels.out_of_range(rule.min, rule.max, series.values)] |= _bit(Flag.RANGE)
    if rule.max_rate is not None:
        flags[kernels.too_fast(rule.max_rate, series, before)] |= _bit(Flag.RATE)
    spiked = np.zeros(len(before.prev_value), dtype=np.bool_)
    if rule.spike is not None:
        lone, spiked = kernels.spikes(rule.spike, series, before)
        flags[lone] |= _bit(Flag.SPIKE)
    tails = None
    if rule.flatline_s is not None:
        carried = Carried.of([(s.flat_ts, s.flat_values) for s in states])
        flat, tails = flatline(rule.flatline_s, rule.flatline_tolerance, series, carried)
        flags[flat] |= _bit(Flag.FLATLINE)
    return flags, spiked, tails


def _before(states: Sequence[TagState]) -> Before:
    """The states as arrays indexed by group."""
    return Before(
        last_ts=np.array([s.last_ts or 0 for s in states], dtype=np.int64),
        has_last=np.array([s.last_ts is not None for s in states], dtype=np.bool_),
        prev_ts=np.array([s.prev_ts or 0 for s in states], dtype=np.int64),
        prev_value=np.array([s.prev_value for s in states], dtype=np.float64),
        prev2_value=np.array([s.prev2_value for s in states], dtype=np.float64),
    )


def _after(
    states: Sequence[TagState],
    series: Series,
    tails: _Tails | None,
    ts: IntArray,
    bounds: IntArray,
) -> list[TagState]:
    """The state of each group after its samples (`series` holds its finite ones)."""
    after = list(states)
    present = np.flatnonzero(np.diff(bounds))
    newest = dict(zip(present.tolist(), ts[bounds[1:][present] - 1].tolist(), strict=True))
    at = np.flatnonzero(series.last)
    previous = np.where(series.first[at], np.nan, series.values[np.maximum(at - 1, 0)])
    rows = zip(series.group[at].tolist(), series.ts[at].tolist(), series.values[at].tolist(),
               previous.tolist(), strict=True)  # fmt: skip
    for g, prev_ts, prev, prev2 in rows:
        old = after[g]
        flat_ts, flat_values = tails[g] if tails is not None else ((), ())
        prev2 = old.prev_value if math.isnan(prev2) else prev2
        after[g] = TagState(newest.pop(g), prev_ts, prev, prev2, flat_ts, flat_values)
    for g, last_ts in newest.items():  # groups without finite samples
        after[g] = after[g]._replace(last_ts=last_ts)
    return after


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

    A flat stretch starts again at that sample, or continues as already too long when
    the sample was flagged as one.
    """
    finite = math.isfinite(value)
    flat_ts: tuple[int, ...] = ()
    if rule is not None and rule.flatline_s is not None and finite:
        too_long = flags & Flag.FLATLINE
        flat_ts = (ts_ns - kernels.ns(rule.flatline_s) - 1 if too_long else ts_ns,)
    return TagState(
        last_ts=ts_ns,
        prev_ts=ts_ns if finite else None,
        prev_value=value if finite else math.nan,
        prev2_value=before if finite and before is not None else math.nan,
        flat_ts=flat_ts,
        flat_values=(value,) if flat_ts else (),
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
