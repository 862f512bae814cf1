"""The ingest pipeline: subscribe, decode, validate, store in batches, then acknowledge.

One paho network thread puts messages on a bounded queue; one worker thread drains it
in batches, writes the raw layer and the quarantine, updates the namespace, and only
then acknowledges the QoS 1/2 messages to the broker. A crash before the ack means the
broker redelivers; the message id makes the redelivery a no-op.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import paho.mqtt.client as paho
from sqlalchemy.orm import Session, sessionmaker

from werk.core.clock import NS_PER_S, now_ns
from werk.core.errors import PayloadError, WerkError
from werk.core.settings import OverflowPolicy, Settings
from werk.historian import RawColumns, RawStore
from werk.uns import quarantine
from werk.uns.broker import BrokerAddress
from werk.uns.contracts import Decoded, decode
from werk.uns.mqtt import connect, disconnect, make_client
from werk.uns.namespace import Namespace
from werk.uns.quarantine import Rejected
from werk.uns.topics import UnsTopic, parse_topic

_LOGGER = logging.getLogger(__name__)

_TOPIC_CACHE: Final = 100_000
_MAX_SEEN: Final = 2_000_000
_RETRY_MAX_S: Final = 10.0


class Incoming(NamedTuple):
    """A message as received, before any decoding."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    received_ns: int


@dataclass(slots=True)
class IngestStats:
    """Counters of the pipeline since start."""

    received: int = 0
    accepted: int = 0
    samples: int = 0
    rejected: int = 0
    duplicates: int = 0
    overflowed: int = 0
    batches: int = 0
    write_errors: int = 0
    last_error: str | None = None
    started_ns: int = field(default_factory=now_ns)


class SeenMessages:
    """Ids of recently stored messages, forgotten after a time window."""

    def __init__(self, window_ns: int) -> None:
        self._window_ns = window_ns
        self._ids: OrderedDict[int, int] = OrderedDict()

    def __contains__(self, msg_id: int) -> bool:
        return msg_id in self._ids

    def add(self, msg_id: int, at_ns: int) -> None:
        """Remember an id, forgetting the oldest beyond the window or the size cap."""
        self._ids[msg_id] = at_ns
        horizon = at_ns - self._window_ns
        while self._ids and (
            len(self._ids) > _MAX_SEEN or next(iter(self._ids.values())) < horizon
        ):
            self._ids.popitem(last=False)


class _Batch:
    """What one drained batch turns into."""

    def __init__(self) -> None:
        self.rows = RawColumns()
        self.accepted: list[tuple[Decoded, int]] = []
        self.rejected: list[Rejected] = []
        self.acks: list[tuple[int, int]] = []


class IngestPipeline:
    """Subscribe to the UNS and keep the raw layer, namespace and quarantine up to date."""

    def __init__(
        self,
        *,
        settings: Settings,
        address: BrokerAddress,
        store: RawStore,
        namespace: Namespace,
        sessions: sessionmaker[Session],
    ) -> None:
        self._settings = settings
        self._address = address
        self._store = store
        self._namespace = namespace
        self._sessions = sessions
        self._queue: queue.Queue[Incoming] = queue.Queue(maxsize=settings.ingest_queue_size)
        self._overflow: queue.Queue[Incoming] = queue.Queue(maxsize=settings.ingest_queue_size)
        self._seen = SeenMessages(settings.ingest_dedupe_window_s * NS_PER_S)
        self._topics: dict[str, UnsTopic] = {}
        self._running = threading.Event()
        self._worker: threading.Thread | None = None
        self._client: paho.Client | None = None
        self._last_flush = time.monotonic()
        self.stats = IngestStats()
        self.listeners: list[Callable[[list[tuple[Decoded, int]]], None]] = []

    @property
    def subscription(self) -> str:
        """The shared subscription all ingest workers join."""
        return f"$share/{self._settings.ingest_shared_group}/{self._settings.uns_root}/#"

    @property
    def queue_depth(self) -> int:
        """Messages waiting to be processed."""
        return self._queue.qsize() + self._overflow.qsize()

    @property
    def running(self) -> bool:
        """Whether the worker is running."""
        return self._running.is_set()

    def start(self) -> None:
        """Load recent message ids, start the worker, subscribe."""
        since = now_ns() - self._settings.ingest_dedupe_window_s * NS_PER_S
        for msg_id in self._store.recent_message_ids(since):
            self._seen.add(msg_id, now_ns())
        self._running.set()
        self._worker = threading.Thread(target=self._work, name="werk-ingest", daemon=True)
        self._worker.start()
        cid = self._settings.ingest_client_id or f"werk-ingest-{socket.gethostname()}"
        self._client = make_client(self._address, cid, manual_ack=True, persistent=True)
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        connect(self._client, self._address, persistent=True)
        self._client.on_connect = self._on_reconnect
        self._subscribe(self._client)
        _LOGGER.info("ingest subscribed to %s on %s", self.subscription, self._address.url)

    def stop(self) -> None:
        """Unsubscribe, process what is queued, flush the namespace."""
        if self._client is not None:
            disconnect(self._client)
        self._running.clear()
        if self._worker is not None:
            self._worker.join(timeout=30)
        self._flush_namespace()

    def _subscribe(self, client: paho.Client) -> None:
        client.subscribe(self.subscription, qos=1)

    def _on_reconnect(self, client: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if not rc.is_failure:
            _LOGGER.info("ingest reconnected to %s", self._address.url)
            self._subscribe(client)

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if self._running.is_set() and rc.is_failure:
            _LOGGER.warning("ingest lost the broker at %s: %s", self._address.url, rc)

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", "backslashreplace")  # kept for the record
        item = Incoming(topic, bytes(msg.payload), msg.mid, msg.qos, now_ns())
        self.stats.received += 1
        if self._settings.ingest_overflow is OverflowPolicy.BLOCK:
            self._queue.put(item)
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.stats.overflowed += 1
            self._overflow.put(item)

    def _work(self) -> None:
        while self._running.is_set() or self.queue_depth:
            batch = self._drain()
            if batch:
                self._process(batch)
            self._maybe_flush_namespace()

    def _drain(self) -> list[tuple[Incoming, str | None]]:
        items: list[tuple[Incoming, str | None]] = []
        while not self._overflow.empty() and len(items) < self._settings.ingest_batch_size:
            items.append((self._overflow.get_nowait(), "queue_overflow"))
        try:
            items.append((self._queue.get(timeout=0.2), None))
        except queue.Empty:
            return items
        deadline = time.monotonic() + self._settings.ingest_linger_ms / 1000
        limit = self._settings.ingest_batch_size
        while len(items) < limit:
            try:
                items.append((self._queue.get_nowait(), None))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.001)
        return items

    def _process(self, items: list[tuple[Incoming, str | None]]) -> None:
        batch = _Batch()
        for item, forced_reason in items:
            self._classify(item, forced_reason, batch)
        self._persist(batch)
        self._namespace_update(batch)
        self._ack(batch.acks)
        self.stats.batches += 1

    def _classify(self, item: Incoming, forced_reason: str | None, batch: _Batch) -> None:
        if item.qos > 0:
            batch.acks.append((item.mid, item.qos))
        if forced_reason is not None:
            detail = "the ingest queue was full (overflow policy: quarantine)"
            batch.rejected.append(_rejected(item, forced_reason, detail))
            return
        try:
            decoded = self._decode(item)
        except WerkError as exc:
            batch.rejected.append(_rejected(item, exc.code, exc.message))
            return
        if decoded.message_id in self._seen:
            self.stats.duplicates += 1
            return
        self._seen.add(decoded.message_id, item.received_ns)
        batch.accepted.append((decoded, item.received_ns))
        for s in decoded.samples:
            batch.rows.append(
                s.tag_path, s.ts_ns, item.received_ns, s.value, s.quality, decoded.message_id
            )

    def _decode(self, item: Incoming) -> Decoded:
        size, limit = len(item.payload), self._settings.ingest_max_payload
        if size > limit:
            raise PayloadError(
                f"payload is {size} bytes; the limit for JSON values is {limit} bytes",
                code="too_large",
            )
        decoded = decode(self._topic(item.topic), item.payload, item.received_ns)
        self._namespace.check_types(decoded.samples)
        return decoded

    def _topic(self, topic: str) -> UnsTopic:
        parsed = self._topics.get(topic)
        if parsed is None:
            parsed = parse_topic(topic, self._settings.uns_root)
            if len(self._topics) >= _TOPIC_CACHE:
                self._topics.clear()
            self._topics[topic] = parsed
        return parsed

    def _persist(self, batch: _Batch) -> None:
        """Write raw rows and quarantine records, retrying with back-off until they land."""
        delay = 0.1
        while True:
            try:
                self._store.write(batch.rows)
                batch.rows = RawColumns()
                if batch.rejected:
                    with self._sessions.begin() as session:
                        quarantine.add_rejected(session=session, rejected=batch.rejected)
                break
            except Exception as exc:  # any failure: keep the batch, retry
                self._note_write_failure(exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
        if self.stats.last_error is not None:
            _LOGGER.info("ingest writes recovered")
            self.stats.last_error = None

    def _note_write_failure(self, exc: BaseException, delay: float) -> None:
        self.stats.write_errors += 1
        if self.stats.last_error is None:
            _LOGGER.error("ingest cannot write, retrying every %.1f s or less: %s", delay, exc)
        self.stats.last_error = str(exc)

    def _namespace_update(self, batch: _Batch) -> None:
        for decoded, received_ns in batch.accepted:
            self._namespace.observe(decoded.samples, received_ns, decoded.message_id)
            self.stats.samples += len(decoded.samples)
        self.stats.accepted += len(batch.accepted)
        self.stats.rejected += len(batch.rejected)
        for listener in self.listeners:
            listener(batch.accepted)

    def _ack(self, acks: list[tuple[int, int]]) -> None:
        client = self._client
        if client is None:
            return
        for mid, qos in acks:
            client.ack(mid, qos)

    def _maybe_flush_namespace(self) -> None:
        if time.monotonic() - self._last_flush >= self._settings.registry_flush_s:
            self._flush_namespace()

    def _flush_namespace(self) -> None:
        self._last_flush = time.monotonic()
        try:
            with self._sessions.begin() as session:
                self._namespace.flush(session=session)
        except Exception as exc:
            _LOGGER.warning("could not persist the namespace registry, will retry: %s", exc)


def _rejected(item: Incoming, reason: str, detail: str) -> Rejected:
    return Rejected(item.received_ns, item.topic, item.payload, reason, detail)
