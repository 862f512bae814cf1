"""The figures of `werk bench historian`, side by side per backend, as Rich tables and JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final

from rich.console import Console
from rich.table import Table

from werk.bench.historian_queries import QUERY_TITLES, QueryLatency
from werk.bench.machine import MachineInfo

TARGET_WRITE_POINTS_PER_S: Final = 1_000_000
TARGET_DAY_MINUTES_P50_MS: Final = 20.0
TARGET_BYTES_PER_POINT: Final = 4.0
_MIB: Final = 2**20


@dataclass(frozen=True, slots=True)
class WriteFigures:
    """Batched writes of the synthetic plant."""

    points: int
    tags: int
    days: int
    period_s: float
    batches: int
    write_s: float  # inside store.write only
    wall_s: float  # generating the batches and writing them

    @property
    def points_per_s(self) -> float:
        """Points per second of store.write time."""
        return self.points / self.write_s if self.write_s > 0 else 0.0

    @property
    def end_to_end_per_s(self) -> float:
        """Points per second including building the batches."""
        return self.points / self.wall_s if self.wall_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class RefineFigures:
    """The refiner catching up with the raw layer (quality rules, processed rows, rollups)."""

    points: int
    seconds: float
    first_day: int  # refined from this day of the span on (0: everything)
    days: int

    @property
    def points_per_s(self) -> float:
        """Raw points refined per second."""
        return self.points / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class SizeFigures:
    """Stored bytes at each step, and rows per layer."""

    raw_points: int
    processed_points: int
    rollup_rows: int
    raw_written: int  # size_bytes after writing, before refining: the raw layer alone
    all_layers: int  # after refining and querying, before compaction
    raw_compacted: int  # after compacting the raw table (the change attributed to raw)
    all_compacted: int  # after compacting the raw, processed and rollup tables
    compact_s: float
    compacted_rows: int

    def per_point(self, size: int) -> float:
        """Bytes per raw point."""
        return size / self.raw_points if self.raw_points else 0.0

    @property
    def raw_after_compaction(self) -> int:
        """Bytes of the raw layer after compaction (its own change of the total)."""
        return self.raw_written + self.raw_compacted - self.all_layers


@dataclass(slots=True)
class BackendResult:
    """Every figure of one backend."""

    backend: str
    detail: str
    write: WriteFigures | None = None
    refine: RefineFigures | None = None
    queries: dict[str, list[QueryLatency]] = field(default_factory=dict)
    sizes: SizeFigures | None = None
    peak_rss: int | None = None
    server_peak_pss: int | None = None
    error: str | None = None

    def query(self, state: str, name: str, layer: str) -> QueryLatency | None:
        """The latency of one query in one state of the data, if measured."""
        found = [q for q in self.queries.get(state, []) if q.name == name and q.layer == layer]
        return found[0] if found else None

    def as_dict(self) -> dict[str, Any]:
        """Plain figures for JSON."""
        data: dict[str, Any] = {"backend": self.backend, "detail": self.detail}
        if self.write is not None:
            data["write"] = asdict(self.write) | {
                "points_per_s": self.write.points_per_s,
                "end_to_end_per_s": self.write.end_to_end_per_s,
            }
        if self.refine is not None:
            data["refine"] = asdict(self.refine) | {"points_per_s": self.refine.points_per_s}
        data["queries"] = {s: [q.as_dict() for q in qs] for s, qs in self.queries.items()}
        if self.sizes is not None:
            data["sizes"] = _size_dict(self.sizes)
        return data | {
            "peak_rss": self.peak_rss,
            "server_peak_pss": self.server_peak_pss,
            "error": self.error,
        }


def _size_dict(sizes: SizeFigures) -> dict[str, Any]:
    return asdict(sizes) | {
        "raw_after_compaction": sizes.raw_after_compaction,
        "bytes_per_point": {
            "raw_written": sizes.per_point(sizes.raw_written),
            "raw_compacted": sizes.per_point(sizes.raw_after_compaction),
            "all_layers": sizes.per_point(sizes.all_layers),
            "all_layers_compacted": sizes.per_point(sizes.all_compacted),
        },
    }


@dataclass(slots=True)
class HistorianBenchResult:
    """Every figure of one `werk bench historian` run."""

    machine: MachineInfo
    options: dict[str, Any]
    backends: list[BackendResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # backend -> why

    def backend(self, name: str) -> BackendResult | None:
        """The result of one backend, if it ran."""
        return next((b for b in self.backends if b.backend == name), None)

    def targets(self) -> list[tuple[str, str, bool]]:
        """(target, measured, met) of the DuckDB targets."""
        duck = self.backend("duckdb")
        if duck is None or duck.write is None or duck.sizes is None:
            return []
        rate = duck.write.points_per_s
        day = duck.query("as written", "day_minutes", "raw")
        day_ms = day.quantile(0.5) if day is not None else float("inf")
        per_point = duck.sizes.per_point(duck.sizes.raw_after_compaction)
        return [
            (f"DuckDB batched writes >= {TARGET_WRITE_POINTS_PER_S:,} points/s",
             f"{rate:,.0f} points/s", rate >= TARGET_WRITE_POINTS_PER_S),
            (f"DuckDB (b) raw p50 <= {TARGET_DAY_MINUTES_P50_MS:g} ms",
             f"{day_ms:,.1f} ms", day_ms <= TARGET_DAY_MINUTES_P50_MS),
            (f"DuckDB <= {TARGET_BYTES_PER_POINT:g} bytes per raw point after compaction",
             f"{per_point:.2f} bytes", per_point <= TARGET_BYTES_PER_POINT),
        ]  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """Plain figures for JSON."""
        return {
            "machine": asdict(self.machine),
            "options": self.options,
            "backends": {b.backend: b.as_dict() for b in self.backends},
            "skipped": self.skipped,
            "targets": [{"target": t, "measured": m, "met": ok} for t, m, ok in self.targets()],
        }


def render_historian(result: HistorianBenchResult, console: Console) -> None:
    """Print every figure with the backends side by side."""
    console.print(f"[bold]werk bench historian[/] on {result.machine.describe()}")
    for name, why in result.skipped.items():
        console.print(f"[yellow]{name} not measured:[/] {why}")
    for backend in result.backends:
        if backend.error is not None:
            console.print(f"[red]{backend.backend} failed:[/] {backend.error}")
    if result.backends:
        console.print(_load_table(result))
        console.print(_query_table(result))
        if any(b.refine is not None and b.refine.first_day for b in result.backends):
            console.print(
                "business layer: rollups exist for the refined days only; (b) picks its day "
                "among them, (c) still asks for the whole span"
            )
        console.print(_size_table(result))
    targets = result.targets()
    if targets:
        console.print(_targets_table(targets))


def _side_by_side(title: str, result: HistorianBenchResult) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    for backend in result.backends:
        table.add_column(f"{backend.backend}\n{backend.detail}", justify="right")
    return table


def _load_table(result: HistorianBenchResult) -> Table:
    table = _side_by_side("Writing and refining", result)
    rows: dict[str, list[str]] = {}
    for backend in result.backends:
        for label, cell in _load_cells(backend).items():
            rows.setdefault(label, []).append(cell)
    for label, cells in rows.items():
        table.add_row(label, *cells)
    return table


def _load_cells(b: BackendResult) -> dict[str, str]:
    w, r = b.write, b.refine
    return {
        "stored points (tags x points per tag)": "-" if w is None else
            f"{w.points:,} ({w.tags:,} x {w.points // w.tags:,})",
        "span, one sample per tag every": "-" if w is None else f"{w.days} days, {w.period_s:g} s",
        "write batches (points each)": "-" if w is None else
            f"{w.batches:,} ({w.points / w.batches:,.0f})",
        "write points/s (store.write only)": "-" if w is None else f"{w.points_per_s:,.0f}",
        "end-to-end points/s (building batches too)": "-" if w is None else
            f"{w.end_to_end_per_s:,.0f}",
        "refined points (days of the span)": "-" if r is None else
            f"{r.points:,} ({_refined_days(r)})",
        "refine points/s (rules, processed, rollups)": "-" if r is None else
            f"{r.points_per_s:,.0f}",
        "peak RSS of the bench process": _mib(b.peak_rss),
        "peak PSS of the PostgreSQL server": _mib(b.server_peak_pss),
    }  # fmt: skip


def _refined_days(r: RefineFigures) -> str:
    if r.first_day == 0:
        return f"all {r.days}"
    return f"the last {r.days - r.first_day} of {r.days}"


def _query_table(result: HistorianBenchResult) -> Table:
    table = _side_by_side("Query latency p50 / p99 (ms)", result)
    first = result.backends[0]
    for state, queries in first.queries.items():
        for q in queries:
            repeat = int(result.options["repeat"])
            cells = [_latency(b.query(state, q.name, q.layer), repeat) for b in result.backends]
            table.add_row(f"{_query_title(q, first)}, {q.layer}, {state}", *cells)
    return table


def _query_title(q: QueryLatency, b: BackendResult) -> str:
    tags = b.write.tags if b.write is not None else 0
    days = b.write.days if b.write is not None else 0
    return QUERY_TITLES[q.name].format(tags=tags, days=days, month_tags=min(100, tags))


def _latency(q: QueryLatency | None, repeat: int) -> str:
    if q is None:
        return "-"
    cut = "" if len(q.samples_ms) >= repeat else f" ({len(q.samples_ms)} runs in the budget)"
    return f"{q.quantile(0.5):,.1f} / {q.quantile(0.99):,.1f}{cut}"


def _size_table(result: HistorianBenchResult) -> Table:
    table = _side_by_side("Storage (bytes per raw point; size_bytes() / count())", result)
    labels = (
        "raw layer as written",
        "raw layer after compact()",
        "all layers (raw, processed, rollups)",
        "all layers after compact()",
        "rows: raw / processed / rollups",
        "compact() of every table: seconds (rows kept)",
    )
    columns = [_size_cells(b.sizes) for b in result.backends]
    for label, *cells in zip(labels, *columns, strict=True):
        table.add_row(label, *cells)
    return table


def _size_cells(s: SizeFigures | None) -> list[str]:
    if s is None:
        return ["-"] * 6
    return [
        _bytes(s, s.raw_written), _bytes(s, s.raw_after_compaction), _bytes(s, s.all_layers),
        _bytes(s, s.all_compacted),
        f"{s.raw_points:,} / {s.processed_points:,} / {s.rollup_rows:,}",
        f"{s.compact_s:,.1f} ({s.compacted_rows:,})",
    ]  # fmt: skip


def _bytes(s: SizeFigures, size: int) -> str:
    return f"{s.per_point(size):.2f} ({size / _MIB:,.0f} MiB)"


def _targets_table(targets: list[tuple[str, str, bool]]) -> Table:
    table = Table(
        title="Targets (informational; the command never fails on them)", title_justify="left"
    )
    table.add_column("target")
    table.add_column("measured", justify="right")
    table.add_column("met")
    for target, measured, met in targets:
        table.add_row(target, measured, "[green]yes[/green]" if met else "[red]no[/red]")
    return table


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / _MIB:,.0f} MiB"
