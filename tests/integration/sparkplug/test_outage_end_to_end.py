"""The issue's scenario end to end: edge agent -> broker -> werk, with the broker stopped
for a while during publishing. The historian must hold every sample exactly once.

The edge agent buffers while the broker is gone and re-sends its keep-alive window as
historical data; werk's host drops historical samples it already has, so nothing is lost
and nothing is stored twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import make_settings, wait_until
from tests.edge_device import MemoryDevice
from tests.integration.edge.test_agent import DEVICE, GROUP, NODE, make_agent
from tests.integration.edge.test_store_and_forward import TAGS, Feeder

from werk.core.settings import Settings, SparkplugRoute
from werk.runtime import Runtime
from werk.uns.broker import EmbeddedBroker

PATH = "acme/berlin/machining/line-9/cell-1/outage-rig"
FOREVER_NS = 2**62


@pytest.fixture
def broker_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "broker")


@pytest.fixture
def brokers(broker_settings: Settings) -> Iterator[list[EmbeddedBroker]]:
    running = [EmbeddedBroker(broker_settings, serve_public=True)]
    running[0].start()
    yield running
    running[-1].stop()


@pytest.fixture
def werk(
    tmp_path: Path, broker_settings: Settings, brokers: list[EmbeddedBroker]
) -> Iterator[Runtime]:
    route = SparkplugRoute(group=GROUP, edge_node=NODE, device=DEVICE, path=PATH)
    settings = make_settings(
        tmp_path / "werk", broker_url=f"mqtt://127.0.0.1:{broker_settings.mqtt5_port}",
        sparkplug_routes=[route],
    )  # fmt: skip
    runtime = Runtime(settings)
    runtime.start()
    yield runtime
    runtime.stop()


def _stored(werk: Runtime) -> dict[tuple[str, int], object]:
    assert werk.store is not None
    stored: dict[tuple[str, int], object] = {}
    for tag in TAGS:
        points = werk.store.points(f"{PATH}/{tag.name}", 0, FOREVER_NS, 1_000_000)
        for p in points:
            key = (tag.name, p.ts_ns // 1_000_000)
            assert key not in stored, f"{key} stored twice"
            stored[key] = p.value
    return stored


def test_a_broker_outage_loses_and_repeats_no_sample(
    tmp_path: Path, broker_settings: Settings, brokers: list[EmbeddedBroker], werk: Runtime
) -> None:
    agent = make_agent(tmp_path, broker_settings.mqtt_port, MemoryDevice(DEVICE, TAGS))
    try:
        wait_until(lambda: werk.sparkplug and werk.sparkplug.host.node(GROUP, NODE), timeout=20)
        feeder = Feeder(agent)
        time.sleep(1.5)
        brokers[-1].stop()
        time.sleep(3.0)  # publishing goes on into the buffer
        brokers.append(EmbeddedBroker(broker_settings, serve_public=True))
        brokers[-1].start()
        time.sleep(2.0)
        feeder.stop()
        sent = feeder.sent
        wait_until(lambda: len(_stored(werk)) >= len(sent), timeout=60, interval=0.5)
        time.sleep(1.0)  # anything repeated late would show now
        stored = _stored(werk)
    finally:
        agent.stop_thread()
    assert stored.keys() == sent.keys()
    assert stored == sent
    assert werk.pipeline is not None
    assert werk.pipeline.stats.historical_repeats > 0  # the re-sent window was dropped
    last = max(ts for (_, ts) in sent)
    assert werk.namespace.get(f"{PATH}/{TAGS[0].name}").ts_ns == last * 1_000_000
