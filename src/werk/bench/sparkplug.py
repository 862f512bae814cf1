"""`werk bench sparkplug`: the Sparkplug B host, the edge buffer and the connectors, measured.

1. host: NDATA of 100 and of 1,000 metrics from a publisher process through the embedded
   broker into werk (decode, sequence, aliases, namespace, historian), points/s stored;
2. decode: the host's translation alone, in this process, without MQTT or storage;
3. edge: store-and-forward buffer append and replay rates, and bytes per sample on disk;
4. connectors: samples/s delivered by the OPC UA connector for 1,000 monitored items and
   registers/s read by the Modbus connector for 1,000 registers, against local servers.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from werk.bench import workload
from werk.bench.machine import MachineInfo, free_ports, machine_info
from werk.bench.meters import AcceptedMeter, span_s
from werk.bench.processes import PublisherProcess, ResourceMonitor
from werk.core.clock import now_ns
from werk.core.errors import Unavailable
from werk.core.settings import Settings

if TYPE_CHECKING:
    from werk.sparkplug.effects import CommandResult
    from werk.sparkplug.state import EdgeNodeState
    from werk.uns.ingest import IngestPipeline

_LOCAL: Final = "127.0.0.1"
_READY_TIMEOUT_S: Final = 300.0
_TICK_S: Final = 0.05
_DECODE_POINTS: Final = 200_000


@dataclass(frozen=True, slots=True)
class SparkplugBenchConfig:
    """How much load each phase gets."""

    messages_100: int = 20_000
    messages_1000: int = 2_000
    replay_samples: int = 200_000
    opcua_items: int = 1_000
    modbus_registers: int = 1_000
    connector_seconds: float = 5.0
    stall_timeout_s: float = 60.0


SPARKPLUG_QUICK: Final = SparkplugBenchConfig(
    messages_100=300, messages_1000=60, replay_samples=10_000, connector_seconds=2.0
)


@dataclass(frozen=True, slots=True)
class HostResult:
    """One host phase: DDATA messages of `metrics` metrics each, stored."""

    metrics: int
    messages: int
    points: int
    seconds: float
    complete: bool

    @property
    def points_per_s(self) -> float:
        """Points decoded and stored per second."""
        return self.points / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class SparkplugReport:
    """Every figure of one run."""

    machine: MachineInfo
    host: list[HostResult] = field(default_factory=list)
    decode_points_per_s: dict[int, float] = field(default_factory=dict)
    edge: dict[str, float] = field(default_factory=dict)
    connectors: dict[str, float] = field(default_factory=dict)
    werk_rss_peak: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        data = asdict(self)
        data["host"] = [{**asdict(h), "points_per_s": h.points_per_s} for h in self.host]
        data["decode_points_per_s"] = {str(k): v for k, v in self.decode_points_per_s.items()}
        return data


def run_sparkplug_bench(config: SparkplugBenchConfig, console: Console) -> SparkplugReport:
    """Run every phase on a fresh data directory and broker."""
    report = SparkplugReport(machine=machine_info())
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console,
    )  # fmt: skip
    with progress, tempfile.TemporaryDirectory(prefix="werk-bench-") as tmp:
        _HostBench(config, progress, Path(tmp)).run(report)
        for metrics in (100, 1000):
            report.decode_points_per_s[metrics] = decode_rate(metrics)
        report.edge = _edge_figures(config)
        report.connectors = asyncio.run(_connector_figures(config))
    return report


class _HostBench:
    """The host phases against a real runtime and embedded broker."""

    def __init__(self, config: SparkplugBenchConfig, progress: Progress, data_dir: Path) -> None:
        mqtt, mqtt5, http = free_ports(3, _LOCAL)
        self._config = config
        self._progress = progress
        self._settings = Settings(
            data_dir=data_dir / "host", broker_url=None, mqtt_host=_LOCAL, mqtt_port=mqtt,
            mqtt5_port=mqtt5, http_host=_LOCAL, http_port=http, database_url=None,
            historian_path=None, mqtt_allow_anonymous=True,
        )  # fmt: skip
        # The simulated edge nodes log in anonymously; the gateway still checks every packet.
        self._monitor = ResourceMonitor()

    def run(self, report: SparkplugReport) -> None:
        """Start werk, flood it with NDATA of both sizes, stop it."""
        from werk.runtime import Runtime

        runtime = Runtime(self._settings)
        runtime.start()
        self._monitor.start()
        try:
            assert runtime.pipeline is not None
            for metrics, count in ((100, self._config.messages_100),
                                   (1000, self._config.messages_1000)):  # fmt: skip
                report.host.append(self._phase(runtime.pipeline, metrics, count))
            report.werk_rss_peak = self._monitor.peak("werk")
        finally:
            self._monitor.stop()
            runtime.stop()

    def _phase(self, pipeline: IngestPipeline, metrics: int, count: int) -> HostResult:
        meter = AcceptedMeter()
        pipeline.listeners.append(meter)
        samples_before = pipeline.stats.samples
        publisher = self._publisher(metrics, count)
        try:
            publisher.go()
            self._await(meter, count + 2, f"NDATA x {metrics} metrics (messages)")
            publisher.result(self._config.stall_timeout_s)
        finally:
            publisher.stop()
            pipeline.listeners.remove(meter)
        points = pipeline.stats.samples - samples_before - metrics  # the DBIRTH excluded
        return HostResult(metrics, meter.count, points, span_s(meter), meter.count >= count + 2)

    def _publisher(self, metrics: int, count: int) -> PublisherProcess:
        s = self._settings
        publisher = PublisherProcess([
            "--host", s.mqtt_host, "--port", str(s.mqtt5_port), "--mode", "sparkplug",
            "--metrics", str(metrics), "--count", str(count), "--inflight", "1000",
            "--timeout", str(self._config.stall_timeout_s),
        ])  # fmt: skip
        publisher.start(_READY_TIMEOUT_S)
        return publisher

    def _await(self, meter: AcceptedMeter, target: int, name: str) -> None:
        task = self._progress.add_task(name, total=target)
        last, moved = -1, time.monotonic()
        while meter.count < target:
            if meter.count != last:
                last, moved = meter.count, time.monotonic()
            elif time.monotonic() - moved > self._config.stall_timeout_s:
                break
            self._progress.update(task, completed=meter.count)
            time.sleep(_TICK_S)
        self._progress.update(task, completed=meter.count)


class _NoEffects:
    """Host effects that do nothing: the decode phase measures translation alone."""

    def request_rebirth(self, group: str, edge_node: str) -> None:
        """Nothing to publish."""

    def record_birth(self, node: EdgeNodeState, device: str | None, payload: bytes) -> None:
        """Nothing to store."""

    def record_death(self, node: EdgeNodeState, device: str | None) -> None:
        """Nothing to store."""

    def command_result(self, result: CommandResult) -> None:
        """No commands here."""

    def tag_type(self, tag_path: str) -> None:
        """No namespace here."""

    def last_value(self, tag_path: str) -> None:
        """No namespace here."""


def decode_rate(metrics: int) -> float:
    """Points/s the host translates (decode, aliases, mapping) in this process alone."""
    from werk.sparkplug.host import SparkplugHost

    with tempfile.TemporaryDirectory(prefix="werk-bench-") as tmp:
        host = SparkplugHost(Settings(data_dir=Path(tmp)), _NoEffects())
        count = _DECODE_POINTS // metrics
        messages = workload.sparkplug_messages(metrics, count, now_ns() // 1_000_000)
        for topic, payload in messages[:12]:  # births, then a warm-up
            host.translate(topic, payload, now_ns())
        messages = messages[12:]
        started = time.perf_counter()
        points = sum(_points(host, topic, payload) for topic, payload in messages)
        return points / (time.perf_counter() - started)


def _points(host: Any, topic: str, payload: bytes) -> int:
    decoded = host.translate(topic, payload, now_ns()).decoded
    if decoded is None:
        raise Unavailable("a bench message was not translated", code="bench_sparkplug")
    return len(decoded)


def _edge_figures(config: SparkplugBenchConfig) -> dict[str, float]:
    from werk.edge.bench import bench_buffer

    return bench_buffer(config.replay_samples)


async def _connector_figures(config: SparkplugBenchConfig) -> dict[str, float]:
    from werk.edge.connectors.measure import measure_modbus, measure_opcua

    seconds = config.connector_seconds
    return {
        "opcua_samples_per_s": await measure_opcua(config.opcua_items, seconds),
        "modbus_registers_per_s": await measure_modbus(config.modbus_registers, seconds),
    }


def render_sparkplug(report: SparkplugReport, console: Console) -> None:
    """Print the figures as tables."""
    console.print(f"[bold]werk bench sparkplug[/] on {report.machine.describe()}")
    host = Table("host: NDATA metrics/message", "messages", "points", "seconds", "points/s")
    for h in report.host:
        note = "" if h.complete else " (incomplete)"
        host.add_row(str(h.metrics), f"{h.messages:,}{note}", f"{h.points:,}",
                     f"{h.seconds:.2f}", f"{h.points_per_s:,.0f}")  # fmt: skip
    console.print(host)
    other = Table("figure", "value")
    for metrics, rate in report.decode_points_per_s.items():
        other.add_row(f"host translation alone, {metrics} metrics/message", f"{rate:,.0f} points/s")
    for key, value in {**report.edge, **report.connectors}.items():
        other.add_row(key.replace("_", " "), f"{value:,.1f}")
    if report.werk_rss_peak is not None:
        other.add_row("werk peak RSS", f"{report.werk_rss_peak / 2**20:,.0f} MiB")
    console.print(other)
