"""`werk bench ingest`: how fast the UNS ingest pipeline stores messages, measured.

One run, on a fresh data directory and a fresh embedded broker on free ports:

1. ceiling: a bare paho subscriber counts what a publisher process sends it;
2. single-tag ingest: the real pipeline (`Runtime`) stores the same load;
3. batched ingest: the same with 100-tag batch messages;
4. latency: at half the single-tag rate, probe values from publish to the REST API;
5. gateway: the ceiling again on a fresh broker, with the publisher logged in as a device
   through werk's MQTT gateway (API key at CONNECT, topic rights on every PUBLISH);
6. CPU and peak resident memory of werk and of the broker throughout.

The publisher always runs in its own process. Every wait has a timeout: a phase that
stalls reports what it got.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from werk.bench import workload
from werk.bench.machine import free_ports, machine_info
from werk.bench.meters import AcceptedMeter, CountingSubscriber, Meter, ProbeWatcher, span_s
from werk.bench.meters import probe_latencies_ms as latencies_of
from werk.bench.processes import PublisherProcess, ResourceMonitor, Usage
from werk.bench.publisher import PASSWORD_ENV
from werk.bench.report import IngestReport, LatencyResult, PhaseResult
from werk.bench.workload import PublishFigures
from werk.core.clock import now_ns
from werk.core.errors import Unavailable
from werk.core.settings import Settings
from werk.uns.broker import BrokerAddress, EmbeddedBroker

if TYPE_CHECKING:
    from werk.runtime import Runtime
    from werk.uns.ingest import IngestPipeline

_LOCAL: Final = "127.0.0.1"
_CEILING_GROUP: Final = "werk-bench-ceiling"
_START_TIMEOUT_S: Final = 60.0
_READY_TIMEOUT_S: Final = 120.0
_STOP_TIMEOUT_S: Final = 60.0
_TICK_S: Final = 0.05
_WARMUP_RETRY_S: Final = 1.0
_PACED_OFFSET: Final = 1_000_000_000
_MIN_PACED_RATE: Final = 100.0


@dataclass(frozen=True, slots=True)
class IngestBenchConfig:
    """How much load each phase gets, and how long anything may wait."""

    messages: int = 200_000
    batch_messages: int = 20_000
    latency_seconds: float = 10.0
    probe_hz: float = 50.0
    poll_interval_s: float = 0.005
    stall_timeout_s: float = 30.0
    phase_timeout_s: float = 900.0


QUICK: Final = IngestBenchConfig(messages=5_000, batch_messages=200, latency_seconds=3.0)


def run_ingest_bench(config: IngestBenchConfig, console: Console) -> IngestReport:
    """Run every phase on a fresh data directory and broker; return the figures."""
    with tempfile.TemporaryDirectory(prefix="werk-bench-", ignore_cleanup_errors=True) as tmp:
        return _Bench(config, console, Path(tmp)).run()


class _Stall:
    """Whether a count has stopped moving for too long, or a phase ran out of time."""

    def __init__(self, stall_s: float, limit_s: float) -> None:
        self._stall_s = stall_s
        self._deadline = time.monotonic() + limit_s
        self._count = -1
        self._moved = time.monotonic()

    def stalled(self, count: int) -> bool:
        """Note `count`; True once it has not changed for the stall time or time is up."""
        now = time.monotonic()
        if count != self._count:
            self._count, self._moved = count, now
        return now - self._moved > self._stall_s or now > self._deadline


@dataclass(frozen=True, slots=True)
class _Ingested:
    """What the phases with werk's runtime measured."""

    single: PhaseResult
    batch: PhaseResult
    latency: LatencyResult
    stored_rows: int
    pipeline_samples: int


class _Bench:
    """One run of the ingest benchmark."""

    def __init__(self, config: IngestBenchConfig, console: Console, data_dir: Path) -> None:
        mqtt, mqtt5, http = free_ports(3, _LOCAL)
        self._config = config
        self._settings = Settings(
            data_dir=data_dir, broker_url=None, mqtt_host=_LOCAL, mqtt_port=mqtt,
            mqtt5_port=mqtt5, http_host=_LOCAL, http_port=http, database_url=None,
            historian_path=None, mqtt_allow_anonymous=True,
        )  # fmt: skip
        # Except in the gateway phase, the publisher processes speak to rumqttd directly
        # and anonymously: the ingest phases measure ingest alone.
        self._monitor = ResourceMonitor()
        self._api_key = ""
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console,
        )  # fmt: skip

    def run(self) -> IngestReport:
        """Start the broker, run the phases, stop everything."""
        broker = EmbeddedBroker(self._settings, serve_public=True)
        broker.start()
        try:
            self._monitor.start()
            with self._progress:
                return self._phases(broker)
        finally:
            self._monitor.stop()
            broker.stop()

    def _phases(self, broker: EmbeddedBroker) -> IngestReport:
        ceiling = self._ceiling(broker.address, "ceiling (bare subscriber)")
        ingested = self._ingest_phases(broker.address)
        peaks = self._monitor.peak("werk"), self._monitor.peak("broker")
        # Last, on a broker of its own and with werk's runtime stopped: the gateway phase
        # can neither slow the ingest phases down nor be slowed down by them.
        gateway = self._through_gateway()
        return IngestReport(
            machine=machine_info(), ceiling=ceiling, gateway=gateway, single=ingested.single,
            batch=ingested.batch, latency=ingested.latency, werk_rss_peak=peaks[0],
            broker_rss_peak=peaks[1], stored_rows=ingested.stored_rows,
            pipeline_samples=ingested.pipeline_samples,
        )  # fmt: skip

    def _ingest_phases(self, address: BrokerAddress) -> _Ingested:
        """Start werk on the broker at `address` and run the phases that need its runtime."""
        from werk.bench.server import ApiServer  # FastAPI and the runtime: not for the publisher
        from werk.iam.bootstrap import admin_api_key
        from werk.runtime import Runtime

        runtime = Runtime(self._settings.model_copy(update={"broker_url": address.login_url()}))
        server = ApiServer(runtime, _LOCAL, self._settings.http_port)
        server.start(_START_TIMEOUT_S)
        assert runtime.iam is not None
        self._api_key = admin_api_key(runtime.iam, "bench")
        try:
            return self._run_ingest(runtime, server.base_url)
        finally:
            server.stop(_STOP_TIMEOUT_S)

    def _run_ingest(self, runtime: Runtime, base_url: str) -> _Ingested:
        assert runtime.pipeline is not None
        assert runtime.store is not None
        pipeline = runtime.pipeline
        self._warm_up(runtime, pipeline)
        single = self._ingest(pipeline, "single-tag ingest", "single", self._config.messages)
        batch = self._ingest(pipeline, "batched ingest", "batch", self._config.batch_messages)
        latency = self._latency(pipeline, base_url, single.msgs_per_s / 2)
        return _Ingested(single, batch, latency, runtime.store.count(), pipeline.stats.samples)

    def _ceiling(
        self, address: BrokerAddress, name: str, login: BrokerAddress | None = None
    ) -> PhaseResult:
        """A bare subscriber on the same kind of subscription as the pipeline's."""
        topic_filter = f"$share/{_CEILING_GROUP}/{self._settings.uns_root}/#"
        subscriber = CountingSubscriber(address, topic_filter)
        subscriber.start(_START_TIMEOUT_S)
        try:
            count = self._config.messages
            return self._flood(name, "single", count, subscriber, None, login)
        finally:
            subscriber.stop()

    def _through_gateway(self) -> PhaseResult:
        """The ceiling with the publisher logged in as a device through werk's MQTT gateway.

        On a broker of its own, started fresh like the first: the ingest phases that follow
        get a broker that has carried only the ceiling's load, as before.
        """
        from werk.bench.gateway import BenchGateway  # IAM: not for the publisher

        gateway = BenchGateway(self._settings, self._settings.data_dir / "gateway")
        main = self._monitor.watch_broker(None)
        try:
            login = gateway.start()
            self._monitor.watch_newest_broker()
            return self._ceiling(gateway.broker.address, "ceiling through the MQTT gateway", login)
        finally:
            gateway.stop()
            self._monitor.watch_broker(main)

    def _warm_up(self, runtime: Runtime, pipeline: IngestPipeline) -> None:
        """Publish until the pipeline stores one message: it is subscribed and warm."""
        assert runtime.publisher is not None
        topic = workload.tag_topic(self._settings.uns_root, workload.WARMUP_TAG_PATH)
        stall = _Stall(self._config.stall_timeout_s, self._config.stall_timeout_s)
        while pipeline.stats.accepted == 0:
            if stall.stalled(0):
                raise Unavailable(
                    "the ingest pipeline accepted no warm-up message", code="bench_ingest"
                )
            runtime.publisher.publish(topic, workload.probe_payload(now_ns()))
            _wait_until(lambda: pipeline.stats.accepted > 0, _WARMUP_RETRY_S)

    def _ingest(self, pipeline: IngestPipeline, name: str, mode: str, count: int) -> PhaseResult:
        meter = AcceptedMeter()
        pipeline.listeners.append(meter)
        try:
            result = self._flood(name, mode, count, meter, pipeline)
        finally:
            pipeline.listeners.remove(meter)
        _wait_until(lambda: pipeline.queue_depth == 0, self._config.stall_timeout_s)
        return result

    def _flood(
        self,
        name: str,
        mode: str,
        count: int,
        meter: Meter,
        pipeline: IngestPipeline | None,
        login: BrokerAddress | None = None,
    ) -> PhaseResult:
        """Publish `count` messages from a publisher process; measure until `meter` has them."""
        before = _counters(pipeline)
        publisher = self._publisher(mode, login, count=count)
        try:
            self._monitor.begin()
            started = time.monotonic()
            publisher.go()
            self._await_count(name, meter, count)
            window_s, usage = time.monotonic() - started, self._monitor.end()
            figures = publisher.result(self._config.stall_timeout_s)
        finally:
            publisher.stop()
        samples, batches = (a - b for a, b in zip(_counters(pipeline), before, strict=True))
        return PhaseResult(
            name=name, target=count, messages=meter.count,
            points=meter.count if pipeline is None else samples,
            batches=None if pipeline is None else batches, seconds=span_s(meter),
            complete=meter.count >= count, window_s=window_s, usage=usage, publisher=figures,
        )  # fmt: skip

    def _await_count(self, name: str, meter: Meter, target: int) -> None:
        task = self._progress.add_task(name, total=target)
        stall = _Stall(self._config.stall_timeout_s, self._config.phase_timeout_s)
        while meter.count < target and not stall.stalled(meter.count):
            self._progress.update(task, completed=meter.count)
            time.sleep(_TICK_S)
        self._progress.update(task, completed=meter.count)

    def _latency(self, pipeline: IngestPipeline, base_url: str, rate: float) -> LatencyResult:
        """Probe values among a paced background load, watched through the API."""
        cfg = self._config
        rate = max(rate, _MIN_PACED_RATE)
        publisher = self._publisher(
            "paced", None, rate=rate, seconds=cfg.latency_seconds, probe_hz=cfg.probe_hz,
            offset=_PACED_OFFSET,
        )  # fmt: skip
        watcher = ProbeWatcher(
            base_url, workload.PROBE_TAG_PATH, cfg.poll_interval_s, api_key=self._api_key
        )
        meter = AcceptedMeter()
        pipeline.listeners.append(meter)
        watcher.start()
        try:
            seconds, usage, figures = self._run_paced(publisher, watcher)
        finally:
            watcher.stop()
            pipeline.listeners.remove(meter)
            publisher.stop()
        probes = [] if figures is None else figures.probe_times_us
        return LatencyResult(
            rate=rate, seconds=seconds, probes=len(probes),
            latencies_ms=latencies_of(probes, watcher.observations), polls=watcher.polls,
            poll_errors=watcher.errors, poll_interval_ms=cfg.poll_interval_s * 1000,
            accepted=meter.count, usage=usage, publisher=figures,
        )  # fmt: skip

    def _run_paced(
        self, publisher: PublisherProcess, watcher: ProbeWatcher
    ) -> tuple[float, Usage, PublishFigures | None]:
        """Let the paced publisher run; wait until the API shows its last probe."""
        self._monitor.begin()
        started = time.monotonic()
        publisher.go()
        figures = self._await_paced(publisher)
        self._await_probes(watcher, figures)
        return time.monotonic() - started, self._monitor.end(), figures

    def _await_paced(self, publisher: PublisherProcess) -> PublishFigures | None:
        seconds = self._config.latency_seconds
        task = self._progress.add_task("latency under load (s)", total=seconds)
        started = time.monotonic()
        deadline = started + seconds + self._config.stall_timeout_s
        figures = None
        while time.monotonic() < deadline:
            self._progress.update(task, completed=min(seconds, time.monotonic() - started))
            figures = publisher.result(_TICK_S)
            if figures is not None or not publisher.running:
                break
        self._progress.update(task, completed=seconds)
        return figures

    def _await_probes(self, watcher: ProbeWatcher, figures: PublishFigures | None) -> None:
        """Wait until the API shows the last probe, or the stall time passes."""
        if figures is None or not figures.probe_times_us:
            return
        last = figures.probe_times_us[-1]
        _wait_until(lambda: watcher.seen(last), self._config.stall_timeout_s)

    def _publisher(
        self, mode: str, login: BrokerAddress | None = None, **options: float
    ) -> PublisherProcess:
        """A started publisher process, ready to go: anonymous on rumqttd, or as `login`."""
        s = self._settings
        host, port = (s.mqtt_host, s.mqtt5_port) if login is None else (login.host, login.port)
        args = [
            "--host", host, "--port", str(port), "--root", s.uns_root,
            "--mode", mode, "--inflight", str(s.mqtt_max_inflight),
            "--timeout", str(self._config.stall_timeout_s),
        ]  # fmt: skip
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        env = None
        if login is not None and login.username is not None:
            args += ["--username", login.username]
            env = {PASSWORD_ENV: login.password or ""}
        publisher = PublisherProcess(args, env)
        publisher.start(_READY_TIMEOUT_S)
        return publisher


def _counters(pipeline: IngestPipeline | None) -> tuple[int, int]:
    """Samples and batches the pipeline has processed so far."""
    return (0, 0) if pipeline is None else (pipeline.stats.samples, pipeline.stats.batches)


def _wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Poll `condition` until it holds or `timeout_s` passes; return whether it held."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
