"""The DuckDB raw layer: batched writes, range and bucket queries, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest

from werk.core.clock import NS_PER_S
from werk.core.errors import StorageUnavailable
from werk.historian import DuckDBStore, RawColumns

T0 = 1_795_000_000 * NS_PER_S
TAG = "acme/berlin/machining/line-1/cell-1/cnc-1/temp"


def _rows(values: list[float | str], tag: str = TAG, step_s: int = 10, msg0: int = 1) -> RawColumns:
    rows = RawColumns()
    for i, value in enumerate(values):
        rows.append(
            tag, T0 + i * step_s * NS_PER_S, T0 + i * step_s * NS_PER_S + 5, value, 0, msg0 + i
        )
    return rows


@pytest.fixture
def store(tmp_path: Path) -> DuckDBStore:
    s = DuckDBStore(tmp_path / "h.duckdb")
    s.open()
    return s


def test_points_come_back_in_order_with_lineage(store: DuckDBStore) -> None:
    store.write(_rows([3.0, 1.0, "RUN", 2.0]))
    points = store.points(TAG, T0, T0 + 3600 * NS_PER_S, 10)
    assert [p.value for p in points] == [3.0, 1.0, "RUN", 2.0]
    assert [p.msg_id for p in points] == [1, 2, 3, 4]
    assert points[0].ts_ns == T0 and points[0].ingest_ns == T0 + 5 // 1000 * 1000


def test_range_is_half_open_and_limited(store: DuckDBStore) -> None:
    store.write(_rows([float(i) for i in range(10)]))
    points = store.points(TAG, T0 + 10 * NS_PER_S, T0 + 50 * NS_PER_S, 100)
    assert [p.value for p in points] == [1.0, 2.0, 3.0, 4.0]
    assert len(store.points(TAG, T0, T0 + 3600 * NS_PER_S, 3)) == 3


def test_buckets_aggregate_per_minute(store: DuckDBStore) -> None:
    store.write(_rows([float(i) for i in range(12)]))  # two minutes at 10 s spacing
    first, second = store.buckets(TAG, T0, T0 + 3600 * NS_PER_S, 60 * NS_PER_S)[:2]
    offset = (T0 // NS_PER_S) % 60  # buckets align to the epoch
    assert first.start_ns == T0 - offset * NS_PER_S
    assert first.count + second.count <= 12
    every = store.buckets(TAG, T0, T0 + 3600 * NS_PER_S, 3600 * NS_PER_S)
    assert sum(b.count for b in every) == 12
    assert min(b.min or 0 for b in every) == 0.0
    assert max(b.max or 0 for b in every) == 11.0
    assert every[0].first == 0.0 and every[-1].last == 11.0


def test_last_and_recent_message_ids(store: DuckDBStore) -> None:
    store.write(_rows([1.0, 2.0]))
    store.write(_rows([7.0], tag=TAG + "2", msg0=9))
    last = {t.tag: t.point.value for t in store.last([TAG, TAG + "2", "unknown"])}
    assert last == {TAG: 2.0, TAG + "2": 7.0}
    assert store.recent_message_ids(T0 - 1) == {1, 2, 9}
    assert store.recent_message_ids(T0 + 10**12) == set()


def test_data_survives_a_reopen(tmp_path: Path) -> None:
    first = DuckDBStore(tmp_path / "h.duckdb")
    first.open()
    first.write(_rows([1.0, 2.0]))
    first.close()
    again = DuckDBStore(tmp_path / "h.duckdb")
    again.open()
    again.write(_rows([3.0], tag=TAG + "b"))
    assert again.count() == 3
    assert again.knows(TAG) and again.knows(TAG + "b")


def test_a_closed_store_reports_storage_unavailable(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "h.duckdb")
    with pytest.raises(StorageUnavailable):
        store.write(_rows([1.0]))


def test_an_unopenable_file_reports_storage_unavailable(tmp_path: Path) -> None:
    (tmp_path / "h.duckdb").write_text("this is not a database")
    with pytest.raises(StorageUnavailable) as info:
        DuckDBStore(tmp_path / "h.duckdb").open()
    assert "open the historian" in info.value.message


def test_newest_keeps_the_end_of_the_range(store: DuckDBStore) -> None:
    store.write(_rows([float(i) for i in range(10)]))
    points = store.points(TAG, T0, T0 + 3600 * NS_PER_S, 3, newest=True)
    assert [p.value for p in points] == [7.0, 8.0, 9.0]


def test_booleans_come_back_as_booleans_even_after_a_reopen(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "h.duckdb")
    store.open()
    rows = RawColumns()
    rows.extend([(TAG + "b", T0, True, 0, None), (TAG, T0, 1, 0, None)], T0, 1)
    store.write(rows)
    store.close()
    again = DuckDBStore(tmp_path / "h.duckdb")
    again.open()
    (flag,) = again.points(TAG + "b", T0, T0 + NS_PER_S, 10)
    (number,) = again.points(TAG, T0, T0 + NS_PER_S, 10)
    assert flag.value is True
    assert number.value == 1.0 and type(number.value) is float
    assert again.last([TAG + "b"])[0].point.value is True
    assert again.buckets(TAG + "b", T0, T0 + NS_PER_S, NS_PER_S)[0].avg == 1.0


def test_existing_finds_stored_tag_and_time_pairs(store: DuckDBStore) -> None:
    rows = RawColumns()
    rows.append("a/b/c/d/e/t1", T0, T0, 1.0, 0, 1)
    rows.append("a/b/c/d/e/t1", T0 + 1_000_000, T0, 2.0, 0, 1)
    rows.append("a/b/c/d/e/t2", T0, T0, 3.0, 0, 1)
    store.write(rows)
    tags = ["a/b/c/d/e/t1", "a/b/c/d/e/t1", "a/b/c/d/e/t2", "a/b/c/d/e/t3", "a/b/c/d/e/t2"]
    stamps = [T0, T0 + 2_000_000, T0, T0, T0 + 1_000_000]
    assert store.existing(tags, stamps) == {("a/b/c/d/e/t1", T0), ("a/b/c/d/e/t2", T0)}
    assert store.existing([], []) == set()
