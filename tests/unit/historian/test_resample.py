"""Resampling onto a regular grid: step and linear fill, skipped samples, invariants."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from werk.core.errors import ValidationFailed
from werk.historian.models import Point
from werk.historian.resample import resample

S = 1_000_000_000
T0 = 1_795_000_020 * S  # on a whole minute


def _p(ts_s: float, value: float | bool | str | None, quality: int = 0) -> Point:
    return Point(T0 + int(ts_s * S), T0, value, quality, 1)


def test_step_holds_the_last_value_and_is_none_before_any() -> None:
    points = [_p(5, 1.0), _p(25, 2.0), _p(30, 3.0)]
    grid = resample(points, T0, T0 + 40 * S, 10 * S, "step")
    assert grid == [(T0, None), (T0 + 10 * S, 1.0), (T0 + 20 * S, 1.0), (T0 + 30 * S, 3.0)]


def test_the_grid_is_aligned_to_the_epoch() -> None:
    grid = resample([_p(0, 1.0)], T0 + 7 * S, T0 + 67 * S, 60 * S, "step")
    assert grid == [(T0 + 60 * S, 1.0)]
    assert T0 % (60 * S) == 0


def test_linear_interpolates_between_neighbours_and_is_none_beyond() -> None:
    points = [_p(10, 0.0), _p(30, 10.0)]
    grid = resample(points, T0, T0 + 50 * S, 10 * S, "linear")
    assert grid == [(T0, None), (T0 + 10 * S, 0.0), (T0 + 20 * S, 5.0),
                    (T0 + 30 * S, 10.0), (T0 + 40 * S, None)]  # fmt: skip


def test_neighbours_outside_the_range_fill_its_edges() -> None:
    before, after = _p(-10, 0.0), _p(20, 30.0)
    grid = resample([], T0, T0 + 20 * S, 10 * S, "linear", before=before, after=after)
    assert grid == [(T0, 10.0), (T0 + 10 * S, 20.0)]
    assert resample([], T0, T0 + 10 * S, 10 * S, "step", before=before) == [(T0, 0.0)]


def test_bad_and_broken_samples_are_left_out() -> None:
    points = [_p(0, 1.0), _p(5, 99.0, quality=2), _p(6, math.nan), _p(7, None), _p(8, 2.0, 3)]
    assert resample(points, T0, T0 + 10 * S, 5 * S, "step") == [(T0, 1.0), (T0 + 5 * S, 1.0)]


def test_booleans_resample_as_zero_and_one() -> None:
    assert resample([_p(0, True)], T0, T0 + S, S, "step") == [(T0, 1.0)]


def test_text_cannot_be_resampled() -> None:
    with pytest.raises(ValidationFailed) as caught:
        resample([_p(0, "RUN")], T0, T0 + S, S, "step")
    assert caught.value.code == "not_numeric"


@pytest.mark.parametrize(
    ("interval", "method", "code"),
    [(0, "step", "bad_interval"), (S, "cubic", "bad_fill"), (1, "step", "too_many_steps")],
)
def test_bad_requests_are_refused(interval: int, method: str, code: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        resample([], T0, T0 + 3600 * S, interval, method)  # type: ignore[arg-type]
    assert caught.value.code == code


samples = st.lists(
    st.tuples(st.integers(-100, 200), st.floats(-1e6, 1e6), st.sampled_from([0, 0, 1, 2])),
    max_size=30,
)


@given(samples, st.integers(-50, 100), st.integers(1, 150), st.integers(1, 30))
def test_grid_invariants(
    data: list[tuple[int, float, int]], start_s: int, length_s: int, interval_s: int
) -> None:
    points = sorted((_p(t, v, q) for t, v, q in data), key=lambda p: p.ts_ns)
    start, end, interval = T0 + start_s * S, T0 + (start_s + length_s) * S, interval_s * S
    usable = [p for p in points if p.quality != 2]
    step = resample(points, start, end, interval, "step")
    linear = resample(points, start, end, interval, "linear")
    assert [t for t, _ in step] == [t for t, _ in linear]
    assert all(start <= t < end and t % interval == 0 for t, _ in step)
    assert len(step) == len(range(-(-start // interval) * interval, end, interval))
    for (t, held), (_, between) in zip(step, linear, strict=True):
        earlier = [p for p in usable if p.ts_ns <= t]
        later = [p for p in usable if p.ts_ns >= t]
        assert held == (earlier[-1].value if earlier else None)
        if not earlier or not later:
            assert between is None
        else:
            low, high = sorted([earlier[-1].value, later[0].value])  # type: ignore[type-var]
            assert between is not None
            assert low - 1e-6 <= between <= high + 1e-6


@given(st.floats(-1e6, 1e6), st.floats(-1e3, 1e3))
def test_linear_reproduces_a_straight_line(offset: float, slope: float) -> None:
    points = [_p(t, offset + slope * t) for t in (0, 100)]
    for t, value in resample(points, T0, T0 + 100 * S, 7 * S, "linear"):
        expected = offset + slope * (t - T0) / S
        assert value == pytest.approx(expected, rel=1e-9, abs=1e-6)
