"""The edge node's Sparkplug session: MQTT connections, the primary host's STATE, births.

Sessions follow Sparkplug B 3.0: every MQTT connection gets the next bdSeq (persisted)
in its Will (NDEATH) and NBIRTH; with a primary host, births wait for its STATE online,
and a STATE offline ends the session (NDEATH, DISCONNECT) and starts a new one. The
session is live while births are out and the host is online; only then does data flow.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from werk.core.clock import NS_PER_MS, now_ns
from werk.core.errors import PayloadError, TopicError
from werk.edge.commands import CommandRunner, rebirth_requested
from werk.edge.config import NodeConfig
from werk.edge.forward import Forwarder
from werk.edge.link import Link
from werk.edge.node import BdSeq, EdgeNode, RebirthThrottle
from werk.edge.status import Counters
from werk.sparkplug.codec import Payload, encode
from werk.sparkplug.topics import (
    MessageType,
    SparkplugTopic,
    decode_state,
    parse_topic,
    state_topic,
)

_LOGGER = logging.getLogger(__name__)


class Session:
    """One MQTT connection after another, and whether the edge node is live on it."""

    def __init__(
        self,
        config: NodeConfig,
        node: EdgeNode,
        forward: Forwarder,
        commands: CommandRunner,
        bdseq: BdSeq,
        counters: Counters,
        refresh_metrics: Callable[[], object],
    ) -> None:
        host = config.primary_host
        self.live = False
        self.host_online = host is None
        self.throttle = RebirthThrottle(1.0)
        self.stopping = False
        self._config = config
        self._node = node
        self._forward = forward
        self._commands = commands
        self._bdseq = bdseq
        self._counters = counters
        self._refresh_metrics = refresh_metrics
        self._state_topic = None if host is None else state_topic(host)
        self._host_ts = -1
        self._link: Link | None = None
        self._unreachable_logged = False
        self._leaving: set[asyncio.Task[None]] = set()

    @property
    def connected(self) -> bool:
        """Whether an MQTT connection is up."""
        return self._link is not None

    @property
    def bd_seq(self) -> int | None:
        """The bdSeq of the current connection, else of the latest one."""
        link = self._link
        return link.bd_seq if link is not None else self._bdseq.last

    @property
    def leaving(self) -> list[asyncio.Task[None]]:
        """Sessions being ended because the primary host went offline."""
        return list(self._leaving)

    async def run(self) -> None:
        """Connect, and connect again whenever a connection ends, until stopping."""
        delay = 0.5
        while not self.stopping:
            established = await self._session()
            delay = 0.5 if established else min(delay * 2, 10.0)
            await asyncio.sleep(delay)

    async def close(self) -> None:
        """End the current session for good: NDEATH, then DISCONNECT."""
        if self._link is not None:
            await self._leave(self._link, "the agent stops", final=True)

    def publish(self, topic: str, payload: Payload) -> bool:
        """Publish on the current connection; False when there is none or it failed."""
        link = self._link
        if link is None or not link.publish(topic, encode(payload)):
            return False
        self._counters.messages += 1
        return True

    def rebirth_if_due(self) -> None:
        """Publish the births again when asked for and the throttle allows."""
        if self.live and self.throttle.due(time.monotonic()):
            self._forward.outbox.give_up()  # the host asked for births: it may have lost data
            self._births()

    # -- one connection -----------------------------------------------------------------

    async def _session(self) -> bool:
        """One MQTT connection, from CONNECT to its end; True when it was established."""
        bd_seq = self._bdseq.next()
        # Committed before CONNECT: a number may be skipped, but never used twice.
        await self._forward.io(self._bdseq.commit, bd_seq)
        will = encode(self._node.ndeath(bd_seq, None))
        link = Link(self._config, self._node, bd_seq, will, asyncio.get_running_loop())
        self.host_online = self._state_topic is None  # until this session's STATE says so
        link.on_message = self._on_message  # before subscribing: STATE is retained
        try:
            if not await link.open(self._unreachable):
                return False
            refused = await link.handshake()
            if refused is not None:
                self._unreachable(refused)
            if refused is not None or self.stopping:
                return False
            self._connected(link)
            await link.closed.wait()
            return True
        finally:
            self._link_down(link)
            await link.close()

    def _unreachable(self, reason: str) -> None:
        if not self._unreachable_logged:
            self._unreachable_logged = True
            _LOGGER.warning("MQTT broker %s not available (%s); buffering and retrying",
                            self._config.broker_address.url, reason)  # fmt: skip

    def _connected(self, link: Link) -> None:
        self._unreachable_logged = False
        self._link = link
        _LOGGER.info("connected to %s (bdSeq %d)", self._config.broker_address.url, link.bd_seq)
        if self.host_online:
            self._go_live()
        else:
            _LOGGER.info("waiting for primary host %r", self._config.primary_host)

    def _link_down(self, link: Link) -> None:
        if self._link is not link:
            return
        self._link = None
        if self.live and not self.stopping:
            _LOGGER.warning("lost the MQTT broker; edge node offline, buffering")
        self._end_live()

    async def _leave(self, link: Link, why: str, *, final: bool = False) -> None:
        """End a session on purpose: NDEATH (QoS 1), then DISCONNECT."""
        was_live = self.live
        self._link = None
        if final:  # nothing flushes any more; whether the window is delivered depends on the ack
            self._set_live(False)
        else:  # batches buffered from now on must come after the window
            self._end_live()
        delivered = await link.goodbye(encode(self._node.ndeath(link.bd_seq, _now_ms())))
        _LOGGER.info("edge node offline: %s (NDEATH %s)", why, "acked" if delivered else "unacked")
        if final and delivered and was_live:
            await self._forward.commit_all()  # the broker has all that went before NDEATH
        self._end_live()

    # -- live or not ----------------------------------------------------------------------

    def _set_live(self, live: bool) -> None:
        self.live = self._forward.live = live
        self._forward.outbox.generation += 1

    def _go_live(self) -> None:
        link = self._link
        if self.live or link is None or self.stopping:
            return
        self._set_live(True)
        self._births()
        _LOGGER.info("edge node %s/%s online (bdSeq %d)",
                     self._node.group, self._node.edge_node, link.bd_seq)  # fmt: skip

    def _end_live(self) -> None:
        """Stop live publishing: recent data goes to the buffer, replay starts over."""
        self._set_live(False)
        self._forward.outbox.give_up()

    def _births(self) -> None:
        link = self._link
        if link is None:
            return
        now, node = _now_ms(), self._node
        self._refresh_metrics()
        self.publish(node.topic(MessageType.NBIRTH), node.nbirth(link.bd_seq, now))
        for device in node.devices:
            self.publish(node.topic(MessageType.DBIRTH, device), node.dbirth(device, now))
        self.throttle.done(time.monotonic())

    # -- messages from the broker -----------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes) -> None:
        if topic == self._state_topic:
            self._on_state(payload)
            return
        try:
            parsed = parse_topic(topic)
        except TopicError as exc:
            _LOGGER.warning("ignoring a message on %s: %s", topic, exc)
            return
        if self._link is None or not isinstance(parsed, SparkplugTopic):
            return
        if parsed.message_type is MessageType.NCMD:
            if rebirth_requested(self._node, payload):
                _LOGGER.info("rebirth requested by NCMD")
                self.throttle.request()
        elif parsed.message_type is MessageType.DCMD:
            self._commands.submit(parsed.device, topic, payload)

    def _on_state(self, payload: bytes) -> None:
        try:
            state = decode_state(payload)
        except PayloadError as exc:
            _LOGGER.warning("ignoring a bad STATE of the primary host: %s", exc.message)
            return
        if state.timestamp < self._host_ts:
            _LOGGER.info("ignoring a STATE older than the last one seen (%d)", state.timestamp)
            return
        self._host_ts = state.timestamp
        self.host_online = state.online
        link = self._link
        if state.online:
            self._go_live()
        elif self.live and link is not None:
            # Sparkplug 3.0: NDEATH, disconnect, and establish the session anew.
            task = asyncio.create_task(self._leave(link, "the primary host went offline"))
            self._leaving.add(task)
            task.add_done_callback(self._leaving.discard)


def _now_ms() -> int:
    return now_ns() // NS_PER_MS
