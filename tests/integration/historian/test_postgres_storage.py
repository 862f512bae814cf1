"""PostgreSQL specifics of the historian: partitions, binary COPY, compaction, the layout."""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pyarrow as pa
import pytest
from tests.postgres_server import PostgresServer

from werk.core.errors import StorageUnavailable, ValidationFailed
from werk.historian import Layer, ProcessedColumns, RawColumns, RollupKey, Table
from werk.historian.postgres_store import PostgresStore

NS = 1_000_000_000
T0 = 1_794_441_600 * NS  # a Thursday: 7-day partitions start on Thursdays (epoch-aligned)
DAY = 86_400 * NS
TAG = "acme/berlin/machining/line-1/cell-1/cnc-1/temp"


@pytest.fixture
def store(postgres: PostgresServer) -> Iterator[PostgresStore]:
    """An open store on a fresh database of the session's server."""
    backend = PostgresStore(postgres.new_database())
    backend.open()
    yield backend
    backend.close()


def _partitions(url: str, table: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass ORDER BY 1",
            [f"werk_historian.{table}"],
        ).fetchall()
    return [row[0] for row in rows]


def _day(ns: int) -> str:
    return datetime.fromtimestamp(ns // NS, UTC).strftime("%Y%m%d")


def _samples(stamps: list[int], tag: str = TAG, msg_id: int = 1) -> RawColumns:
    rows = RawColumns()
    for i, ts in enumerate(stamps):
        rows.append(tag, ts, ts + NS, float(i), 0, msg_id + i)
    return rows


def test_partitions_are_created_for_the_weeks_written_only(store: PostgresStore) -> None:
    assert _partitions(store.url, "raw") == []
    ancient = 631_152_000 * NS  # 1990-01-01, a Monday: its week began on Thursday 1989-12-28
    store.write(_samples([T0, T0 + 8 * DAY, T0 + 8 * DAY + 1, ancient]))
    assert _partitions(store.url, "raw") == [
        "raw_19891228",
        f"raw_{_day(T0)}",
        f"raw_{_day(T0 + 7 * DAY)}",
    ]
    assert [p.value for p in store.points(TAG, 0, T0 + 30 * DAY, 10)] == [3.0, 0.0, 1.0, 2.0]
    assert _partitions(store.url, "processed") == []
    batch = store.raw_after(0, 100)
    rows = ProcessedColumns(*_columns(batch.rows), flags=[0] * len(batch.rows))
    store.refine(rows, [], batch.through)
    assert len(_partitions(store.url, "processed")) == 3


def _columns(rows: RawColumns) -> tuple[list, ...]:  # type: ignore[type-arg]
    return (rows.tag, rows.ts_ns, rows.ingest_ns, rows.value, rows.text, rows.quality, rows.msg_id)


def test_retention_drops_whole_partitions_and_trims_the_rest(store: PostgresStore) -> None:
    store.write(_samples([T0 + i * DAY for i in range(21)]))  # three weeks
    assert len(_partitions(store.url, "raw")) == 3
    assert store.delete(Table.RAW, T0 + 10 * DAY) == 10
    assert _partitions(store.url, "raw") == [
        f"raw_{_day(T0 + 7 * DAY)}",
        f"raw_{_day(T0 + 14 * DAY)}",
    ]
    assert store.points(TAG, 0, T0 + 30 * DAY, 1)[0].ts_ns == T0 + 10 * DAY
    store.write(_samples([T0 + DAY], msg_id=100))  # late data brings its week back
    assert store.count() == 12 and len(_partitions(store.url, "raw")) == 3


def test_copy_round_trips_every_kind_of_value(store: PostgresStore) -> None:
    rows = RawColumns()
    values: list[bool | float | str] = [
        1.5,
        -0.0,
        math.inf,
        -math.inf,
        'Grüße, "quoted"\ttab\nline',
        "",
        1e308,
        5e-324,
    ]
    for i, value in enumerate(values):
        rows.append(TAG, T0 + i * NS, T0, value, i % 4, -(2**63) + i)
    rows.append("flags/run", T0, T0, True, 0, 2**63 - 1)
    rows.append("numbers/nan", T0, T0, math.nan, 2, 0)
    many = _samples([T0 + DAY + i * 1_000 for i in range(150_000)], tag="bulk/tag")
    for i in range(len(many)):
        rows.append_row(many, i)
    assert store.write(rows) == len(rows)
    points = store.points(TAG, T0, T0 + DAY, 100)
    assert [p.value for p in points] == values
    assert [(p.quality, p.msg_id) for p in points] == [(i % 4, -(2**63) + i) for i in range(8)]
    assert str(points[1].value) == "-0.0"
    assert store.points("flags/run", T0, T0 + 1, 1)[0].value is True
    assert math.isnan(store.last(["numbers/nan"])[0].point.value)  # type: ignore[arg-type]
    assert store.count() == len(rows)
    assert store.points("bulk/tag", 0, T0 + 2 * DAY, 1, newest=True)[0].value == 149_999.0


def test_text_postgresql_cannot_hold_is_refused_whole(store: PostgresStore) -> None:
    rows = _samples([T0, T0 + NS])
    rows.append(TAG, T0 + 2 * NS, T0, "bad\x00byte", 0, 9)
    with pytest.raises(ValidationFailed) as info:
        store.write(rows)
    assert info.value.code == "unstorable_text"
    assert store.count() == 0 and store.raw_after(0, 10).through == 0


def test_compaction_removes_duplicates_and_shrinks_a_covered_week(store: PostgresStore) -> None:
    rows = _samples([T0 + i * 1_000_000 for i in range(20_000)])
    for _ in range(3):
        store.write(rows)  # delivered three times
    before = store.size_bytes()
    assert store.compact(Table.RAW, T0, T0 + 7 * DAY) == 20_000
    assert store.count() == 20_000 and store.size_bytes() < before * 0.6
    assert [p.value for p in store.points(TAG, T0, T0 + DAY, 3)] == [0.0, 1.0, 2.0]


def test_native_partitioning_is_chosen_without_timescaledb(
    postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres.new_database()
    with caplog.at_level(logging.INFO, logger="werk.historian"):
        store = PostgresStore(url)
        store.open()
    try:
        assert store.layout == "native partitions"
        assert "TimescaleDB is not installed" in caplog.text
        assert "native partitions" in caplog.text
        with psycopg.connect(url) as conn:
            kinds = conn.execute(
                "SELECT relname, relkind FROM pg_class WHERE relname IN ('raw', 'processed')"
            ).fetchall()
            extensions = conn.execute("SELECT extname FROM pg_extension").fetchall()
        assert sorted(kinds) == [("processed", "p"), ("raw", "p")]
        assert ("timescaledb",) not in extensions
    finally:
        store.close()


def test_a_database_owner_without_superuser_rights_is_enough(postgres: PostgresServer) -> None:
    role, password = f"werk_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    postgres.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    postgres.execute(f"CREATE DATABASE {role} OWNER {role}")
    store = PostgresStore(f"postgresql://{role}:{password}@{postgres.host}:{postgres.port}/{role}")
    store.open()
    try:
        store.write(_samples([T0, T0 + 9 * DAY]))
        assert store.count() == 2 and store.size_bytes() > 0
    finally:
        store.close()


def test_threads_share_a_small_pool(postgres: PostgresServer) -> None:
    store = PostgresStore(postgres.new_database(), pool_size=2)
    store.open()
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(20):
                store.write(_samples([T0 + (worker * 100 + i) * NS], tag=f"t/{worker}"))
                store.last([f"t/{worker}"])
                store.buckets(f"t/{worker}", T0, T0 + DAY, 60 * NS)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert errors == []
        assert store.count() == 120 and store.raw_after(0, 10**6).through == 120
    finally:
        store.close()


def test_rollups_and_refinement_land_in_one_transaction(store: PostgresStore) -> None:
    store.write(_samples([T0, T0 + NS]))
    batch = store.raw_after(0, 10)
    rows = ProcessedColumns(*_columns(batch.rows), flags=[0, 1])
    keys = [RollupKey(TAG, 60, T0), RollupKey(TAG, 3600, T0), RollupKey(TAG, 86400, T0)]
    store.refine(rows, keys, batch.through)
    (day,) = store.rollups(TAG, 86400, T0, T0 + DAY)
    assert (day.count, day.flagged, day.sum) == (2, 1, 1.0)
    assert store.count(Layer.BUSINESS) == 3 and store.refined_through() == 1


def test_a_partition_dropped_by_another_process_comes_back_on_retry(
    store: PostgresStore,
) -> None:
    store.write(_samples([T0]))
    other = PostgresStore(store.url)  # e.g. `werk data retention --apply` next to werk
    other.open()
    try:
        assert other.delete(Table.RAW, T0 + 7 * DAY) == 1
    finally:
        other.close()
    late = _samples([T0 + DAY], msg_id=50)
    with pytest.raises(StorageUnavailable):
        store.write(late)  # this process still took the week for granted
    assert store.write(late) == 1  # the writer's retry recreates it
    assert [p.msg_id for p in store.points(TAG, T0, T0 + 7 * DAY, 10)] == [50]


def test_loaded_rows_without_a_name_or_a_required_value_are_refused(store: PostgresStore) -> None:
    good = next(iter(_exported(store)))
    no_tag = good.set_column(0, "tag", pa.nulls(good.num_rows, pa.string()))
    other = good.set_column(7, "msg_id", pa.array([999] * good.num_rows, pa.int64()))
    no_quality = other.set_column(6, "quality", pa.nulls(good.num_rows, pa.uint8()))
    for bad in (no_tag, no_quality):
        with pytest.raises(ValidationFailed):
            store.load(Table.RAW, bad)
    assert store.count() == 1 and store.raw_after(0, 10).through == 1


def _exported(store: PostgresStore) -> list[pa.Table]:
    store.write(_samples([T0]))
    return list(store.scan(Table.RAW, 0, T0 + DAY))
