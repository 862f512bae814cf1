"""pysparkplug (an independent Sparkplug B implementation) as a peer of werk in tests.

pysparkplug 0.3 builds its paho client with the paho 1.x constructor and calls
`message_retry_set`, which paho-mqtt 2 removed, so its `Client()` cannot be constructed
next to werk's paho 2. `SparkplugClient` only replaces that constructor; the Will,
the connect callback (births), subscriptions and every payload encoding and decoding
stay pysparkplug's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
import warnings
from collections.abc import Iterable, Iterator

import paho.mqtt.client as paho
import pysparkplug as ps
from paho.mqtt.enums import CallbackAPIVersion

from werk.edge.connectors import Connector, ConnectorConfigBase
from werk.edge.model import TagSpec, Value

SUBSCRIBE_TIMEOUT_S = 10.0


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
                sock.shutdown(2)  # SHUT_RDWR
            sock.close()


class Recorder:
    """A pysparkplug client that keeps every message it decodes, in arrival order."""

    def __init__(self, port: int, topic: ps.Topic) -> None:
        self._lock = threading.Lock()
        self._messages: list[ps.Message] = []
        self.client = SparkplugClient("interop-recorder")
        self.client.subscribe(topic, ps.QoS.AT_LEAST_ONCE, self._record)
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


def edge_topic(group: str, edge_node: str, device: str | None = None) -> ps.Topic:
    """Every message type of one edge node (and its devices)."""
    return ps.Topic(
        group_id=group,
        message_type=ps.SINGLE_LEVEL_WILDCARD,
        edge_node_id=edge_node,
        device_id=device or ps.MULTI_LEVEL_WILDCARD,
    )


def metrics_by_name(message: ps.Message) -> dict[str, ps.Metric]:
    """The metrics of a decoded message by name."""
    metrics: Iterable[ps.Metric] = message.payload.metrics  # type: ignore[attr-defined]
    return {m.name: m for m in metrics if m.name is not None}


def bd_seq_of(message: ps.Message) -> int:
    """The bdSeq metric of a decoded NBIRTH or NDEATH."""
    if isinstance(message.payload, ps.NDeath):
        return int(message.payload.bd_seq_metric.value)  # type: ignore[arg-type]
    return int(metrics_by_name(message)["bdSeq"].value)  # type: ignore[arg-type]


def publish_by_alias(
    node: ps.EdgeNode, client: SparkplugClient, metrics: Iterable[ps.Metric],
    device: str | None = None,
) -> None:  # fmt: skip
    """Send NDATA/DDATA as pysparkplug encodes it without datatypes, with the node's seq."""
    kind = ps.MessageType.NDATA if device is None else ps.MessageType.DDATA
    payload_type = ps.NData if device is None else ps.DData
    topic = ps.Topic(
        message_type=kind, group_id=node.group_id, edge_node_id=node.edge_node_id,
        device_id=device,
    )  # fmt: skip
    # EdgeNode has no public call for data without names and datatypes; its `_seq`
    # property hands out the node's next sequence number.
    seq: int = node._seq  # type: ignore[attr-defined]
    payload = payload_type(timestamp=ps.get_current_timestamp(), seq=seq, metrics=tuple(metrics))
    client.publish(ps.Message(topic, payload, ps.QoS.AT_MOST_ONCE, False), include_dtypes=False)


class MemoryDevice(Connector[ConnectorConfigBase]):
    """A device held in memory (tests only): the test submits its readings."""

    def __init__(self, name: str, specs: list[TagSpec]) -> None:
        super().__init__(ConnectorConfigBase(kind="memory", name=name))
        self._set_specs(specs)
        self.values: dict[str, Value] = {}

    async def _connect(self) -> None:
        pass

    async def _serve(self) -> None:
        await asyncio.Event().wait()

    async def _disconnect(self) -> None:
        pass

    async def _write(self, tag: str, value: Value) -> Value:
        self.values[tag] = value
        return value

    def _map_errors(self, tag: str | None) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


@contextlib.contextmanager
def connected(node: ps.EdgeNode, client: SparkplugClient, port: int) -> Iterator[ps.EdgeNode]:
    """A connected pysparkplug edge node (its births go out on connect)."""
    node.connect("127.0.0.1", port=port, keepalive=10)
    assert client.subscribed.wait(SUBSCRIBE_TIMEOUT_S), "no SUBACK for NCMD"
    try:
        yield node
    finally:
        node.disconnect()
