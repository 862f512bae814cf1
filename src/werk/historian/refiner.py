"""The refiner: raw write batches into the processed layer and its rollups, in its own thread.

It reads the raw rows of the write batches after its mark, converts units, checks the
quality rules and hands processed rows, the rollup buckets they touch and the new mark
to the store in one transaction. While storage is down it retries with back-off and
never moves the mark, so nothing is lost and nothing is refined twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from werk.core.clock import NS_PER_S, now_ns
from werk.core.errors import StorageUnavailable, ValidationFailed
from werk.historian.refiner_batch import BatchPass, TagUnits
from werk.historian.refiner_memory import TagMemory
from werk.historian.refiner_reprocess import reprocess_tag
from werk.historian.rules import RuleSet, check_filter, filter_matches
from werk.historian.store import HistorianStore

_LOGGER = logging.getLogger(__name__)

_RETRY_START_S: Final = 0.1
_RETRY_MAX_S: Final = 10.0
_LAST_CHUNK: Final = 5000


@dataclass(frozen=True, slots=True)
class RefinerStats:
    """Where refinement stands, and the rule violations it found since `since_ns`."""

    running: bool
    mark: int  # newest raw write batch refined
    newest_batch: int  # newest raw write batch seen
    refined: int  # raw samples refined since start
    violations: dict[str, dict[str, int]]  # tag -> flag name -> flagged samples
    last_error: str | None
    since_ns: int


@dataclass(frozen=True, slots=True)
class Reprocessed:
    """How many tags had samples in the range, and how many samples were refined again."""

    tags: int
    samples: int


class Refiner:
    """Keep the processed and business layers up with the raw layer."""

    def __init__(
        self,
        store: HistorianStore,
        rules: Callable[[], RuleSet],
        *,
        interval_s: float,
        batch_rows: int,
        clock: Callable[[], int] = now_ns,
        tag_units: TagUnits | None = None,
    ) -> None:
        """`rules` gives the current rule set; `tag_units` the unit a tag publishes, if any."""
        self._store = store
        self._rules = rules
        self._interval_s = interval_s
        self._batch_rows = batch_rows
        self._clock = clock
        self._tag_units = tag_units
        self._memory = TagMemory(store)
        self._ruleset: RuleSet | None = None
        self._lock = threading.Lock()  # one refinement (or reprocessing) at a time
        self._stats_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._mark: int | None = None
        self._newest = 0
        self._refined = 0
        self._violations: dict[str, dict[str, int]] = {}
        self._last_error: str | None = None
        self._since = clock()

    @property
    def alive(self) -> bool:
        """Whether the refiner thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the refiner thread."""
        if self.alive:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._work, name="werk-refiner", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the batch in hand and stop the thread."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            if self._thread.is_alive():
                _LOGGER.warning("the refiner did not stop within %.0f s", timeout_s)
            else:
                self._thread = None

    def notify(self) -> None:
        """New raw rows were written: refine now instead of at the next interval."""
        self._wake.set()

    def run_once(self) -> int:
        """Refine the next write batches in the calling thread; return how many raw rows."""
        with self._lock:
            return self._advance()[1]

    def _work(self) -> None:
        delay = _RETRY_START_S
        while not self._stopping.is_set():
            try:
                with self._lock:
                    moved, _ = self._advance()
            except Exception as exc:  # storage down (or a bug): keep the mark, try again later
                self._failed(exc, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
                continue
            self._recovered()
            delay = _RETRY_START_S
            if not moved:
                self._wake.wait(self._interval_s)
                self._wake.clear()

    def _advance(self) -> tuple[bool, int]:
        """Refine the write batches after the mark; whether it moved, and how many rows."""
        if self._mark is None:
            self._mark = self._store.refined_through()
        batch = self._store.raw_after(self._mark, self._batch_rows)
        with self._stats_lock:
            self._newest = max(self._newest, batch.through)
        if batch.through <= self._mark:
            return False, 0
        result = BatchPass(
            batch.rows, self._current_rules(), self._memory, self._store, self._tag_units
        ).run()
        self._store.refine(result.rows, result.keys, batch.through)
        self._memory.update(result.changes, result.forget)
        self._mark = batch.through
        self._count(len(batch.rows), result.violations)
        return True, len(batch.rows)

    def _current_rules(self) -> RuleSet:
        """The rule set to use now; a new one drops what was derived from the old."""
        rules = self._rules()
        if rules is not self._ruleset and rules != self._ruleset:
            self._memory.forget()
        self._ruleset = rules
        return rules

    def _count(self, samples: int, violations: dict[str, dict[str, int]]) -> None:
        with self._stats_lock:
            self._refined += samples
            for tag, counts in violations.items():
                mine = self._violations.setdefault(tag, {})
                for name, count in counts.items():
                    mine[name] = mine.get(name, 0) + count

    def _failed(self, exc: Exception, delay: float) -> None:
        """Log the first failure of an episode; remember the latest."""
        first = self._last_error is None
        with self._stats_lock:
            self._last_error = f"refiner: {exc}"
        if not first:
            return
        if isinstance(exc, StorageUnavailable):
            _LOGGER.error("the refiner cannot use storage, retrying every %.1f s or less: %s",
                          delay, exc)  # fmt: skip
        else:
            _LOGGER.exception("the refiner failed, retrying every %.1f s or less", delay)

    def _recovered(self) -> None:
        if self._last_error is not None:
            _LOGGER.info("the refiner works again")
            with self._stats_lock:
                self._last_error = None

    def stats(self) -> RefinerStats:
        """Where refinement stands (never waits for the batch in hand)."""
        with self._stats_lock:
            return RefinerStats(
                running=self.alive,
                mark=self._mark or 0,
                newest_batch=self._newest,
                refined=self._refined,
                violations={tag: dict(counts) for tag, counts in self._violations.items()},
                last_error=self._last_error,
                since_ns=self._since,
            )

    def missing(self, now_ns: int) -> list[tuple[str, int, float]]:
        """Tags whose newest sample is older than their rule's `stale_s`, most silent first.

        Each entry is (tag, ts of its newest raw sample in ns, stale_s).
        """
        rules = self._rules()
        watched: dict[str, float] = {}
        for tag in self._store.tag_paths():
            rule = rules.for_tag(tag)
            if rule is not None and rule.stale_s is not None:
                watched[tag] = rule.stale_s
        found: list[tuple[str, int, float]] = []
        tags = list(watched)
        for i in range(0, len(tags), _LAST_CHUNK):
            for last in self._store.last(tags[i : i + _LAST_CHUNK]):
                stale_s = watched[last.tag]
                if now_ns - last.point.ts_ns > stale_s * NS_PER_S:
                    found.append((last.tag, last.point.ts_ns, stale_s))
        return sorted(found, key=lambda entry: entry[1])

    def reprocess(self, tags: str, start_ns: int, end_ns: int) -> Reprocessed:
        """Refine the stored raw samples of matching tags in [start, end) with the current rules.

        Refinement first catches up with the raw layer, so that no sample of the range is
        refined again later as if it came late.
        """
        check_filter(tags)
        if start_ns >= end_ns:
            raise ValidationFailed("start must be before end", code="bad_range")
        with self._lock:
            while self._advance()[0]:
                pass
            rules = self._current_rules()
            paths = [t for t in self._store.tag_paths() if filter_matches(tags, t)]
            assert self._mark is not None  # set by _advance
            counts = [
                reprocess_tag(self._store, tag, rules.for_tag(tag), (start_ns, end_ns),
                              self._mark, self._tag_units)
                for tag in paths
            ]  # fmt: skip
            self._memory.forget(paths)
        return Reprocessed(sum(1 for c in counts if c), sum(counts))
