"""The raw layer: writes, range and bucket queries, newest values, message lineage."""

from __future__ import annotations

import math

from tests.contract.support import MIN, OTHER, T0, TAG, Reopen, joined, raw

from werk.core.clock import NS_PER_S
from werk.historian import HistorianStore, Layer, RawColumns


def test_points_come_back_in_order_with_their_message(store: HistorianStore) -> None:
    assert store.write(raw([3.0, 1.0, "RUN", 2.0], msg_id=7)) == 4
    points = store.points(TAG, T0, T0 + MIN, 10)
    assert [p.value for p in points] == [3.0, 1.0, "RUN", 2.0]
    assert [p.msg_id for p in points] == [7, 8, 9, 10]
    assert [p.ts_ns for p in points] == [T0 + i * 10 * NS_PER_S for i in range(4)]
    assert points[0].ingest_ns == T0 + 5 * NS_PER_S
    assert {p.quality for p in points} == {0} and {p.flags for p in points} == {0}


def test_stamps_are_kept_to_the_microsecond(store: HistorianStore) -> None:
    rows = RawColumns()
    rows.append(TAG, T0 + 1_234_567, T0 + 2_345_678, 1.0, 0, 1)
    store.write(rows)
    (point,) = store.points(TAG, T0, T0 + MIN, 10)
    assert point.ts_ns == T0 + 1_234_000
    assert point.ingest_ns == T0 + 2_345_000
    assert store.existing([TAG], [T0 + 1_234_999]) == {(TAG, T0 + 1_234_999)}


def test_range_is_half_open_and_limited(store: HistorianStore) -> None:
    store.write(raw([float(i) for i in range(10)]))
    points = store.points(TAG, T0 + 10 * NS_PER_S, T0 + 50 * NS_PER_S, 100)
    assert [p.value for p in points] == [1.0, 2.0, 3.0, 4.0]
    assert [p.value for p in store.points(TAG, T0, T0 + MIN, 3)] == [0.0, 1.0, 2.0]
    newest = store.points(TAG, T0, T0 + MIN, 3, newest=True)
    assert [p.value for p in newest] == [3.0, 4.0, 5.0]
    assert store.points("no/such/tag", T0, T0 + MIN, 10) == []


def test_quality_and_message_ids_of_any_64_bit_value(store: HistorianStore) -> None:
    low, high = -(2**63), 2**63 - 1
    store.write(
        joined(raw([1.0], msg_id=low, quality=2), raw([2.0], msg_id=high, start=T0 + NS_PER_S))
    )
    points = store.points(TAG, T0, T0 + MIN, 10)
    assert [(p.msg_id, p.quality) for p in points] == [(low, 2), (high, 0)]
    assert store.recent_message_ids(0) == {low, high}


def test_booleans_and_text_keep_their_type(store: HistorianStore) -> None:
    store.write(joined(raw([True, False], tag=OTHER), raw([1, "idle"])))
    flags = store.points(OTHER, T0, T0 + MIN, 10)
    assert [p.value for p in flags] == [True, False]
    assert all(type(p.value) is bool for p in flags)
    number, text = store.points(TAG, T0, T0 + MIN, 10)
    assert type(number.value) is float and number.value == 1.0
    assert text.value == "idle"
    assert store.last([OTHER])[0].point.value is False
    (bucket,) = store.buckets(OTHER, T0, T0 + MIN, MIN)
    assert bucket.avg == 0.5


def test_buckets_are_epoch_aligned_and_numeric_only(store: HistorianStore) -> None:
    values: list[float | str] = [float(i) for i in range(12)]
    values[3] = "text is left out"
    store.write(raw(values, start=T0 + 30 * NS_PER_S))
    buckets = store.buckets(TAG, T0, T0 + 10 * MIN, MIN)
    assert [b.start_ns for b in buckets] == [T0, T0 + MIN, T0 + 2 * MIN]
    first, second, third = buckets
    assert (first.count, first.min, first.max, first.first, first.last) == (3, 0.0, 2.0, 0.0, 2.0)
    assert (second.count, second.first, second.last) == (5, 4.0, 8.0)
    assert second.avg is not None and math.isclose(second.avg, 6.0)
    assert (third.count, third.min, third.max) == (3, 9.0, 11.0)
    (hour,) = store.buckets(TAG, T0, T0 + 10 * MIN, 3600 * NS_PER_S)
    assert hour.count == 11 and hour.start_ns == T0


def test_last_gives_the_newest_sample_even_after_late_data(store: HistorianStore) -> None:
    store.write(joined(raw([1.0, 2.0]), raw([7.0], tag=OTHER, msg_id=9)))
    store.write(raw([0.5], start=T0 - MIN, msg_id=20))  # late: older than what is stored
    last = {t.tag: t.point for t in store.last([TAG, OTHER, "no/such/tag"])}
    assert set(last) == {TAG, OTHER}
    assert last[TAG].value == 2.0 and last[TAG].msg_id == 2
    assert last[TAG].ts_ns == T0 + 10 * NS_PER_S
    assert last[OTHER].value == 7.0
    store.write(raw([3.0], start=T0 + MIN, msg_id=21))
    (newest,) = store.last([TAG])
    assert newest.point.value == 3.0 and newest.point.ingest_ns == T0 + MIN + 5 * NS_PER_S
    assert store.last([]) == []


def test_existing_finds_stored_tag_and_time_pairs(store: HistorianStore) -> None:
    store.write(joined(raw([1.0, 2.0], step=NS_PER_S // 1000), raw([3.0], tag=OTHER)))
    tags = [TAG, TAG, OTHER, "no/such/tag", OTHER]
    stamps = [T0, T0 + 2_000_000, T0, T0, T0 + 1_000_000]
    assert store.existing(tags, stamps) == {(TAG, T0), (OTHER, T0)}
    assert store.existing([], []) == set()


def test_recent_message_ids_by_ingest_time(store: HistorianStore) -> None:
    store.write(raw([1.0, 2.0, 3.0], msg_id=100, step=MIN))  # ingested 5 s after each ts
    assert store.recent_message_ids(T0) == {100, 101, 102}
    assert store.recent_message_ids(T0 + MIN + 5 * NS_PER_S) == {101, 102}
    assert store.recent_message_ids(T0 + 10 * MIN) == set()


def test_message_points_by_tag_then_time(store: HistorianStore) -> None:
    message = joined(raw([2.0, 1.0], tag=OTHER, msg_id=5, per_message=2), raw([True], msg_id=5))
    message.boolean_tags = {TAG}
    store.write(joined(message, raw([9.0], msg_id=6, start=T0 + MIN)))
    found = store.message_points(5)
    assert [(t.tag, t.point.ts_ns, t.point.value) for t in found] == [
        (OTHER, T0, 2.0),  # "...speed" sorts before "...temp"
        (OTHER, T0 + 10 * NS_PER_S, 1.0),
        (TAG, T0, True),
    ]
    assert {t.point.msg_id for t in found} == {5}
    assert store.message_points(12345) == []


def test_tags_counts_and_knowledge(store: HistorianStore) -> None:
    assert store.count() == 0 and store.tag_paths() == [] and not store.knows(TAG)
    assert store.write(RawColumns()) == 0
    store.write(joined(raw([1.0, 2.0]), raw([3.0], tag=OTHER)))
    assert sorted(store.tag_paths()) == sorted([TAG, OTHER])
    assert store.knows(TAG) and not store.knows("no/such/tag")
    assert store.count() == 3 and store.count(Layer.RAW) == 3
    assert store.count(Layer.PROCESSED) == 0 and store.count(Layer.BUSINESS) == 0


def test_data_and_batch_numbers_survive_a_reopen(store: HistorianStore, reopen: Reopen) -> None:
    store.write(raw([1.0, 1.5], msg_id=1))
    store.write(raw([2.0], msg_id=3, start=T0 + MIN))
    again = reopen()
    again.write(raw([3.0], tag=OTHER, msg_id=4))
    assert again.count() == 4 and again.knows(TAG)
    batches = [again.raw_after(b, 1).through for b in range(3)]
    assert batches == [1, 2, 3]
    assert again.raw_after(3, 10).through == 3 and len(again.raw_after(3, 10).rows) == 0
    assert again.points(TAG, T0, T0 + NS_PER_S, 1)[0].value == 1.0
