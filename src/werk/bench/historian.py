"""`werk bench historian`: the historian backends side by side on one synthetic plant.

For each backend, on a fresh store:

1. write: 1,000 tags sampling over 30 days, 100 tags per message, written time-major in
   batches of about 100,000 points through `store.write` (only those calls are timed for
   points/s; building the batches is in the end-to-end rate);
2. refine: the refiner (one quality rule with range, rate and stale checks on every tag)
   brings the processed layer and the 1 min / 1 h / 1 day rollups up with the raw layer
   over the last `refine_days` of the span (7 by default: refining 100M points takes
   far longer than writing them) or over all of it;
3. query: p50 / p99 latency of (a) the last value of every tag, (b) 1-min buckets over
   24 h of one tag, (c) hourly buckets over the span for 100 tags, on the raw and the
   business layer, with random tags and days (business days among the refined ones),
   `repeat` times or as often as `query_budget_s` allows;
4. compact: `compact()` of the raw, processed and rollup tables over the whole span,
   bytes per raw point before and after, then the queries again.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import duckdb
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from werk.bench.historian_queries import QueryBench, QueryLatency
from werk.bench.historian_refine import refine_all
from werk.bench.historian_report import (
    BackendResult,
    HistorianBenchResult,
    SizeFigures,
    WriteFigures,
)
from werk.bench.machine import machine_info
from werk.bench.pgserver import ThrowawayPostgres, missing_reason
from werk.bench.plant import DAY_NS, PlantShape, SyntheticPlant
from werk.bench.rss import PeakMemory
from werk.core.clock import now_ns
from werk.core.errors import ValidationFailed, WerkError
from werk.historian.layers import Layer, Table
from werk.historian.store import HistorianStore

_COMPACTED: Final = (Table.RAW, Table.PROCESSED, Table.ROLLUPS)


class Backend(StrEnum):
    """The historian backends the bench measures."""

    DUCKDB = "duckdb"
    POSTGRESQL = "postgresql"


@dataclass(frozen=True, slots=True)
class HistorianBenchOptions:
    """Sizes and backends of one run."""

    duckdb_points: int = 100_000_000
    postgres_points: int = 20_000_000
    backends: tuple[Backend, ...] = (Backend.DUCKDB, Backend.POSTGRESQL)
    postgres_url: str | None = None  # an empty database; None starts a throwaway server
    tags: int = 1_000
    days: int = 30
    repeat: int = 30
    query_budget_s: float = 30.0  # per query and state of the data; at least one repetition
    refine_days: int | None = 7  # refine only the last days of the span; None: all of it
    directory: Path | None = None  # where the DuckDB file goes; None: a temporary directory
    seed: int = 4
    end_ns: int = field(default_factory=lambda: now_ns() // DAY_NS * DAY_NS)

    def __post_init__(self) -> None:
        if self.repeat < 1:
            raise ValidationFailed("repeat must be at least 1", code="bench_repeat")
        if self.refine_days is not None and not 0 < self.refine_days <= self.days:
            raise ValidationFailed(
                f"refine_days must be between 1 and {self.days}", code="bench_refine_days"
            )

    def shape(self, backend: Backend) -> PlantShape:
        """The plant written to one backend."""
        points = self.duckdb_points if backend is Backend.DUCKDB else self.postgres_points
        return PlantShape(points=points, end_ns=self.end_ns, tags=self.tags, days=self.days)

    def as_dict(self) -> dict[str, Any]:
        """Plain options for JSON (without the PostgreSQL URL, which may hold a password)."""
        data = asdict(self)
        data["backends"] = [str(b) for b in self.backends]
        data["directory"] = None if self.directory is None else str(self.directory)
        data["postgres_url"] = "given" if self.postgres_url else None
        return data


def run_historian_bench(options: HistorianBenchOptions, console: Console) -> HistorianBenchResult:
    """Measure every backend of `options` in turn, each on a fresh store."""
    result = HistorianBenchResult(machine=machine_info(), options=options.as_dict())
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console,
    )  # fmt: skip
    with progress:
        for backend in options.backends:
            _run_backend(backend, options, progress, result)
    return result


def _run_backend(
    backend: Backend, options: HistorianBenchOptions, progress: Progress, out: HistorianBenchResult
) -> None:
    if backend is Backend.DUCKDB:
        _run_duckdb(options, progress, out)
        return
    reason = missing_reason() if options.postgres_url is None else None
    if reason is not None:
        out.skipped[backend] = reason
        return
    _run_postgres(options, progress, out)


def _run_duckdb(
    options: HistorianBenchOptions, progress: Progress, out: HistorianBenchResult
) -> None:
    from werk.historian.duckdb_store import DuckDBStore

    if options.directory is not None:
        options.directory.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="werk-bench-", dir=options.directory))
    try:
        store = DuckDBStore(folder / "historian.duckdb")
        detail = f"DuckDB {duckdb.__version__}, file"
        out.backends.append(_BackendBench(Backend.DUCKDB, options, progress).run(store, detail))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_postgres(
    options: HistorianBenchOptions, progress: Progress, out: HistorianBenchResult
) -> None:
    from werk.historian.postgres_store import PostgresStore

    with _postgres(options) as (url, server_pid):
        bench = _BackendBench(Backend.POSTGRESQL, options, progress, server_pid)
        out.backends.append(bench.run(PostgresStore(url), _postgres_detail(url)))


@contextmanager
def _postgres(options: HistorianBenchOptions) -> Iterator[tuple[str, Callable[[], int | None]]]:
    """The database URL to bench, and how to find its server's process (for memory)."""
    if options.postgres_url is not None:
        yield options.postgres_url, lambda: None
        return
    with ThrowawayPostgres() as server:
        yield server.new_database("werk_bench"), server.server_pid


def _postgres_detail(url: str) -> str:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            timescale = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
            ).fetchone()
    except psycopg.Error as exc:
        return f"PostgreSQL (version unknown: {exc})"
    release = str(version[0]).split(" ", 1)[0] if version else "?"
    layout = f"TimescaleDB {timescale[0]}" if timescale else "native partitions"
    return f"PostgreSQL {release}, {layout}"


class _BackendBench:
    """The phases of the bench against one store."""

    def __init__(
        self,
        backend: Backend,
        options: HistorianBenchOptions,
        progress: Progress,
        server_pid: Callable[[], int | None] | None = None,
    ) -> None:
        self._backend = backend
        self._options = options
        self._shape = options.shape(backend)
        self._progress = progress
        self._server_pid = server_pid

    def run(self, store: HistorianStore, detail: str) -> BackendResult:
        """Open the store, run every phase, close it; a werk error ends the phases early."""
        result = BackendResult(str(self._backend), detail)
        with PeakMemory(self._server_pid) as memory:
            store.open()
            try:
                self._phases(store, result)
            except WerkError as exc:
                result.error = f"{type(exc).__name__}: {exc.message}"
            finally:
                store.close()
        result.peak_rss, result.server_peak_pss = memory.process, memory.server
        return result

    def _phases(self, store: HistorianStore, result: BackendResult) -> None:
        result.write = self._write(store)
        raw_written = store.size_bytes()
        refine_from = self._refine_from()
        result.refine = refine_all(store, self._shape, refine_from, self._task("refine"))
        result.queries["as written"] = self._queries(store, refine_from, "as written")
        result.sizes = self._compact(store, raw_written)
        result.queries["compacted"] = self._queries(store, refine_from, "compacted")

    def _task(self, phase: str) -> Callable[[int, int], None]:
        """A progress callback (done, total) for one phase of this backend."""
        task = self._progress.add_task(f"{self._backend}: {phase}", total=None)

        def update(done: int, total: int) -> None:
            self._progress.update(task, completed=done, total=total)

        return update

    def _write(self, store: HistorianStore) -> WriteFigures:
        shape = self._shape
        update = self._task("write (points)")
        written, write_s = 0, 0.0
        started = time.perf_counter()
        for batch in SyntheticPlant(shape, self._options.seed):
            before = time.perf_counter()
            written += store.write(batch)
            write_s += time.perf_counter() - before
            update(written, shape.total)
        wall_s = time.perf_counter() - started
        return WriteFigures(
            points=written, tags=shape.tags, days=shape.days, period_s=shape.period_ns / 1e9,
            batches=shape.batches, write_s=write_s, wall_s=wall_s,
        )  # fmt: skip

    def _refine_from(self) -> int:
        """The first day of the span the refiner covers."""
        days = self._options.refine_days
        return 0 if days is None else self._shape.days - days

    def _queries(self, store: HistorianStore, refine_from: int, state: str) -> list[QueryLatency]:
        business_days = range(refine_from, self._shape.days)
        bench = QueryBench(store, self._shape, business_days, self._options.seed)
        plan, repeat = bench.plan(), self._options.repeat
        counter = _Counter(self._task(f"queries, {state}"), len(plan) * repeat)
        measured = []
        for index, (name, layer) in enumerate(plan, start=1):
            budget = self._options.query_budget_s
            measured.append(bench.measure(name, layer, repeat, budget, counter.tick))
            counter.set(index * repeat)  # a query cut short by its budget counts in full
        return measured

    def _compact(self, store: HistorianStore, raw_written: int) -> SizeFigures:
        start, end = self._shape.start_ns, self._shape.end_ns
        update = self._task("compact (tables)")
        all_layers = store.size_bytes()
        started = time.perf_counter()
        kept = [store.compact(Table.RAW, start, end)]
        compact_s = time.perf_counter() - started
        raw_compacted = store.size_bytes()
        update(1, len(_COMPACTED))
        for done, table in enumerate(_COMPACTED[1:], start=2):
            before = time.perf_counter()
            kept.append(store.compact(table, start, end))
            compact_s += time.perf_counter() - before
            update(done, len(_COMPACTED))
        return SizeFigures(
            raw_points=store.count(Layer.RAW), processed_points=store.count(Layer.PROCESSED),
            rollup_rows=store.count(Layer.BUSINESS), raw_written=raw_written,
            all_layers=all_layers, raw_compacted=raw_compacted, all_compacted=store.size_bytes(),
            compact_s=compact_s, compacted_rows=sum(kept),
        )  # fmt: skip


class _Counter:
    """Steps done out of a total, reported to a progress callback."""

    def __init__(self, update: Callable[[int, int], None], total: int) -> None:
        self._update = update
        self._total = total
        self._done = 0

    def tick(self) -> None:
        """One more step."""
        self.set(self._done + 1)

    def set(self, done: int) -> None:
        """Steps done so far."""
        self._done = done
        self._update(done, self._total)
