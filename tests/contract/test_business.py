"""The business layer: rollups kept by refinement, business buckets, KPIs with lineage."""

from __future__ import annotations

import math

import pytest
from tests.contract.support import DAY, HOUR, MIN, OTHER, T0, TAG, keys_for, processed, raw

from werk.core.clock import NS_PER_S
from werk.core.errors import ValidationFailed
from werk.historian import Flag, HistorianStore, Kpi, Layer, LineageRef, RawColumns, Rollup


def _refine(store: HistorianStore, rows: RawColumns, flags: list[int] | None = None) -> None:
    """Write rows as a batch and refine it unchanged (with flags)."""
    store.write(rows)
    batch = store.raw_after(store.refined_through(), 10**6)
    store.refine(processed(batch.rows, flags), keys_for(batch.rows), batch.through)


def _minute_of_samples() -> RawColumns:
    rows = raw([1.0, 5.0, 100.0, "text", 3.0, 2.0, 4.0])  # 10 s apart from T0
    rows.quality[2] = 2  # bad: counted apart
    rows.quality[4] = 1  # uncertain: aggregated
    return rows


def _one(store: HistorianStore, width: int, start: int, tag: str = TAG) -> Rollup:
    (rollup,) = store.rollups(tag, width, start, start + 1)
    return rollup


def test_minute_rollups_follow_the_quality_rules(store: HistorianStore) -> None:
    _refine(store, _minute_of_samples(), [0, int(Flag.RANGE), 0, 0, 0, 0, 0])
    minute = _one(store, 60, T0)
    assert (minute.count, minute.min, minute.max, minute.sum) == (4, 1.0, 5.0, 11.0)
    assert (minute.first, minute.first_ns, minute.last, minute.last_ns) == (
        1.0, T0, 2.0, T0 + 50 * NS_PER_S,
    )  # fmt: skip
    assert (minute.flagged, minute.bad, minute.width_s, minute.tag) == (1, 1, 60, TAG)
    assert minute.avg == 2.75
    assert _one(store, 60, T0 + MIN).count == 1


def test_hours_and_days_merge_the_narrower_rollups(store: HistorianStore) -> None:
    _refine(store, _minute_of_samples(), [0, int(Flag.RANGE), 0, 0, 0, 0, 0])
    for width in (3600, 86400):
        merged = _one(store, width, T0)
        assert (merged.count, merged.min, merged.max, merged.sum) == (5, 1.0, 5.0, 15.0)
        assert (merged.first, merged.first_ns) == (1.0, T0)
        assert (merged.last, merged.last_ns) == (4.0, T0 + MIN)
        assert (merged.flagged, merged.bad) == (1, 1)
    assert store.count(Layer.BUSINESS) == 4  # two minutes, one hour, one day


def test_late_data_corrects_every_width(store: HistorianStore) -> None:
    _refine(store, _minute_of_samples())
    _refine(store, raw([0.5], start=T0 + 5 * NS_PER_S, msg_id=50))
    minute = _one(store, 60, T0)
    assert (minute.count, minute.min, minute.first, minute.first_ns) == (5, 0.5, 1.0, T0)
    for width in (3600, 86400):
        merged = _one(store, width, T0)
        assert (merged.count, merged.min, merged.sum) == (6, 0.5, 15.5)


def test_a_bucket_left_without_samples_loses_its_rollups(store: HistorianStore) -> None:
    _refine(store, raw([7.0], start=T0 + 2 * HOUR))
    assert _one(store, 86400, T0).count == 1
    text = processed(raw(["now text"], start=T0 + 2 * HOUR))
    store.refine(text, keys_for(text), store.refined_through())
    for width in (60, 3600, 86400):
        assert store.rollups(TAG, width, T0, T0 + DAY) == []


def test_a_bucket_of_bad_samples_counts_them_only(store: HistorianStore) -> None:
    _refine(store, raw([1.0, 2.0], quality=2))
    minute = _one(store, 60, T0)
    assert (minute.count, minute.bad, minute.flagged, minute.sum) == (0, 2, 0, 0.0)
    assert math.isnan(minute.avg) and math.isnan(minute.min) and math.isnan(minute.last)
    assert store.buckets(TAG, T0, T0 + DAY, HOUR, layer=Layer.BUSINESS) == []


def test_rollups_of_a_range_by_bucket_start(store: HistorianStore) -> None:
    _refine(store, raw([float(i) for i in range(5)], step=MIN))
    starts = [r.start_ns for r in store.rollups(TAG, 60, T0 + MIN, T0 + 4 * MIN)]
    assert starts == [T0 + MIN, T0 + 2 * MIN, T0 + 3 * MIN]
    assert store.rollups(TAG, 60, T0 + 30 * NS_PER_S, T0 + MIN) == []
    assert store.rollups("no/such/tag", 60, T0, T0 + DAY) == []
    assert store.rollups(OTHER, 3600, T0, T0 + DAY) == []


def test_business_buckets_merge_the_widest_dividing_rollups(store: HistorianStore) -> None:
    _refine(store, raw([float(i) for i in range(96)], step=30 * MIN))  # two days
    span = (T0, T0 + 2 * DAY)
    for bucket_ns in (2 * HOUR, DAY, 4 * MIN, 2 * DAY):
        business = store.buckets(TAG, *span, bucket_ns, layer=Layer.BUSINESS)
        assert business == store.buckets(TAG, *span, bucket_ns, layer=Layer.RAW)
    days = store.buckets(TAG, *span, DAY, layer=Layer.BUSINESS)
    assert [(b.count, b.min, b.max, b.first, b.last) for b in days] == [
        (48, 0.0, 47.0, 0.0, 47.0),
        (48, 48.0, 95.0, 48.0, 95.0),
    ]
    assert days[0].avg == 23.5
    for bad in (90 * NS_PER_S, 30 * NS_PER_S, 0):
        with pytest.raises(ValidationFailed) as info:
            store.buckets(TAG, *span, bad, layer=Layer.BUSINESS)
        assert info.value.code == "bad_bucket"


def _kpi(ts: int, value: float, *refs: LineageRef, name: str = "oee/line-1") -> Kpi:
    return Kpi(name, ts, value, "%", "oee", refs)


def test_kpis_come_back_in_range_with_their_lineage(store: HistorianStore) -> None:
    ref = LineageRef(Layer.PROCESSED, TAG, T0, T0 + HOUR)
    business = LineageRef(Layer.BUSINESS, OTHER, T0 - DAY, T0)
    kpis = [_kpi(T0 + i * HOUR, 80.0 + i, ref, business) for i in range(4)]
    assert store.write_kpis([*kpis, _kpi(T0, 1.0, name="energy/site")]) == 5
    found = store.kpis("oee/line-1", T0 + HOUR, T0 + 3 * HOUR, 10)
    assert found == kpis[1:3]
    assert found[0].lineage == (ref, business)
    assert store.kpis("oee/line-1", T0, T0 + DAY, 2) == kpis[:2]
    assert store.kpis("no/such/kpi", T0, T0 + DAY, 10) == []
    assert sorted(store.kpi_names()) == ["energy/site", "oee/line-1"]


def test_a_kpi_of_the_same_name_and_time_replaces(store: HistorianStore) -> None:
    old = LineageRef(Layer.RAW, TAG, T0, T0 + MIN)
    new = LineageRef(Layer.BUSINESS, TAG, T0, T0 + HOUR)
    store.write_kpis([_kpi(T0 + 1_500, 50.0, old)])  # stored to the microsecond
    store.write_kpis([_kpi(T0 + 1_000, 60.0, new), _kpi(T0 + HOUR, 70.0)])
    (first, second) = store.kpis("oee/line-1", T0, T0 + DAY, 10)
    assert (first.ts_ns, first.value, first.lineage) == (T0 + 1_000, 60.0, (new,))
    assert second.lineage == ()
    assert store.write_kpis([]) == 0
