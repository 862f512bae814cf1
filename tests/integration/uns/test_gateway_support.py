"""Support for the gateway tests (no tests here): fixed-rule authority, paho peers, raw sockets."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from werk.core.filters import matches
from werk.uns.gateway import MqttGrant
from werk.uns.mqtt_packets import Connect, build_connect, frame_head


@dataclass(frozen=True)
class Rules:
    """What one test principal may do: MQTT filters for publish and subscribe."""

    principal_id: str
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()

    def may_publish(self, topic: str) -> bool:
        return any(matches(f, topic) for f in self.publish)

    def may_subscribe(self, topic_filter: str) -> bool:
        # Wildcards of the request are matched as plain levels: close enough for tests.
        return any(matches(f, topic_filter) for f in self.subscribe)


@dataclass
class FixedAuthority:
    """Stands in for IAM: users with passwords and rules, a record of who asked."""

    users: dict[str, tuple[str, Rules]] = field(default_factory=dict)
    delay_s: float = 0.0
    asked: list[tuple[str, str, str]] = field(default_factory=list)

    def connect(self, username: str, password: str, client_id: str, peer: str) -> MqttGrant | None:
        self.asked.append((username, client_id, peer))
        time.sleep(self.delay_s)
        known = self.users.get(username)
        return known[1] if known is not None and known[0] == password else None


class Peer:
    """A paho client that records its connect result, messages, acks and disconnects."""

    def __init__(
        self,
        port: int,
        *,
        v5: bool,
        user: str | None = None,
        password: str | None = None,
        client_id: str = "",
        will: tuple[str, bytes] | None = None,
    ) -> None:
        protocol = paho.MQTTv5 if v5 else paho.MQTTv311
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=protocol)  # fmt: skip
        if user is not None:
            self.client.username_pw_set(user, password)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1)
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.result: ReasonCode | None = None
        self.disconnect_reason: ReasonCode | None = None
        self.messages: list[tuple[str, bytes]] = []
        self.acks: dict[int, ReasonCode] = {}
        self.subacks: list[list[ReasonCode]] = []
        self._lock = threading.Lock()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.reconnect_delay_set(min_delay=30, max_delay=60)  # no retries in tests
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        self.connected.wait(5)

    @property
    def ok(self) -> bool:
        return self.result is not None and not self.result.is_failure

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        self.result = rc
        self.connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        self.disconnect_reason = rc
        self.disconnected.set()
        self.connected.set()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        self.acks[mid] = rc

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, codes: list[ReasonCode], _p: Any) -> None:
        self.subacks.append(codes)

    def got(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.messages)

    def subscribe(self, *filters: str) -> list[ReasonCode]:
        before = len(self.subacks)
        self.client.subscribe([(f, 1) for f in filters])
        deadline = time.monotonic() + 5
        while len(self.subacks) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.subacks[-1]

    def publish(self, topic: str, payload: bytes, qos: int) -> paho.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos=qos)
        if qos:
            info.wait_for_publish(5)
        return info

    def close(self) -> None:
        """Disconnect, stop paho's thread and let go of its sockets (idempotent)."""
        if self.client.on_connect is None:
            return
        self.client.disconnect()
        self.client.loop_stop()
        # The callbacks tie client and peer in a cycle; without it, paho's __del__ closes
        # its socket pair as soon as the peer goes, not whenever the collector runs.
        self.client.on_connect = self.client.on_disconnect = self.client.on_message = None
        self.client.on_publish = self.client.on_subscribe = None


class RawClient:
    """A socket that speaks MQTT through the codec, for what paho will not send."""

    def __init__(self, port: int, connect: Connect) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(build_connect(connect))
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def packet(self) -> bytes:
        """The next whole packet from the gateway; b"" once it closed the connection."""
        while True:
            head = frame_head(self.buffer, 0, len(self.buffer))
            if head is not None and len(self.buffer) >= head[1] + head[2]:
                size = head[1] + head[2]
                packet, self.buffer = self.buffer[:size], self.buffer[size:]
                return packet
            chunk = self.sock.recv(65536)
            if not chunk:
                return b""
            self.buffer += chunk

    def closed(self) -> bool:
        """Whether the gateway closed the connection (reading what it still sent)."""
        try:
            while self.packet():
                pass
        except (TimeoutError, ConnectionResetError):
            return False
        return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
