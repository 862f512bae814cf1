"""Quality rules on one tag's samples: each rule, continuity across batches, spikes found later."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from werk.historian.layers import Flag
from werk.historian.quality import (
    TagState,
    adjust_quality,
    evaluate,
    evaluate_between,
    evaluate_groups,
    quality_floor,
    resume,
)
from werk.historian.rules import QualityRule

S = 1_000_000_000
T0 = 1_795_000_000 * S


def _series(values: list[float], step_s: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    ts = T0 + np.arange(len(values), dtype=np.int64) * int(step_s * S)
    return ts, np.array(values, dtype=np.float64)


def _flags(rule: QualityRule | None, values: list[float], step_s: float = 1.0) -> list[int]:
    ts, data = _series(values, step_s)
    return evaluate(rule, TagState(), ts, data).flags.tolist()


def test_nan_and_infinity_are_flagged_bad_whatever_the_rule() -> None:
    ts, data = _series([1.0, math.nan, math.inf, -math.inf, 2.0])
    for rule in (None, QualityRule(tags="#", max_rate=0.001)):
        result = evaluate(rule, TagState(), ts, data)
        assert result.flags.tolist()[1:4] == [Flag.NOT_FINITE] * 3
        assert result.floor.tolist()[1:4] == [2, 2, 2]
    # the rate is judged between the finite neighbours, around the broken samples
    assert evaluate(QualityRule(tags="#", max_rate=1), TagState(), ts, data).flags[4] == 0


def test_values_outside_the_range_are_bad() -> None:
    rule = QualityRule(tags="#", min=0, max=10)
    ts, data = _series([-0.1, 0, 10, 10.5])
    result = evaluate(rule, TagState(), ts, data)
    assert result.flags.tolist() == [Flag.RANGE, 0, 0, Flag.RANGE]
    assert result.floor.tolist() == [2, 0, 0, 2]


def test_changes_faster_than_the_rate_are_uncertain() -> None:
    rule = QualityRule(tags="#", max_rate=2.0)  # per second
    assert _flags(rule, [0, 2, 4.5, 4.5, 0.5], step_s=1) == [0, 0, Flag.RATE, 0, Flag.RATE]
    assert _flags(rule, [0, 3.9], step_s=2) == [0, 0]


def test_a_gap_longer_than_stale_s_flags_the_sample_after_it() -> None:
    rule = QualityRule(tags="#", stale_s=60)
    ts = np.array([T0, T0 + 60 * S, T0 + 121 * S], dtype=np.int64)
    result = evaluate(rule, TagState(), ts, np.zeros(3))
    assert result.flags.tolist() == [0, 0, Flag.GAP]
    assert result.floor.tolist() == [0, 0, 1]


def test_a_value_stuck_longer_than_flatline_s_is_flagged() -> None:
    rule = QualityRule(tags="#", flatline_s=3)
    flat = Flag.FLATLINE
    assert _flags(rule, [5, 5, 5, 5, 5, 6, 6]) == [0, 0, 0, 0, flat, 0, 0]


def test_noise_within_the_tolerance_is_still_a_flatline_but_a_slow_ramp_is_not() -> None:
    rule = QualityRule(tags="#", flatline_s=2, flatline_tolerance=0.5)
    flat = Flag.FLATLINE
    assert _flags(rule, [5, 5.3, 4.8, 5.4, 4.6]) == [0, 0, 0, flat, flat]
    ramp = [i * 0.4 for i in range(10)]  # 1.2 in every 3 s: more than ±0.5 of one value
    assert _flags(rule, ramp) == [0] * 10


def test_a_lone_spike_is_flagged_but_a_step_is_not() -> None:
    rule = QualityRule(tags="#", spike=5)
    assert _flags(rule, [10, 10.5, 30, 10.2, 10]) == [0, 0, Flag.SPIKE, 0, 0]
    assert _flags(rule, [10, 30, 30, 10]) == [0, 0, 0, 0]  # two samples: not lone
    assert _flags(rule, [10, 30, 31, 32]) == [0, 0, 0, 0]  # a step up
    assert _flags(rule, [10, 30, 0]) == [0, 0, 0]  # the neighbours disagree


def test_the_last_spike_of_a_batch_is_found_with_the_next_sample() -> None:
    rule = QualityRule(tags="#", spike=5)
    ts, data = _series([10, 10, 30, 10])
    first = evaluate(rule, TagState(), ts[:3], data[:3])
    assert first.flags.tolist() == [0, 0, 0]
    assert not first.spiked_previous
    second = evaluate(rule, first.state, ts[3:], data[3:])
    assert second.spiked_previous
    assert second.flags.tolist() == [0]


def test_quality_is_lowered_but_worse_raw_quality_stays() -> None:
    flags = np.array([0, Flag.RATE, Flag.RATE, Flag.RANGE, Flag.LATE, 0], dtype=np.uint16)
    raw = np.array([0, 0, 3, 3, 2, 1], dtype=np.uint8)
    assert adjust_quality(raw, flags).tolist() == [0, 1, 3, 2, 2, 1]
    assert quality_floor(flags).tolist() == [0, 1, 1, 2, 1, 0]


def test_a_stored_flatline_continues_after_a_restart() -> None:
    rule = QualityRule(tags="#", flatline_s=60)
    state = resume(rule, T0, 5.0, int(Flag.FLATLINE), before=5.0)
    result = evaluate(rule, state, np.array([T0 + S], dtype=np.int64), np.array([5.0]))
    assert result.flags.tolist() == [Flag.FLATLINE]


def test_samples_between_stored_ones_see_both_neighbours() -> None:
    rule = QualityRule(tags="#", spike=5)
    before = resume(rule, T0, 10.0, 0, before=10.0)
    ts = np.array([T0 + S], dtype=np.int64)
    result = evaluate_between(rule, before, ts, np.array([40.0]), after=(T0 + 2 * S, 10.5))
    assert result.flags.tolist() == [Flag.SPIKE]


def test_no_rule_and_no_samples() -> None:
    empty = evaluate(QualityRule(tags="#", spike=1), TagState(), *_series([]))
    assert empty.flags.tolist() == []
    assert empty.state == TagState()


# -- the vectorised rules against a plain one-sample-at-a-time reading ------------------


def _reference(rule: QualityRule, ts: list[int], values: list[float]) -> list[int]:
    """The rules as their docstrings state them, sample by sample."""
    flags = [0 if math.isfinite(v) else int(Flag.NOT_FINITE) for v in values]
    if rule.stale_s is not None:
        for i in range(1, len(ts)):
            if ts[i] - ts[i - 1] > round(rule.stale_s * S):
                flags[i] |= Flag.GAP
    good = [i for i, v in enumerate(values) if math.isfinite(v)]
    for k, i in enumerate(good):
        v = values[i]
        if (rule.min is not None and v < rule.min) or (rule.max is not None and v > rule.max):
            flags[i] |= Flag.RANGE
        if rule.max_rate is not None and k >= 1:
            j = good[k - 1]
            if abs(v - values[j]) > (ts[i] - ts[j]) * (rule.max_rate / S):
                flags[i] |= Flag.RATE
        if rule.spike is not None and 1 <= k < len(good) - 1:
            a, c, t = values[good[k - 1]], values[good[k + 1]], rule.spike
            if abs(v - a) > t and abs(v - c) > t and abs(c - a) <= t:
                flags[i] |= Flag.SPIKE
        if rule.flatline_s is not None:
            # the last sample more than flatline_s before, and all since, within the band
            reach = [j for j in good[:k] if ts[j] < ts[i] - round(rule.flatline_s * S)]
            if reach:
                window = [values[j] for j in good if reach[-1] <= j <= i]
                if max(window) - min(window) <= 2 * rule.flatline_tolerance:
                    flags[i] |= Flag.FLATLINE
    return flags


values_ = st.one_of(
    st.sampled_from([0.0, 0.0, 1.0, 1.0, 2.0, 50.0]),
    st.floats(-100, 100),
    st.sampled_from([math.nan, math.inf]),
)
quality_rules = st.builds(
    QualityRule,
    tags=st.just("#"),
    min=st.none() | st.just(-50.0),
    max=st.none() | st.just(60.0),
    max_rate=st.none() | st.sampled_from([0.5, 5.0]),
    flatline_s=st.none() | st.sampled_from([2.0, 5.0]),
    flatline_tolerance=st.sampled_from([0.0, 0.5, 1.5]),
    stale_s=st.none() | st.sampled_from([1.5, 3.0]),
    spike=st.none() | st.sampled_from([1.0, 10.0]),
)


@st.composite
def series(draw: st.DrawFn) -> tuple[list[int], list[float]]:
    data = draw(st.lists(values_, min_size=0, max_size=40))
    steps = draw(st.lists(st.sampled_from([1, 1, 1, 2, 4]), min_size=len(data), max_size=len(data)))
    ts = [T0 + int(sum(steps[: i + 1]) * S // 2) for i in range(len(data))]
    return ts, data


@settings(max_examples=300)
@given(quality_rules, series())
def test_the_vectorised_rules_agree_with_the_plain_reading(
    rule: QualityRule, data: tuple[list[int], list[float]]
) -> None:
    ts, values = data
    result = evaluate(rule, TagState(), np.array(ts, np.int64), np.array(values, np.float64))
    assert result.flags.tolist() == _reference(rule, ts, values)


@settings(max_examples=300)
@given(quality_rules, series(), st.lists(st.integers(0, 40), max_size=5))
def test_batches_give_the_flags_of_one_pass(
    rule: QualityRule, data: tuple[list[int], list[float]], cuts: list[int]
) -> None:
    ts, values = np.array(data[0], np.int64), np.array(data[1], np.float64)
    whole = evaluate(rule, TagState(), ts, values).flags
    bounds = sorted({0, len(ts), *(c for c in cuts if c <= len(ts))})
    state, pieces = TagState(), []
    last_finite: int | None = None
    for begin, end in itertools.pairwise(bounds):
        result = evaluate(rule, state, ts[begin:end], values[begin:end])
        if result.spiked_previous:
            assert last_finite is not None
            pieces[last_finite] |= Flag.SPIKE
        pieces.extend(result.flags.tolist())
        finite = np.flatnonzero(np.isfinite(values[begin:end]))
        if len(finite):
            last_finite = begin + int(finite[-1])
        state = result.state
    assert pieces == whole.tolist()


@pytest.mark.parametrize("size", [1, 2, 3])
def test_tiny_batches_keep_their_state(size: int) -> None:
    rule = QualityRule(tags="#", spike=1, max_rate=100, flatline_s=1, stale_s=10)
    ts, values = _series([1.0] * size)
    result = evaluate(rule, TagState(), ts, values)
    assert result.state.last_ts == int(ts[-1])
    assert result.state.prev_value == 1.0


@settings(max_examples=200)
@given(quality_rules, st.lists(st.tuples(series(), st.integers(0, 40)), min_size=1, max_size=5))
def test_tags_checked_together_get_the_flags_of_each_alone(
    rule: QualityRule, tags: list[tuple[tuple[list[int], list[float]], int]]
) -> None:
    states, stamps, values, bounds = [], [], [], [0]
    alone_flags, alone = [], []
    for (ts, data), cut in tags:
        first = evaluate(rule, TagState(), np.array(ts[:cut], np.int64), np.array(data[:cut]))
        rest_ts, rest = np.array(ts[cut:], np.int64), np.array(data[cut:], np.float64)
        alone.append(evaluate(rule, first.state, rest_ts, rest))
        alone_flags.extend(alone[-1].flags.tolist())
        states.append(first.state)
        stamps.extend(ts[cut:])
        values.extend(data[cut:])
        bounds.append(len(stamps))
    together = evaluate_groups(
        rule, states, np.array(stamps, np.int64), np.array(values, np.float64), np.array(bounds)
    )
    assert together.flags.tolist() == alone_flags
    assert together.states == [a.state for a in alone]
    assert together.spiked_previous.tolist() == [a.spiked_previous for a in alone]
