"""The retention thread on a real DuckDB historian: periodic runs, previews, failures."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import make_settings, wait_until
from tests.integration.historian.lifecycle_support import NAMES, US_PER_S, caught_up, fill, rows

from werk.core.clock import now_ns
from werk.core.errors import ValidationFailed
from werk.core.settings import RetentionRule
from werk.historian import DuckDBStore, HistorianStore
from werk.historian.layers import Table
from werk.historian.lifecycle import ActionKind
from werk.historian.lifecycle_worker import STATE_FILE, RetentionWorker

DAY_US = 86400 * US_PER_S


def _stamps() -> list[int]:
    now_us = now_ns() // 1000
    return [now_us - 40 * DAY_US, now_us - 2 * DAY_US, now_us - 60 * US_PER_S]


def _rule(subtree: str = "#", keep: str = "7d", compact_after: str | None = None) -> RetentionRule:
    return RetentionRule(table="raw", subtree=subtree, keep=keep, compact_after=compact_after)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistorianStore]:
    backend = DuckDBStore(tmp_path / "h.duckdb")
    backend.open()
    yield backend
    backend.close()


@pytest.fixture
def worker(store: HistorianStore, tmp_path: Path) -> Iterator[RetentionWorker]:
    rules = [_rule("acme/berlin/#", "30d", compact_after="1d"), _rule("acme/munich/#", "1d")]
    running = RetentionWorker(store, rules, interval_s=0.1, state_file=tmp_path / STATE_FILE)
    yield running
    running.stop()


def test_the_worker_deletes_old_rows_every_interval(
    worker: RetentionWorker, store: HistorianStore
) -> None:
    fill(store, Table.RAW, _stamps())
    worker.start()
    report = wait_until(lambda: worker.last_report)
    assert (report.deleted, report.error) == (3, None)
    assert store.count() == 3
    assert worker.running
    store.load(Table.RAW, rows(Table.RAW, NAMES[0], [_stamps()[0]], msg_id=99))
    caught_up(store)
    wait_until(lambda: store.count() == 3)  # a later run deletes the newly loaded old row
    worker.stop()
    assert not worker.running


def test_the_compaction_mark_survives_a_restart(
    worker: RetentionWorker, store: HistorianStore, tmp_path: Path
) -> None:
    fill(store, Table.RAW, _stamps())
    first = worker.run_now()
    assert [o.action.kind for o in first.outcomes].count(ActionKind.COMPACT) == 1
    assert first.compacted == 1  # the berlin row 2 days old; munich's is deleted first
    again = RetentionWorker(store, worker.rules, interval_s=1, state_file=tmp_path / STATE_FILE)
    compact = [p.action for p in again.preview() if p.action.kind is ActionKind.COMPACT]
    assert compact[0].start_ns == first.outcomes[-1].action.end_ns


def test_the_preview_changes_nothing(worker: RetentionWorker, store: HistorianStore) -> None:
    fill(store, Table.RAW, _stamps())
    planned = worker.preview()
    assert [(p.action.kind, p.action.subtree, p.rows_in_range) for p in planned] == [
        (ActionKind.DELETE, "acme/berlin/#", 2),
        (ActionKind.DELETE, "acme/munich/#", 4),
        (ActionKind.COMPACT, "acme/berlin/#", 4),
    ]
    assert store.count() == 6
    assert worker.last_report is None


def test_a_rule_keeping_less_than_a_minute_stops_the_start(
    store: HistorianStore, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, retention=[_rule(keep="30s")])
    with pytest.raises(ValidationFailed) as caught:
        RetentionWorker.from_settings(settings, store)
    assert caught.value.code == "retention_too_short"
    assert "retention rule 1 (raw '#') keeps 30s; a rule must keep at least 1m" in str(caught.value)


def test_without_rules_nothing_runs(store: HistorianStore, tmp_path: Path) -> None:
    fill(store, Table.RAW, _stamps())
    idle = RetentionWorker.from_settings(make_settings(tmp_path), store)
    idle.start()
    assert not idle.running
    report = idle.run_now()
    assert (report.outcomes, report.error) == ((), None)
    assert store.count() == 6
    idle.stop()


def test_stop_returns_promptly_between_runs(store: HistorianStore, tmp_path: Path) -> None:
    slow = RetentionWorker(store, [_rule()], interval_s=3600, state_file=None)
    slow.start()
    wait_until(lambda: slow.last_report is not None)
    clock = time.monotonic()
    slow.stop()
    assert time.monotonic() - clock < 3.0  # not at the end of the hour


def test_storage_down_is_logged_once_and_retried(
    store: HistorianStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="werk.historian.lifecycle_worker")
    fill(store, Table.RAW, _stamps())
    store.close()
    worker = RetentionWorker(store, [_rule()], interval_s=0.05, state_file=None)
    worker.start()
    try:
        failed = wait_until(lambda: worker.last_report)
        assert failed.error is not None and "not open" in failed.error
        wait_until(lambda: worker.last_report is not failed)  # tried again
        store.open()
        wait_until(lambda: store.count() == 4)
    finally:
        worker.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "trying again in" in m]) == 1
    assert messages.count("retention: storage reachable again") == 1
