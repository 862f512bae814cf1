"""What only the DuckDB backend does: its file, its first layout, compression, threads."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import numpy as np
import pytest

from werk.core.clock import NS_PER_S
from werk.core.errors import StorageUnavailable, ValidationFailed
from werk.historian import DuckDBStore, Layer, RawColumns, Table
from werk.historian.layers import ProcessedColumns

T0 = 1_794_960_000 * NS_PER_S
TAG = "acme/berlin/machining/line-1/cell-1/cnc-1/temp"


def _rows(values: list[float | str], tag: str = TAG, step_s: int = 10, msg0: int = 1) -> RawColumns:
    rows = RawColumns()
    for i, value in enumerate(values):
        rows.append(tag, T0 + i * step_s * NS_PER_S, T0 + i * step_s * NS_PER_S, value, 0, msg0 + i)
    return rows


@pytest.fixture
def store(tmp_path: Path) -> DuckDBStore:
    s = DuckDBStore(tmp_path / "h.duckdb")
    s.open()
    return s


def test_the_store_says_where_it_keeps_its_data(tmp_path: Path) -> None:
    assert DuckDBStore(tmp_path / "a" / "h.duckdb").path == tmp_path / "a" / "h.duckdb"
    memory = DuckDBStore(None)
    memory.open()
    memory.write(_rows([1.0]))
    assert memory.path is None and memory.count() == 1 and memory.size_bytes() > 0
    memory.close()


def test_opening_creates_the_directory_and_reopening_is_harmless(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "deep" / "dir" / "h.duckdb")
    store.open()
    store.open()
    store.write(_rows([1.0]))
    store.close()
    store.close()
    assert (tmp_path / "deep" / "dir" / "h.duckdb").exists()


def test_a_store_never_opened_reports_storage_unavailable(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "h.duckdb")
    with pytest.raises(StorageUnavailable) as info:
        store.write(_rows([1.0]))
    assert info.value.code == "historian_closed"


def test_an_unopenable_file_reports_storage_unavailable(tmp_path: Path) -> None:
    (tmp_path / "h.duckdb").write_text("this is not a database")
    with pytest.raises(StorageUnavailable) as info:
        DuckDBStore(tmp_path / "h.duckdb").open()
    assert "open the historian" in info.value.message


def test_rows_that_do_not_fit_are_refused_and_nothing_is_kept(store: DuckDBStore) -> None:
    rows = _rows([1.0, 2.0])
    rows.quality[1] = 300
    with pytest.raises(ValidationFailed) as info:
        store.write(rows)
    assert info.value.code == "bad_rows"
    short = _rows([1.0, 2.0])
    short.msg_id.pop()
    with pytest.raises(ValidationFailed):
        store.write(short)
    assert store.count() == 0 and not store.knows(TAG)
    store.write(_rows([3.0]))
    assert store.raw_after(0, 10).through == 1  # the refused writes used no batch number


def test_a_first_layout_file_is_moved_into_the_current_one(tmp_path: Path) -> None:
    path = tmp_path / "h.duckdb"
    old = duckdb.connect(str(path))
    old.execute("CREATE TABLE tags (tag_id INTEGER PRIMARY KEY, path VARCHAR NOT NULL UNIQUE)")
    old.execute(
        """CREATE TABLE raw (tag_id INTEGER NOT NULL, ts TIMESTAMP NOT NULL,
           ingest_ts TIMESTAMP NOT NULL, value DOUBLE, text VARCHAR,
           quality UTINYINT NOT NULL, msg_id BIGINT NOT NULL)"""
    )
    old.execute("INSERT INTO tags VALUES (1, ?)", [TAG])
    old.execute(
        """INSERT INTO raw VALUES
           (1, make_timestamp(?), make_timestamp(?), 1.5, NULL, 0, -9),
           (1, make_timestamp(?), make_timestamp(?), NULL, 'RUN', 1, 4)""",
        [T0 // 1000, T0 // 1000 + 5, T0 // 1000 + 10, T0 // 1000 + 15],
    )
    old.close()
    store = DuckDBStore(path)
    store.open()
    points = store.points(TAG, T0, T0 + NS_PER_S, 10)
    assert [(p.value, p.msg_id, p.ingest_ns) for p in points] == [
        (1.5, -9, T0 + 5_000),
        ("RUN", 4, T0 + 15_000),
    ]
    assert store.last([TAG])[0].point.value == "RUN"
    assert store.raw_after(0, 10).through == 1 and store.message_points(-9)[0].tag == TAG
    store.write(_rows([2.0], msg0=77))
    assert store.raw_after(1, 10).rows.msg_id == [77]


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


def test_size_checkpoints_so_the_file_holds_everything(store: DuckDBStore) -> None:
    for block in range(3):  # a small batch, then large ones: once left the WAL unfolded
        store.write(_rows([float(i) for i in range(10 if block == 0 else 60_000)], msg0=block))
    assert store.size_bytes() > 0
    assert store.path is not None
    wal = store.path.with_name(store.path.name + ".wal")
    assert not wal.exists() or wal.stat().st_size == 0


def _sensor_batches(tags: int, points: int, steps_per_message: int = 5) -> list[RawColumns]:
    """Tags sampled every 10 s, values of a sensor (a random walk to two decimals).

    A message carries a few samples of every tag, as a gateway publishing in bursts does.
    """
    rng = np.random.default_rng(3)
    walk = np.round(50 + np.cumsum(rng.normal(0, 0.05, (points, tags)), axis=0), 2)
    paths = [f"acme/berlin/machining/line-1/cell-1/m-{i // 10}/t{i % 10}" for i in range(tags)]
    batches, rows = [], RawColumns()
    for step in range(points):
        ts = T0 + step * 10 * NS_PER_S
        message = step // steps_per_message
        ingest = T0 + message * steps_per_message * 10 * NS_PER_S + NS_PER_S
        rows.extend_columns(paths, [ts] * tags, walk[step].tolist(), 0, ingest, message)
        if len(rows) >= 100_000:
            batches.append(rows)
            rows = RawColumns()
    return [*batches, rows] if len(rows) else batches


def test_compaction_packs_sensor_data_into_few_bytes_per_point(store: DuckDBStore) -> None:
    store.write(_rows([1.0], tag="acme/other"))
    baseline = store.size_bytes()  # the first blocks of every table
    for rows in _sensor_batches(tags=20, points=50_000):
        store.write(rows)
    stored = store.count() - 1
    loose = store.size_bytes() - baseline
    assert store.compact(Table.RAW, T0, T0 + 10**6 * NS_PER_S) == stored + 1
    packed = store.size_bytes() - baseline
    assert packed / stored <= 4.0, f"{packed / stored:.2f} bytes per point after compaction"
    assert packed < loose
    third = store.points("acme/berlin/machining/line-1/cell-1/m-0/t3", T0, T0 + 30 * NS_PER_S, 5)
    assert [p.msg_id for p in third] == [0, 0, 0]


def test_writes_refinement_and_queries_run_side_by_side(store: DuckDBStore) -> None:
    errors: list[BaseException] = []
    done = threading.Event()

    def guard(work: object) -> None:
        try:
            work()  # type: ignore[operator]
        except BaseException as exc:  # a thread's failure fails the test
            errors.append(exc)
            done.set()

    def write() -> None:
        for batch in range(20):
            store.write(_rows([float(i) for i in range(500)], msg0=batch * 1000))
        done.set()

    def refine() -> None:
        while store.refined_through() < 20 and not errors:
            raw = store.raw_after(store.refined_through(), 1_000)
            rows = ProcessedColumns(*vars_of(raw.rows), flags=[0] * len(raw.rows))
            store.refine(rows, [], raw.through)

    def read() -> None:
        while not done.is_set():
            store.points(TAG, T0, T0 + 10**6 * NS_PER_S, 100)
            store.last([TAG], layer=Layer.PROCESSED)
            store.buckets(TAG, T0, T0 + 10**6 * NS_PER_S, 60 * NS_PER_S)

    threads = [threading.Thread(target=guard, args=(w,)) for w in (write, refine, read, read)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert store.count() == 10_000 and store.refined_through() == 20
    assert store.count(Layer.PROCESSED) == 500  # the same 500 (tag, ts) every batch


def vars_of(rows: RawColumns) -> tuple[object, ...]:
    """The column lists of raw rows, in constructor order."""
    return (rows.tag, rows.ts_ns, rows.ingest_ns, rows.value, rows.text, rows.quality,
            rows.msg_id, rows.boolean_tags)  # fmt: skip
