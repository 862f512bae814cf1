"""One client connection through the MQTT gateway: handshake, then two pumps."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import replace
from enum import Enum
from typing import Final, cast

from werk.uns.gateway_auth import authenticate, early_refusal, refusal_code, will_allowed
from werk.uns.gateway_events import DenialLimiter
from werk.uns.gateway_hub import MAX_CONNECT_BYTES, Hub
from werk.uns.gateway_pump import BrokerPump, ClientPump, PacketTooLarge
from werk.uns.gateway_types import EventKind, GatewayEvent, MqttGrant
from werk.uns.mqtt_packets import (
    MQTT5,
    MQTT311,
    PROP_TOPIC_ALIAS_MAXIMUM,
    V5_ADMINISTRATIVE_ACTION,
    V5_MALFORMED,
    Connect,
    MalformedPacket,
    build_connack,
    build_connect,
    build_disconnect,
    frame_head,
    malformed,
    parse_connack,
    parse_connect,
    property_u16,
)

_LOGGER = logging.getLogger(__name__)

CONNECT_TIMEOUT_S: Final = 10.0
UPSTREAM_TIMEOUT_S: Final = 5.0
_ABORT_AFTER_S: Final = 1.0
_V5_TOO_LARGE: Final = 0x95


class _State(Enum):
    AWAIT_CONNECT = 1
    AUTHENTICATING = 2
    AWAIT_CONNACK = 3
    OPEN = 4
    CLOSED = 5


class ClientSession(asyncio.Protocol):
    """A client's socket, and the broker connection opened for it once it is let in."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._state = _State.AWAIT_CONNECT
        self._client: asyncio.Transport | None = None
        self._upstream: asyncio.Transport | None = None
        self._pre = bytearray()  # client bytes before the session is open
        self._up_pre = bytearray()  # broker bytes before its CONNACK is complete
        self._timer: asyncio.TimerHandle | None = None
        self._client_pump: ClientPump | None = None
        self._broker_pump: BrokerPump | None = None
        self._limiter = DenialLimiter(self._report)
        self.peer = ""
        self._address = ""
        self.connect: Connect | None = None
        self.grant: MqttGrant | None = None

    @property
    def level(self) -> int:
        """The client's protocol level (3.1.1 until its CONNECT is read)."""
        return MQTT5 if self.connect is not None and self.connect.level == MQTT5 else MQTT311

    def counters(self) -> tuple[int, int]:
        """(messages forwarded, denials) of this connection."""
        pump = self._client_pump
        return (0, 0) if pump is None else (pump.messages, pump.denials)

    # --- client socket --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start waiting for the CONNECT."""
        self._client = cast(asyncio.Transport, transport)
        host, port = (transport.get_extra_info("peername") or ("?", 0))[:2]
        self.peer = f"{host}:{port}"
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self._address = str(host)
        if not self._hub.admit(self, self._address):
            self._state = _State.CLOSED
            self._client.abort()
            return
        self._arm(CONNECT_TIMEOUT_S)

    def data_received(self, data: bytes) -> None:
        """Pump, or collect the CONNECT."""
        try:
            if self._state is _State.OPEN:
                assert self._client_pump is not None
                self._client_pump.feed(data)
            elif self._state is not _State.CLOSED:
                self._pre += data
                if self._state is _State.AWAIT_CONNECT:
                    self._read_connect()
                elif len(self._pre) > self._hub.limit:
                    raise PacketTooLarge("too much sent before the CONNACK")
        except MalformedPacket as exc:
            self._malformed(exc)

    def eof_received(self) -> bool:
        """Pass a half-close on to the broker, which then closes; the client reads to the end."""
        upstream = self._upstream
        if self._state is _State.OPEN and upstream is not None and upstream.can_write_eof():
            upstream.write_eof()
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """Close the broker side too."""
        self._close()

    def pause_writing(self) -> None:
        """The client reads slower than the broker sends: stop reading the broker."""
        if self._upstream is not None:
            self._upstream.pause_reading()

    def resume_writing(self) -> None:
        """The client caught up."""
        if self._upstream is not None:
            self._upstream.resume_reading()

    # --- handshake ------------------------------------------------------------------------

    def _read_connect(self) -> None:
        data = bytes(self._pre)
        head = frame_head(data, 0, len(data))
        if head is None:
            return
        first, header, length = head
        if first != 0x10:
            raise malformed("the first packet is not a CONNECT")
        if length > MAX_CONNECT_BYTES:
            raise PacketTooLarge(f"CONNECT of {length} bytes")
        if len(data) < header + length:
            return
        self.connect = parse_connect(data[header : header + length])
        del self._pre[: header + length]
        self._state = _State.AUTHENTICATING
        assert self._client is not None
        self._client.pause_reading()
        self._disarm()
        self._hub.spawn(self._establish(self.connect))

    async def _establish(self, connect: Connect) -> None:
        try:
            await self._let_in(connect)
        except Exception:
            _LOGGER.exception("MQTT gateway: handshake of %s failed", self.peer)
            self._refuse("unavailable", "gateway error")

    async def _let_in(self, connect: Connect) -> None:
        refusal = early_refusal(connect)
        if refusal is not None:
            self._refuse(refusal, refusal)
            return
        started = time.monotonic()
        grant = await authenticate(self._hub, connect, self.peer)
        if self._state is _State.CLOSED:
            return
        if isinstance(grant, str):
            self._refuse(grant, "credentials refused" if grant == "bad_credentials" else grant)
            return
        self.grant = grant
        self._hub.granted(self, grant.principal_id)
        if self._hub.dropped_since(grant.principal_id, started):  # revoked while we checked
            self._refuse("not_authorized", "revoked during the login")
            return
        if connect.will is not None and not will_allowed(grant, connect.will.topic):
            self._refuse("not_authorized", f"will topic {connect.will.topic!r} denied")
            return
        await self._open_upstream(connect, grant)

    async def _open_upstream(self, connect: Connect, grant: MqttGrant) -> None:
        address = self._hub.upstream(connect.level)
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await asyncio.wait_for(
                loop.create_connection(lambda: _Upstream(self), address.host, address.port),
                UPSTREAM_TIMEOUT_S,
            )
        except (OSError, TimeoutError) as exc:
            self._hub.upstream_failed(address, exc)
            self._refuse("unavailable", "broker unreachable")
            return
        self._hub.upstream_ok()
        if self._state is _State.CLOSED:
            transport.abort()
            return
        self._upstream = transport
        # Client ids are scoped to the principal, so nobody can take over another's session.
        client_id = f"{grant.principal_id}:{connect.client_id}" if connect.client_id else ""
        password = None if address.password is None else address.password.encode()
        inner = replace(connect, client_id=client_id, username=address.username, password=password)
        transport.write(build_connect(inner))
        self._state = _State.AWAIT_CONNACK
        self._arm(UPSTREAM_TIMEOUT_S)

    def _refuse(self, refusal: str, detail: str) -> None:
        if self._state is _State.CLOSED or self._client is None:
            return
        self._client.write(build_connack(self.level, refusal_code(refusal, self.level)))
        self._hub.refused += 1
        self._report("connect_refused", detail, 1)
        self._close()

    # --- broker socket --------------------------------------------------------------------

    def from_broker(self, data: bytes) -> None:
        """Bytes from the broker: its CONNACK first, then everything for the client."""
        try:
            if self._state is _State.OPEN:
                assert self._broker_pump is not None
                self._broker_pump.feed(data)
            elif self._state is _State.AWAIT_CONNACK:
                self._up_pre += data
                self._read_connack()
        except MalformedPacket as exc:
            _LOGGER.warning("MQTT gateway: broker sent a bad packet to %s: %s", self.peer, exc)
            self._close()

    def _read_connack(self) -> None:
        data = bytes(self._up_pre)
        head = frame_head(data, 0, len(data))
        if head is None or len(data) < head[1] + head[2]:
            return
        first, header, length = head
        if first != 0x20:
            raise malformed("the broker's first packet is not a CONNACK")
        code, properties = parse_connack(data[header : header + length], self.level)
        assert self._client is not None
        self._client.write(data[: header + length])
        if code:
            _LOGGER.warning("MQTT gateway: the broker refused %s with code %d", self.peer, code)
            self._hub.refused += 1
            self._report("connect_refused", f"broker code {code}", 1)
            self._close()
            return
        self._open(properties, data[header + length :])

    def _open(self, properties: bytes, rest: bytes) -> None:
        assert self._client is not None
        assert self._upstream is not None
        assert self.grant is not None
        self._disarm()
        alias_max = property_u16(properties, PROP_TOPIC_ALIAS_MAXIMUM) if properties else None
        self._broker_pump = BrokerPump(self._client.write, self._hub.limit, self.level)
        self._client_pump = ClientPump(
            self._upstream.write, self._hub.limit, level=self.level, grant=self.grant,
            broker=self._broker_pump, on_denied=self._limiter.denied, alias_max=alias_max or 0,
        )  # fmt: skip
        self._state = _State.OPEN
        self._hub.opened()
        self._hub.handshake_over(self._address)
        self._report("connect", "", 1)
        if rest:
            self._broker_pump.feed(rest)
        pending, self._pre = bytes(self._pre), bytearray()
        try:
            if pending:
                self._client_pump.feed(pending)
        except MalformedPacket as exc:
            self._malformed(exc)
            return
        self._client.resume_reading()

    def broker_eof(self) -> bool:
        """The broker closed its side (it never half-closes on purpose): close both."""
        self._close()
        return False

    def broker_lost(self) -> None:
        """The broker closed: close the client too."""
        self._close()

    def pause_client(self, paused: bool) -> None:
        """Flow control: the broker reads slower than the client sends."""
        if self._client is None or self._state is not _State.OPEN:
            return
        if paused:
            self._client.pause_reading()
        else:
            self._client.resume_reading()

    # --- ending ---------------------------------------------------------------------------

    def kill(self, reason: str) -> None:
        """Close both sides now; a dropped MQTT 5 client learns why ("administrative action")."""
        if self._state is _State.CLOSED:
            return
        client, dropped = self._client, reason == "dropped"
        if dropped and client is not None and self._state is _State.OPEN and self.level == MQTT5:
            assert self._broker_pump is not None
            if self._broker_pump.at_boundary:
                client.write(build_disconnect(MQTT5, V5_ADMINISTRATIVE_ACTION))
        if dropped:
            self._report("dropped", "principal revoked or changed", 1)
        self._close(abort_upstream=True)
        if client is None:
            return
        if dropped:  # give the DISCONNECT a moment to leave, but no more
            asyncio.get_running_loop().call_later(_ABORT_AFTER_S, client.abort)
        else:
            client.abort()

    def _malformed(self, exc: MalformedPacket) -> None:
        _LOGGER.debug("MQTT gateway closes %s: %s", self.peer, exc)
        pump, client = self._broker_pump, self._client
        if self._state is _State.OPEN and self.level == MQTT5 and pump is not None:
            reason = _V5_TOO_LARGE if isinstance(exc, PacketTooLarge) else V5_MALFORMED
            if pump.at_boundary and client is not None:
                client.write(build_disconnect(MQTT5, reason))
        self._close(abort_upstream=True)

    def _close(self, *, abort_upstream: bool = False) -> None:
        if self._state is _State.CLOSED:
            return
        was_open = self._state is _State.OPEN
        self._state = _State.CLOSED
        if not was_open:
            self._hub.handshake_over(self._address)
        self._disarm()
        self._limiter.flush()
        if self._client is not None:
            self._client.close()
        if self._upstream is not None:
            (self._upstream.abort if abort_upstream else self._upstream.close)()
        self._hub.closed(
            self, None if self.grant is None else self.grant.principal_id, was_open=was_open
        )

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self._state is _State.AWAIT_CONNACK:
            self._hub.upstream_failed(self._hub.upstream(self.level), TimeoutError("no CONNACK"))
            self._refuse("unavailable", "broker did not answer")
        elif self._state is _State.AWAIT_CONNECT:
            self._close()

    def _report(self, kind: EventKind, detail: str, count: int) -> None:
        c, grant = self.connect, self.grant
        self._hub.emit(
            GatewayEvent(
                kind=kind, peer=self.peer, client_id="" if c is None else c.client_id,
                username=None if c is None else c.username,
                principal_id=None if grant is None else grant.principal_id,
                protocol=self.level if c is None else c.level, detail=detail, count=count,
            )
        )  # fmt: skip


class _Upstream(asyncio.Protocol):
    """The broker side of a `ClientSession`."""

    def __init__(self, session: ClientSession) -> None:
        self._session = session

    def data_received(self, data: bytes) -> None:
        """Hand the broker's bytes to the session."""
        self._session.from_broker(data)

    def eof_received(self) -> bool:
        """Pass the half-close on."""
        return self._session.broker_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        """Close the client too."""
        self._session.broker_lost()

    def pause_writing(self) -> None:
        """The broker is behind: stop reading the client."""
        self._session.pause_client(True)

    def resume_writing(self) -> None:
        """The broker caught up."""
        self._session.pause_client(False)
