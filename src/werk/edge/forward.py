"""The edge agent's data path: live DDATA or the disk buffer, and replay from the buffer.

MQTT QoS 0 gives no receipt, and paho needs up to two keep-alive intervals to notice a
dead connection, so whatever went out in that time may be lost. Live batches therefore
stay in the `Outbox` for two keep-alive intervals plus two seconds, and replayed records
stay uncommitted as long. When a connection ends or the host asks for births again,
everything still in the outbox is given up on: live batches go back to the buffer (to be
sent again as historical data) and replay starts over from the buffer's checkpoint.

Replay runs beside live data: records are sent in buffer order, at most `replay_rate`
metrics per second, as DDATA with ``is_historical`` set on every metric.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Container
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from werk.core.clock import NS_PER_MS, now_ns
from werk.core.errors import WerkError
from werk.edge.buffer import BufferRecord, BufferStats, Position, Sample, StoreBuffer
from werk.edge.config import EdgeConfig
from werk.edge.node import EdgeNode
from werk.edge.status import Counters
from werk.sparkplug.codec import Payload
from werk.sparkplug.topics import MessageType

_LOGGER = logging.getLogger(__name__)

MAX_PENDING: Final = 1_000_000
MAX_WINDOW: Final = 2_000_000

Publish = Callable[[str, Payload], bool]
Batches = list[tuple[str, list[Sample]]]


class Outbox:
    """The keep-alive window: published live batches and replayed buffer records."""

    def __init__(self, window_s: float, max_samples: int = MAX_WINDOW) -> None:
        self.window_s = window_s
        self.cursor: Position | None = None  # where replay continues; None: the checkpoint
        self.generation = 0  # changes whenever published data is given up on
        self._max = max_samples
        self._live: deque[tuple[float, str, list[Sample]]] = deque()
        self._live_samples = 0
        self._replayed: deque[tuple[float, Position]] = deque()
        self._spill: Batches = []

    def sent_live(self, device: str, samples: list[Sample], now: float) -> None:
        """Note a published live DDATA batch."""
        self._live.append((now, device, samples))
        self._live_samples += len(samples)

    def sent_replay(self, end: Position, now: float) -> None:
        """Note that the buffer record ending at `end` was published."""
        self._replayed.append((now, end))
        self.cursor = end

    def delivered(self, now: float) -> Position | None:
        """Forget what has been out a whole window; the buffer position to commit, if any."""
        cutoff = now - self.window_s
        live = self._live
        while live and (live[0][0] <= cutoff or self._live_samples > self._max):
            self._live_samples -= len(live.popleft()[2])
        upto = None
        while self._replayed and self._replayed[0][0] <= cutoff:
            upto = self._replayed.popleft()[1]
        return upto

    def all_delivered(self) -> Position | None:
        """Everything arrived (the broker acked a later QoS 1 message); what to commit."""
        upto = self._replayed[-1][1] if self._replayed else None
        self._live.clear()
        self._replayed.clear()
        self._live_samples = 0
        return upto

    def give_up(self) -> None:
        """Treat everything unconfirmed as lost: resend live batches, replay again."""
        self.generation += 1
        self._spill.extend((device, samples) for _t, device, samples in self._live)
        self._live.clear()
        self._live_samples = 0
        self._replayed.clear()
        self.cursor = None

    def take_spill(self) -> Batches:
        """The given-up live batches, oldest first."""
        spill, self._spill = self._spill, []
        return spill


class Forwarder:
    """Pending batches to live DDATA or the buffer; the buffer to historical DDATA."""

    def __init__(
        self, config: EdgeConfig, node: EdgeNode, publish: Publish, counters: Counters
    ) -> None:
        buffer = config.buffer
        self.live = False
        self.outbox = Outbox(2.0 * config.node.keepalive_s + 2.0)
        self.stats = BufferStats(0, 0, 0, 0)
        self.buffer = StoreBuffer(
            buffer.path, max_bytes=buffer.max_bytes, max_age_s=buffer.max_age_s,
            drop=buffer.drop, fsync=buffer.fsync,
        )  # fmt: skip
        self._node = node
        self._publish = publish
        self._counters = counters
        self._size = config.node.max_metrics_per_message
        self._rate = config.buffer.replay_rate
        self._pending: dict[str, list[Sample]] = {}
        self._pending_count = 0
        self._lock = asyncio.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="werk-edge-buffer")
        self._warned: set[str] = set()

    async def io(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run a buffer operation on the one I/O thread (operations keep their order)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, func, *args)

    async def open(self) -> None:
        """Open the buffer."""
        await self.io(self.buffer.open)
        self.stats = await self.io(self.buffer.stats)

    async def close(self) -> None:
        """Buffer everything unconfirmed and close the buffer."""
        self.outbox.give_up()
        await self.store(self.outbox.take_spill())
        await self.io(self.buffer.close)
        self._pool.shutdown(wait=True)

    def add(self, device: str, samples: list[Sample]) -> None:
        """Queue samples for the next flush."""
        if self._pending_count + len(samples) > MAX_PENDING:
            self.drop(len(samples), "pending", "publishing cannot keep up; readings dropped")
            return
        self._pending.setdefault(device, []).extend(samples)
        self._pending_count += len(samples)

    async def flush(self, devices: Container[str]) -> None:
        """Publish (or buffer) the pending batches of `devices`; others are forgotten."""
        async with self._lock:  # batches reach the buffer in the order they came
            pending, self._pending, self._pending_count = self._pending, {}, 0
            unsent, failed = [], False
            for device, samples in pending.items():
                rest = self._publish_live(device, samples) if self.live else samples
                failed = failed or (self.live and bool(rest))
                if rest and device in devices:
                    unsent.append((device, rest))
            if failed:  # the connection is gone: what went out before is unconfirmed
                self.outbox.give_up()
            # Given-up batches went out before anything pending was collected: they go first.
            await self.store(self.outbox.take_spill() + unsent)

    def _publish_live(self, device: str, samples: list[Sample]) -> list[Sample]:
        """Publish DDATA; return the samples that could not go out."""
        samples.sort(key=_ts)  # Sparkplug: live metrics in chronological order
        topic = self._node.topic(MessageType.DDATA, device)
        for start in range(0, len(samples), self._size):
            chunk = samples[start : start + self._size]
            if not self._publish(topic, self._node.ddata(device, chunk, _now_ms())):
                return samples[start:]
            self.outbox.sent_live(device, chunk, time.monotonic())
            self._counters.live_samples += len(chunk)
        return []

    async def store(self, batches: Batches) -> None:
        """Append batches to the buffer."""
        for device, samples in batches:
            try:
                stored = await self.io(self.buffer.append, device, samples)
            except WerkError as exc:
                self.drop(len(samples), "storage", f"cannot buffer samples: {exc.message}")
                continue
            self._counters.buffered_samples += stored

    async def replay(self, ready: Callable[[], bool]) -> None:
        """Replay the buffer whenever `ready()`, paced at `replay_rate`; runs until cancelled."""
        batch = max(1, min(self._rate // 10, 10_000))
        while True:
            if not ready():
                await asyncio.sleep(0.05)
                continue
            generation = self.outbox.generation
            records, _end = await self.io(self.buffer.read, self.outbox.cursor, batch)
            if not records:
                await asyncio.sleep(0.1)
                continue
            started, sent = time.monotonic(), 0
            for record in records:
                if generation != self.outbox.generation or not self._replay(record):
                    break
                sent += len(record.samples)
            await asyncio.sleep(max(0.0, sent / self._rate - (time.monotonic() - started)))

    def _replay(self, record: BufferRecord) -> bool:
        device = record.device
        kept, skipped = self._node.publishable(device, record.samples)
        if skipped:
            self.drop(skipped, f"replay:{device}", f"{device}: buffered samples of tags not "
                      "declared now (or of another datatype) dropped")  # fmt: skip
        topic = self._node.topic(MessageType.DDATA, device)
        for start in range(0, len(kept), self._size):
            chunk = kept[start : start + self._size]
            if not self._publish(
                topic, self._node.ddata(device, chunk, _now_ms(), historical=True)
            ):
                return False
        self.outbox.sent_replay(record.end, time.monotonic())
        self._counters.replayed_samples += len(kept)
        return True

    async def commit_delivered(self, now: float) -> None:
        """Commit replayed records that have been out a whole window."""
        upto = self.outbox.delivered(now)
        if upto is not None:
            await self.io(self.buffer.commit, upto)

    async def commit_all(self) -> None:
        """Commit everything replayed: the broker has acked a later QoS 1 message."""
        upto = self.outbox.all_delivered()
        if upto is not None:
            await self.io(self.buffer.commit, upto)

    async def expire(self) -> None:
        """Drop buffered data older than `max_age_s`."""
        await self.io(self.buffer.expire, now_ns())

    async def refresh_stats(self) -> BufferStats:
        """Read the buffer's figures."""
        self.stats = await self.io(self.buffer.stats)
        return self.stats

    def drop(self, samples: int, key: str, message: str) -> None:
        """Count samples given up outside the buffer's bounds; log once per kind."""
        self._counters.dropped_samples += samples
        if key not in self._warned:
            self._warned.add(key)
            _LOGGER.warning("%s", message)


def _now_ms() -> int:
    return now_ns() // NS_PER_MS


def _ts(sample: Sample) -> int:
    return sample.ts_ns
