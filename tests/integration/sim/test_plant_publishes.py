"""The demo plant publishes to a real embedded MQTT broker, and survives its restart."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import paho.mqtt.client as paho
import pytest
from iotcore import Broker
from paho.mqtt.enums import CallbackAPIVersion
from tests.conftest import free_port

from werk.core.errors import BrokerUnavailable
from werk.sim import DemoPlant
from werk.uns.topics import DataClass, UnsTopic, parse_topic

QUALITIES = {"good", "uncertain", "bad"}
WAIT_S = 15.0


def start_broker(port: int) -> Broker:
    """Start an embedded broker on `port`, bound to loopback."""
    return Broker(port=port, listen="127.0.0.1").start()


class Collector:
    """A plain paho subscriber that keeps every message under the UNS root."""

    def __init__(self, port: int) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.connect_timeout = 5.0
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        assert self._subscribed.wait(5.0), "subscriber did not get its SUBACK"

    def _on_connect(self, client: paho.Client, *_: Any) -> None:
        # Subscribe on every connect: a clean session loses its subscriptions.
        client.subscribe("uns/v1/#", qos=1)

    def _on_subscribe(self, *_: Any) -> None:
        self._subscribed.set()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload))

    def snapshot(self) -> list[tuple[str, bytes]]:
        """Every message received so far."""
        with self._lock:
            return list(self.messages)

    def wait_for(self, done: Callable[[list[tuple[str, bytes]]], bool], timeout_s: float) -> bool:
        """Poll until `done(messages)` holds or `timeout_s` passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if done(self.snapshot()):
                return True
            time.sleep(0.05)
        return done(self.snapshot())

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def broker(port: int) -> Iterator[Broker]:
    started = start_broker(port)
    yield started
    started.stop()


@pytest.fixture
def collector(broker: Broker, port: int) -> Iterator[Collector]:
    subscriber = Collector(port)
    yield subscriber
    subscriber.close()


def assets(messages: list[tuple[str, bytes]]) -> set[str]:
    """Distinct asset paths seen in `messages`."""
    return {parse_topic(topic).node.path for topic, _ in messages}


def classes(messages: list[tuple[str, bytes]]) -> set[DataClass]:
    """Distinct data classes seen in `messages`."""
    return {parse_topic(topic).data_class for topic, _ in messages}


def check_value(topic: UnsTopic, payload: dict[str, Any], now_ms: int) -> None:
    """Assert that a ``_value`` payload follows its contract."""
    assert topic.tag is not None
    assert set(payload) <= {"value", "ts", "quality", "unit"}
    assert isinstance(payload["value"], bool | int | float | str)
    assert isinstance(payload["ts"], int)
    assert abs(payload["ts"] - now_ms) < 60_000
    assert payload["quality"] in QUALITIES


def check_batch(payload: dict[str, Any], now_ms: int) -> None:
    """Assert that a ``_batch`` payload follows its contract."""
    assert set(payload) == {"ts", "values"}
    assert abs(payload["ts"] - now_ms) < 60_000
    assert payload["values"]
    for entry in payload["values"].values():
        if isinstance(entry, dict):
            assert isinstance(entry["value"], bool | int | float | str)
            assert entry.get("quality", "good") in QUALITIES
        else:
            assert isinstance(entry, bool | int | float | str)


def test_plant_publishes_values_and_batches(port: int, collector: Collector) -> None:
    with DemoPlant("127.0.0.1", port, interval_s=0.2) as plant:
        enough = collector.wait_for(
            lambda ms: len(assets(ms)) >= 6 and classes(ms) == {DataClass.VALUE, DataClass.BATCH},
            WAIT_S,
        )
        published = plant.published
        expected_topics = set(plant.topics())
    assert enough, f"saw {sorted(assets(collector.snapshot()))}"
    assert published > 0
    now_ms = time.time_ns() // 1_000_000
    for topic_text, raw in collector.snapshot():
        topic = parse_topic(topic_text)
        assert topic_text in expected_topics
        payload = orjson.loads(raw)
        if topic.data_class is DataClass.VALUE:
            check_value(topic, payload, now_ms)
        else:
            check_batch(payload, now_ms)


def test_first_sample_is_published_at_once(port: int, collector: Collector) -> None:
    plant = DemoPlant("127.0.0.1", port, interval_s=60.0)
    with plant:
        every_machine = collector.wait_for(
            lambda ms: len(assets(ms)) == len(plant.machines),
            timeout_s=5.0,  # not after 60 s
        )
    assert every_machine
    assert not plant.running


def test_start_without_broker_raises(port: int) -> None:
    plant = DemoPlant("127.0.0.1", port, interval_s=0.2)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        plant.start(timeout_s=2.0)
    assert time.monotonic() - started < 5.0
    assert not plant.running


def test_plant_recovers_after_broker_restart(
    port: int, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="werk.sim.plant")
    with DemoPlant("127.0.0.1", port, interval_s=0.2) as plant:
        assert _wait(lambda: plant.published > 0)
        broker.stop()
        time.sleep(1.5)
        broker.start()
        subscriber = Collector(port)
        try:
            assert subscriber.wait_for(lambda ms: len(assets(ms)) >= 6, WAIT_S)
        finally:
            subscriber.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "werk.sim.plant"]
    assert sum("lost broker" in m for m in messages) == 1
    assert sum("reconnected" in m for m in messages) == 1


def _wait(done: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not done():
        time.sleep(0.05)
    return done()
