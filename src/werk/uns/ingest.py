"""The ingest pipeline: subscribe, spool, acknowledge; the historian writer works behind.

Three threads: paho's network thread puts messages on a bounded queue; the spooler
drains it, appends the messages to the on-disk spool and only then acknowledges them
(QoS 1/2) to the broker; the historian writer (`werk.uns.writer`) decodes, validates
and stores them in batches and moves the spool checkpoint. Acknowledging at spool time
keeps the broker's in-flight window moving while the historian writes large batches;
a crash loses nothing acknowledged, because the spool is replayed at start and message
ids make replays of already stored messages no-ops.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final

import paho.mqtt.client as paho
from sqlalchemy.orm import Session, sessionmaker

from werk.core.clock import now_ns
from werk.core.journal import Position
from werk.core.settings import OverflowPolicy, Settings
from werk.historian import HistorianStore
from werk.uns import quarantine
from werk.uns.broker import BrokerAddress
from werk.uns.contracts import CommandHandler
from werk.uns.messages import Chunk, IngestStats, Received
from werk.uns.mqtt import close_flushed, connect, make_client
from werk.uns.namespace import Namespace
from werk.uns.quarantine import Rejected
from werk.uns.spool import FLAG_OVERFLOW, Spool, SpoolRecord, record_size
from werk.uns.translate import Translator
from werk.uns.writer import HistorianWriter, Listener

_LOGGER = logging.getLogger(__name__)

PublishGuard = Callable[[str], bool]
_REFUSED_REASON: Final = "publisher_scope"
_REFUSED_DETAIL: Final = (
    "no enabled principal may publish on this topic; the broker should not have let it in"
)
_REFUSED_LOG_EVERY_S: Final = 60.0


class _Delivery:
    """A message off the wire with what is needed to acknowledge it."""

    __slots__ = ("client", "message", "mid", "qos")

    def __init__(self, message: Received, mid: int, qos: int, client: paho.Client) -> None:
        self.message, self.mid, self.qos, self.client = message, mid, qos, client


class IngestPipeline:
    """Subscribe to the UNS and keep the raw layer, namespace and quarantine up to date."""

    def __init__(
        self,
        *,
        settings: Settings,
        address: BrokerAddress,
        store: HistorianStore,
        namespace: Namespace,
        sessions: sessionmaker[Session],
        translators: Sequence[Translator] = (),
        publish_guard: PublishGuard | None = None,
    ) -> None:
        self._settings = settings
        self._address = address
        self._sessions = sessions
        self._guard = publish_guard
        self._refused_logged = -_REFUSED_LOG_EVERY_S
        self._refused_unlogged = 0
        self._inbox = _Inbox(settings.ingest_queue_size, settings.ingest_overflow)
        self._spool = Spool(
            settings.data_dir / "spool",
            segment_bytes=settings.ingest_spool_segment_bytes,
            fsync=settings.ingest_spool_fsync,
        )
        self.stats = IngestStats()
        self._writer = HistorianWriter(
            settings=settings,
            store=store,
            namespace=namespace,
            sessions=sessions,
            commit=self._spool.commit,
            stats=self.stats,
            translators=translators,
        )
        self._running = threading.Event()
        self._spooler: threading.Thread | None = None
        self._client: paho.Client | None = None

    @property
    def listeners(self) -> list[Listener]:
        """Callbacks told about every batch of accepted messages."""
        return self._writer.listeners

    @property
    def command_handlers(self) -> list[CommandHandler]:
        """Callbacks given every write requested on a ``_cmd`` topic."""
        return self._writer.command_handlers

    @property
    def subscription(self) -> str:
        """The shared subscription all ingest workers join."""
        return f"$share/{self._settings.ingest_shared_group}/{self._settings.uns_root}/#"

    @property
    def queue_depth(self) -> int:
        """Messages received but not yet written to the historian."""
        return len(self._inbox) + self._writer.depth

    @property
    def running(self) -> bool:
        """Whether the pipeline is running, its writer included."""
        return self._running.is_set() and self._writer.alive

    def start(self) -> None:
        """Replay the spool, start spooler and writer, subscribe."""
        self._spool.open()
        self._writer.start(oldest_pending_ns=self._spool.oldest_pending_ns())
        self._replay()
        self._running.set()
        self._spooler = threading.Thread(target=self._spool_loop, name="werk-spool", daemon=True)
        self._spooler.start()
        cid = self._settings.ingest_client_id or f"werk-ingest-{socket.gethostname()}"
        self._client = make_client(self._address, cid, manual_ack=True, persistent=True)
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        # With manual acks the broker may not send more unacknowledged messages than the
        # inbox holds, so the network thread never waits for room (and keeps pinging).
        receive_maximum = min(self._settings.ingest_queue_size, 65_535)
        connect(self._client, self._address, persistent=True, receive_maximum=receive_maximum)
        self._client.on_connect = self._on_reconnect
        self._subscribe(self._client)
        _LOGGER.info("ingest subscribed to %s on %s", self.subscription, self._address.url)

    def stop(self) -> None:
        """Stop in an order that loses nothing and leaves no thread waiting.

        Close the inbox (later deliveries stay unacknowledged, so the broker keeps them
        in the session; unsubscribing would make it drop them); stop the writer from
        waiting on storage; let the spooler spool and acknowledge what the inbox holds;
        then disconnect, so those acks leave before the DISCONNECT. The writer stores
        what it can; the spool keeps the rest for the next start.
        """
        client = self._client
        self._inbox.close()
        self._writer.begin_stop()
        self._running.clear()
        if self._spooler is not None:
            self._spooler.join(timeout=30)
        if client is not None:
            close_flushed(client)
        self._writer.stop()
        self._spool.close()

    def _replay(self) -> None:
        """Hand the spool's pending records to the writer in batch-sized chunks."""
        chunk: list[Received] = []
        size = 0
        for record, end in self._spool.pending():
            chunk.append(_received(record))
            size += record_size(record)
            if len(chunk) >= self._settings.ingest_batch_size:
                self._writer.submit(Chunk(chunk, end, size))
                self.stats.replayed += len(chunk)
                chunk, size = [], 0
        if chunk:
            self._writer.submit(Chunk(chunk, end, size))
            self.stats.replayed += len(chunk)
        if self.stats.replayed:
            _LOGGER.info("replaying %d spooled messages", self.stats.replayed)

    def _subscribe(self, client: paho.Client) -> None:
        client.subscribe(self.subscription, qos=1)

    def _on_reconnect(self, client: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if not rc.is_failure:
            _LOGGER.info("ingest reconnected to %s", self._address.url)
            self._subscribe(client)

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if self._running.is_set() and rc.is_failure:
            _LOGGER.warning("ingest lost the broker at %s: %s", self._address.url, rc)

    def _on_message(self, client: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        self.deliver(client, msg)

    def deliver(self, client: paho.Client, msg: paho.MQTTMessage) -> None:
        """Take a message from any subscriber; `client` acknowledges it once spooled."""
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", "backslashreplace")  # kept for the record
        message = Received(topic, bytes(msg.payload), now_ns())
        delivery = _Delivery(message, msg.mid, msg.qos, client)
        self.stats.received += 1
        if self._inbox.put(delivery):
            self.stats.overflowed += 1

    def _spool_loop(self) -> None:
        while self._running.is_set() or len(self._inbox):
            deliveries = self._inbox.take(self._settings.ingest_batch_size, timeout_s=0.2)
            if deliveries:
                self._spool_and_ack(deliveries)

    def _spool_and_ack(self, deliveries: list[_Delivery]) -> None:
        kept, refused = self._screen(deliveries)
        if refused and not self._quarantine_until_it_lands(refused):
            return  # stopping: not acknowledged; the broker delivers again
        records = [_record(d.message) for d in kept]
        end = self._append_until_it_lands(records) if records else None
        if records and end is None:
            return  # stopping: not spooled, not acknowledged; the broker delivers again
        for d in deliveries:
            if d.qos > 0:
                d.client.ack(d.mid, d.qos)
        if end is not None:
            size = sum(record_size(r) for r in records)
            self._writer.submit(Chunk([d.message for d in kept], end, size))

    def _screen(self, deliveries: list[_Delivery]) -> tuple[list[_Delivery], list[_Delivery]]:
        """Split off the messages on topics no principal may publish (publish guard)."""
        guard = self._guard
        if guard is None:
            return deliveries, []
        kept: list[_Delivery] = []
        refused: list[_Delivery] = []
        for d in deliveries:
            (kept if guard(d.message.topic) else refused).append(d)
        return kept, refused

    def _quarantine_until_it_lands(self, refused: list[_Delivery]) -> bool:
        """Quarantine refused messages, retrying with back-off; False if werk stops first."""
        rejected = [_refused(d.message) for d in refused]
        delay, failing = 0.1, False
        while True:
            try:
                with self._sessions.begin() as session:
                    quarantine.add_rejected(session=session, rejected=rejected)
                break
            except Exception as exc:  # nothing is acknowledged until it lands
                if not failing:
                    _LOGGER.error("cannot quarantine refused messages, retrying: %s", exc)
                    failing = True
                if not self._running.is_set():
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
        if failing:
            _LOGGER.info("quarantining refused messages recovered")
        self.stats.rejected += len(rejected)
        self._note_refused(rejected)
        return True

    def _note_refused(self, rejected: list[Rejected]) -> None:
        """Log refused messages, at most once a minute."""
        self._refused_unlogged += len(rejected)
        now = time.monotonic()
        if now - self._refused_logged >= _REFUSED_LOG_EVERY_S:
            _LOGGER.warning(
                "quarantined %d messages on topics no principal may publish (e.g. %r)",
                self._refused_unlogged, rejected[0].topic,
            )  # fmt: skip
            self._refused_logged, self._refused_unlogged = now, 0

    def _append_until_it_lands(self, records: list[SpoolRecord]) -> Position | None:
        """Append with back-off until it works; None if werk stops first."""
        delay = 0.1
        failing = False
        while True:
            try:
                end = self._spool.append(records)
            except Exception as exc:  # nothing is acknowledged until it lands
                if not failing:
                    _LOGGER.error("cannot spool messages, retrying: %s", exc)
                    failing = True
                if not self._running.is_set():
                    return None
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            if failing:
                _LOGGER.info("spooling recovered")
            return end


class _Inbox:
    """The bounded, ordered queue between the network thread and the spooler.

    Order matters: acknowledgements must go out in the order messages arrived. Under
    `block` a full inbox makes the network thread wait (back-pressure to the broker).
    Under `quarantine` a message that finds it full is still queued, in order, but
    flagged for quarantine; only past twice the size does the network thread wait.
    """

    def __init__(self, size: int, policy: OverflowPolicy) -> None:
        self._size = size
        self._policy = policy
        self._items: deque[_Delivery] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, delivery: _Delivery) -> bool:
        """Queue a delivery; return whether it overflowed (and was flagged).

        After `close` a delivery is not queued and never acknowledged, so the broker
        delivers it again (QoS 1/2) after the next start.
        """
        overflow = self._policy is OverflowPolicy.QUARANTINE
        hard_limit = 2 * self._size if overflow else self._size
        with self._cond:
            while len(self._items) >= hard_limit and not self._closed:
                self._cond.wait(0.5)
            if self._closed:
                return False
            flagged = overflow and len(self._items) >= self._size
            if flagged:
                delivery.message = delivery.message._replace(overflowed=True)
            self._items.append(delivery)
            self._cond.notify_all()
        return flagged

    def close(self) -> None:
        """Refuse further deliveries and wake a waiting network thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take(self, limit: int, timeout_s: float) -> list[_Delivery]:
        """Everything waiting, oldest first, up to `limit`; wait a little if empty."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout_s)
            count = min(limit, len(self._items))
            taken = [self._items.popleft() for _ in range(count)]
            self._cond.notify_all()
        return taken


def _record(message: Received) -> SpoolRecord:
    flags = FLAG_OVERFLOW if message.overflowed else 0
    return SpoolRecord(message.topic, message.payload, message.received_ns, flags)


def _refused(message: Received) -> Rejected:
    return Rejected(
        message.received_ns, message.topic, message.payload, _REFUSED_REASON, _REFUSED_DETAIL
    )


def _received(record: SpoolRecord) -> Received:
    overflowed = bool(record.flags & FLAG_OVERFLOW)
    return Received(record.topic, record.payload, record.received_ns, overflowed)
