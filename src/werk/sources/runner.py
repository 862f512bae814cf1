"""The source runner: one thread runs the due and the requested sources, one run at a time."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from sqlalchemy.orm import Session, sessionmaker

from werk.core.clock import NS_PER_S, now_ns
from werk.core.db import session_scope
from werk.core.errors import NotFound, Unavailable, WerkError
from werk.historian.store import HistorianStore
from werk.sources import service
from werk.sources.config import (
    PUSH_SOURCE,
    FileSourceConfig,
    SourcesFile,
    SqlSourceConfig,
    load_sources_file,
)
from werk.sources.connector import Batch, Connector
from werk.sources.contracts import Catalog
from werk.sources.files import FileSource
from werk.sources.landing import Landed, Target, land
from werk.sources.service import RunCounts
from werk.sources.sql import SqlSource

_LOGGER = logging.getLogger(__name__)
_ERRORS_SHOWN: Final = 5
MAX_PUSH_BYTES: Final = 16 * 1024 * 1024
STOPPED: Final = "stopped before the end; the next run goes on from there"


@dataclass(slots=True)
class RunRequest:
    """A run someone asked for; `run_id` is set once it starts, `done` once it ends."""

    name: str
    run_id: int | None = None
    done: threading.Event = field(default_factory=threading.Event)


class SourceRunner:
    """Runs sources on their schedule and on request; lands pushed rows."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        connectors: Sequence[Connector],
        store: HistorianStore,
        sessions: sessionmaker[Session],
        tick_s: float = 1.0,
        max_push_bytes: int = MAX_PUSH_BYTES,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.sessions = sessions
        self.max_push_bytes = max_push_bytes
        self._connectors = {c.config.name: c for c in connectors}
        self._tick_s = tick_s
        # One request per source at most, plus the wake-up at stop.
        self._requests: queue.Queue[RunRequest | None] = queue.Queue(len(connectors) + 1)
        self._pending: dict[str, RunRequest] = {}
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        # Landings one at a time: the check for stored samples and the write stay together.
        self._landing = threading.Lock()
        self._running: str | None = None
        self._last_started: dict[str, int] = {}
        self._failing: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def connectors(self) -> list[Connector]:
        """Every configured source, by name."""
        return [self._connectors[n] for n in sorted(self._connectors)]

    @property
    def running(self) -> str | None:
        """The source running now, if any."""
        return self._running

    def connector(self, name: str) -> Connector:
        """One configured source; NotFound when there is none of that name."""
        found = self._connectors.get(name)
        if found is None:
            raise NotFound(f"no source {name!r}", code="unknown_source", source=name)
        return found

    def start(self) -> None:
        """Close runs a stop interrupted, then run sources in a thread."""
        with session_scope(self.sessions) as session:
            closed = service.close_interrupted(session=session, at_ns=now_ns())
            last = service.last_runs(session=session)
        if closed:
            _LOGGER.warning("sources: %d runs were interrupted by the last stop", closed)
        self._last_started = {name: run.started_ns for name, run in last.items()}
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="werk-sources", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop after the current batch (waits at most `timeout_s`)."""
        self._stop.set()
        with contextlib.suppress(queue.Full):  # a full queue: the thread is awake anyway
            self._requests.put_nowait(None)
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                _LOGGER.warning("sources: a run still busy %.0f s after stop", timeout_s)
            self._thread = None

    def next_due_ns(self, name: str) -> int | None:
        """When a scheduled source runs next (now or earlier means due); None: on demand."""
        every_s = self.connector(name).config.every_s
        if every_s is None:
            return None
        return self._last_started.get(name, 0) + int(every_s * NS_PER_S)

    def run_now(self, name: str, wait_s: float = 0.0) -> RunRequest:
        """Ask the runner thread for a run; wait up to `wait_s` for it to end.

        Asking again before the run started returns the same request.
        """
        self.connector(name)
        if self._thread is None or not self._thread.is_alive():
            raise Unavailable("the source runner is not running", code="sources_stopped")
        with self._lock:
            request = self._pending.get(name)
            if request is None:
                request = self._pending[name] = RunRequest(name)
                self._requests.put_nowait(request)  # one pending request per source at most
        request.done.wait(wait_s)
        return request

    def run_once(
        self, name: str, trigger: str = "manual", request: RunRequest | None = None
    ) -> int:
        """Run a source now in this thread (after any run in progress); return the run id."""
        connector = self.connector(name)
        with self._run_lock:
            started = self._last_started[name] = now_ns()  # a failed start waits `every` too
            with session_scope(self.sessions) as session:
                run_id = service.start_run(session=session, source=name, trigger=trigger,
                                           at_ns=started)  # fmt: skip
            self._running = name
            if request is not None:
                self._started(request, run_id)
            try:
                counts, error = self._consume(connector)
            finally:
                self._running = None
            self._finish(name, run_id, counts, error)
        return run_id

    def _started(self, request: RunRequest, run_id: int) -> None:
        with self._lock:  # from now on a new request of the source queues another run
            request.run_id = run_id
            if self._pending.get(request.name) is request:
                del self._pending[request.name]

    def push(self, dataset: str, rows: Sequence[object], source: str = PUSH_SOURCE) -> Landed:
        """Land rows pushed to a dataset."""
        target = Target(self.store, self.sessions, self.catalog.get(dataset), source)
        with self._landing:
            return land(target, Batch("", rows=rows))

    def _consume(self, connector: Connector) -> tuple[RunCounts, str | None]:
        config = connector.config
        target = Target(self.store, self.sessions, self.catalog.get(config.dataset), config.name)
        counts, errors = RunCounts(), []
        batches = connector.batches(self.sessions)
        try:
            for batch in batches:
                if self._stop.is_set():
                    errors.append(STOPPED)
                    break
                if batch.error is not None:
                    errors.append(batch.error)
                else:
                    with self._landing:
                        _count(counts, land(target, batch))
        except WerkError as exc:
            errors.append(exc.message)
        except Exception as exc:
            _LOGGER.exception("sources: %s failed unexpectedly", config.name)
            errors.append(f"unexpected error: {exc}")
        finally:
            _close(batches)
        return counts, _summary(errors)

    def _finish(self, name: str, run_id: int, counts: RunCounts, error: str | None) -> None:
        with session_scope(self.sessions) as session:
            service.finish_run(session=session, run_id=run_id, counts=counts, error=error,
                               at_ns=now_ns())  # fmt: skip
            service.prune_runs(session=session, source=name)
        if error is not None and name not in self._failing:
            self._failing.add(name)
            _LOGGER.warning("sources: %s: %s", name, error)
        elif error is None and name in self._failing:
            self._failing.discard(name)
            _LOGGER.info("sources: %s runs without errors again", name)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                request = self._requests.get(timeout=self._tick_s)
            except queue.Empty:
                self._run_due()
                continue
            if request is not None:
                self._serve(request)

    def _serve(self, request: RunRequest) -> None:
        try:
            self.run_once(request.name, "manual", request)
        except Exception as exc:
            self._unlogged(request.name, exc)
        finally:
            with self._lock:
                if self._pending.get(request.name) is request:
                    del self._pending[request.name]
            request.done.set()

    def _run_due(self) -> None:
        for name in self._due():
            if self._stop.is_set() or not self._requests.empty():
                return
            try:
                self.run_once(name, "schedule")
            except Exception as exc:
                self._unlogged(name, exc)

    def _unlogged(self, name: str, exc: Exception) -> None:
        """A run that could not even be logged (the relational database is down)."""
        if name not in self._failing:
            self._failing.add(name)
            _LOGGER.warning(
                "sources: %s: the run could not be logged: %s", name, exc,
                exc_info=not isinstance(exc, WerkError),
            )  # fmt: skip

    def _due(self) -> Iterator[str]:
        now = now_ns()
        for name in sorted(self._connectors):
            due = self.next_due_ns(name)
            if due is not None and due <= now:
                yield name


def _count(counts: RunCounts, landed: Landed) -> None:
    counts.rows_read += landed.read
    counts.accepted += landed.accepted
    counts.rejected += landed.rejected
    counts.stored += landed.stored


def _close(batches: Iterator[Batch]) -> None:
    close = getattr(batches, "close", None)
    if close is not None:
        close()


def _summary(errors: list[str]) -> str | None:
    if not errors:
        return None
    more = len(errors) - _ERRORS_SHOWN
    return "; ".join(errors[:_ERRORS_SHOWN]) + (f" (and {more} more)" if more > 0 else "")


def connector_for(config: FileSourceConfig | SqlSourceConfig, catalog: Catalog) -> Connector:
    """The connector of a configured source."""
    contract = catalog.get(config.dataset)
    if isinstance(config, FileSourceConfig):
        return FileSource(config, contract)
    return SqlSource(config, contract)


def build_sources(
    *,
    sources_file: Path | None,
    store: HistorianStore,
    sessions: sessionmaker[Session],
    tick_s: float = 1.0,
    max_push_bytes: int = MAX_PUSH_BYTES,
) -> SourceRunner:
    """A (not yet started) runner of the sources and datasets of `sources_file`.

    Without a file werk knows the built-in datasets and takes pushed rows only.
    """
    parsed = SourcesFile() if sources_file is None else load_sources_file(sources_file)
    catalog = parsed.catalog()
    connectors = [connector_for(config, catalog) for config in parsed.sources]
    return SourceRunner(
        catalog=catalog,
        connectors=connectors,
        store=store,
        sessions=sessions,
        tick_s=tick_s,
        max_push_bytes=max_push_bytes,
    )
