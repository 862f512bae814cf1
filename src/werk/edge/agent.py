"""The edge agent: connectors in, Sparkplug B out, store-and-forward in between.

One asyncio loop owns all state; paho's network thread only hands events over, and the
buffer's disk I/O runs in order on one worker thread (`werk.edge.forward`). Readings pass
report-by-exception into per-device batches; every `publish_interval_ms` the batches
become DDATA while the node is online (births out, primary host online) and go to the
disk buffer otherwise. The MQTT connections and the primary host's STATE are the
business of `werk.edge.session`.
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
from werk.core.errors import Conflict, NotFound, Unavailable
from werk.edge.commands import CommandRunner
from werk.edge.config import EdgeConfig
from werk.edge.connectors import Connector, build_connector
from werk.edge.deadband import ReportByException
from werk.edge.forward import Forwarder
from werk.edge.model import Reading
from werk.edge.node import BdSeq, EdgeNode, connector_state_metric
from werk.edge.session import Session
from werk.edge.status import Counters, EdgeStatus, node_metrics
from werk.sparkplug.codec import Payload
from werk.sparkplug.topics import MessageType

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
        self._connectors: dict[str, Connector[Any]] = {}
        built = [build_connector(c) for c in config.connectors if c.enabled]
        for connector in [*built, *connectors]:
            if connector.name in self._connectors:
                raise Conflict(f"two connectors are named {connector.name!r}", code="duplicate")
            self._connectors[connector.name] = connector
        self._commands = CommandRunner(self._node, self._connectors, self._publish)
        self._session = Session(
            node, self._node, self._forward, self._commands,
            BdSeq(config.buffer.path / "bdseq"), self._counters, self._update_node_metrics,
        )  # fmt: skip
        self._rbe: dict[str, ReportByException] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._thread: threading.Thread | None = None

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
        session = self._session
        replay = self._forward.replay(lambda: session.live and not session.throttle.pending)
        loops = (session.run(), self._flush_loop(), self._housekeeping(), replay)
        self._tasks = [asyncio.create_task(c, name="werk-edge") for c in loops]
        _LOGGER.info(
            "edge node %s/%s started: %d devices, broker %s, %d samples buffered",
            self._node.group, self._node.edge_node, len(self._connectors),
            self._config.node.broker_address.url, self._forward.stats.samples,
        )  # fmt: skip

    async def stop(self) -> None:
        """Stop connectors (DDEATH), flush, publish NDEATH, disconnect, close the buffer."""
        if self._loop is None or self._session.stopping:
            return
        self._session.stopping = True
        names = list(self._connectors)
        outcomes = await asyncio.gather(
            *(self.remove_connector(n) for n in names), return_exceptions=True
        )
        for name, outcome in zip(names, outcomes, strict=True):
            if isinstance(outcome, Exception):
                _LOGGER.warning("%s: stopping the connector failed: %s", name, outcome)
        link_loop, *others = self._tasks
        await _cancel([*others, *self._session.leaving])
        await self._flush()
        await self._session.close()
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
        if loop is None or loop.is_closed() or self._session.stopping:
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
            self._session.throttle.request()
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
        self._session.throttle.request()

    async def remove_connector(self, name: str) -> None:
        """Stop a device's connector and publish its DDEATH."""
        connector = self._connectors.get(name)
        if connector is None:
            raise NotFound(f"the edge agent has no device {name!r}", code="unknown_device")
        await connector.stop()
        await self._commands.remove_device(name)
        await self._flush()
        if self._session.live:
            self._publish(self._node.topic(MessageType.DDEATH, name), self._node.ddeath(_now_ms()))
        del self._connectors[name]
        self._rbe.pop(name, None)
        self._node.remove_device(name)
        self._node.remove_node_metric(connector_state_metric(name))

    def status(self) -> EdgeStatus:
        """A snapshot of connection, Sparkplug state, buffer and connectors."""
        stats, counters, session = self._forward.stats, self._counters, self._session
        return EdgeStatus(
            online=session.live,
            connected=session.connected,
            host_online=session.host_online,
            bdseq=session.bd_seq,
            seq=self._node.seq,
            buffered_samples=stats.samples,
            buffer_bytes=stats.bytes,
            dropped_samples=stats.dropped + counters.dropped_samples,
            published_messages=counters.messages,
            live_samples=counters.live_samples,
            replayed_samples=counters.replayed_samples,
            connectors={n: c.health() for n, c in list(self._connectors.items())},
        )

    # -- publishing ---------------------------------------------------------------------------

    def _publish(self, topic: str, payload: Payload) -> bool:
        return self._session.publish(topic, payload)

    async def _flush_loop(self) -> None:
        interval = self._config.node.publish_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            await self._flush()

    async def _flush(self) -> None:
        self._session.rebirth_if_due()
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
                if changed and self._session.live:
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
