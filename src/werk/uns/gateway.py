"""The MQTT gateway: authenticates every client and checks every topic before rumqttd.

rumqttd has no ACLs, so it listens on loopback only (see `werk.uns.broker`) and the
gateway owns the public ports. Both public ports take MQTT 3.1.1 and 5; each CONNECT
is authenticated through an `MqttAuthority`, then relayed to the rumqttd listener of
its protocol version with werk's internal credentials. From then on the gateway pumps
bytes both ways and looks only at what a client sends: a PUBLISH whose topic the grant
denies is dropped (QoS 1/2 acknowledged with "not authorized" on MQTT 5), a SUBSCRIBE
loses its denied filters, which come back as failures in the SUBACK.

    gateway = MqttGateway(settings, authority, broker.internal_v311_address, broker.address)
    gateway.start()       # binds mqtt_port and mqtt5_port, serves from its own thread
    gateway.drop(pid)     # closes that principal's live connections
    gateway.stop()
"""

from __future__ import annotations

import asyncio
import errno
import logging
import threading
from typing import Final

from werk.core.errors import BrokerUnavailable
from werk.core.settings import Settings
from werk.uns.broker import BrokerAddress, port_taken
from werk.uns.gateway_events import EventDispatcher, EventSink
from werk.uns.gateway_hub import Hub
from werk.uns.gateway_session import ClientSession
from werk.uns.gateway_types import (
    ANONYMOUS,
    EventKind,
    GatewayEvent,
    GatewayStats,
    MqttAuthority,
    MqttGrant,
    OpenGrant,
)

__all__ = [
    "ANONYMOUS",
    "EventKind",
    "GatewayEvent",
    "GatewayStats",
    "MqttAuthority",
    "MqttGateway",
    "MqttGrant",
    "OpenGrant",
]

_LOGGER = logging.getLogger(__name__)

_START_TIMEOUT_S: Final = 10.0
_STOP_TIMEOUT_S: Final = 10.0


class MqttGateway:
    """The public MQTT listeners, run by an asyncio loop in a thread of their own."""

    def __init__(
        self,
        settings: Settings,
        authority: MqttAuthority,
        upstream_v311: BrokerAddress,
        upstream_v5: BrokerAddress,
        on_event: EventSink | None = None,
    ) -> None:
        self._settings = settings
        self._events = EventDispatcher(on_event)
        self._hub = Hub(settings, authority, (upstream_v311, upstream_v5), self._events)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.Server] = []

    @property
    def running(self) -> bool:
        """Whether the gateway serves its ports."""
        return self._thread is not None

    def start(self) -> None:
        """Bind the public ports and serve; raise `BrokerUnavailable` when one is taken."""
        if self._thread is not None:
            return
        self._hub.restart_executor()
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="werk-mqtt-gateway")
        thread.start()
        self._loop, self._thread, self._hub.loop = loop, thread, loop
        try:
            asyncio.run_coroutine_threadsafe(self._bind(), loop).result(_START_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        self._events.start()
        s = self._settings
        _LOGGER.info(
            "MQTT gateway: 3.1.1 and 5 on %s:%d and %s:%d (anonymous %s)",
            s.mqtt_host, s.mqtt_port, s.mqtt_host, s.mqtt5_port,
            "allowed" if s.mqtt_allow_anonymous else "refused",
        )  # fmt: skip

    def stop(self) -> None:
        """Close the ports and every connection, then stop the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(_STOP_TIMEOUT_S)
        except Exception:
            _LOGGER.exception("MQTT gateway did not shut down cleanly")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_STOP_TIMEOUT_S)
        if not thread.is_alive():
            loop.close()
        self._loop = self._thread = self._hub.loop = None
        self._hub.executor.shutdown(wait=False, cancel_futures=True)
        self._events.stop()

    def drop(self, principal_id: str) -> int:
        """Close every live connection of `principal_id` (both sides); thread-safe.

        Returns how many connections were closed.
        """
        return self._hub.drop(principal_id)

    def drop_all(self) -> int:
        """Close every live connection (many principals changed at once); thread-safe."""
        return self._hub.drop_all()

    def stats(self) -> GatewayStats:
        """Open connections, messages forwarded, denials and refused connects so far."""
        return self._hub.stats()

    async def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        host = self._settings.mqtt_host
        for port in (self._settings.mqtt_port, self._settings.mqtt5_port):
            try:
                server = await loop.create_server(
                    lambda: ClientSession(self._hub), host, port, reuse_address=True
                )
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise port_taken(host, port) from exc
                raise BrokerUnavailable(f"the MQTT gateway cannot listen on {port}: {exc}") from exc
            self._servers.append(server)

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        self._servers.clear()
        self._hub.kill_all("stopping")
        await self._hub.cancel_tasks()
        for _ in range(3):  # let the aborted transports run their connection_lost
            await asyncio.sleep(0)
