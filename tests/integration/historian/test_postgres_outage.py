"""The PostgreSQL historian when the server goes away, and what its errors reveal."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import free_port, require, wait_until
from tests.postgres_server import PostgresServer, postgres_binaries

from werk.core.errors import StorageUnavailable
from werk.historian import Layer, RawColumns, Table
from werk.historian.postgres_store import PostgresStore

NS = 1_000_000_000
T0 = 1_794_441_600 * NS
TAG = "acme/berlin/machining/line-1/cell-1/cnc-1/temp"
FAST_S = 2.5  # an outage must be reported about this quickly (the API answers 503)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PostgresServer]:
    """A server of this test's own, so stopping it disturbs no other test."""
    require("PostgreSQL server binaries", postgres_binaries() is not None)
    with PostgresServer(tmp_path) as own:
        yield own


def _rows(first: int, count: int = 10) -> RawColumns:
    rows = RawColumns()
    for i in range(first, first + count):
        rows.append(TAG, T0 + i * NS, T0 + i * NS, float(i), 0, i)
    return rows


_CALLS: dict[str, Callable[[PostgresStore], Any]] = {
    "write": lambda s: s.write(_rows(1000)),
    "points": lambda s: s.points(TAG, T0, T0 + 3600 * NS, 10),
    "last": lambda s: s.last([TAG]),
    "buckets": lambda s: s.buckets(TAG, T0, T0 + 3600 * NS, 60 * NS, layer=Layer.BUSINESS),
    "raw_after": lambda s: s.raw_after(0, 10),
    "count": lambda s: s.count(),
    "scan": lambda s: list(s.scan(Table.RAW, T0, T0 + 3600 * NS)),
    "size_bytes": lambda s: s.size_bytes(),
}


def test_a_stopped_server_is_reported_quickly_and_recovery_is_automatic(
    server: PostgresServer,
) -> None:
    store = PostgresStore(server.new_database())
    store.open()
    try:
        store.write(_rows(0))
        server.stop()
        for name, call in _CALLS.items():
            started = time.monotonic()
            with pytest.raises(StorageUnavailable):
                call(store)
            assert time.monotonic() - started < FAST_S, name
        server.start()
        assert store.write(_rows(10)) == 10
        assert store.count() == 20 and store.last([TAG])[0].point.value == 19.0
    finally:
        store.close()


def test_writes_during_an_outage_fail_whole_and_resume_after_it(server: PostgresServer) -> None:
    store = PostgresStore(server.new_database())
    store.open()
    written, failures, stop = [0], [0], threading.Event()

    def writer() -> None:
        batch = 0
        while not stop.is_set():
            try:
                written[0] += store.write(_rows(batch * 10))
                batch += 1
            except StorageUnavailable:
                failures[0] += 1
                time.sleep(0.01)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_until(lambda: written[0] >= 50)
        server.stop()
        wait_until(lambda: failures[0] >= 3)
        server.start()
        mark = written[0]
        wait_until(lambda: written[0] >= mark + 50)
    finally:
        stop.set()
        thread.join(30)
    try:
        assert store.count() == written[0]  # nothing half-written, nothing acknowledged lost
        assert len(store.raw_after(0, 10**6).rows) == written[0]
    finally:
        store.close()


def test_an_unreachable_server_fails_within_the_connect_timeout() -> None:
    store = PostgresStore(f"postgresql://werk:secret@127.0.0.1:{free_port()}/nothing")
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        store.open()
    assert time.monotonic() - started < FAST_S


def test_errors_logs_and_repr_never_show_the_password(
    postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    role, password = f"werk_{uuid.uuid4().hex[:8]}", f"Pw-{uuid.uuid4().hex}"
    postgres.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    postgres.execute(f"CREATE DATABASE {role} OWNER {role}")
    where = f"{postgres.host}:{postgres.port}/{role}"
    wrong = PostgresStore(f"postgresql://{role}:{password}x@{where}")
    down = PostgresStore(f"postgresql://{role}:{password}@127.0.0.1:{free_port()}/{role}")
    right = PostgresStore(f"postgresql://{role}:{password}@{where}")
    with caplog.at_level(logging.DEBUG):
        for store in (wrong, down):
            with pytest.raises(StorageUnavailable) as info:
                store.open()
            shown = f"{info.value} {info.value.params} {info.value!r} {store!r}"
            assert password not in shown
        right.open()
        right.write(_rows(0))
        right.close()
    assert "password authentication failed" in str(_opened_error(wrong))
    assert password not in caplog.text
    assert password not in repr(right) and "postgresql://" in repr(right)


def _opened_error(store: PostgresStore) -> StorageUnavailable:
    try:
        store.open()
    except StorageUnavailable as exc:
        return exc
    pytest.fail("the store opened with a wrong password")
