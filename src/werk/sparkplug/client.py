"""The Sparkplug host application's MQTT side: STATE birth and death, subscription, commands.

Per Sparkplug 3.0 the host connects with a clean session and a Will of
``{"online": false, "timestamp": t}`` on ``spBv1.0/STATE/<host_id>`` (QoS 1, retained),
subscribes to ``spBv1.0/#`` and, once the broker confirmed the subscription, publishes
``{"online": true, "timestamp": t}`` with the same `t` (QoS 1, retained). If it ever sees
its own STATE saying offline while connected, it publishes online again. Every new
connection gets a new timestamp. Messages go to `deliver`, which spools them for the
historian writer (where `werk.sparkplug.host` handles them in arrival order).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Final

import paho.mqtt.client as paho

from werk.core.clock import NS_PER_MS, now_ns
from werk.core.errors import BrokerUnavailable, PayloadError
from werk.core.settings import Settings
from werk.sparkplug.topics import NAMESPACE, HostState, decode_state, encode_state, state_topic
from werk.uns.broker import BrokerAddress
from werk.uns.mqtt import connect, make_client

_LOGGER = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT_S: Final = 10.0
STATE_QOS: Final = 1
COMMAND_QOS: Final = 0  # Sparkplug sends NCMD and DCMD with QoS 0

Deliver = Callable[[paho.Client, paho.MQTTMessage], None]


class HostClient:
    """The MQTT connection of the primary host application."""

    def __init__(self, settings: Settings, address: BrokerAddress, deliver: Deliver) -> None:
        self._host_id = settings.sparkplug_host_id
        self._address = address
        self._deliver = deliver
        self._topic = state_topic(self._host_id)
        self._client = make_client(address, f"werk-host-{self._host_id}", manual_ack=True)
        self._subscribed = threading.Event()
        self._state_ts = 0
        self._subscription_mid: int | None = None
        self._refused = False
        self._lock = threading.Lock()
        self.online_since_ns: int | None = None

    @property
    def host_id(self) -> str:
        """The Sparkplug host id."""
        return self._host_id

    @property
    def connected(self) -> bool:
        """Whether the host is connected to the broker."""
        return self._client.is_connected()

    def start(self) -> None:
        """Connect with the STATE Will, subscribe, then publish STATE online."""
        self._arm_will()
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        connect(self._client, self._address)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._go_online(self._client)
        if not self._subscribed.wait(SUBSCRIBE_TIMEOUT_S) or self._refused:
            raise BrokerUnavailable(
                f"the broker at {self._address.url} did not grant the subscription to "
                f"{NAMESPACE}/#; werk cannot be the Sparkplug host without it",
                code="subscription_refused",
            )

    def stop(self) -> None:
        """Publish STATE offline (the Will is not sent on a clean disconnect), disconnect."""
        client = self._client
        client.on_disconnect = None
        if client.is_connected():
            info = client.publish(self._topic, self._state(False), qos=STATE_QOS, retain=True)
            try:
                info.wait_for_publish(5)
            except (RuntimeError, ValueError) as exc:
                _LOGGER.warning("could not publish STATE offline: %s", exc)
        client.disconnect()
        client.loop_stop()
        self.online_since_ns = None

    def publish_command(self, topic: str, payload: bytes) -> None:
        """Publish an NCMD or DCMD; raise BrokerUnavailable if it cannot leave."""
        info = self._client.publish(topic, payload, qos=COMMAND_QOS)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise BrokerUnavailable(
                f"cannot send the command on {topic}: {paho.error_string(info.rc)}",
                code="broker_unreachable",
            )

    def _arm_will(self) -> None:
        with self._lock:
            self._state_ts = now_ns() // NS_PER_MS
        self._client.will_set(self._topic, self._state(False), qos=STATE_QOS, retain=True)

    def _state(self, online: bool) -> bytes:
        return encode_state(HostState(online, self._state_ts))

    def _go_online(self, client: paho.Client) -> None:
        """Subscribe; the SUBACK handler then publishes STATE online."""
        self._subscribed.clear()
        self._refused = False
        with self._lock:  # the SUBACK may arrive before subscribe() returns
            _rc, self._subscription_mid = client.subscribe(f"{NAMESPACE}/#", qos=1)

    def _on_subscribe(
        self, client: paho.Client, _u: Any, mid: int, reasons: Any, *_args: Any
    ) -> None:
        with self._lock:
            if mid != self._subscription_mid:
                return
        if any(code.is_failure for code in reasons):
            _LOGGER.error("the broker refused the subscription to %s/#: %s", NAMESPACE, reasons)
            self._refused = True
            self._subscribed.set()
            return
        client.publish(self._topic, self._state(True), qos=STATE_QOS, retain=True)
        self.online_since_ns = now_ns()
        self._subscribed.set()
        _LOGGER.info("Sparkplug host %s is online", self._host_id)

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if not rc.is_failure:
            self._go_online(client)

    def _on_disconnect(self, *_args: Any) -> None:
        self.online_since_ns = None
        _LOGGER.warning("Sparkplug host %s lost the broker; reconnecting", self._host_id)
        self._arm_will()  # the next connection gets a new STATE timestamp

    def _on_message(self, client: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        if msg.topic == self._topic:
            self._own_state(client, msg)
            return
        self._deliver(client, msg)

    def _own_state(self, client: paho.Client, msg: paho.MQTTMessage) -> None:
        if msg.qos > 0:
            client.ack(msg.mid, msg.qos)
        try:
            state = decode_state(bytes(msg.payload))
        except PayloadError:
            state = HostState(False, 0)
        if not state.online and client.is_connected():
            _LOGGER.info("saw our own STATE offline while connected; publishing online again")
            client.publish(self._topic, self._state(True), qos=STATE_QOS, retain=True)
