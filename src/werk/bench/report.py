"""The figures of `werk bench ingest`, as Rich tables and as JSON."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Final

from rich.console import Console
from rich.table import Table

from werk.bench.machine import MachineInfo
from werk.bench.processes import Usage
from werk.bench.workload import PublishFigures

TARGET_SINGLE_RATIO: Final = 0.5
TARGET_BATCH_POINTS_PER_S: Final = 300_000
_MIB: Final = 2**20


@dataclass(frozen=True, slots=True)
class PhaseResult:
    """One throughput phase: how much arrived, how fast, and what it cost."""

    name: str
    target: int
    messages: int
    points: int
    batches: int | None
    seconds: float
    complete: bool
    window_s: float
    usage: Usage
    publisher: PublishFigures | None

    @property
    def msgs_per_s(self) -> float:
        """Messages per second, first received to last counted."""
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @property
    def points_per_s(self) -> float:
        """Points (tag samples) per second, first received to last counted."""
        return self.points / self.seconds if self.seconds > 0 else 0.0

    @property
    def publisher_msgs_per_s(self) -> float | None:
        """The rate the publisher got its messages acknowledged by the broker."""
        p = self.publisher
        return p.acked / p.seconds if p is not None and p.seconds > 0 else None

    def cpu_percent(self) -> tuple[float, float | None, float | None]:
        """CPU of werk, broker and publisher over the run, in % of one core."""
        return cpu_percent(self.usage, self.window_s, self.publisher)

    @property
    def werk_cpu_us_per_message(self) -> float | None:
        """werk's CPU time per message received, in microseconds."""
        return self.usage.werk_cpu_s * 1e6 / self.messages if self.messages else None

    def as_dict(self) -> dict[str, Any]:
        """Plain figures for JSON."""
        werk, broker, pub = self.cpu_percent()
        data = asdict(self)
        if self.publisher is not None:
            data["publisher"].pop("probe_times_us")
        return data | {
            "msgs_per_s": self.msgs_per_s,
            "points_per_s": self.points_per_s,
            "publisher_msgs_per_s": self.publisher_msgs_per_s,
            "cpu_percent": {"werk": werk, "broker": broker, "publisher": pub},
            "werk_cpu_us_per_message": self.werk_cpu_us_per_message,
        }


@dataclass(frozen=True, slots=True)
class LatencyResult:
    """Publish-to-visible latency of probe values under a paced background load."""

    rate: float
    seconds: float
    probes: int
    latencies_ms: list[float]
    polls: int
    poll_errors: int
    poll_interval_ms: float
    accepted: int
    usage: Usage
    publisher: PublishFigures | None

    def quantile(self, q: float) -> float | None:
        """Nearest-rank quantile of the latencies in ms, None without samples."""
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    def cpu_percent(self) -> tuple[float, float | None, float | None]:
        """CPU of werk, broker and publisher over the phase, in % of one core."""
        return cpu_percent(self.usage, self.seconds, self.publisher)

    @property
    def accepted_per_s(self) -> float:
        """Messages the pipeline accepted per second during the phase."""
        return self.accepted / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain figures for JSON."""
        data = asdict(self)
        data.pop("latencies_ms")
        if self.publisher is not None:
            data["publisher"].pop("probe_times_us")
        return data | {
            "samples": len(self.latencies_ms),
            "p50_ms": self.quantile(0.5),
            "p99_ms": self.quantile(0.99),
            "max_ms": self.quantile(1.0),
            "accepted_per_s": self.accepted_per_s,
        }


@dataclass(frozen=True, slots=True)
class IngestReport:
    """Every figure of one `werk bench ingest` run."""

    machine: MachineInfo
    ceiling: PhaseResult
    gateway: PhaseResult
    single: PhaseResult
    batch: PhaseResult
    latency: LatencyResult
    werk_rss_peak: int | None
    broker_rss_peak: int | None
    stored_rows: int
    pipeline_samples: int

    @property
    def phases(self) -> tuple[PhaseResult, ...]:
        """Every throughput phase: the two ceilings first, then ingest."""
        return (self.ceiling, self.gateway, self.single, self.batch)

    @property
    def single_ratio(self) -> float:
        """Single-tag ingest messages/s as a fraction of the ceiling."""
        return self.ratio_to_ceiling(self.single)

    def ratio_to_ceiling(self, phase: PhaseResult) -> float:
        """A phase's messages/s as a fraction of the ceiling's."""
        ceiling = self.ceiling.msgs_per_s
        return phase.msgs_per_s / ceiling if ceiling > 0 else 0.0

    def targets(self) -> list[tuple[str, str, bool]]:
        """(target, measured, met) for each target."""
        return [
            (
                f"single-tag >= {TARGET_SINGLE_RATIO:.0%} of ceiling",
                f"{self.single_ratio:.1%}",
                self.single.complete and self.single_ratio >= TARGET_SINGLE_RATIO,
            ),
            (
                f"batched >= {TARGET_BATCH_POINTS_PER_S:,} points/s",
                f"{self.batch.points_per_s:,.0f} points/s",
                self.batch.complete and self.batch.points_per_s >= TARGET_BATCH_POINTS_PER_S,
            ),
        ]

    def as_dict(self) -> dict[str, Any]:
        """Plain figures for JSON."""
        return {
            "machine": asdict(self.machine),
            "phases": {
                "ceiling": self.ceiling.as_dict(),
                "gateway": self.gateway.as_dict()
                | {"ratio_to_ceiling": self.ratio_to_ceiling(self.gateway)},
                "single": self.single.as_dict() | {"ratio_to_ceiling": self.single_ratio},
                "batch": self.batch.as_dict(),
            },
            "latency": self.latency.as_dict(),
            "memory": {
                "werk_rss_peak": self.werk_rss_peak,
                "broker_rss_peak": self.broker_rss_peak,
            },
            "storage": {"stored_rows": self.stored_rows, "pipeline_samples": self.pipeline_samples},
            "targets": [{"target": t, "measured": m, "met": ok} for t, m, ok in self.targets()],
        }


def render(report: IngestReport, console: Console) -> None:
    """Print the machine and every figure as tables."""
    console.print(f"[bold]Machine[/bold]  {report.machine.describe()}")
    console.print(throughput_table(report))
    if not all(p.complete for p in report.phases):
        console.print(
            "[yellow]note:[/yellow] a phase STALLED (no progress within the stall timeout); "
            "the broker may still have delivered its leftover messages into later phases."
        )
    console.print(latency_table(report.latency))
    console.print(resources_table(report))
    console.print(targets_table(report))


def throughput_table(report: IngestReport) -> Table:
    """Messages and points per second of each phase, with CPU and memory."""
    table = Table(title="Ingest throughput", title_justify="left")
    table.add_column("figure")
    phases = report.phases
    for phase in phases:
        table.add_column(phase.name, justify="right")
    columns = [_phase_cells(phase, report.ceiling.msgs_per_s) for phase in phases]
    for label, *cells in zip(_PHASE_ROWS, *columns, strict=True):
        table.add_row(label, *cells)
    return table


_PHASE_ROWS: Final = (
    "messages", "points (tag samples)", "seconds, first to last", "messages/s", "points/s",
    "vs ceiling (messages/s)", "ingest batches (messages each)", "publisher acked msg/s",
    "CPU werk (% of a core)", "CPU werk per message (µs)",
    "CPU broker", "CPU publisher", "peak RSS werk (MiB)", "peak RSS broker (MiB)",
)  # fmt: skip


def _phase_cells(phase: PhaseResult, ceiling: float) -> list[str]:
    messages = f"{phase.messages:,}" + ("" if phase.complete else f" of {phase.target:,} STALLED")
    pub = phase.publisher_msgs_per_s
    werk, broker, publisher = phase.cpu_percent()
    return [
        messages, f"{phase.points:,}", f"{phase.seconds:.2f}", f"{phase.msgs_per_s:,.0f}",
        f"{phase.points_per_s:,.0f}",
        f"{phase.msgs_per_s / ceiling:.1%}" if ceiling > 0 else "-", _batches(phase),
        "-" if pub is None else f"{pub:,.0f}", _pct(werk), _us(phase.werk_cpu_us_per_message),
        _pct(broker), _pct(publisher),
        _mib(phase.usage.werk_rss_peak), _mib(phase.usage.broker_rss_peak),
    ]  # fmt: skip


def latency_table(latency: LatencyResult) -> Table:
    """Publish-to-visible latency through the REST API."""
    table = Table(
        title="Latency: publish -> visible in GET /api/v1/tags/{path}", title_justify="left"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    werk, broker, publisher = latency.cpu_percent()
    rows = {
        "background load (half the single-tag rate)": f"{latency.rate:,.0f} msg/s",
        "accepted by the pipeline": f"{latency.accepted_per_s:,.0f} msg/s",
        "probes published / latency samples": f"{latency.probes:,} / {len(latency.latencies_ms):,}",
        "p50": f"{_ms(latency.quantile(0.5))} ms",
        "p99": f"{_ms(latency.quantile(0.99))} ms",
        "max": f"{_ms(latency.quantile(1.0))} ms",
        "API polls (interval, errors)": (
            f"{latency.polls:,} ({latency.poll_interval_ms:g} ms, {latency.poll_errors} errors)"
        ),
        "CPU werk / broker / publisher": f"{_pct(werk)} / {_pct(broker)} / {_pct(publisher)}",
    }
    for label, value in rows.items():
        table.add_row(label, value)
    return table


def resources_table(report: IngestReport) -> Table:
    """Peak memory over the whole run, and what landed in the historian."""
    table = Table(title="Memory and storage", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("peak RSS, werk process", _mib(report.werk_rss_peak) + " MiB")
    table.add_row("peak RSS, broker child process", _mib(report.broker_rss_peak) + " MiB")
    table.add_row("rows in the DuckDB raw layer", f"{report.stored_rows:,}")
    table.add_row("samples the pipeline accepted", f"{report.pipeline_samples:,}")
    return table


def targets_table(report: IngestReport) -> Table:
    """Each target with the measured figure and whether it was met."""
    table = Table(
        title="Targets (informational; the command never fails on them)", title_justify="left"
    )
    table.add_column("target")
    table.add_column("measured", justify="right")
    table.add_column("met")
    for target, measured, met in report.targets():
        table.add_row(target, measured, "[green]yes[/green]" if met else "[red]no[/red]")
    return table


def cpu_percent(
    usage: Usage, wall_s: float, publisher: PublishFigures | None
) -> tuple[float, float | None, float | None]:
    """CPU of werk, broker and publisher in % of one core (the publisher over its own run)."""
    broker = usage.broker_cpu_s
    return (
        _percent(usage.werk_cpu_s, wall_s),
        None if broker is None else _percent(broker, wall_s),
        None if publisher is None else _percent(publisher.cpu_seconds, publisher.seconds),
    )


def _batches(phase: PhaseResult) -> str:
    if not phase.batches:
        return "-"
    return f"{phase.batches:,} ({phase.messages / phase.batches:,.0f})"


def _percent(cpu_s: float, wall_s: float) -> float:
    return 100.0 * cpu_s / wall_s if wall_s > 0 else 0.0


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / _MIB:,.0f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"
