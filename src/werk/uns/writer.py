"""The historian writer: spooled messages into the raw layer, quarantine and namespace.

It runs behind the spool in its own thread, batches what the spool accepted, decodes and
validates it, writes raw rows and quarantine records (retrying with back-off while
storage is down), updates the namespace, and then moves the spool checkpoint forward.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final

from sqlalchemy.orm import Session, sessionmaker

from werk.core.clock import NS_PER_S, now_ns
from werk.core.errors import PayloadError, WerkError
from werk.core.journal import Position
from werk.core.settings import Settings
from werk.historian import HistorianStore, RawColumns
from werk.uns import quarantine
from werk.uns.contracts import CommandHandler, Decoded, decode, decode_command
from werk.uns.messages import Chunk, IngestStats, Received, SeenMessages
from werk.uns.namespace import Namespace
from werk.uns.quarantine import Rejected
from werk.uns.topics import DataClass, UnsTopic, parse_topic
from werk.uns.translate import Translator

_LOGGER = logging.getLogger(__name__)

_TOPIC_CACHE: Final = 100_000
_RETRY_MAX_S: Final = 10.0
_MAX_ATTEMPTS: Final = 3
_OVERFLOW_DETAIL: Final = "the ingest queue was full (overflow policy: quarantine)"

Listener = Callable[[list[tuple[Decoded, int]]], None]


class _Batch:
    """What one batch of messages turns into."""

    def __init__(self) -> None:
        self.rows = RawColumns()
        self.historical = RawColumns()
        self.repeats = 0
        self.accepted: list[tuple[Decoded, int]] = []
        self.rejected: list[Rejected] = []
        self.types: dict[str, str] = {}


class HistorianWriter:
    """Consume spooled chunks in batches; commit the spool after each durable write."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: HistorianStore,
        namespace: Namespace,
        sessions: sessionmaker[Session],
        commit: Callable[[Position], None],
        stats: IngestStats,
        translators: Sequence[Translator] = (),
    ) -> None:
        self._settings = settings
        self._translators = tuple(translators)
        self._store = store
        self._namespace = namespace
        self._sessions = sessions
        self._commit = commit
        self.stats = stats
        self.listeners: list[Listener] = []
        self.command_handlers: list[CommandHandler] = []
        self._seen = SeenMessages(settings.ingest_dedupe_window_s * NS_PER_S)
        self._topics: dict[str, UnsTopic] = {}
        self._chunks: deque[Chunk] = deque()
        self._pending_bytes = 0
        self._cond = threading.Condition()
        self._running = False
        self._thread: threading.Thread | None = None
        self._last_flush = time.monotonic()
        self._failures = 0

    @property
    def depth(self) -> int:
        """Messages spooled but not yet written."""
        with self._cond:
            return sum(len(c.messages) for c in self._chunks)

    @property
    def alive(self) -> bool:
        """Whether the writer thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, *, oldest_pending_ns: int | None = None) -> None:
        """Remember the ids of messages that may come again, and start the writer thread.

        That is every message received within the dedupe window, and also everything
        since the oldest message still waiting in the spool, however old.
        """
        since = now_ns() - self._settings.ingest_dedupe_window_s * NS_PER_S
        if oldest_pending_ns is not None:
            since = min(since, oldest_pending_ns)
        for msg_id in self._store.recent_message_ids(since):
            self._seen.add(msg_id, now_ns())
        self._running = True
        self._thread = threading.Thread(target=self._work, name="werk-writer", daemon=True)
        self._thread.start()

    def begin_stop(self) -> None:
        """Stop waiting: `submit` no longer blocks, failing writes are not retried."""
        with self._cond:
            self._running = False
            self._cond.notify_all()

    def stop(self) -> None:
        """Write what is pending (as far as storage allows), then stop."""
        self.begin_stop()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self._flush_namespace()

    def submit(self, chunk: Chunk) -> None:
        """Hand over a spooled chunk; block while the spool holds too much unwritten data."""
        limit = self._settings.ingest_spool_max_bytes
        with self._cond:
            while self._pending_bytes > limit and self._running:
                self._cond.wait(0.5)
            self._chunks.append(chunk)
            self._pending_bytes += chunk.size
            self._cond.notify_all()

    def _work(self) -> None:
        while True:
            chunks = self._take()
            if chunks:
                self._process_safely(chunks)
            elif not self._running:
                return
            self._tick()
            self._maybe_flush_namespace()

    def _tick(self) -> None:
        now = now_ns()
        for translator in self._translators:
            try:
                translator.tick(now)
            except Exception:
                _LOGGER.exception("a translator failed on its timer")

    def _process_safely(self, chunks: list[Chunk]) -> None:
        """Process a batch; an unexpected error never ends the thread nor loses the batch.

        The batch goes back to the front of the queue and is tried again; after
        `_MAX_ATTEMPTS` failures its messages go to the quarantine (reason
        ``writer_error``) so that one bad batch cannot stall ingest for good.
        """
        try:
            self._process(chunks)
            self._failures = 0
        except Exception as exc:
            self._failures += 1
            self.stats.last_error = f"writer: {exc}"
            if not self._running:  # stopping: nothing later may commit past this batch
                _LOGGER.exception("ingest writer failed while stopping; the spool keeps the rest")
                with self._cond:
                    self._chunks.clear()
                return
            if self._failures >= _MAX_ATTEMPTS:
                _LOGGER.exception("ingest writer failed %d times on a batch; quarantining it",
                                  self._failures)  # fmt: skip
                self._quarantine_batch(chunks, str(exc))
                return
            _LOGGER.exception("ingest writer failed on a batch; retrying it")
            with self._cond:
                self._chunks.extendleft(reversed(chunks))
            time.sleep(0.5 * self._failures)

    def _quarantine_batch(self, chunks: list[Chunk], error: str) -> None:
        batch = _Batch()
        detail = f"the historian writer failed on this batch: {error}"
        batch.rejected = [_rejected(m, "writer_error", detail) for c in chunks for m in c.messages]
        if not self._persist(batch):
            with self._cond:
                self._chunks.extendleft(reversed(chunks))
            return
        self._failures = 0
        self._finish(chunks)

    def _take(self) -> list[Chunk]:
        """Wait for work, linger briefly for more, and take up to a batch of messages."""
        linger_s = self._settings.ingest_linger_ms / 1000
        with self._cond:
            if not self._chunks:
                self._cond.wait(0.2)
            if self._chunks and self._running and linger_s:
                deadline = time.monotonic() + linger_s
                while self._count() < self._settings.ingest_batch_size and self._running:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            taken: list[Chunk] = []
            count = 0
            while self._chunks and count < self._settings.ingest_batch_size:
                taken.append(self._chunks.popleft())
                count += len(taken[-1].messages)
            return taken

    def _count(self) -> int:
        return sum(len(c.messages) for c in self._chunks)

    def _process(self, chunks: list[Chunk]) -> None:
        batch = _Batch()
        for chunk in chunks:
            for message in chunk.messages:
                self._classify(message, batch)
        if not self._persist(batch):
            return  # stopping while storage is down: the spool replays it next start
        self._namespace_update(batch)
        self._finish(chunks)

    def _finish(self, chunks: list[Chunk]) -> None:
        """Move the spool checkpoint past `chunks` and release their bytes."""
        self._checkpoint(chunks[-1].end)
        with self._cond:
            self._pending_bytes -= sum(c.size for c in chunks)
            self._cond.notify_all()
        self.stats.batches += 1

    def _classify(self, message: Received, batch: _Batch) -> None:
        translator = self._translator(message.topic)
        if message.overflowed:
            if translator is not None:
                self._keep_state(translator, message)
            batch.rejected.append(_rejected(message, "queue_overflow", _OVERFLOW_DETAIL))
            return
        if translator is not None:
            self._translate(translator, message, batch)
            return
        try:
            topic = self._topic(message.topic)
            if topic.data_class is DataClass.COMMAND:
                self._command(topic, message)
                return
            decoded = self._decode(topic, message, batch.types)
        except WerkError as exc:
            batch.rejected.append(_rejected(message, exc.code, exc.message))
            return
        self._accept(message, decoded, batch, batch.rows)

    def _command(self, topic: UnsTopic, message: Received) -> None:
        """Hand a write to the handlers once; a replayed or redelivered one is skipped."""
        root = self._settings.uns_root
        command = decode_command(topic, message.payload, message.received_ns, root)
        if command.message_id in self._seen:
            self.stats.duplicates += 1
            return
        self._seen.add(command.message_id, message.received_ns)
        if not self.command_handlers:
            raise PayloadError("nothing here can write to machines", code="no_command_handler")
        for handler in self.command_handlers:
            handler(command)

    def _translator(self, topic: str) -> Translator | None:
        for translator in self._translators:
            if topic.startswith(translator.topic_prefix):
                return translator
        return None

    @staticmethod
    def _keep_state(translator: Translator, message: Received) -> None:
        """Let a translator see a message that is quarantined anyway (births, deaths)."""
        with contextlib.suppress(WerkError):
            translator.translate(message.topic, message.payload, message.received_ns)

    def _translate(self, translator: Translator, message: Received, batch: _Batch) -> None:
        try:
            translation = translator.translate(message.topic, message.payload, message.received_ns)
            if translation.decoded is not None:
                self._namespace.check_types(translation.decoded.samples, batch.types)
            self._namespace.check_types(translation.transient, batch.types)
        except WerkError as exc:
            batch.rejected.append(_rejected(message, exc.code, exc.message))
            return
        for reason, detail in translation.problems:
            batch.rejected.append(_rejected(message, reason, detail))
        if translation.decoded is not None:
            rows = batch.historical if translation.historical else batch.rows
            self._accept(message, translation.decoded, batch, rows)
        if translation.transient:  # last-known values only, no history
            live = Decoded(0, list(translation.transient))
            batch.accepted.append((live, message.received_ns))
            self._namespace.note_types(live.samples, batch.types)

    def _accept(self, message: Received, decoded: Decoded, batch: _Batch, rows: RawColumns) -> None:
        if decoded.message_id in self._seen:
            self.stats.duplicates += 1
            return
        self._seen.add(decoded.message_id, message.received_ns)
        batch.accepted.append((decoded, message.received_ns))
        rows.extend(decoded.samples, message.received_ns, decoded.message_id)
        columns = decoded.columns
        if columns is not None:  # typed by the translator: no type checks here
            rows.extend_columns(
                columns.tags, columns.ts_ns, columns.values, int(columns.quality),
                message.received_ns, decoded.message_id,
            )  # fmt: skip
        self._namespace.note_types(decoded.samples, batch.types)

    def _decode(self, topic: UnsTopic, message: Received, batch_types: dict[str, str]) -> Decoded:
        size, limit = len(message.payload), self._settings.ingest_max_payload
        if size > limit:
            raise PayloadError(
                f"payload is {size} bytes; the limit for JSON values is {limit} bytes",
                code="too_large",
            )
        decoded = decode(topic, message.payload, message.received_ns)
        self._namespace.check_types(decoded.samples, batch_types)
        return decoded

    def _topic(self, topic: str) -> UnsTopic:
        parsed = self._topics.get(topic)
        if parsed is None:
            parsed = parse_topic(topic, self._settings.uns_root)
            if len(self._topics) >= _TOPIC_CACHE:
                self._topics.clear()
            self._topics[topic] = parsed
        return parsed

    def _persist(self, batch: _Batch) -> bool:
        """Write raw rows and quarantine records, retrying with back-off until they land.

        Return False when werk stops while storage is still failing.
        """
        delay = 0.1
        while True:
            try:
                self._store.write(self._with_new_history(batch))
                batch.rows, batch.historical = RawColumns(), RawColumns()
                self.stats.historical_repeats += batch.repeats
                if batch.rejected:
                    with self._sessions.begin() as session:
                        quarantine.add_rejected(session=session, rejected=batch.rejected)
                break
            except Exception as exc:  # any failure: keep the batch, retry
                self._note_write_failure(exc, delay)
                if not self._running:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
        if self.stats.last_error is not None:
            _LOGGER.info("ingest writes recovered")
            self.stats.last_error = None
        return True

    def _with_new_history(self, batch: _Batch) -> RawColumns:
        """The batch's rows plus those historical rows the historian does not have yet."""
        history = batch.historical
        if not history:
            return batch.rows
        stored = self._store.existing(history.tag, history.ts_ns)
        taken = set(zip(batch.rows.tag, batch.rows.ts_ns, strict=True)) | stored
        merged = RawColumns(
            list(batch.rows.tag), list(batch.rows.ts_ns), list(batch.rows.ingest_ns),
            list(batch.rows.value), list(batch.rows.text), list(batch.rows.quality),
            list(batch.rows.msg_id), set(batch.rows.boolean_tags) | history.boolean_tags,
        )  # fmt: skip
        repeats = 0
        for i, key in enumerate(zip(history.tag, history.ts_ns, strict=True)):
            if key in taken:
                repeats += 1
                continue
            taken.add(key)
            merged.append_row(history, i)
        batch.repeats = repeats
        return merged

    def _checkpoint(self, end: Position) -> None:
        """Move the spool checkpoint; if that fails the batch is replayed (and deduplicated)."""
        try:
            self._commit(end)
        except OSError as exc:
            _LOGGER.warning("could not move the spool checkpoint, will retry: %s", exc)

    def _note_write_failure(self, exc: BaseException, delay: float) -> None:
        self.stats.write_errors += 1
        if self.stats.last_error is None:
            _LOGGER.error("ingest cannot write, retrying every %.1f s or less: %s", delay, exc)
        self.stats.last_error = str(exc)

    def _namespace_update(self, batch: _Batch) -> None:
        samples = self._namespace.observe_messages(batch.accepted)
        self.stats.samples += samples
        self.stats.accepted += len(batch.accepted)
        self.stats.rejected += len(batch.rejected)
        for listener in self.listeners:
            try:
                listener(batch.accepted)
            except Exception:
                _LOGGER.exception("an ingest listener failed")

    def _maybe_flush_namespace(self) -> None:
        if time.monotonic() - self._last_flush >= self._settings.registry_flush_s:
            self._flush_namespace()

    def _flush_namespace(self) -> None:
        self._last_flush = time.monotonic()
        try:
            self._namespace.persist(self._sessions)
        except Exception as exc:
            _LOGGER.warning("could not persist the namespace registry, will retry: %s", exc)


def _rejected(message: Received, reason: str, detail: str) -> Rejected:
    return Rejected(message.received_ns, message.topic, message.payload, reason, detail)
