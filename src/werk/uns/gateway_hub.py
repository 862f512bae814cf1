"""State the MQTT gateway's connections share: limits, upstreams, registry, counters."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final

from werk.core.settings import Settings
from werk.uns.broker import BrokerAddress
from werk.uns.gateway_events import EventDispatcher
from werk.uns.gateway_pump import HEADROOM
from werk.uns.gateway_types import GatewayEvent, GatewayStats, MqttAuthority
from werk.uns.mqtt_packets import MQTT5

if TYPE_CHECKING:
    from werk.uns.gateway_session import ClientSession

_LOGGER = logging.getLogger(__name__)

MAX_HANDSHAKES: Final = 1024
MAX_HANDSHAKES_PER_ADDRESS: Final = 32
MAX_CONNECT_BYTES: Final = 64 * 1024  # client id, will and credentials; all a CONNECT holds
_DROPS_KEPT_S: Final = 60.0
AUTH_WORKERS: Final = 8


class Hub:
    """What every connection of one gateway needs; lives on the gateway's event loop."""

    def __init__(
        self,
        settings: Settings,
        authority: MqttAuthority,
        upstreams: tuple[BrokerAddress, BrokerAddress],
        events: EventDispatcher,
    ) -> None:
        self.limit = settings.mqtt_max_payload + HEADROOM
        self.allow_anonymous = settings.mqtt_allow_anonymous
        self.authority = authority
        self._upstreams = upstreams
        self._events = events
        self.executor = _auth_pool()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()
        self._sessions: set[ClientSession] = set()
        self._by_principal: dict[str, set[ClientSession]] = {}
        self._handshakes = 0
        self._handshaking: dict[str, int] = {}
        self._dropped: dict[str, float] = {}
        self._open = 0
        self._closed_messages = 0
        self._closed_denials = 0
        self.refused = 0
        self._unavailable_logged = False

    def restart_executor(self) -> None:
        """A fresh pool of authentication workers (after a stop)."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = _auth_pool()

    def upstream(self, level: int) -> BrokerAddress:
        """The broker listener for a client of this protocol level."""
        return self._upstreams[1] if level == MQTT5 else self._upstreams[0]

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` as a task the hub keeps and cancels on shutdown."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def emit(self, event: GatewayEvent) -> None:
        """Hand an event to the callback's thread."""
        self._events.put(event)

    def upstream_failed(self, address: BrokerAddress, error: BaseException) -> None:
        """Log an unreachable broker once until it answers again."""
        if not self._unavailable_logged:
            self._unavailable_logged = True
            _LOGGER.warning("MQTT gateway cannot reach the broker at %s: %s", address.url, error)

    def upstream_ok(self) -> None:
        """Note that the broker answered (logs the recovery once)."""
        if self._unavailable_logged:
            self._unavailable_logged = False
            _LOGGER.info("MQTT gateway reaches the broker again")

    # --- registry -------------------------------------------------------------------------

    def admit(self, session: ClientSession, address: str) -> bool:
        """Track a new connection; False when too many are still handshaking.

        One address may hold only a few handshakes, so slow or silent sockets from one
        place cannot take every slot.
        """
        mine = self._handshaking.get(address, 0)
        if self._handshakes >= MAX_HANDSHAKES or mine >= MAX_HANDSHAKES_PER_ADDRESS:
            return False
        self._handshakes += 1
        self._handshaking[address] = mine + 1
        with self._lock:
            self._sessions.add(session)
        return True

    def handshake_over(self, address: str) -> None:
        """The connection from `address` left the handshake (opened or closed)."""
        left = self._handshaking.get(address, 1) - 1
        if left > 0:
            self._handshaking[address] = left
        else:
            self._handshaking.pop(address, None)

    def dropped_since(self, principal_id: str, started: float) -> bool:
        """Whether `principal_id` (or everyone) was dropped after `started` (monotonic)."""
        with self._lock:
            last = max(self._dropped.get(principal_id, 0.0), self._dropped.get("*", 0.0))
        return last >= started

    def _note_drop(self, principal_id: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._dropped) > 10_000:
                self._dropped = {k: t for k, t in self._dropped.items() if now - t < _DROPS_KEPT_S}
            self._dropped[principal_id] = now

    def granted(self, session: ClientSession, principal_id: str) -> None:
        """Index an authenticated connection by its principal (for `drop`)."""
        with self._lock:
            self._by_principal.setdefault(principal_id, set()).add(session)

    def opened(self) -> None:
        """Count a connection that finished its handshake."""
        self._handshakes -= 1
        self._open += 1

    def closed(self, session: ClientSession, principal_id: str | None, *, was_open: bool) -> None:
        """Forget a closed connection and keep its counters."""
        if was_open:
            self._open -= 1
        else:
            self._handshakes -= 1
        messages, denials = session.counters()
        self._closed_messages += messages
        self._closed_denials += denials
        with self._lock:
            self._sessions.discard(session)
            if principal_id is not None:
                owned = self._by_principal.get(principal_id, set())
                owned.discard(session)
                if not owned:
                    self._by_principal.pop(principal_id, None)

    def drop(self, principal_id: str) -> int:
        """Close every connection of `principal_id`; callable from any thread."""
        self._note_drop(principal_id)
        with self._lock:
            doomed = list(self._by_principal.get(principal_id, ()))
        if doomed:
            self._on_loop(self._kill, doomed, "dropped")
        return len(doomed)

    def drop_all(self) -> int:
        """Close every authenticated connection; callable from any thread."""
        self._note_drop("*")
        with self._lock:
            doomed = [s for owned in self._by_principal.values() for s in owned]
        if doomed:
            self._on_loop(self._kill, doomed, "dropped")
        return len(doomed)

    def kill_all(self, reason: str) -> None:
        """Close every connection at once (on the loop)."""
        with self._lock:
            doomed = list(self._sessions)
        self._kill(doomed, reason)

    async def cancel_tasks(self) -> None:
        """Cancel the handshakes still running and wait for them."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stats(self) -> GatewayStats:
        """Counters over open and closed connections."""
        with self._lock:
            live = [s.counters() for s in self._sessions]
        return GatewayStats(
            connections=self._open,
            messages=self._closed_messages + sum(m for m, _ in live),
            denials=self._closed_denials + sum(d for _, d in live),
            refused=self.refused,
        )

    def _on_loop(self, fn: Any, *args: Any) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    @staticmethod
    def _kill(sessions: list[ClientSession], reason: str) -> None:
        for session in sessions:
            session.kill(reason)


def _auth_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(AUTH_WORKERS, thread_name_prefix="werk-mqtt-auth")
