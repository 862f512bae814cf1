"""Refinement: raw batches in order, processed rows replaced by (tag, ts), the mark."""

from __future__ import annotations

import pytest
from tests.contract.support import (
    DAY,
    MIN,
    OTHER,
    T0,
    TAG,
    Reopen,
    joined,
    keys_for,
    processed,
    raw,
    refine_all,
)

from werk.core.clock import NS_PER_S
from werk.core.errors import ValidationFailed
from werk.historian import Flag, HistorianStore, Layer, ProcessedColumns, RollupKey


def _three_batches(store: HistorianStore) -> None:
    for batch in range(3):
        start = T0 + batch * MIN
        store.write(raw([float(batch)] * 10, start=start, step=NS_PER_S, msg_id=100 * batch))


def test_raw_after_returns_whole_batches_in_order(store: HistorianStore) -> None:
    _three_batches(store)
    first = store.raw_after(0, 1)
    assert first.through == 1 and first.rows.value == [0.0] * 10
    some = store.raw_after(0, 15)
    assert some.through >= 2 and len(some.rows) == 10 * some.through
    everything = store.raw_after(0, 10**6)
    assert everything.through == 3 and len(everything.rows) == 30
    assert everything.rows.value == [0.0] * 10 + [1.0] * 10 + [2.0] * 10
    later = store.raw_after(1, 10**6)
    assert later.through == 3 and later.rows.msg_id[0] == 100
    nothing = store.raw_after(3, 10**6)
    assert nothing.through == 3 and len(nothing.rows) == 0


def test_raw_after_keeps_everything_a_row_was(store: HistorianStore) -> None:
    rows = joined(raw([True], tag=OTHER, msg_id=-5), raw(["idle", 2.5], quality=1, msg_id=9))
    store.write(rows)
    batch = store.raw_after(0, 100)
    got = sorted(zip(batch.rows.tag, batch.rows.ts_ns, batch.rows.value, batch.rows.text,
                     batch.rows.quality, batch.rows.msg_id, batch.rows.ingest_ns, strict=True))  # fmt: skip
    want = sorted(zip(rows.tag, rows.ts_ns, rows.value, rows.text, rows.quality, rows.msg_id,
                      rows.ingest_ns, strict=True))  # fmt: skip
    assert got == want
    assert batch.rows.boolean_tags == {OTHER}


def test_refine_stores_processed_rows_and_moves_the_mark(store: HistorianStore) -> None:
    _three_batches(store)
    assert store.refined_through() == 0
    batch = store.raw_after(0, 15)
    flags = [int(Flag.SPIKE)] + [0] * (len(batch.rows) - 1)
    store.refine(processed(batch.rows, flags), keys_for(batch.rows), batch.through)
    assert store.refined_through() == batch.through
    assert store.count(Layer.PROCESSED) == len(batch.rows)
    points = store.points(TAG, T0, T0 + DAY, 100, layer=Layer.PROCESSED)
    assert points[0].flags == Flag.SPIKE and points[1].flags == 0
    assert points[0].msg_id == 0 and points[0].ingest_ns == T0 + 5 * NS_PER_S
    assert store.raw_after(store.refined_through(), 10**6).through == 3


def test_the_mark_survives_a_reopen(store: HistorianStore, reopen: Reopen) -> None:
    _three_batches(store)
    refine_all(store)
    again = reopen()
    assert again.refined_through() == 3
    again.write(raw([5.0], start=T0 + DAY))
    assert again.raw_after(again.refined_through(), 100).through == 4


def test_refined_rows_replace_those_of_the_same_tag_and_time(store: HistorianStore) -> None:
    store.write(raw([1.0, 2.0]))
    refine_all(store)
    fixed = processed(raw([10.0], msg_id=1), [int(Flag.RANGE)])
    store.refine(fixed, keys_for(fixed), store.refined_through())
    points = store.points(TAG, T0, T0 + MIN, 10, layer=Layer.PROCESSED)
    assert [(p.value, p.flags) for p in points] == [(10.0, Flag.RANGE), (2.0, 0)]
    assert store.count(Layer.PROCESSED) == 2
    again = processed(joined(raw([20.0]), raw([30.0])))  # the later of two rows wins
    store.refine(again, [], store.refined_through())
    assert store.points(TAG, T0, T0 + NS_PER_S, 10, layer=Layer.PROCESSED)[0].value == 30.0


def test_processed_queries_leave_bad_samples_out_of_buckets(store: HistorianStore) -> None:
    store.write(joined(raw([1.0, 3.0]), raw([100.0], quality=2, start=T0 + 20 * NS_PER_S)))
    refine_all(store)
    (bucket,) = store.buckets(TAG, T0, T0 + MIN, MIN, layer=Layer.PROCESSED)
    assert (bucket.count, bucket.max, bucket.avg) == (2, 3.0, 2.0)
    (rawbucket,) = store.buckets(TAG, T0, T0 + MIN, MIN, layer=Layer.RAW)
    assert rawbucket.count == 3
    (last,) = store.last([TAG], layer=Layer.PROCESSED)
    assert last.point.value == 100.0 and last.point.quality == 2


def test_previous_and_next_are_strict_and_find_far_neighbours(store: HistorianStore) -> None:
    store.write(raw([1.0, 2.0, 3.0], step=40 * DAY))
    refine_all(store)
    middle = T0 + 40 * DAY
    before = store.previous(TAG, middle)
    after = store.next_after(TAG, middle)
    assert before is not None and (before.ts_ns, before.value) == (T0, 1.0)
    assert after is not None and (after.ts_ns, after.value) == (T0 + 80 * DAY, 3.0)
    assert store.previous(TAG, T0) is None and store.next_after(TAG, T0 + 80 * DAY) is None
    latest = store.previous(TAG, T0 + 400 * DAY)
    assert latest is not None and latest.value == 3.0
    assert store.previous("no/such/tag", middle) is None


def test_processed_booleans_and_text(store: HistorianStore) -> None:
    store.write(joined(raw([True, False], tag=OTHER), raw(["RUN"])))
    refine_all(store)
    flags = store.points(OTHER, T0, T0 + MIN, 10, layer=Layer.PROCESSED)
    assert [p.value for p in flags] == [True, False]
    assert store.points(TAG, T0, T0 + MIN, 10, layer=Layer.PROCESSED)[0].value == "RUN"
    nxt = store.next_after(OTHER, T0)
    assert nxt is not None and nxt.value is False


def test_a_failed_refinement_changes_nothing(store: HistorianStore) -> None:
    store.write(raw([1.0, 2.0]))
    batch = store.raw_after(0, 100)
    with pytest.raises(ValidationFailed):
        store.refine(processed(batch.rows), [RollupKey(TAG, 120, T0)], batch.through)
    with pytest.raises(ValidationFailed):
        store.refine(processed(batch.rows), keys_for(batch.rows), batch.through + 1)
    assert store.refined_through() == 0 and store.count(Layer.PROCESSED) == 0
    assert store.count(Layer.BUSINESS) == 0


def test_refine_without_rows_only_moves_the_mark(store: HistorianStore) -> None:
    _three_batches(store)
    store.refine(ProcessedColumns(), [], 2)
    assert store.refined_through() == 2 and store.count(Layer.PROCESSED) == 0
