"""Retention, compaction, Arrow scan and load between backends, and a closed store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pytest
from tests.contract.support import (
    DAY,
    END,
    HOUR,
    MIN,
    OTHER,
    T0,
    TAG,
    joined,
    keys_for,
    processed,
    raw,
    refine_all,
    snapshot,
)

from werk.core.clock import NS_PER_S
from werk.core.errors import StorageUnavailable, ValidationFailed
from werk.historian import (
    SCHEMAS,
    DuckDBStore,
    Flag,
    HistorianStore,
    Kpi,
    Layer,
    LineageRef,
    ProcessedColumns,
    Record,
    Table,
)


def _fill(store: HistorianStore) -> None:
    """A little of everything: two tags in two batches, refined, KPIs and records."""
    store.write(joined(raw([1.0, "RUN", 3.0], msg_id=1, per_message=3), raw([True], tag=OTHER)))
    store.write(raw([4.0, 5.0], start=T0 + HOUR, msg_id=-7, quality=1))
    refine_all(store, [int(Flag.SPIKE), 0, 0, 0, 0, 0])
    ref = LineageRef(Layer.PROCESSED, TAG, T0, T0 + HOUR)
    store.write_kpis(
        [Kpi("oee/line-1", T0 + i * HOUR, 80.0 + i, "%", "oee", (ref,)) for i in (0, 1)]
    )
    store.write_records(
        [Record("erp/orders", f"A-{i}", T0 + i * MIN, T0, {"qty": i}, i, "erp") for i in (1, 2)]
    )


@pytest.fixture
def source() -> Iterator[HistorianStore]:
    """A DuckDB store in memory holding a little of every table."""
    store = DuckDBStore(None)
    store.open()
    _fill(store)
    yield store
    store.close()


def test_delete_removes_old_rows_per_name_and_table(store: HistorianStore) -> None:
    _fill(store)
    assert store.delete(Table.RAW, T0 + 15 * NS_PER_S, [TAG]) == 2
    assert store.count() == 4 and store.last([OTHER])[0].point.value is True
    assert store.delete(Table.RAW, T0 + DAY) == 4
    assert store.count() == 0 and store.last([TAG, OTHER]) == []
    assert store.message_points(1) == [] and store.knows(TAG)
    assert store.delete(Table.PROCESSED, T0 + HOUR, [OTHER, "no/such/tag"]) == 1
    assert store.last([OTHER], layer=Layer.PROCESSED) == []
    assert store.last([TAG], layer=Layer.PROCESSED)[0].point.value == 5.0
    assert store.delete(Table.ROLLUPS, T0 + HOUR, [TAG]) == 3  # minute 0, hour 0, day 0
    assert store.rollups(TAG, 60, T0, T0 + DAY)[0].start_ns == T0 + HOUR
    assert store.delete(Table.KPIS, T0 + DAY, ["other"]) == 0
    assert store.delete(Table.KPIS, T0 + HOUR, ["oee/line-1"]) == 1
    assert store.delete(Table.RECORDS, T0 + DAY, ["erp/orders"]) == 2
    assert store.datasets() == {} and len(store.kpis("oee/line-1", T0, END, 10)) == 1


def test_compact_keeps_rows_and_drops_exact_duplicates(store: HistorianStore) -> None:
    rows = joined(raw([1.0, 2.0, 3.0], msg_id=1), raw([7.0], tag=OTHER, msg_id=9))
    store.write(rows)
    store.write(rows)  # delivered twice
    store.write(raw([1.0], msg_id=99))  # same tag and time, another message: kept
    assert store.compact(Table.RAW, T0, T0 + 15 * NS_PER_S, [TAG]) == 3
    assert store.count() == 7
    assert store.compact(Table.RAW, T0, END) == 5
    points = store.points(TAG, T0, END, 10)
    assert [(p.value, p.msg_id) for p in points] == [(1.0, 1), (1.0, 99), (2.0, 2), (3.0, 3)]
    assert store.points(OTHER, T0, END, 10)[0].ingest_ns == rows.ingest_ns[3]
    assert store.last([TAG])[0].point.value == 3.0
    assert sorted(t.tag for t in store.message_points(1)) == [TAG]


def test_compact_keeps_every_other_table(store: HistorianStore) -> None:
    _fill(store)
    before = {table: snapshot(store, table) for table in Table}
    kept = {table: store.compact(table, T0, END) for table in Table}
    assert kept == {table: len(rows) for table, rows in before.items()}
    assert {table: snapshot(store, table) for table in Table} == before


def test_scan_chunks_have_the_exchange_schema(store: HistorianStore) -> None:
    _fill(store)
    source = store
    for table in Table:
        chunks = list(source.scan(table, T0, END, chunk_rows=2))
        assert chunks and all(c.schema.equals(SCHEMAS[table]) for c in chunks)
        assert all(c.num_rows <= 2 for c in chunks)
        assert sum(c.num_rows for c in chunks) == source.estimate(table, T0, END)
    tagged = pa.concat_tables(source.scan(Table.RAW, T0, END, names=[OTHER])).to_pylist()
    assert [(r["tag"], r["value"], r["boolean"]) for r in tagged] == [(OTHER, 1.0, True)]
    assert list(source.scan(Table.RAW, T0 + DAY, END)) == []
    assert source.estimate(Table.RAW, T0, T0 + HOUR) == 4


def test_scanned_rows_load_into_another_store(
    source: HistorianStore, store: HistorianStore
) -> None:
    for table in Table:
        added = sum(store.load(table, chunk) for chunk in source.scan(table, 0, END, chunk_rows=3))
        assert added == source.estimate(table, 0, END)
        assert snapshot(store, table) == snapshot(source, table)
    assert [p.value for p in store.points(TAG, T0, END, 10)] == [1.0, "RUN", 3.0, 4.0, 5.0]
    assert store.last([OTHER])[0].point.value is True
    assert store.points(TAG, T0, END, 1, layer=Layer.PROCESSED)[0].flags == Flag.SPIKE
    assert store.kpis("oee/line-1", T0, END, 10) == source.kpis("oee/line-1", T0, END, 10)
    assert store.buckets(TAG, T0, END, DAY, layer=Layer.BUSINESS) == source.buckets(
        TAG, T0, END, DAY, layer=Layer.BUSINESS
    )
    assert {t.tag for t in store.message_points(1)} == {TAG, OTHER}


def test_load_skips_stored_rows_and_raw_rows_form_a_batch(
    source: HistorianStore, store: HistorianStore
) -> None:
    store.write(raw([0.0], start=T0 - DAY))
    for table in Table:
        data = pa.concat_tables(source.scan(table, 0, END))
        assert store.load(table, data) == data.num_rows
        assert store.load(table, data) == 0
        assert store.load(table, data.slice(0, 0)) == 0
    loaded = store.raw_after(1, 10**6)
    assert loaded.through == 2 and len(loaded.rows) == 6
    assert store.raw_after(2, 10**6).through == 2


def test_load_refuses_rows_of_another_schema(store: HistorianStore) -> None:
    with pytest.raises(ValidationFailed):
        store.load(Table.RAW, pa.table({"tag": [TAG]}))
    kpis = pa.table({"name": ["x"]}).cast(pa.schema([("name", pa.string())]))
    with pytest.raises(ValidationFailed):
        store.load(Table.KPIS, kpis)
    assert store.count() == 0


def test_size_grows_with_what_is_stored(store: HistorianStore) -> None:
    empty = store.size_bytes()
    assert empty >= 0
    for block in range(5):
        store.write(raw([float(i) for i in range(10_000)], step=NS_PER_S, start=T0 + block * DAY))
    assert store.size_bytes() > empty


_CALLS: dict[str, Callable[[HistorianStore], Any]] = {
    "write": lambda s: s.write(raw([1.0])),
    "existing": lambda s: s.existing([TAG], [T0]),
    "recent_message_ids": lambda s: s.recent_message_ids(T0),
    "message_points": lambda s: s.message_points(1),
    "tag_paths": lambda s: s.tag_paths(),
    "knows": lambda s: s.knows(TAG),
    "count": lambda s: s.count(),
    "points": lambda s: s.points(TAG, T0, END, 10),
    "buckets": lambda s: s.buckets(TAG, T0, END, HOUR),
    "last": lambda s: s.last([TAG]),
    "previous": lambda s: s.previous(TAG, END),
    "next_after": lambda s: s.next_after(TAG, T0),
    "raw_after": lambda s: s.raw_after(0, 10),
    "refine": lambda s: s.refine(ProcessedColumns(), [], 0),
    "refined_through": lambda s: s.refined_through(),
    "rollups": lambda s: s.rollups(TAG, 60, T0, END),
    "write_kpis": lambda s: s.write_kpis([Kpi("k", T0, 1.0, "", "", ())]),
    "kpis": lambda s: s.kpis("k", T0, END, 10),
    "kpi_names": lambda s: s.kpi_names(),
    "write_records": lambda s: s.write_records([Record("d", "k", T0, T0, {}, 1, "s")]),
    "records": lambda s: s.records("d", T0, END, 10),
    "datasets": lambda s: s.datasets(),
    "delete": lambda s: s.delete(Table.RAW, T0),
    "compact": lambda s: s.compact(Table.RAW, T0, END),
    "scan": lambda s: list(s.scan(Table.RAW, T0, END)),
    "estimate": lambda s: s.estimate(Table.RAW, T0, END),
    "size_bytes": lambda s: s.size_bytes(),
}


def test_a_closed_store_reports_storage_unavailable(store: HistorianStore) -> None:
    _fill(store)
    store.close()
    answered = []
    for name, call in _CALLS.items():
        try:
            call(store)
        except StorageUnavailable:
            continue
        answered.append(name)
    assert answered == []


def test_keys_touching_every_width_are_what_refine_expects(store: HistorianStore) -> None:
    rows = raw([1.0], start=T0 + DAY + HOUR + MIN)
    store.write(rows)
    store.refine(processed(rows), keys_for(rows), 1)
    assert [len(store.rollups(TAG, w, T0, END)) for w in (60, 3600, 86400)] == [1, 1, 1]
