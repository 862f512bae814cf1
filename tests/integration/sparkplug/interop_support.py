"""pysparkplug (an independent Sparkplug B implementation) as a peer of werk in tests.

pysparkplug 0.3 builds its paho client with the paho 1.x constructor and calls
`message_retry_set`, which paho-mqtt 2 removed, so its `Client()` cannot be constructed
next to werk's paho 2. `SparkplugClient` only replaces that constructor; the Will,
the connect callback (births), subscriptions and every payload encoding and decoding
stay pysparkplug's own.
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import queue
import socket
import threading
import uuid
import warnings
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pysparkplug as ps
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from tests.conftest import wait_until
from tests.edge_device import MemoryDevice

from werk.edge.agent import EdgeAgent
from werk.edge.config import BufferConfig, EdgeConfig, NodeConfig
from werk.sparkplug.datatypes import DataType

GROUP = "interop"
SUBSCRIBE_TIMEOUT_S = 10.0

# name: (datatype, value in the birth, value sent later by alias only, without datatype)
DEVICE_TYPES: dict[str, tuple[ps.DataType, Any, Any]] = {
    "Int8": (ps.DataType.INT8, -128, -1),
    "Int16": (ps.DataType.INT16, -32768, -2),
    "Int32": (ps.DataType.INT32, -(2**31), -3),
    "Int64": (ps.DataType.INT64, -(2**63), 2**63 - 1),
    "UInt8": (ps.DataType.UINT8, 255, 0),
    "UInt16": (ps.DataType.UINT16, 65535, 1),
    "UInt32": (ps.DataType.UINT32, 2**32 - 1, 2),
    "UInt64": (ps.DataType.UINT64, 2**53 + 1, 3),
    "Float": (ps.DataType.FLOAT, 3.14159, -0.1),
    "Double": (ps.DataType.DOUBLE, 2.718281828459045, -1e300),
    "Boolean": (ps.DataType.BOOLEAN, True, False),
    "String": (ps.DataType.STRING, "Grüße, 工場", ""),
    "DateTime": (ps.DataType.DATETIME, datetime(2024, 5, 17, 8, 30, 15, 250_000, UTC),
                 datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    "Text": (ps.DataType.TEXT, "line one\nline two", "x" * 1000),
    "UUID": (ps.DataType.UUID, "123e4567-e89b-12d3-a456-426614174000",
             "00000000-0000-0000-0000-000000000000"),
    "Bytes": (ps.DataType.BYTES, b"\x00\x01\xfe\xff", b"\x80"),
    "File": (ps.DataType.FILE, b"%PDF-1.7\n", b"\x00" * 16),
}  # fmt: skip
FIRST_ALIAS = 100

# what werk's edge agent reads from its device: name: (datatype, value)
AGENT_TAGS: dict[str, tuple[DataType, Any]] = {
    "Spindle/Speed": (DataType.DOUBLE, 1234.5),
    "Spindle/Load": (DataType.FLOAT, 0.1),
    "Axis/Offset": (DataType.INT8, -128),
    "Axis/Steps": (DataType.INT16, -32768),
    "Counter/Parts": (DataType.INT32, -(2**31)),
    "Counter/Total": (DataType.INT64, -(2**63)),
    "Raw/Byte": (DataType.UINT8, 255),
    "Raw/Word": (DataType.UINT16, 65535),
    "Raw/DWord": (DataType.UINT32, 2**32 - 1),
    "Raw/QWord": (DataType.UINT64, 2**64 - 1),
    "State/Running": (DataType.BOOLEAN, True),
    "State/Program": (DataType.STRING, "O1234 (ROUGH) Grüße 工場"),
    "State/Note": (DataType.TEXT, "line one\nline two"),
    "State/Since": (DataType.DATETIME, 1_715_934_615_250),
}


class SparkplugClient(ps.Client):
    """pysparkplug's low-level client on a paho-mqtt 2 connection."""

    def __init__(self, name: str) -> None:  # pysparkplug's own __init__ needs paho 1.x
        with warnings.catch_warnings():
            # pysparkplug's callbacks have paho's version 1 signatures.
            warnings.filterwarnings("ignore", "Callback API version 1", DeprecationWarning)
            self._client = paho.Client(
                CallbackAPIVersion.VERSION1, client_id=f"{name}-{uuid.uuid4().hex[:6]}",
                clean_session=True, protocol=paho.MQTTv311, reconnect_on_failure=False,
            )  # fmt: skip
        self._births = {}
        self._subscriptions = {}
        self.subscribed = threading.Event()
        self._client.on_subscribe = lambda *_args: self.subscribed.set()

    @property
    def is_connected(self) -> bool:
        """Whether the MQTT connection is up."""
        return bool(self._client.is_connected())

    def drop_connection(self) -> None:
        """Lose the connection without a DISCONNECT packet, so the broker sends the Will."""
        self._client.loop_stop()
        sock = self._client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class Recorder:
    """A pysparkplug client that keeps every message it decodes, in arrival order."""

    def __init__(self, port: int, subscription: ps.Topic) -> None:
        self._lock = threading.Lock()
        self._messages: list[ps.Message] = []
        self.client = SparkplugClient("interop-recorder")
        self.client.subscribe(subscription, ps.QoS.AT_LEAST_ONCE, self._record)
        self.client.connect("127.0.0.1", port=port, keepalive=10)
        assert self.client.subscribed.wait(SUBSCRIBE_TIMEOUT_S), "no SUBACK"

    def _record(self, _client: ps.Client, message: ps.Message) -> None:
        with self._lock:
            self._messages.append(message)

    def messages(self, *kinds: ps.MessageType, device: str | None = None) -> list[ps.Message]:
        """What arrived of these kinds (every kind if none given), oldest first."""
        with self._lock:
            found = list(self._messages)
        return [
            m
            for m in found
            if (not kinds or m.topic.message_type in kinds)
            and (device is None or m.topic.device_id == device)
        ]

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()


def edge_topic(edge_node: str) -> ps.Topic:
    """Every message of one edge node of GROUP and its devices."""
    return ps.Topic(
        group_id=GROUP,
        message_type=ps.SINGLE_LEVEL_WILDCARD,
        edge_node_id=edge_node,
        device_id=ps.MULTI_LEVEL_WILDCARD,
    )


def topic(kind: ps.MessageType, edge_node: str, device: str | None = None) -> ps.Topic:
    """The topic of one message of an edge node of GROUP (or of one of its devices)."""
    return ps.Topic(message_type=kind, group_id=GROUP, edge_node_id=edge_node, device_id=device)


def metrics_by_name(message: ps.Message) -> dict[str, ps.Metric]:
    """The metrics of a decoded message by name."""
    metrics: Iterable[ps.Metric] = message.payload.metrics
    return {m.name: m for m in metrics if m.name is not None}


def bd_seq_of(message: ps.Message) -> int:
    """The bdSeq metric of a decoded NBIRTH or NDEATH."""
    if isinstance(message.payload, ps.NDeath):
        return int(message.payload.bd_seq_metric.value)
    return int(metrics_by_name(message)["bdSeq"].value)


def publish_by_alias(
    node: ps.EdgeNode, client: SparkplugClient, metrics: Iterable[ps.Metric],
    device: str | None = None,
) -> None:  # fmt: skip
    """Send NDATA/DDATA as pysparkplug encodes it without datatypes, with the node's seq."""
    kind = ps.MessageType.NDATA if device is None else ps.MessageType.DDATA
    payload_type = ps.NData if device is None else ps.DData
    # EdgeNode has no public call for data without names and datatypes; its `_seq`
    # property hands out the node's next sequence number.
    seq: int = node._seq
    payload = payload_type(timestamp=ps.get_current_timestamp(), seq=seq, metrics=tuple(metrics))
    message = ps.Message(
        topic(kind, node.edge_node_id, device), payload, ps.QoS.AT_MOST_ONCE, False
    )
    client.publish(message, include_dtypes=False)


@contextlib.contextmanager
def connected(node: ps.EdgeNode, client: SparkplugClient, port: int) -> Iterator[ps.EdgeNode]:
    """A connected pysparkplug edge node (its births go out on connect)."""
    node.connect("127.0.0.1", port=port, keepalive=10)
    assert client.subscribed.wait(SUBSCRIBE_TIMEOUT_S), "no SUBACK for NCMD"
    try:
        yield node
    finally:
        node.disconnect()


# -- a pysparkplug edge node ------------------------------------------------------------


class Peer:
    """A connected pysparkplug edge node, the commands it got and what it published."""

    def __init__(
        self, stack: contextlib.ExitStack, port: int, edge_node: str,
        metrics: list[ps.Metric], devices: tuple[ps.Device, ...] = (),
    ) -> None:  # fmt: skip
        self.recorder = Recorder(port, edge_topic(edge_node))
        stack.callback(self.recorder.close)
        self.commands: queue.Queue[ps.Message] = queue.Queue()
        self.client = SparkplugClient(edge_node)
        self.node = ps.EdgeNode(
            GROUP, edge_node, metrics, client=self.client,
            cmd_callback=lambda _node, message: self.commands.put(message),
        )  # fmt: skip
        for device in devices:
            self.node.register(device)
        stack.enter_context(connected(self.node, self.client, port))
        (nbirth,) = wait_until(lambda: self.recorder.messages(ps.MessageType.NBIRTH))
        self.bd_seq = bd_seq_of(nbirth)


def typed_peer(stack: contextlib.ExitStack, port: int, edge_node: str, birth_ms: int) -> Peer:
    """A node with Temperature (alias 1), Counter (alias 2) and a device of every type."""
    press = ps.Device("press-1", [
        ps.Metric(birth_ms, f"Types/{name}", datatype, value, alias=FIRST_ALIAS + i)
        for i, (name, (datatype, value, _)) in enumerate(DEVICE_TYPES.items())
    ])  # fmt: skip
    return Peer(stack, port, edge_node, [
        ps.Metric(birth_ms, "Temperature", ps.DataType.DOUBLE, 21.5, alias=1),
        ps.Metric(birth_ms, "Counter", ps.DataType.UINT32, 5, alias=2),
    ], (press,))  # fmt: skip


# -- werk's REST API and what it should show ------------------------------------------


def read_tag(werk: TestClient, path: str) -> dict[str, Any] | None:
    """A tag of werk's namespace, or None while it does not exist."""
    response = werk.get(f"/api/v1/tags/{path}")
    return response.json() if response.status_code == 200 else None


def wait_for_tag(werk: TestClient, path: str, **expected: Any) -> dict[str, Any]:
    """Poll a tag until it exists and its fields have the expected values."""
    return wait_until(
        lambda: (t := read_tag(werk, path)) and all(t[k] == v for k, v in expected.items()) and t
    )


def read_tags(werk: TestClient, base: str, names: list[str]) -> dict[str, Any]:
    """Several tags below one node path, by name."""
    return {name: read_tag(werk, f"{base}/{name}") for name in names}


def node_view(werk: TestClient, edge_node: str) -> dict[str, Any]:
    """werk's view of an edge node of GROUP, with every metric."""
    response = werk.get(f"/api/v1/sparkplug/nodes/{GROUP}/{edge_node}")
    assert response.status_code == 200, response.text
    return response.json()


def epoch_ms(moment: datetime) -> int:
    """A UTC datetime as epoch milliseconds, without float arithmetic."""
    return calendar.timegm(moment.utctimetuple()) * 1000 + moment.microsecond // 1000


def uns_view(datatype: ps.DataType, value: Any) -> tuple[Any, str]:
    """What werk's tag API should show for a Sparkplug value: (value, data_type)."""
    if datatype is ps.DataType.FLOAT:  # float32 on the wire
        return pytest.approx(value, rel=1e-6), "number"
    if datatype is ps.DataType.DATETIME:
        return epoch_ms(value), "number"
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii"), "string"
    if isinstance(value, bool):
        return value, "boolean"
    return value, "string" if isinstance(value, str) else "number"


def stored_view(datatype: ps.DataType, value: Any) -> Any:
    """What werk's history should show: numbers as doubles."""
    shown, kind = uns_view(datatype, value)
    return float(shown) if kind == "number" and isinstance(shown, int) else shown


# -- werk's edge agent and a pysparkplug host ------------------------------------------


def start_agent(
    stack: contextlib.ExitStack, tmp_path: Path, port: int, primary_host: str,
    device: MemoryDevice, **node: Any,
) -> EdgeAgent:  # fmt: skip
    """An edge agent "agent-<device>" of GROUP with one device, in its own thread."""
    edge_node = f"agent-{device.name}"
    config = EdgeConfig(
        node=NodeConfig(group=GROUP, edge_node=edge_node, broker=f"mqtt://127.0.0.1:{port}",
                        primary_host=primary_host, keepalive_s=5, publish_interval_ms=20,
                        **node),
        buffer=BufferConfig(path=tmp_path / edge_node, fsync=False),
    )  # fmt: skip
    agent = EdgeAgent(config, connectors=[device])
    agent.start_in_thread()
    stack.callback(agent.stop_thread)
    return agent


def as_pysparkplug(datatype: DataType, value: Any) -> Any:
    """A value as pysparkplug decodes it."""
    if datatype is DataType.FLOAT:  # float32 on the wire
        return pytest.approx(value, rel=1e-6)
    if datatype is DataType.DATETIME:
        return datetime.fromtimestamp(value / 1000, UTC)
    return value


def publish_state(host: SparkplugClient, host_id: str, *, online: bool) -> None:
    """A primary host's STATE as pysparkplug encodes it (retained, QoS 1)."""
    where = ps.Topic(message_type=ps.MessageType.STATE, sparkplug_host_id=host_id)
    state = ps.State(ps.get_current_timestamp(), online)
    host.publish(ps.Message(where, state, ps.QoS.AT_LEAST_ONCE, True))
