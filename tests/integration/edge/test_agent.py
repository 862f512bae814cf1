"""The edge agent against a real broker, with a paho client playing the primary host."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from tests.conftest import free_port, make_settings, wait_until
from tests.edge_device import MemoryDevice

from werk.core.clock import now_ns
from werk.core.settings import Settings
from werk.edge.agent import EdgeAgent
from werk.edge.config import BufferConfig, EdgeConfig, NodeConfig
from werk.edge.connectors import Connector
from werk.edge.model import Reading, TagSpec
from werk.sparkplug.codec import Metric, Payload, PropertySet, decode, encode
from werk.sparkplug.datatypes import DataType
from werk.sparkplug.topics import (
    HostState,
    MessageType,
    SparkplugTopic,
    encode_state,
    parse_topic,
    state_topic,
)
from werk.uns.broker import EmbeddedBroker
from werk.uns.contracts import Quality

GROUP, NODE, DEVICE, HOST_ID = "acme", "gw-1", "cnc-1", "werk"
SPECS = [
    TagSpec("Speed", DataType.DOUBLE, writable=True, unit="rpm"),
    TagSpec("Count", DataType.INT64),
]


@dataclass(frozen=True)
class Received:
    """One Sparkplug message as the host saw it; `birth` counts the NBIRTHs before it."""

    kind: MessageType
    device: str | None
    payload: Payload
    birth: int
    at: float


@dataclass(frozen=True)
class Point:
    """One metric value of a DDATA, resolved to its name."""

    device: str
    name: str
    ts: int
    value: Any
    historical: bool
    birth: int


class Host:
    """The primary host: STATE (retained, with a Will), everything under spBv1.0/#."""

    def __init__(self, port: int) -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._births = 0
        self._types: dict[int, DataType] = {}
        self._names: dict[int, tuple[str | None, str]] = {}
        self._state_ts = 0
        self._online = False
        self._subscribed = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"test-host-{uuid.uuid4().hex[:6]}",
            protocol=paho.MQTTv311, clean_session=True,
        )  # fmt: skip
        self.client.reconnect_delay_set(0.2, 1)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()
        assert self._subscribed.wait(10)

    def _on_connect(self, client: paho.Client, *_args: Any) -> None:
        client.subscribe("spBv1.0/#", qos=1)
        if self._online:  # a new session after the broker came back
            self._state_ts = time.time_ns() // 1_000_000
            client.publish(state_topic(HOST_ID), self._state(True), qos=1, retain=True)

    def _state(self, online: bool) -> bytes:
        return encode_state(HostState(online, self._state_ts))

    def online(self) -> None:
        """Publish STATE online with a new timestamp."""
        self._online = True
        self._state_ts = time.time_ns() // 1_000_000
        offline = self._state(False)
        self.client.will_set(state_topic(HOST_ID), offline, qos=1, retain=True)
        self._publish(state_topic(HOST_ID), self._state(True), retain=True)

    def offline(self) -> None:
        """Publish STATE offline (the timestamp of the online it ends)."""
        self._online = False
        self._publish(state_topic(HOST_ID), self._state(False), retain=True)

    def command(self, kind: MessageType, device: str | None, *metrics: Metric) -> None:
        """Publish an NCMD or DCMD."""
        topic = SparkplugTopic(GROUP, kind, NODE, device).topic
        self._publish(topic, encode(Payload(timestamp=now_ns() // 1_000_000, metrics=metrics)))

    def _publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        parsed = parse_topic(msg.topic)
        if not isinstance(parsed, SparkplugTopic) or parsed.message_type.is_command:
            return
        with self._lock:
            kind = parsed.message_type
            payload = decode(bytes(msg.payload), lambda _n, alias: self._types.get(alias))  # type: ignore[arg-type]
            if kind is MessageType.NBIRTH:
                self._births += 1
                self._types.clear()
            if kind.is_birth:
                for m in payload.metrics:
                    if m.alias is not None and m.datatype is not None and m.name is not None:
                        self._types[m.alias] = m.datatype
                        self._names[m.alias] = (parsed.device, m.name)
            self.received.append(
                Received(kind, parsed.device, payload, self._births, time.monotonic())
            )

    def messages(self, kind: MessageType) -> list[Received]:
        """What arrived of one kind, in order."""
        with self._lock:
            return [r for r in self.received if r.kind is kind]

    def points(self, device: str = DEVICE) -> list[Point]:
        """Every DDATA metric of a device, resolved by alias, in arrival order."""
        with self._lock:
            got = [r for r in self.received if r.kind is MessageType.DDATA and r.device == device]
            names = dict(self._names)
        return [
            Point(device, names[m.alias][1] if m.alias in names else str(m.name), m.timestamp or 0,
                  m.value, m.is_historical, r.birth)
            for r in got
            for m in r.payload.metrics
        ]  # fmt: skip

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


class Proxy:
    """A TCP relay to the broker that the test can break like a network."""

    def __init__(self, upstream: int) -> None:
        self.port = free_port()
        self._upstream = upstream
        self._pairs: list[_Pair] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._running = True
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while self._running:
            try:
                inbound, _ = self._listener.accept()
            except TimeoutError:
                continue
            try:
                outbound = socket.create_connection(("127.0.0.1", self._upstream), timeout=5)
            except OSError:  # the broker is down: so is the relayed connection
                inbound.close()
                continue
            inbound.settimeout(None)
            outbound.settimeout(None)
            pair = _Pair(inbound, outbound)
            self._pairs.append(pair)
            pair.start()

    def cut(self) -> None:
        """Close every relayed connection on both sides (no MQTT DISCONNECT)."""
        pairs, self._pairs = self._pairs, []
        for pair in pairs:
            pair.close()

    def blackhole(self) -> None:
        """Silently drop everything on the current connections, like a dead network path."""
        for pair in self._pairs:
            pair.dead = True

    def close(self) -> None:
        """Stop relaying."""
        self._running = False
        self._thread.join(5)
        self._listener.close()
        self.cut()


class _Pair:
    def __init__(self, inbound: socket.socket, outbound: socket.socket) -> None:
        self.sockets = (inbound, outbound)
        self.dead = False

    def start(self) -> None:
        inbound, outbound = self.sockets
        for source, target in ((inbound, outbound), (outbound, inbound)):
            threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not self.dead:
                    target.sendall(data)
        self.close()

    def close(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Settings]:
    settings = make_settings(tmp_path / "broker")
    embedded = EmbeddedBroker(settings, serve_public=True)
    embedded.start()
    yield settings
    embedded.stop()


@pytest.fixture
def host(broker: Settings) -> Iterator[Host]:
    player = Host(broker.mqtt_port)
    yield player
    player.close()


def make_agent(
    tmp_path: Path, port: int, device: Connector[Any] | None = None, **node: Any
) -> EdgeAgent:
    """An agent for the test broker with one device (started in its own thread)."""
    config = EdgeConfig(
        node=NodeConfig(group=GROUP, edge_node=NODE, broker=f"mqtt://127.0.0.1:{port}",
                        **{"primary_host": HOST_ID, "keepalive_s": 5, **node}),
        buffer=BufferConfig(path=tmp_path / "edge", fsync=False),
    )  # fmt: skip
    agent = EdgeAgent(config, connectors=[device or MemoryDevice(DEVICE, SPECS)])
    agent.start_in_thread()
    return agent


@pytest.fixture
def agents() -> Iterator[list[EdgeAgent]]:
    started: list[EdgeAgent] = []
    yield started
    for agent in started:
        agent.stop_thread()


def _readings(start_ms: int, n: int) -> list[Reading]:
    return [Reading("Speed", float(i), (start_ms + i) * 1_000_000, Quality.GOOD) for i in range(n)]


def _metrics(received: Received) -> dict[str, Metric]:
    return {m.name: m for m in received.payload.metrics if m.name is not None}


def _props(metric: Metric) -> dict[str, object]:
    assert metric.properties is not None
    return {key: value.value for key, value in metric.properties.items}


def test_births_wait_for_the_primary_host_and_buffered_data_follows(
    tmp_path: Path, broker: Settings, host: Host, agents: list[EdgeAgent]
) -> None:
    agent = make_agent(tmp_path, broker.mqtt_port)
    agents.append(agent)
    wait_until(lambda: agent.status().connected)
    start = now_ns() // 1_000_000 - 1000
    agent.submit(DEVICE, _readings(start, 5))
    wait_until(lambda: agent.status().buffered_samples == 5)
    assert host.messages(MessageType.NBIRTH) == []
    assert not agent.status().online
    host.online()
    (nbirth,) = wait_until(lambda: host.messages(MessageType.NBIRTH))
    (dbirth,) = wait_until(lambda: host.messages(MessageType.DBIRTH))
    assert (nbirth.payload.seq, dbirth.payload.seq) == (0, 1)
    assert _metrics(nbirth)["bdSeq"].value == agent.status().bdseq
    node_metrics = _metrics(nbirth)
    assert node_metrics["Edge/Connectors/cnc-1/State"].value == "connected"
    assert {"Edge/Buffered Samples", "Edge/Buffer Bytes", "Edge/Dropped Samples"} <= set(
        node_metrics
    )
    speed = _metrics(dbirth)["Speed"]
    assert (speed.value, speed.timestamp) == (4.0, start + 4)  # the current value
    points = wait_until(lambda: len(p := host.points()) == 5 and p)
    assert [(p.ts, p.value, p.historical) for p in points] == [
        (start + i, float(i), True) for i in range(5)
    ]


def test_ndeath_will_carries_the_bdseq_of_the_nbirth(
    tmp_path: Path, broker: Settings, host: Host, agents: list[EdgeAgent]
) -> None:
    host.online()
    proxy = Proxy(broker.mqtt_port)
    try:
        agents.append(agent := make_agent(tmp_path, proxy.port, keepalive_s=2))
        (first,) = wait_until(lambda: host.messages(MessageType.NBIRTH))
        born = _metrics(first)["bdSeq"].value
        proxy.cut()
        (death,) = wait_until(lambda: host.messages(MessageType.NDEATH), timeout=20)
        assert _metrics(death)["bdSeq"].value == born
        assert (death.payload.seq, death.payload.timestamp) == (None, None)  # the Will
        births = wait_until(lambda: len(b := host.messages(MessageType.NBIRTH)) == 2 and b)
        assert _metrics(births[1])["bdSeq"].value == (born + 1) % 256 == agent.status().bdseq
    finally:
        proxy.close()


def test_a_rebirth_request_repeats_the_births_at_most_once_a_second(
    tmp_path: Path, broker: Settings, host: Host, agents: list[EdgeAgent]
) -> None:
    host.online()
    agents.append(make_agent(tmp_path, broker.mqtt_port))
    (first,) = wait_until(lambda: host.messages(MessageType.NBIRTH))
    rebirth = Metric(name="Node Control/Rebirth", datatype=DataType.BOOLEAN, value=True)
    host.command(MessageType.NCMD, None, rebirth)
    wait_until(lambda: len(host.messages(MessageType.NBIRTH)) == 2)
    host.command(MessageType.NCMD, None, rebirth)
    host.command(MessageType.NCMD, None, rebirth)  # coalesces with the one before
    births = wait_until(lambda: len(b := host.messages(MessageType.NBIRTH)) == 3 and b)
    assert [_metrics(b)["bdSeq"].value for b in births] == [_metrics(first)["bdSeq"].value] * 3
    assert [b.payload.seq for b in births] == [0, 0, 0]
    assert births[2].payload.timestamp - births[1].payload.timestamp >= 900  # ms; throttled
    time.sleep(1.2)
    assert len(host.messages(MessageType.NBIRTH)) == 3
    assert len(host.messages(MessageType.DBIRTH)) == 3


def test_commands_write_and_report_their_outcome(
    tmp_path: Path, broker: Settings, host: Host, agents: list[EdgeAgent]
) -> None:
    host.online()
    device = MemoryDevice(DEVICE, SPECS)
    agents.append(make_agent(tmp_path, broker.mqtt_port, device))
    wait_until(lambda: host.messages(MessageType.DBIRTH))
    command_id = PropertySet.of(**{"werk.command_id": (DataType.STRING, "cmd-1")})
    host.command(MessageType.DCMD, DEVICE, Metric(name="Speed", datatype=DataType.DOUBLE,
                                                    value=12.5, properties=command_id))  # fmt: skip
    host.command(MessageType.DCMD, DEVICE, Metric(name="Nope", datatype=DataType.DOUBLE, value=1.0))
    host.command(MessageType.DCMD, DEVICE, Metric(name="Count", datatype=DataType.INT64, value=3))
    results = wait_until(lambda: len(r := _results(host)) == 3 and r)
    done, unknown, read_only = results
    assert (done.value, _props(done)) == (
        12.5,
        {"werk.command_status": "done", "werk.command_id": "cmd-1"},
    )
    assert device.values == {"Speed": 12.5}
    assert (unknown.name, unknown.is_null, _props(unknown)["werk.command_status"]) == (
        "Nope", True, "failed",
    )  # fmt: skip
    assert "read-only" in str(_props(read_only)["werk.command_error"])


def _results(host: Host) -> list[Metric]:
    return [
        m
        for r in host.messages(MessageType.DDATA)
        for m in r.payload.metrics
        if m.properties is not None and m.properties.get("werk.command_status") is not None
    ]


def test_state_offline_ends_the_session_until_the_host_is_back(
    tmp_path: Path, broker: Settings, host: Host, agents: list[EdgeAgent]
) -> None:
    host.online()
    agents.append(agent := make_agent(tmp_path, broker.mqtt_port))
    (first,) = wait_until(lambda: host.messages(MessageType.NBIRTH))
    born = _metrics(first)["bdSeq"].value
    host.offline()
    (death,) = wait_until(lambda: host.messages(MessageType.NDEATH))
    assert _metrics(death)["bdSeq"].value == born
    wait_until(lambda: agent.status().connected and agent.status().bdseq == (born + 1) % 256)
    agent.submit(DEVICE, _readings(now_ns() // 1_000_000, 3))
    time.sleep(0.5)
    assert len(host.messages(MessageType.NBIRTH)) == 1
    assert host.points() == []  # nothing goes out while the host is offline
    host.online()
    births = wait_until(lambda: len(b := host.messages(MessageType.NBIRTH)) == 2 and b)
    assert _metrics(births[1])["bdSeq"].value == (born + 1) % 256
    wait_until(lambda: len(host.points()) == 3)


def test_stopping_publishes_ddeath_then_ndeath(
    tmp_path: Path, broker: Settings, host: Host, agents: list[EdgeAgent]
) -> None:
    host.online()
    agent = make_agent(tmp_path, broker.mqtt_port)
    (birth,) = wait_until(lambda: host.messages(MessageType.NBIRTH))
    agent.stop_thread()
    (ddeath,) = wait_until(lambda: host.messages(MessageType.DDEATH))
    (ndeath,) = wait_until(lambda: host.messages(MessageType.NDEATH))
    assert ddeath.device == DEVICE and ddeath.at <= ndeath.at
    assert _metrics(ndeath)["bdSeq"].value == _metrics(birth)["bdSeq"].value


def test_without_a_primary_host_births_follow_the_connect(
    tmp_path: Path, broker: Settings, host: Host, agents: list[EdgeAgent]
) -> None:
    agents.append(agent := make_agent(tmp_path, broker.mqtt_port, primary_host=None))
    (nbirth,) = wait_until(lambda: host.messages(MessageType.NBIRTH))
    agent.submit(DEVICE, _readings(now_ns() // 1_000_000, 3))
    points = wait_until(lambda: len(p := host.points()) == 3 and p)
    assert not any(p.historical for p in points)
    assert all(m.name is None for r in host.messages(MessageType.DDATA) for m in r.payload.metrics)
    assert nbirth.payload.seq == 0
