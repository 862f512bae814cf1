"""Sources end to end: files and SQL tables land in a real DuckDB historian, once."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from tests.conftest import wait_until

from werk.core.clock import now_ns
from werk.core.db import session_scope
from werk.historian import HistorianStore, Layer
from werk.sources import build_sources
from werk.sources.models import SourceRun
from werk.sources.runner import SourceRunner
from werk.sources.service import runs, start_run
from werk.uns.quarantine import list_records

FAR = 2**62
ORDERS_HEADER = "Order No,line,customer_id,sku,quantity,status,ordered_at\n"
SOURCES = """
[[sources]]
name = "erp-orders"
kind = "file"
dataset = "orders"
path = "drop/orders-*.csv"
columns = {{ "Order No" = "order_id" }}

[[sources]]
name = "wms-stock"
kind = "sql"
dataset = "inventory"
url = "sqlite:///{erp}"
query = "SELECT wh AS warehouse, sku, qty AS on_hand, counted_at, version FROM stock"
cursor = "version"
every = "{every}"
"""


def order_rows(*rows: str) -> str:
    return ORDERS_HEADER + "".join(f"{r}\n" for r in rows)


GOOD_1 = "SO-1,1,C-7,BRK-200,12,open,2026-05-01T08:30:00Z"
GOOD_2 = "SO-2,1,C-9,BRK-300,3.5,open,2026-05-01T09:00:00Z"
BAD_QTY = "SO-3,1,C-9,BRK-300,lots,open,2026-05-01T09:10:00Z"
BAD_TIME = "SO-4,1,C-9,BRK-300,1,open,1969-07-20T20:17:00Z"


def add_stock(erp: Path, *rows: tuple[Any, ...]) -> None:
    with sqlite3.connect(erp) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS stock (wh TEXT, sku TEXT, qty REAL, counted_at TEXT, "
            "version INTEGER)"
        )
        db.executemany("INSERT INTO stock VALUES (?, ?, ?, ?, ?)", rows)


@pytest.fixture
def setup(
    tmp_path: Path, store: HistorianStore, sessions: sessionmaker[Session]
) -> Iterator[tuple[SourceRunner, Path, Path]]:
    drop, erp = tmp_path / "drop", tmp_path / "erp.db"
    drop.mkdir()
    add_stock(erp)
    sources_file = tmp_path / "sources.toml"
    sources_file.write_text(SOURCES.format(erp=erp, every="1h"))
    runner = build_sources(sources_file=sources_file, store=store, sessions=sessions)
    yield runner, drop, erp
    runner.stop()


def last_run(runner: SourceRunner, name: str) -> SourceRun:
    with runner.sessions() as session:
        return runs(session=session, source=name, limit=1)[0]


def test_a_file_lands_valid_rows_and_quarantines_the_rest_once(
    setup: tuple[SourceRunner, Path, Path], store: HistorianStore
) -> None:
    runner, drop, _ = setup
    (drop / "orders-1.csv").write_text(order_rows(GOOD_1, BAD_QTY, GOOD_2, BAD_TIME))
    runner.run_once("erp-orders")

    run = last_run(runner, "erp-orders")
    assert (run.rows_read, run.accepted, run.rejected, run.stored, run.error) == (4, 2, 2, 2, None)
    stored = store.records("orders", 0, FAR, 10)
    assert [(r.key, r.payload["quantity"], r.source) for r in stored] == [
        ("SO-1|1", 12.0, "erp-orders"), ("SO-2|1", 3.5, "erp-orders"),
    ]  # fmt: skip
    with runner.sessions() as session:
        quarantined, total = list_records(session=session)
    assert total == 2
    by_reason = {q.reason: q for q in quarantined}
    assert set(by_reason) == {"wrong_type", "time_out_of_range"}
    assert by_reason["wrong_type"].topic == "sources/erp-orders/orders"
    assert by_reason["wrong_type"].detail.endswith(
        "orders-1.csv line 3: field 'quantity': 'lots' is not a number"
    )
    assert b'"Order No":"SO-3"' in by_reason["wrong_type"].payload  # the row as it came

    runner.run_once("erp-orders")  # the same file again: nothing read, nothing stored
    assert (last_run(runner, "erp-orders").rows_read, store.datasets()) == (0, {"orders": 2})


def test_a_changed_file_adds_only_its_new_rows(
    setup: tuple[SourceRunner, Path, Path], store: HistorianStore
) -> None:
    runner, drop, _ = setup
    (drop / "orders-1.csv").write_text(order_rows(GOOD_1))
    runner.run_once("erp-orders")
    (drop / "orders-1.csv").write_text(order_rows(GOOD_1, GOOD_2))
    runner.run_once("erp-orders")
    run = last_run(runner, "erp-orders")
    assert (run.rows_read, run.accepted, run.stored) == (2, 2, 1)
    assert store.datasets() == {"orders": 2}


def test_a_file_that_does_not_fit_fails_the_run_and_the_others_still_land(
    setup: tuple[SourceRunner, Path, Path], store: HistorianStore
) -> None:
    runner, drop, _ = setup
    (drop / "orders-1.csv").write_text("Order No,Colour\nSO-1,red\n")
    (drop / "orders-2.csv").write_text(order_rows(GOOD_1))
    runner.run_once("erp-orders")
    run = last_run(runner, "erp-orders")
    assert run.error is not None and "orders-1.csv: columns 'Colour'" in run.error
    assert (run.stored, store.datasets()) == (1, {"orders": 1})


def test_sql_stock_lands_as_records_and_as_raw_samples_of_tags(
    setup: tuple[SourceRunner, Path, Path], store: HistorianStore
) -> None:
    runner, _, erp = setup
    add_stock(erp, ("WH-1", "BRK-200", 140, "2026-05-01 08:00:00", 1),
              ("WH-1", "BRK-200", 128, "2026-05-01 09:00:00", 2))  # fmt: skip
    runner.run_once("wms-stock")
    tag = "erp/inventory/WH-1/BRK-200/on_hand"
    points = store.points(tag, 0, FAR, 10, layer=Layer.RAW)
    assert [p.value for p in points] == [140.0, 128.0]
    records = store.records("inventory", 0, FAR, 10)
    assert [r.msg_id for r in records] == [p.msg_id for p in points]  # lineage to the row

    add_stock(erp, ("WH-1", "BRK-200", 120, "2026-05-01 10:00:00", 3))
    runner.run_once("wms-stock")
    assert (last_run(runner, "wms-stock").rows_read, store.count(Layer.RAW)) == (1, 3)
    latest = store.records("inventory", 0, FAR, 10, latest=True)
    assert [(r.key, r.payload["on_hand"]) for r in latest] == [("WH-1|BRK-200", 120.0)]


def test_landing_the_same_rows_twice_stores_nothing_twice(
    setup: tuple[SourceRunner, Path, Path], store: HistorianStore
) -> None:
    runner, _, _ = setup
    count = {"warehouse": "WH-1", "sku": "S-1", "on_hand": 5, "counted_at": "2026-05-01T08:00:00Z"}
    earlier = count | {"on_hand": 9, "counted_at": "2026-04-01T08:00:00Z"}
    rows = [count, count, earlier]
    first = runner.push("inventory", rows)
    again = runner.push("inventory", rows)
    assert (first.accepted, first.stored, first.samples) == (3, 2, 2)
    assert (again.accepted, again.stored, again.samples) == (3, 0, 0)
    corrected = runner.push("inventory", [count | {"on_hand": 6}])  # same time, new value
    assert (corrected.stored, corrected.samples) == (1, 1)
    assert store.count(Layer.RAW) == 3
    (latest,) = store.records("inventory", 0, FAR, 10, latest=True)
    assert latest.payload["on_hand"] == 6.0


def test_the_thread_runs_due_sources_and_requested_runs(
    tmp_path: Path, store: HistorianStore, sessions: sessionmaker[Session]
) -> None:
    erp = tmp_path / "erp.db"
    add_stock(erp, ("WH-1", "S-1", 1, "2026-05-01 08:00:00", 1))
    (tmp_path / "drop").mkdir()
    (tmp_path / "drop" / "orders-1.csv").write_text(order_rows(GOOD_1))
    sources_file = tmp_path / "sources.toml"
    sources_file.write_text(SOURCES.format(erp=erp, every="1s"))
    runner = build_sources(sources_file=sources_file, store=store, sessions=sessions, tick_s=0.05)
    runner.start()
    try:
        wait_until(lambda: store.datasets().get("inventory") == 1)
        add_stock(erp, ("WH-1", "S-1", 2, "2026-05-01 09:00:00", 2))
        wait_until(lambda: store.datasets().get("inventory") == 2, timeout=5)  # every second
        assert "orders" not in store.datasets()  # on demand only
        request = runner.run_now("erp-orders", wait_s=10)
        assert request.done.is_set() and request.run_id is not None
        assert store.datasets()["orders"] == 1
        with runner.sessions() as session:
            scheduled = runs(session=session, source="wms-stock", limit=10)
        assert len(scheduled) >= 2 and {r.trigger for r in scheduled} == {"schedule"}
    finally:
        started = time.monotonic()
        runner.stop()
        assert time.monotonic() - started < 5


def test_runs_a_stop_interrupted_are_closed_at_start(
    setup: tuple[SourceRunner, Path, Path],
) -> None:
    runner, _, _ = setup
    with session_scope(runner.sessions) as session:
        start_run(session=session, source="erp-orders", trigger="manual", at_ns=now_ns())
    runner.start()
    run = last_run(runner, "erp-orders")
    assert run.finished_ns is not None and run.error is not None and "interrupted" in run.error
