"""MQTT clients (paho-mqtt) with timeouts, and a publisher that waits for the broker's ack."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Final, cast

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from werk.core.errors import BrokerUnavailable, Forbidden
from werk.uns.broker import BrokerAddress

_LOGGER = logging.getLogger(__name__)

KEEPALIVE_S: Final = 30
SESSION_EXPIRY_S: Final = 3600

MessageHandler = Callable[[paho.Client, Any, paho.MQTTMessage], None]


def client_id(role: str) -> str:
    """A unique client id naming the role, e.g. ``werk-ingest-1a2b3c4d``."""
    return f"werk-{role}-{uuid.uuid4().hex[:8]}"


def make_client(
    address: BrokerAddress, cid: str, *, persistent: bool = False, manual_ack: bool = False
) -> paho.Client:
    """A paho client for `address`; persistent sessions survive reconnects (MQTT 5)."""
    protocol = paho.MQTTv5 if address.mqtt5 else paho.MQTTv311
    kwargs: dict[str, Any] = {"client_id": cid, "protocol": protocol, "manual_ack": manual_ack}
    if not address.mqtt5:
        kwargs["clean_session"] = not persistent
    client = paho.Client(CallbackAPIVersion.VERSION2, **kwargs)
    client.connect_timeout = 5.0
    if address.username is not None:
        client.username_pw_set(address.username, address.password)
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(100_000)
    return client


def connect(
    client: paho.Client,
    address: BrokerAddress,
    *,
    persistent: bool = False,
    receive_maximum: int | None = None,
    timeout_s: float = 10,
) -> None:
    """Connect and start the network thread; raise BrokerUnavailable if not up in time."""
    connected = threading.Event()
    failure: list[str] = []

    def on_connect(_c: paho.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if rc.is_failure:
            failure.append(str(rc))
        connected.set()

    client.on_connect = on_connect
    properties = None
    if address.mqtt5:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = SESSION_EXPIRY_S if persistent else 0
        if receive_maximum is not None:
            properties.ReceiveMaximum = receive_maximum
    try:
        client.connect(
            address.host, address.port, keepalive=KEEPALIVE_S,
            clean_start=not persistent if address.mqtt5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )  # fmt: skip
    except OSError as exc:
        raise BrokerUnavailable(f"cannot reach the MQTT broker at {address.url}: {exc}") from exc
    client.loop_start()
    if not connected.wait(timeout_s) or failure:
        client.loop_stop()
        reason = failure[0] if failure else f"no answer within {timeout_s:g} s"
        raise BrokerUnavailable(f"the MQTT broker at {address.url} refused us: {reason}")


def subscribe(
    client: paho.Client, topic_filter: str, *, qos: int = 0, timeout_s: float = 10
) -> None:
    """Subscribe and wait for the broker's answer; Forbidden when it refuses the filter."""
    answered = threading.Event()
    codes: list[ReasonCode] = []

    def on_subscribe(_c: paho.Client, _u: Any, _mid: int, got: list[ReasonCode], _p: Any) -> None:
        codes.extend(got)
        answered.set()

    client.on_subscribe = on_subscribe
    result, _mid = client.subscribe(topic_filter, qos=qos)
    if result != paho.MQTT_ERR_SUCCESS:
        raise BrokerUnavailable(f"cannot subscribe to {topic_filter}: {paho.error_string(result)}")
    if not answered.wait(timeout_s):
        raise BrokerUnavailable(
            f"the MQTT broker did not answer a subscription within {timeout_s:g} s"
        )
    if not codes or codes[0].is_failure:
        reason = str(codes[0]) if codes else "no reason given"
        raise Forbidden(
            f"the MQTT broker refused the subscription to {topic_filter}: {reason}",
            code="subscribe_refused",
            topic=topic_filter,
        )


def disconnect(client: paho.Client) -> None:
    """Disconnect and stop the network thread."""
    client.disconnect()
    client.loop_stop()


def close_flushed(client: paho.Client, timeout_s: float = 5.0) -> None:
    """Close a subscriber so that every ack it queued reaches the broker.

    A plain DISCONNECT is not enough: paho closes the socket right after writing it,
    and closing a socket with unread incoming data (the broker keeps sending) makes the
    kernel send a reset, which throws away the acks still in flight. So: wait until paho
    has written every queued packet, half-close the socket (FIN after the acks), read
    until the broker closes its side, then stop. Deliveries read meanwhile are not
    acknowledged and stay in the session. Without DISCONNECT the broker would publish a
    will, so this is only for clients that set none.
    """
    deadline = time.monotonic() + timeout_s
    while client.is_connected() and client.want_write() and time.monotonic() < deadline:
        time.sleep(0.01)
    closed = threading.Event()
    client.on_disconnect = lambda *_args: closed.set()
    sock = client.socket()
    if client.is_connected() and sock is not None:
        try:
            cast(socket.socket, sock).shutdown(socket.SHUT_WR)
        except OSError:
            closed.set()
        closed.wait(max(deadline - time.monotonic(), 0.5))
    client.disconnect()  # marks the client disconnected, so paho does not reconnect
    client.loop_stop()


class Publisher:
    """A connected client that publishes and waits until the broker has the message."""

    def __init__(self, address: BrokerAddress, role: str = "publisher") -> None:
        self._address = address
        self._client = make_client(address, client_id(role))
        self.listeners: list[Callable[[str], None]] = []  # told each topic before it is sent

    def __enter__(self) -> Publisher:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Connect to the broker."""
        connect(self._client, self._address)

    def stop(self) -> None:
        """Disconnect from the broker."""
        disconnect(self._client)

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        timeout_s: float = 5,
    ) -> None:
        """Publish and block until the broker acknowledged it (QoS 1/2) or it was sent."""
        for listener in self.listeners:
            listener(topic)
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise BrokerUnavailable(f"publish to {topic!r} failed: {paho.error_string(info.rc)}")
        try:
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise BrokerUnavailable(f"publish to {topic!r} failed: {exc}") from exc
        if not info.is_published():
            raise BrokerUnavailable(
                f"the broker did not acknowledge {topic!r} within {timeout_s:g} s"
            )
