"""Store-and-forward end to end: outages of broker, host and network lose no sample."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator, KeysView
from pathlib import Path

import pytest
from tests.conftest import make_settings, wait_until
from tests.integration.edge.test_agent import DEVICE, Host, MemoryDevice, Point, Proxy, make_agent

from werk.core.settings import Settings
from werk.edge.agent import EdgeAgent
from werk.edge.buffer import StoreBuffer
from werk.edge.model import Reading, TagSpec
from werk.sparkplug.datatypes import DataType
from werk.uns.broker import EmbeddedBroker
from werk.uns.contracts import Quality

TAGS = [TagSpec(f"T{i:02d}", DataType.DOUBLE) for i in range(20)]
PERIOD_MS = 20  # 50 Hz


class Feeder:
    """Submits every tag at 50 Hz with exact, distinct timestamps; remembers what it sent."""

    def __init__(self, agent: EdgeAgent) -> None:
        self.sent: dict[tuple[str, int], float] = {}
        self._agent = agent
        self._start_ms = time.time_ns() // 1_000_000
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        tick = 0
        while not self._stop.wait(PERIOD_MS / 1000):
            ts_ms = self._start_ms + tick * PERIOD_MS
            batch = [
                Reading(tag.name, float(tick * 100 + i), ts_ms * 1_000_000, Quality.GOOD)
                for i, tag in enumerate(TAGS)
            ]
            self._agent.submit(DEVICE, batch)
            self.sent.update({(r.tag, ts_ms): r.value for r in batch})  # type: ignore[misc]
            tick += 1

    def stop(self) -> None:
        """Stop feeding."""
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "broker")


@pytest.fixture
def brokers(settings: Settings) -> Iterator[list[EmbeddedBroker]]:
    running = [EmbeddedBroker(settings, serve_public=True)]
    running[0].start()
    yield running
    running[-1].stop()


def _restart(brokers: list[EmbeddedBroker], settings: Settings, down_s: float) -> None:
    brokers[-1].stop()
    time.sleep(down_s)
    brokers.append(EmbeddedBroker(settings, serve_public=True))
    brokers[-1].start()


def _settle(host: Host, expected: KeysView[tuple[str, int]], timeout_s: float = 30) -> list[Point]:
    """The host's points once all expected ones arrived (or the time is up) and 0.5 s more."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if {(p.name, p.ts) for p in host.points()} >= expected:
            break
        time.sleep(0.2)
    time.sleep(0.5)
    return host.points()


def _assert_complete_and_ordered(points: list[Point], sent: dict[tuple[str, int], float]) -> None:
    got: dict[tuple[str, int], object] = {}
    live: dict[str, list[int]] = defaultdict(list)
    replayed: dict[tuple[int, str], list[int]] = defaultdict(list)
    for p in points:
        got.setdefault((p.name, p.ts), p.value)
        if p.historical:
            replayed[(p.birth, p.name)].append(p.ts)
        else:
            live[p.name].append(p.ts)
    assert got.keys() == sent.keys(), (
        f"missing {len(sent.keys() - got.keys())}, unexpected {len(got.keys() - sent.keys())}"
    )
    assert got == sent  # the values too
    for name, stamps in live.items():
        assert stamps == sorted(set(stamps)), f"live {name} out of order or repeated"
    for (birth, name), stamps in replayed.items():
        assert stamps == sorted(set(stamps)), f"replay {birth} of {name} out of order"


def test_no_sample_is_lost_across_broker_host_and_network_outages(
    tmp_path: Path, settings: Settings, brokers: list[EmbeddedBroker]
) -> None:
    host = Host(settings.mqtt_port)
    host.online()
    proxy = Proxy(settings.mqtt_port)
    agent = make_agent(tmp_path, proxy.port, MemoryDevice(DEVICE, TAGS), keepalive_s=2)
    try:
        wait_until(lambda: agent.status().online)
        feeder = Feeder(agent)
        time.sleep(1.5)
        _restart(brokers, settings, down_s=3.0)  # the broker goes away and comes back
        wait_until(lambda: agent.status().online, timeout=20)
        time.sleep(1.0)
        host.offline()  # the primary host goes away and comes back
        wait_until(lambda: not agent.status().online)
        time.sleep(1.0)
        host.online()
        wait_until(lambda: agent.status().online)
        time.sleep(1.0)
        proxy.blackhole()  # the network path dies silently: keep-alive finds out
        wait_until(lambda: not agent.status().online, timeout=15)
        wait_until(lambda: agent.status().online, timeout=20)
        time.sleep(1.0)
        feeder.stop()
        wait_until(
            lambda: {(p.name, p.ts) for p in host.points()} >= feeder.sent.keys(), timeout=30
        )
        time.sleep(0.5)
        points = host.points()
        _assert_complete_and_ordered(points, feeder.sent)
        status = agent.status()
        assert status.dropped_samples == 0
        assert any(p.historical for p in points) and any(not p.historical for p in points)
    finally:
        agent.stop_thread()
        proxy.close()
        host.close()


def test_buffered_data_is_replayed_by_the_next_agent_after_a_restart(
    tmp_path: Path, settings: Settings, brokers: list[EmbeddedBroker]
) -> None:
    host = Host(settings.mqtt_port)  # subscribed, but not online: everything is buffered
    first = make_agent(tmp_path, settings.mqtt_port, MemoryDevice(DEVICE, TAGS))
    start_ms = time.time_ns() // 1_000_000 - 10_000
    sent: dict[tuple[str, int], float] = {}
    for tick in range(50):
        batch = [
            Reading(t.name, float(tick), (start_ms + tick * 10) * 1_000_000, Quality.GOOD)
            for t in TAGS
        ]
        first.submit(DEVICE, batch)
        sent.update({(r.tag, start_ms + tick * 10): r.value for r in batch})
    wait_until(lambda: first.status().buffered_samples == 1000)
    bdseq = first.status().bdseq
    first.stop_thread()
    second = make_agent(tmp_path, settings.mqtt_port, MemoryDevice(DEVICE, TAGS))
    try:
        wait_until(lambda: second.status().connected)
        assert second.status().bdseq == (bdseq or 0) + 1  # bdSeq survives the restart too
        host.online()
        points = _settle(host, sent.keys())
        assert all(p.historical for p in points)
        _assert_complete_and_ordered(points, sent)
    finally:
        second.stop_thread()
        host.close()
    buffer = StoreBuffer(tmp_path / "edge", max_bytes=1 << 20, max_age_s=3600)
    buffer.open()
    try:
        assert buffer.stats().samples == 0  # committed once the broker acked the NDEATH
    finally:
        buffer.close()
