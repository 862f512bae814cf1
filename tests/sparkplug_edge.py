"""A minimal Sparkplug B edge node of the tests' own, on a real MQTT connection."""

from __future__ import annotations

import queue
import time
from typing import Any

import paho.mqtt.client as paho
from tests.conftest import mqtt_client

from werk.sparkplug.codec import Metric, Payload, PropertySet, decode, encode
from werk.sparkplug.datatypes import DataType

G, E, D = "acme", "gw-1", "cnc-1"


class EdgeNode:
    """A minimal Sparkplug edge node of the test's own, on a real MQTT connection."""

    def __init__(self, port: int) -> None:
        self.client = mqtt_client(port)
        self.commands: queue.Queue[tuple[str, Payload]] = queue.Queue()
        self.client.on_message = self._on_message
        self.client.subscribe(f"spBv1.0/{G}/NCMD/{E}", qos=0)
        self.client.subscribe(f"spBv1.0/{G}/DCMD/{E}/#", qos=0)
        self.seq = 0

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        self.commands.put((msg.topic, decode(msg.payload)))

    def send(self, kind: str, metrics: tuple[Metric, ...], device: str | None = None, *,
             seq: int | None = None) -> None:  # fmt: skip
        topic = f"spBv1.0/{G}/{kind}/{E}" + (f"/{device}" if device else "")
        if seq is None and kind != "NDEATH":
            seq, self.seq = self.seq, (self.seq + 1) % 256
        payload = Payload(timestamp=int(time.time() * 1000), metrics=metrics, seq=seq)
        self.client.publish(topic, encode(payload), qos=1).wait_for_publish(5)

    def birth(self, bd_seq: int = 0) -> None:
        self.seq = 0
        self.send("NBIRTH", (
            Metric(name="bdSeq", datatype=DataType.UINT64, value=bd_seq),
            Metric(name="Node Control/Rebirth", datatype=DataType.BOOLEAN, value=False),
        ))  # fmt: skip
        writable = PropertySet.of(Writable=(DataType.BOOLEAN, True))
        self.send("DBIRTH", (
            Metric(name="Speed", alias=1, datatype=DataType.DOUBLE, value=1000.0),
            Metric(name="Setpoints/Speed", alias=2, datatype=DataType.DOUBLE, value=1000.0,
                   properties=writable),
            Metric(name="Running", alias=3, datatype=DataType.BOOLEAN, value=True),
        ), D)  # fmt: skip

    def next_command(self, timeout: float = 10) -> tuple[str, Payload]:
        return self.commands.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
