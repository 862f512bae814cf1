"""Gateway events: handed to a callback in their own thread, repeated denials rate-limited."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Final

from werk.uns.gateway_types import EventKind, GatewayEvent

_LOGGER = logging.getLogger(__name__)

QUEUE_SIZE: Final = 10_000
DENIAL_WINDOW_S: Final = 10.0
_JOIN_TIMEOUT_S: Final = 5.0

EventSink = Callable[[GatewayEvent], None]


class EventDispatcher:
    """Call `on_event` from one worker thread, so a slow audit never stalls the gateway.

    The queue is bounded; when it is full, events are counted as lost and logged once
    per burst rather than blocking the event loop.
    """

    def __init__(self, on_event: EventSink | None) -> None:
        self._on_event = on_event
        self._queue: queue.Queue[GatewayEvent | None] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self.lost = 0

    def start(self) -> None:
        """Start the worker thread (nothing to do without a callback)."""
        if self._on_event is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="werk-mqtt-events")
            self._thread.start()

    def stop(self) -> None:
        """Deliver what is queued, then stop the worker thread."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(_JOIN_TIMEOUT_S)
        self._thread = None

    def put(self, event: GatewayEvent) -> None:
        """Queue `event` for the callback; never blocks."""
        if self._thread is None:
            return
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.lost += 1
            if self.lost == 1 or not self.lost % 1000:
                _LOGGER.warning("MQTT gateway event queue full: %d events lost", self.lost)

    def _run(self) -> None:
        assert self._on_event is not None
        while (event := self._queue.get()) is not None:
            try:
                self._on_event(event)
            except Exception:
                _LOGGER.exception("MQTT gateway event handler failed on %s", event.kind)


class DenialLimiter:
    """Report the first denial of a kind at once, the next ones at most once per window."""

    def __init__(
        self, report: Callable[[EventKind, str, int], None], window_s: float = DENIAL_WINDOW_S
    ) -> None:
        self._report = report
        self._window_s = window_s
        # kind -> (time of last report, denials held back since, last held-back detail)
        self._held: dict[EventKind, tuple[float, int, str]] = {}

    def denied(self, kind: EventKind, detail: str) -> None:
        """Count one denial; report it unless one was reported within the window."""
        now = time.monotonic()
        last, held, _ = self._held.get(kind, (-self._window_s, 0, ""))
        if now - last >= self._window_s:
            self._held[kind] = (now, 0, "")
            self._report(kind, detail, held + 1)
        else:
            self._held[kind] = (last, held + 1, detail)

    def flush(self) -> None:
        """Report the denials still held back (the connection is closing)."""
        for kind, (_last, held, detail) in self._held.items():
            if held:
                self._report(kind, detail, held)
        self._held.clear()
