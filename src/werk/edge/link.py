"""One MQTT connection of the edge node, with its own Will (NDEATH) and bdSeq.

Sparkplug wants a new bdSeq in the Will of every CONNECT, so every connection gets a
fresh paho client (MQTT 3.1.1, clean session) and never reconnects by itself; the agent
opens the next one. paho's network thread only hands events to the agent's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from werk.edge.config import NodeConfig
from werk.edge.node import EdgeNode
from werk.sparkplug.topics import NAMESPACE, MessageType, state_topic

_LOGGER = logging.getLogger(__name__)

CONNECT_TIMEOUT_S: Final = 5.0
HANDSHAKE_TIMEOUT_S: Final = 10.0
NDEATH_ACK_TIMEOUT_S: Final = 5.0

MessageHandler = Callable[[str, bytes], None]


class Link:
    """A paho client for one connection: CONNECT with Will, subscriptions, publish."""

    def __init__(
        self,
        config: NodeConfig,
        node: EdgeNode,
        bd_seq: int,
        will: bytes,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.bd_seq = bd_seq
        self.closed = asyncio.Event()
        self.on_message: MessageHandler | None = None
        self._config = config
        self._loop = loop
        self._ndeath_topic = node.topic(MessageType.NDEATH)
        self._subscriptions = [
            (node.topic(MessageType.NCMD), 1),
            (f"{NAMESPACE}/{node.group}/{MessageType.DCMD}/{node.edge_node}/+", 1),
        ]
        if config.primary_host is not None:
            self._subscriptions.append((state_topic(config.primary_host), 1))
        self._connack: asyncio.Future[ReasonCode] = loop.create_future()
        self._suback: asyncio.Future[list[ReasonCode]] = loop.create_future()
        self._closing = False
        self._client = self._make_client(node, will)

    def _make_client(self, node: EdgeNode, will: bytes) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"werk-edge-{node.group}-{node.edge_node}-{self.bd_seq}",
            protocol=paho.MQTTv311,
            clean_session=True,
        )
        client.connect_timeout = CONNECT_TIMEOUT_S
        address = self._config.broker_address
        if address.username is not None:
            client.username_pw_set(address.username, address.password)
        client.will_set(self._ndeath_topic, will, qos=1, retain=False)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    async def open(self, unreachable: Callable[[str], None]) -> bool:
        """Open TCP and send CONNECT; False (and `unreachable(reason)`) when that fails."""
        address = self._config.broker_address
        connect = self._client.connect
        keepalive = self._config.keepalive_s
        try:  # paho's connect_timeout bounds the TCP connect
            await asyncio.to_thread(connect, address.host, address.port, keepalive)
        except (OSError, ValueError) as exc:
            unreachable(str(exc) or type(exc).__name__)
            return False
        self._client.loop_start()
        return True

    async def handshake(self) -> str | None:
        """Wait for CONNACK, subscribe to commands (and STATE), wait for SUBACK.

        Return None when the session is ready, else why not.
        """
        connack = await self._race(self._connack)
        if connack is None:
            return "no CONNACK (the connection closed or timed out)"
        if connack.is_failure:
            return f"the broker refused the connection: {connack}"
        self._client.subscribe(self._subscriptions)
        granted = await self._race(self._suback)
        if granted is None or any(code.is_failure for code in granted):
            return f"the broker refused the Sparkplug subscriptions: {granted}"
        return None

    def publish(self, topic: str, payload: bytes) -> bool:
        """Publish at QoS 0, not retained (Sparkplug data and births); False if not sent."""
        if self.closed.is_set():
            return False
        info = self._client.publish(topic, payload, qos=0)
        return info.rc == paho.MQTT_ERR_SUCCESS

    async def goodbye(self, ndeath: bytes) -> bool:
        """Publish NDEATH (QoS 1), wait for its ack, DISCONNECT; True when it was acked."""
        self._closing = True
        acked = await asyncio.to_thread(self._goodbye, ndeath)
        self.closed.set()
        return acked

    def _goodbye(self, ndeath: bytes) -> bool:
        info = self._client.publish(self._ndeath_topic, ndeath, qos=1)
        acked = False
        if info.rc == paho.MQTT_ERR_SUCCESS:
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(NDEATH_ACK_TIMEOUT_S)
            acked = info.is_published()
        self._client.disconnect()
        return acked

    async def close(self) -> None:
        """Drop the connection (if still up) and stop paho's network thread."""
        self._closing = True
        self.closed.set()
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    async def _race(self, future: Awaitable[Any]) -> Any:
        """The future's result, or None when the connection ends or time runs out first."""
        waiter = asyncio.ensure_future(future)
        ended = asyncio.ensure_future(self.closed.wait())
        done, _ = await asyncio.wait(
            {waiter, ended}, timeout=HANDSHAKE_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        ended.cancel()
        if waiter not in done:
            waiter.cancel()
            return None
        return waiter.result()

    # -- paho's network thread --------------------------------------------------------------

    def _hand_over(self, func: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the agent is gone
            self._loop.call_soon_threadsafe(func, *args)

    def _on_connect(self, _c: paho.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        self._hand_over(_resolve, self._connack, rc)

    def _on_subscribe(
        self, _c: paho.Client, _u: Any, _mid: int, codes: list[ReasonCode], _p: Any
    ) -> None:
        self._hand_over(_resolve, self._suback, codes)

    def _on_disconnect(self, client: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if not self._closing:
            client.disconnect()  # no automatic reconnect: the next connection needs a new Will
            _LOGGER.debug("connection lost: %s", rc)
        self._hand_over(self.closed.set)

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        handler = self.on_message
        if handler is not None and not self._closing:
            self._hand_over(handler, msg.topic, bytes(msg.payload))


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)
