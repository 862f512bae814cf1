"""The background thread that applies the retention rules every `retention_interval_s`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from werk.core.clock import now_ns
from werk.core.errors import StorageUnavailable
from werk.core.settings import RetentionRule, Settings
from werk.historian.lifecycle import (
    CompactionMarks,
    RetentionAction,
    RetentionReport,
    apply,
    check_rules,
    plan,
    rows_in_range,
)
from werk.historian.store import HistorianStore

_LOGGER = logging.getLogger(__name__)

STATE_FILE: Final = "retention-state.json"


@dataclass(frozen=True, slots=True)
class PlannedAction:
    """An action the next run would take, with the rows of its table in its range."""

    action: RetentionAction
    rows_in_range: int


class RetentionWorker:
    """Apply retention and compaction periodically; also on demand and as a preview."""

    def __init__(
        self,
        store: HistorianStore,
        rules: Sequence[RetentionRule],
        *,
        interval_s: float,
        state_file: Path | None,
    ) -> None:
        check_rules(rules)
        self.store = store
        self.rules = tuple(rules)
        self.interval_s = interval_s
        self._marks = CompactionMarks.load(state_file)
        self._run_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: RetentionReport | None = None
        self._failing = False

    @classmethod
    def from_settings(cls, settings: Settings, store: HistorianStore) -> RetentionWorker:
        """A worker for the configured rules, its state in the data directory."""
        return cls(
            store,
            settings.retention,
            interval_s=settings.retention_interval_s,
            state_file=settings.data_dir / STATE_FILE,
        )

    @property
    def last_report(self) -> RetentionReport | None:
        """The report of the newest finished run (None before the first)."""
        return self._last

    @property
    def running(self) -> bool:
        """Whether the periodic thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the periodic runs (the first right away); nothing to do without rules."""
        if not self.rules:
            _LOGGER.info("retention: no rules configured, every row is kept")
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="werk-retention", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop after the current run (waits at most `timeout_s`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                _LOGGER.warning("retention: a run still busy after %.0f s at stop", timeout_s)
            self._thread = None

    def run_now(self) -> RetentionReport:
        """Plan and apply now (waits for a run in progress); the report is kept as last."""
        with self._run_lock:
            try:
                actions = plan(self.rules, self.store, now_ns(), marks=self._marks)
            except StorageUnavailable as exc:
                report = RetentionReport(now_ns(), 0.0, (), exc.message)
            else:
                report = apply(actions, self.store, marks=self._marks)
            self._last = report
            return report

    def preview(self) -> list[PlannedAction]:
        """What a run now would do, without doing it."""
        actions = plan(self.rules, self.store, now_ns(), marks=self._marks)
        return [PlannedAction(a, rows_in_range(a, self.store)) for a in actions]

    def _loop(self) -> None:
        while True:
            self._run_logged()
            if self._stop.wait(self.interval_s):
                return

    def _run_logged(self) -> None:
        try:
            report = self.run_now()
        except Exception:  # the thread must survive to try again next interval
            _LOGGER.exception("retention: run failed")
            return
        if report.error is not None:
            if not self._failing:
                _LOGGER.warning("%s; trying again in %.0f s", report.summary(), self.interval_s)
            self._failing = True
            return
        if self._failing:
            _LOGGER.info("retention: storage reachable again")
        self._failing = False
        level = logging.INFO if report.deleted or report.compacted else logging.DEBUG
        _LOGGER.log(level, "%s", report.summary())
