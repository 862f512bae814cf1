"""The edge agent: connectors in, Sparkplug B out, store-and-forward in between.

One asyncio loop owns all state; paho's network thread only hands events over, and the
buffer's disk I/O runs in order on one worker thread (`werk.edge.forward`). Readings pass
report-by-exception into per-device batches; every `publish_interval_ms` the batches
become DDATA while the node is online (births out, primary host online) and go to the
disk buffer otherwise.

Sessions follow Sparkplug B 3.0: every MQTT connection gets the next bdSeq (persisted)
in its Will (NDEATH) and NBIRTH; with a primary host, births wait for its STATE online,
and a STATE offline ends the session (NDEATH, DISCONNECT) and starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Final

from werk.core.clock import NS_PER_MS, now_ns
from werk.core.errors import Conflict, NotFound, PayloadError, TopicError, Unavailable
from werk.edge.commands import CommandRunner, rebirth_requested
from werk.edge.config import EdgeConfig
from werk.edge.connectors import Connector, build_connector
from werk.edge.deadband import ReportByException
from werk.edge.forward import Forwarder
from werk.edge.link import Link
from werk.edge.model import Reading
from werk.edge.node import BdSeq, EdgeNode, RebirthThrottle, connector_state_metric
from werk.edge.status import Counters, EdgeStatus, node_metrics
from werk.sparkplug.codec import Payload, encode
from werk.sparkplug.topics import (
    MessageType,
    SparkplugTopic,
    decode_state,
    parse_topic,
    state_topic,
)

_LOGGER = logging.getLogger(__name__)

TICK_S: Final = 0.5
NODE_METRICS_S: Final = 2.0
EXPIRE_S: Final = 5.0


class EdgeAgent:
    """A Sparkplug B edge node publishing its connectors' tags, with store-and-forward."""

    def __init__(self, config: EdgeConfig, *, connectors: Sequence[Connector[Any]] = ()) -> None:
        node = config.node
        self._config = config
        self._node = EdgeNode(node.group, node.edge_node)
        self._counters = Counters()
        self._forward = Forwarder(config, self._node, self._publish, self._counters)
        self._bdseq = BdSeq(config.buffer.path / "bdseq")
        self._connectors: dict[str, Connector[Any]] = {}
        built = [build_connector(c) for c in config.connectors if c.enabled]
        for connector in [*built, *connectors]:
            if connector.name in self._connectors:
                raise Conflict(f"two connectors are named {connector.name!r}", code="duplicate")
            self._connectors[connector.name] = connector
        self._commands = CommandRunner(self._node, self._connectors, self._publish)
        self._state_topic = None if node.primary_host is None else state_topic(node.primary_host)
        self._rbe: dict[str, ReportByException] = {}
        self._link: Link | None = None
        self._live = False
        self._host_online = node.primary_host is None
        self._host_ts = -1
        self._throttle = RebirthThrottle(1.0)
        self._unreachable_logged = False
        self._tasks: list[asyncio.Task[None]] = []
        self._leaving: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the buffer, start the connectors and begin connecting to the broker."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        await self._forward.open()
        try:
            await asyncio.gather(*(self._start_connector(c) for c in self._connectors.values()))
        except BaseException:
            for name, connector in self._connectors.items():
                await connector.stop()
                await self._commands.remove_device(name)
            await self._forward.close()
            raise
        self._update_node_metrics()
        replay = self._forward.replay(lambda: self._live and not self._throttle.pending)
        loops = (self._link_loop(), self._flush_loop(), self._housekeeping(), replay)
        self._tasks = [asyncio.create_task(c, name="werk-edge") for c in loops]
        _LOGGER.info(
            "edge node %s/%s started: %d devices, broker %s, %d samples buffered",
            self._node.group, self._node.edge_node, len(self._connectors),
            self._config.node.broker_address.url, self._forward.stats.samples,
        )  # fmt: skip

    async def stop(self) -> None:
        """Stop connectors (DDEATH), flush, publish NDEATH, disconnect, close the buffer."""
        if self._loop is None or self._stopping:
            return
        self._stopping = True
        names = list(self._connectors)
        outcomes = await asyncio.gather(
            *(self.remove_connector(n) for n in names), return_exceptions=True
        )
        for name, outcome in zip(names, outcomes, strict=True):
            if isinstance(outcome, Exception):
                _LOGGER.warning("%s: stopping the connector failed: %s", name, outcome)
        link_loop, *others = self._tasks
        await _cancel([*others, *self._leaving])
        await self._flush()
        if self._link is not None:
            await self._leave(self._link, "the agent stops", final=True)
        await _cancel([link_loop])
        await self._forward.close()
        _LOGGER.info("edge node %s/%s stopped", self._node.group, self._node.edge_node)

    def start_in_thread(self, timeout_s: float = 30.0) -> None:
        """Run the agent on its own event loop in a background thread."""
        started = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._thread_main, args=(started, failure), name="werk-edge", daemon=True
        )
        self._thread.start()
        if not started.wait(timeout_s):
            raise Unavailable(f"the edge agent did not start within {timeout_s:g} s")
        if failure:
            raise failure[0]

    def stop_thread(self, timeout_s: float = 30.0) -> None:
        """Stop an agent started with `start_in_thread`."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout_s)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)

    def _thread_main(self, started: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self.start())
        except BaseException as exc:
            failure.append(exc)
            started.set()
            loop.close()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()

    # -- devices and readings -------------------------------------------------------------

    def submit(self, device: str, readings: Sequence[Reading]) -> None:
        """Hand over readings of a device; thread-safe (connector sinks call it on the loop)."""
        if device not in self._connectors:
            raise NotFound(f"the edge agent has no device {device!r}", code="unknown_device")
        loop = self._loop
        if loop is None or loop.is_closed() or self._stopping:
            raise Unavailable("the edge agent is not running", code="not_running")
        if threading.get_ident() == self._loop_thread:
            self._accept(device, readings)
        else:
            loop.call_soon_threadsafe(self._accept, device, list(readings))

    def _accept(self, device: str, readings: Sequence[Reading]) -> None:
        if device not in self._rbe or not readings:
            return
        fitted, unknown = self._node.accept(device, readings)
        if unknown:
            fitted += self._retry_unknown(device, unknown, readings)
        passed = self._rbe[device].filter(fitted)
        if passed:
            self._forward.add(device, self._node.samples(device, passed))

    def _retry_unknown(
        self, device: str, unknown: list[str], readings: Sequence[Reading]
    ) -> list[Reading]:
        """Pick up tags a connector added (e.g. by browsing); a rebirth declares them."""
        if self._declare(device, self._connectors[device]):
            self._throttle.request()
        names = set(unknown)
        fitted, still = self._node.accept(device, [r for r in readings if r.tag in names])
        if still:
            message = f"{device}: readings of undeclared tags dropped, e.g. {still[0]!r}"
            self._forward.drop(len(still), f"unknown:{device}", message)
        return fitted

    def _declare(self, device: str, connector: Connector[Any]) -> bool:
        specs = connector.tags()
        rbe = self._rbe.get(device)
        if rbe is None:
            self._rbe[device] = ReportByException(specs)
        else:
            rbe.update_specs(specs)
        return self._node.set_device(device, specs)

    async def _start_connector(self, connector: Connector[Any]) -> None:
        name = connector.name
        self._declare(name, connector)
        self._commands.add_device(name)
        await connector.start(lambda readings: self._accept(name, readings))

    async def add_connector(self, connector: Connector[Any]) -> None:
        """Start another device and publish births that declare it."""
        if connector.name in self._connectors:
            raise Conflict(f"a device named {connector.name!r} exists", code="duplicate")
        self._connectors[connector.name] = connector
        await self._start_connector(connector)
        self._update_node_metrics()
        self._throttle.request()

    async def remove_connector(self, name: str) -> None:
        """Stop a device's connector and publish its DDEATH."""
        connector = self._connectors.get(name)
        if connector is None:
            raise NotFound(f"the edge agent has no device {name!r}", code="unknown_device")
        await connector.stop()
        await self._commands.remove_device(name)
        await self._flush()
        if self._live:
            self._publish(self._node.topic(MessageType.DDEATH, name), self._node.ddeath(_now_ms()))
        del self._connectors[name]
        self._rbe.pop(name, None)
        self._node.remove_device(name)
        self._node.remove_node_metric(connector_state_metric(name))

    def status(self) -> EdgeStatus:
        """A snapshot of connection, Sparkplug state, buffer and connectors."""
        stats, counters, link = self._forward.stats, self._counters, self._link
        return EdgeStatus(
            online=self._live,
            connected=link is not None,
            host_online=self._host_online,
            bdseq=link.bd_seq if link is not None else self._bdseq.last,
            seq=self._node.seq,
            buffered_samples=stats.samples,
            buffer_bytes=stats.bytes,
            dropped_samples=stats.dropped + counters.dropped_samples,
            published_messages=counters.messages,
            live_samples=counters.live_samples,
            replayed_samples=counters.replayed_samples,
            connectors={n: c.health() for n, c in list(self._connectors.items())},
        )

    # -- the MQTT session -----------------------------------------------------------------

    async def _link_loop(self) -> None:
        delay = 0.5
        while not self._stopping:
            established = await self._session()
            delay = 0.5 if established else min(delay * 2, 10.0)
            await asyncio.sleep(delay)

    async def _session(self) -> bool:
        """One MQTT connection, from CONNECT to its end; True when it was established."""
        assert self._loop is not None
        bd_seq = self._bdseq.next()
        # Committed before CONNECT: a number may be skipped, but never used twice.
        await self._forward.io(self._bdseq.commit, bd_seq)
        will = encode(self._node.ndeath(bd_seq, None))
        link = Link(self._config.node, self._node, bd_seq, will, self._loop)
        self._host_online = self._state_topic is None  # until this session's STATE says so
        link.on_message = self._on_message  # before subscribing: STATE is retained
        try:
            if not await link.open(self._unreachable):
                return False
            refused = await link.handshake()
            if refused is not None:
                self._unreachable(refused)
            if refused is not None or self._stopping:
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
                            self._config.node.broker_address.url, reason)  # fmt: skip

    def _connected(self, link: Link) -> None:
        self._unreachable_logged = False
        self._link = link
        _LOGGER.info(
            "connected to %s (bdSeq %d)", self._config.node.broker_address.url, link.bd_seq
        )
        if self._host_online:
            self._go_live()
        else:
            _LOGGER.info("waiting for primary host %r", self._config.node.primary_host)

    def _link_down(self, link: Link) -> None:
        if self._link is not link:
            return
        self._link = None
        if self._live and not self._stopping:
            _LOGGER.warning("lost the MQTT broker; edge node offline, buffering")
        self._end_live()

    async def _leave(self, link: Link, why: str, *, final: bool = False) -> None:
        """End a session on purpose: NDEATH (QoS 1), then DISCONNECT."""
        was_live = self._live
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

    def _set_live(self, live: bool) -> None:
        self._live = self._forward.live = live
        self._forward.outbox.generation += 1

    def _go_live(self) -> None:
        link = self._link
        if self._live or link is None or self._stopping:
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
        self._update_node_metrics()
        self._publish(node.topic(MessageType.NBIRTH), node.nbirth(link.bd_seq, now))
        for device in node.devices:
            self._publish(node.topic(MessageType.DBIRTH, device), node.dbirth(device, now))
        self._throttle.done(time.monotonic())

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
                self._throttle.request()
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
        self._host_online = state.online
        link = self._link
        if state.online:
            self._go_live()
        elif self._live and link is not None:
            # Sparkplug 3.0: NDEATH, disconnect, and establish the session anew.
            task = asyncio.create_task(self._leave(link, "the primary host went offline"))
            self._leaving.add(task)
            task.add_done_callback(self._leaving.discard)

    # -- publishing ---------------------------------------------------------------------------

    def _publish(self, topic: str, payload: Payload) -> bool:
        link = self._link
        if link is None or not link.publish(topic, encode(payload)):
            return False
        self._counters.messages += 1
        return True

    async def _flush_loop(self) -> None:
        interval = self._config.node.publish_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            await self._flush()

    async def _flush(self) -> None:
        if self._live and self._throttle.due(time.monotonic()):
            self._forward.outbox.give_up()  # the host asked for births: it may have lost data
            self._births()
        await self._forward.flush(self._rbe)

    async def _housekeeping(self) -> None:
        last_metrics = last_expire = 0.0
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            await self._forward.commit_delivered(now)
            if now - last_expire >= EXPIRE_S:
                last_expire = now
                await self._forward.expire()
            if now - last_metrics >= NODE_METRICS_S:
                last_metrics = now
                await self._forward.refresh_stats()
                changed = self._update_node_metrics()
                if changed and self._live:
                    ndata = self._node.ndata(changed, _now_ms())
                    self._publish(self._node.topic(MessageType.NDATA), ndata)

    def _update_node_metrics(self) -> list[str]:
        values = node_metrics(self._forward.stats, self._counters.dropped_samples, self._connectors)
        node = self._node
        return [name for name, kind, value in values if node.set_node_metric(name, kind, value)]


def _now_ms() -> int:
    return now_ns() // NS_PER_MS


async def _cancel(tasks: Sequence[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
