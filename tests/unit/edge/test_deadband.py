"""Report by exception: which readings must be published."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from werk.edge.deadband import ReportByException
from werk.edge.model import Reading, TagSpec
from werk.sparkplug.datatypes import DataType
from werk.uns.contracts import Quality

GOOD, BAD = Quality.GOOD, Quality.BAD


def r(tag: str, value: object, quality: Quality = GOOD, ts: int = 0) -> Reading:
    return Reading(tag, value, ts, quality)  # type: ignore[arg-type]


def rbe(deadband: float = 0.0) -> ReportByException:
    return ReportByException(
        [
            TagSpec("temp", DataType.DOUBLE, deadband=deadband),
            TagSpec("count", DataType.INT64, deadband=deadband),
            TagSpec("state", DataType.STRING),
            TagSpec("on", DataType.BOOLEAN),
        ]
    )


def test_first_reading_of_each_tag_passes_and_repeats_do_not() -> None:
    f = rbe()
    first = [r("temp", 1.0), r("state", "run"), r("on", False), r("other", 3)]
    assert f.filter(first) == first
    assert f.filter([r("temp", 1.0, ts=5), r("state", "run"), r("on", False), r("other", 3)]) == []


def test_deadband_is_measured_from_the_last_reported_value() -> None:
    f = rbe(deadband=1.0)
    f.filter([r("temp", 10.0)])
    assert f.filter([r("temp", 10.6)]) == []
    assert f.filter([r("temp", 11.0)]) == []  # exactly the deadband is not more
    assert f.filter([r("temp", 11.2)]) == [r("temp", 11.2)]  # 1.2 from 10.0, not 0.2
    assert f.filter([r("temp", 10.5)]) == []
    assert f.filter([r("temp", 10.1)]) == [r("temp", 10.1)]


def test_zero_deadband_reports_any_change() -> None:
    f = rbe()
    f.filter([r("count", 5)])
    assert f.filter([r("count", 6)]) == [r("count", 6)]
    assert f.filter([r("count", 6.0)]) == []


def test_quality_changes_always_pass() -> None:
    f = rbe(deadband=100.0)
    f.filter([r("temp", 1.0)])
    assert f.filter([r("temp", None, BAD)]) == [r("temp", None, BAD)]
    assert f.filter([r("temp", None, BAD)]) == []
    assert f.filter([r("temp", 1.0)]) == [r("temp", 1.0)]
    assert f.filter([r("temp", 1.0, Quality.UNCERTAIN)]) == [r("temp", 1.0, Quality.UNCERTAIN)]


def test_non_numeric_changes_pass_regardless_of_deadband() -> None:
    f = ReportByException([TagSpec("on", DataType.BOOLEAN, deadband=5.0)])
    f.filter([r("on", False)])
    assert f.filter([r("on", True)]) == [r("on", True)]
    f.filter([r("s", "a")])
    assert f.filter([r("s", "b")]) == [r("s", "b")]
    assert f.filter([r("on", 1)]) == [r("on", 1)]  # a type change is a change


def test_nan_transitions_are_changes() -> None:
    f = rbe(deadband=10.0)
    nan = math.nan
    f.filter([r("temp", 1.0)])
    assert f.filter([r("temp", nan)])[0].value is nan
    assert f.filter([r("temp", nan)]) == []
    assert f.filter([r("temp", 1.0)]) == [r("temp", 1.0)]


def test_forget_reports_everything_again() -> None:
    f = rbe()
    f.filter([r("temp", 1.0), r("on", True)])
    f.forget()
    assert f.filter([r("temp", 1.0), r("on", True)]) == [r("temp", 1.0), r("on", True)]


def test_update_specs_changes_deadbands_but_keeps_last_values() -> None:
    f = rbe(deadband=0.0)
    f.filter([r("temp", 1.0)])
    f.update_specs([TagSpec("temp", DataType.DOUBLE, deadband=5.0)])
    assert f.filter([r("temp", 3.0)]) == []
    assert f.filter([r("temp", 6.5)]) == [r("temp", 6.5)]


def test_several_readings_of_one_tag_in_one_batch_are_filtered_in_order() -> None:
    f = rbe(deadband=1.0)
    batch = [r("temp", 0.0), r("temp", 0.5), r("temp", 2.0), r("temp", 2.5)]
    assert f.filter(batch) == [r("temp", 0.0), r("temp", 2.0)]


numbers = st.one_of(st.integers(-(2**53), 2**53), st.floats(allow_nan=True, allow_infinity=True))
values = st.one_of(numbers, st.booleans(), st.text(max_size=3), st.none())
qualities = st.sampled_from([GOOD, BAD, Quality.UNCERTAIN])


@given(st.lists(st.tuples(values, qualities), max_size=60), st.floats(0, 100))
def test_published_stream_keeps_every_significant_change(
    stream: list[tuple[object, Quality]], deadband: float
) -> None:
    f = ReportByException([TagSpec("t", DataType.DOUBLE, deadband=deadband)])
    last: Reading | None = None
    for value, quality in stream:
        reading = r("t", value, quality)
        published = f.filter([reading])
        must = last is None or quality != last.quality or _moved(last.value, value, deadband)
        assert published == ([reading] if must else [])
        if published:
            last = reading


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=80), st.floats(0.001, 1000))
def test_every_dropped_value_is_within_the_deadband_of_the_last_published(
    samples: list[float], deadband: float
) -> None:
    f = ReportByException([TagSpec("t", DataType.DOUBLE, deadband=deadband)])
    last = None
    for value in samples:
        if f.filter([r("t", value)]):
            last = value
        else:
            assert last is not None and abs(value - last) <= deadband


def _moved(old: object, new: object, deadband: float) -> bool:
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (old, new))
    if not numeric:
        return type(old) is not type(new) or old != new
    assert isinstance(old, int | float) and isinstance(new, int | float)
    if math.isnan(old) or math.isnan(new):
        return math.isnan(old) != math.isnan(new)
    if deadband == 0:
        return old != new
    return abs(new - old) > deadband
