"""The demo plant: nine simulated machines at ACME Berlin, published to MQTT at 1 Hz.

Every second machine publishes one ``_batch`` message per sample, the others every tag
as its own ``_value`` message, so consumers see both payload contracts. While the
broker is away samples are dropped (the machines keep running), not queued: a demo
wants fresh data after a reconnect, not a backlog.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Collection
from types import TracebackType
from typing import Any, Final

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from werk.core.errors import BrokerUnavailable
from werk.sim.machines import Machine, MachineKind, MachineSpec, Reading
from werk.uns.topics import DEFAULT_ROOT, DataClass, Node, UnsTopic, check_root

_LOGGER = logging.getLogger(__name__)

QOS: Final = 1
KEEPALIVE_S: Final = 30
CONNECT_TIMEOUT_S: Final = 10.0
JOIN_TIMEOUT_S: Final = 5.0
MAX_QUEUED: Final = 1000

_CELLS: Final[tuple[tuple[str, str, tuple[tuple[str, MachineKind], ...]], ...]] = (
    ("line-1", "cell-1", (("cnc-1", "cnc"), ("cnc-2", "cnc"))),
    ("line-1", "cell-2", (("robot-1", "robot"),)),
    ("line-1", "cell-3", (("press-1", "press"),)),
    ("line-2", "cell-1", (("cnc-3", "cnc"), ("robot-2", "robot"))),
    ("line-2", "cell-2", (("oven-1", "oven"),)),
    ("line-2", "cell-3", (("conveyor-1", "conveyor"), ("packer-1", "packer"))),
)

# speed rpm, power kW, temperature degC, vibration mm/s RMS, cycle s, scrap rate
_NOMINAL: Final[dict[MachineKind, tuple[float, float, float, float, float, float]]] = {
    "cnc": (12000.0, 15.0, 38.0, 1.2, 45.0, 0.02),
    "press": (1450.0, 55.0, 48.0, 3.5, 4.0, 0.01),
    "robot": (3000.0, 4.0, 42.0, 0.8, 12.0, 0.005),
    "oven": (1450.0, 60.0, 180.0, 1.8, 30.0, 0.01),
    "conveyor": (1450.0, 2.2, 40.0, 1.5, 3.0, 0.001),
    "packer": (1800.0, 7.5, 45.0, 2.0, 2.0, 0.015),
}


def demo_specs() -> list[MachineSpec]:
    """Describe the demo plant: enterprise acme, site berlin, area machining."""
    return [
        MachineSpec(asset, kind, Node("acme", "berlin", "machining", line, cell), *_NOMINAL[kind])
        for line, cell, machines in _CELLS
        for asset, kind in machines
    ]


def demo_machines(seed: int = 7) -> list[Machine]:
    """Build the demo plant's machines, each with its own random stream from `seed`."""
    return [Machine(spec, seed=f"{seed}/{spec.asset}") for spec in demo_specs()]


def value_payload(reading: Reading, ts_ms: int) -> bytes:
    """Encode one reading as a ``_value`` payload."""
    payload: dict[str, Any] = {"value": reading.value, "ts": ts_ms, "quality": reading.quality}
    if reading.unit is not None:
        payload["unit"] = reading.unit
    return orjson.dumps(payload)


def batch_payload(readings: list[Reading], ts_ms: int) -> bytes:
    """Encode one sample of a machine as a ``_batch`` payload."""
    return orjson.dumps({"ts": ts_ms, "values": {r.tag: _batch_entry(r) for r in readings}})


def _batch_entry(reading: Reading) -> Any:
    # Plain good values go as bare scalars, the rest as objects: both forms get used.
    if reading.unit is None and reading.quality == "good":
        return reading.value
    entry: dict[str, Any] = {"value": reading.value, "quality": reading.quality}
    if reading.unit is not None:
        entry["unit"] = reading.unit
    return entry


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class DemoPlant:
    """Publish the demo plant's readings to an MQTT broker from a background thread."""

    def __init__(
        self,
        host: str,
        port: int,
        root: str = DEFAULT_ROOT,
        interval_s: float = 1.0,
        seed: int = 7,
        assets: Collection[str] | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.host = host
        self.port = port
        self.root = check_root(root)
        self.interval_s = interval_s
        self._credentials = credentials
        machines = demo_machines(seed)
        self.machines = [m for m in machines if assets is None or m.spec.asset in assets]
        # Alternate so both lines carry both payload forms.
        self._batched = frozenset(m.spec.asset for m in self.machines[1::2])
        self._client: paho.Client | None = None
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._published = 0
        self._dropped = 0
        self._down = False
        self._congested = False

    @property
    def published(self) -> int:
        """How many messages the broker has acknowledged."""
        with self._lock:
            return self._published

    @property
    def dropped(self) -> int:
        """How many messages were dropped because the outgoing queue was full."""
        with self._lock:
            return self._dropped

    @property
    def running(self) -> bool:
        """Whether the publishing thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def batched(self, machine: Machine) -> bool:
        """Whether `machine` publishes ``_batch`` messages rather than ``_value`` ones."""
        return machine.spec.asset in self._batched

    def topics(self) -> list[str]:
        """Every MQTT topic the plant publishes to."""
        return [topic for machine in self.machines for topic in self._machine_topics(machine)]

    def _machine_topics(self, machine: Machine) -> list[str]:
        if self.batched(machine):
            return [UnsTopic(machine.node, DataClass.BATCH).topic(self.root)]
        return [
            UnsTopic(machine.node, DataClass.VALUE, tag).topic(self.root) for tag in machine.tags
        ]

    def start(self, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        """Connect to the broker and start publishing; raise `BrokerUnavailable` if it fails."""
        if self.running:
            return
        client = self._connect(timeout_s)
        self._client = client
        self._halt.clear()
        self._thread = threading.Thread(target=self._run, name="werk-sim-plant", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop publishing and disconnect; safe to call twice."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_S)
            self._thread = None
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def __enter__(self) -> DemoPlant:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _connect(self, timeout_s: float) -> paho.Client:
        client = self._new_client(timeout_s)
        self._connected.clear()
        self._down = self._congested = False
        try:
            client.connect(self.host, self.port, keepalive=KEEPALIVE_S)
        except OSError as exc:
            raise BrokerUnavailable(
                f"cannot reach the MQTT broker at {self.host}:{self.port}: {exc}",
                host=self.host,
                port=self.port,
            ) from exc
        client.loop_start()
        if not self._connected.wait(timeout_s):
            client.disconnect()
            client.loop_stop()
            raise BrokerUnavailable(
                f"the MQTT broker at {self.host}:{self.port} did not accept the connection "
                f"within {timeout_s} s",
                host=self.host,
                port=self.port,
            )
        return client

    def _new_client(self, timeout_s: float) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"werk-sim-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv311,
        )
        client.connect_timeout = timeout_s
        if self._credentials is not None:
            client.username_pw_set(*self._credentials)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.max_queued_messages_set(MAX_QUEUED)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Any,
    ) -> None:
        if reason.is_failure:
            _LOGGER.warning("broker %s:%s refused the plant: %s", self.host, self.port, reason)
            return
        if self._down:
            _LOGGER.info("reconnected to broker %s:%s", self.host, self.port)
            self._down = False
        self._connected.set()

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Any,
    ) -> None:
        self._connected.clear()
        if self._thread is None or self._halt.is_set() or self._down:
            return
        self._down = True
        _LOGGER.warning(
            "lost broker %s:%s (%s); dropping samples until it is back",
            self.host,
            self.port,
            reason,
        )

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, properties: Any
    ) -> None:
        with self._lock:
            self._published += 1

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._halt.is_set():
            self._publish_sample(_now_ms())
            # Keep a fixed rate, but never burst to catch up after a stall.
            next_at = max(next_at + self.interval_s, time.monotonic())
            self._halt.wait(next_at - time.monotonic())

    def _publish_sample(self, now_ms: int) -> None:
        for machine in self.machines:
            readings = machine.step(now_ms)
            if self._connected.is_set():
                self._publish_machine(machine, readings, now_ms)

    def _publish_machine(self, machine: Machine, readings: list[Reading], now_ms: int) -> None:
        if self.batched(machine):
            topic = UnsTopic(machine.node, DataClass.BATCH).topic(self.root)
            self._send(topic, batch_payload(readings, now_ms))
            return
        for reading in readings:
            topic = UnsTopic(machine.node, DataClass.VALUE, reading.tag).topic(self.root)
            self._send(topic, value_payload(reading, now_ms))

    def _send(self, topic: str, payload: bytes) -> None:
        client = self._client
        if client is None:
            return
        info = client.publish(topic, payload, qos=QOS)
        if info.rc == paho.MQTT_ERR_QUEUE_SIZE:
            self._note_congestion(True)
        elif info.rc == paho.MQTT_ERR_SUCCESS:
            self._note_congestion(False)

    def _note_congestion(self, congested: bool) -> None:
        if congested:
            with self._lock:
                self._dropped += 1
        if congested == self._congested:
            return
        self._congested = congested
        if congested:
            _LOGGER.warning(
                "outgoing queue to %s:%s is full; dropping samples", self.host, self.port
            )
        else:
            _LOGGER.info("outgoing queue to %s:%s drains again", self.host, self.port)
