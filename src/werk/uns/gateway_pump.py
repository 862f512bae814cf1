"""Byte pumps of the MQTT gateway: cut each direction at packet boundaries, inspect little.

A pump looks at each packet's fixed header and decides from as few bytes as it can:
forward it (the rest of the packet then streams through without being buffered), drop
it, or replace it. Only the head of a PUBLISH and small control packets are buffered.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import replace
from typing import Final

from werk.uns.gateway_subscribe import (
    SubAck,
    build_suback,
    build_subscribe,
    parse_suback,
    parse_subscribe,
    split_shared,
    valid_subscription,
)
from werk.uns.gateway_types import EventKind, MqttGrant
from werk.uns.mqtt_packets import (
    DISCONNECT,
    MQTT5,
    PINGREQ,
    PUBACK,
    PUBCOMP,
    PUBREC,
    PUBREL,
    SUBACK,
    SUBSCRIBE,
    UNSUBSCRIBE,
    V3_SUBACK_FAILURE,
    V5_FILTER_INVALID,
    V5_NOT_AUTHORIZED,
    MalformedPacket,
    build_ack,
    decode_text,
    frame_head,
    malformed,
    packet_id_of,
    publish_head,
)

_LOGGER = logging.getLogger(__name__)

# A verdict: True forwards the packet, False drops it, bytes replace it, None = need more.
Verdict = bool | bytes | None
Write = Callable[[bytes], None]

HEADROOM: Final = 64 * 1024
_PASSED: Final = frozenset((PUBACK, PUBREC, PUBCOMP, UNSUBSCRIBE, PINGREQ, DISCONNECT))
_CACHE_SIZE: Final = 4096
_ALIAS_BYTES: Final = 1024 * 1024


class PacketTooLarge(MalformedPacket):
    """A packet larger than the gateway accepts (the connection is closed)."""

    default_code = "mqtt_packet_too_large"


class Pump(ABC):
    """One direction of a connection: feed it received bytes, it writes what goes on."""

    __slots__ = ("_forwarding", "_held", "_limit", "_need", "_remaining", "_write", "want")

    def __init__(self, write: Write, limit: int) -> None:
        self._write = write
        self._limit = limit
        self._held = bytearray()
        self._need = 0  # bytes the held packet needs before it is worth looking at again
        self._remaining = 0  # bytes of the current packet not received yet
        self._forwarding = True  # whether those bytes are forwarded or dropped
        self.want = 0  # set by `inspect` when it needs only this many body bytes

    @property
    def at_boundary(self) -> bool:
        """Whether everything written so far ends at a packet boundary."""
        return not self._remaining or not self._forwarding

    @abstractmethod
    def inspect(self, first: int, data: bytes, start: int, avail: int, length: int) -> Verdict:
        """Decide about the packet whose body starts at `start` (bytes up to `avail` here).

        Return None when more bytes are needed: the whole body, or `want` bytes of it
        when `inspect` set that.
        """

    def feed(self, data: bytes) -> None:
        """Take received bytes; raise `MalformedPacket` when they break the protocol."""
        if self._held:
            joined = self._join(data)
            if joined is None:
                return
            data = joined
        end = len(data)
        pos, run = self._continue(data, end)
        inspect = self.inspect
        while pos < end:
            if pos + 1 < end and data[pos + 1] < 0x80:  # most packets: one length byte
                start, length = pos + 2, data[pos + 1]
            elif pos + 2 < end and data[pos + 2] < 0x80 and self._limit > 0x3FFF:  # two
                start, length = pos + 3, (data[pos + 1] & 0x7F) | (data[pos + 2] << 7)
            else:
                head = self._head(data, pos, end)
                if head is None:
                    break
                start, length = head
            stop = start + length
            verdict = inspect(data[pos], data, start, stop if stop < end else end, length)
            if verdict is None:
                self._need, self.want = start - pos + (self.want or length), 0
                break
            if verdict is not True:
                run = self._divert(data, run, pos, verdict, min(stop, end))
            if stop > end:
                self._remaining, self._forwarding = stop - end, verdict is True
                pos = end
            else:
                pos = stop
        self._finish(data, run, pos, end)

    def _join(self, data: bytes) -> bytes | None:
        """The held bytes and `data` together, or None while still too few to look at."""
        self._held += data
        if len(self._held) < self._need:
            return None
        joined = bytes(self._held)
        self._held.clear()
        self._need = 0
        return joined

    def _head(self, data: bytes, pos: int, end: int) -> tuple[int, int] | None:
        """(body start, body length) of the packet at `pos`; None when cut short."""
        head = frame_head(data, pos, end)
        if head is None:
            return None
        if head[2] > self._limit:
            raise PacketTooLarge(f"MQTT packet of {head[2]} bytes is over {self._limit}")
        return pos + head[1], head[2]

    def _divert(self, data: bytes, run: int, pos: int, verdict: bytes | bool, resume: int) -> int:
        """Drop or replace the packet at `pos`, writing the forwarded bytes before it first."""
        if run < pos:
            self._write(data[run:pos])
        if isinstance(verdict, bytes):
            self._write(verdict)
        return resume

    def _continue(self, data: bytes, end: int) -> tuple[int, int]:
        """Stream the rest of a packet begun in an earlier chunk: (position, run start)."""
        if not self._remaining:
            return 0, 0
        take = min(self._remaining, end)
        self._remaining -= take
        return take, 0 if self._forwarding else take

    def _finish(self, data: bytes, run: int, pos: int, end: int) -> None:
        if run < pos:
            self._write(data if run == 0 and pos == end else data[run:pos])
        if pos < end:
            self._held += data[pos:end] if pos else data


class BrokerPump(Pump):
    """Broker to client: streams through, merges SUBACKs of filtered SUBSCRIBEs, injects."""

    __slots__ = ("_level", "_queued", "pending")

    def __init__(self, write: Write, limit: int, level: int) -> None:
        super().__init__(write, limit)
        self._level = level
        self._queued: list[bytes] = []
        # packet id -> SUBACK codes to send: None where the broker's next code goes
        self.pending: dict[int, list[int | None]] = {}

    def inject(self, packet: bytes) -> None:
        """Send a packet of the gateway's own to the client, between the broker's packets."""
        if self.at_boundary:
            self._write(packet)
        else:
            self._queued.append(packet)

    def feed(self, data: bytes) -> None:
        """Forward the broker's bytes, then whatever the gateway queued meanwhile."""
        super().feed(data)
        if self._queued and self.at_boundary:
            queued, self._queued = self._queued, []
            for packet in queued:
                self._write(packet)

    def inspect(self, first: int, data: bytes, start: int, avail: int, length: int) -> Verdict:
        """Forward everything but SUBACKs the gateway must complete."""
        if not self.pending or first >> 4 != SUBACK:
            return True
        if avail < start + length:
            return None
        ack = parse_suback(data[start : start + length], self._level)
        template = self.pending.pop(ack.packet_id, None)
        if template is None:
            return True
        codes = iter(ack.codes)
        merged = bytes(next(codes, V3_SUBACK_FAILURE) if c is None else c for c in template)
        return build_suback(replace(ack, codes=merged), self._level)


class ClientPump(Pump):
    """Client to broker: checks every PUBLISH topic and SUBSCRIBE filter against the grant."""

    __slots__ = (
        "_alias_bytes", "_alias_max", "_aliases", "_broker", "_cache", "_grant", "_level",
        "_on_denied", "_qos2_denied", "_v5", "denials", "messages",
    )  # fmt: skip

    def __init__(
        self,
        write: Write,
        limit: int,
        *,
        level: int,
        grant: MqttGrant,
        broker: BrokerPump,
        on_denied: Callable[[EventKind, str], None],
        alias_max: int = 0,
    ) -> None:
        super().__init__(write, limit)
        self._level, self._v5 = level, level == MQTT5
        self._grant, self._broker, self._on_denied = grant, broker, on_denied
        self._alias_max = alias_max
        self._aliases: dict[int, bytes] = {}
        self._alias_bytes = 0
        self._cache: dict[bytes, bool] = {}
        self._qos2_denied: set[int] = set()
        self.messages = 0
        self.denials = 0

    def inspect(self, first: int, data: bytes, start: int, avail: int, length: int) -> Verdict:
        """Check publishes and subscriptions; pass everything else a client may send."""
        if first & 0xF0 != 0x30:
            return self._control(first, data, start, avail, length)
        qos = (first >> 1) & 3
        if qos == 3:
            raise malformed("PUBLISH with QoS 3")
        head = publish_head(data, start, avail, length, qos, self._v5)
        if head is None:
            self.want = min(length, avail - start + 256)
            return None
        topic_end, packet_id, alias, _payload = head
        topic = data[start + 2 : topic_end]
        if alias:
            topic = self._resolve_alias(topic, alias)
        allowed = self._cache.get(topic)
        if allowed is None:
            allowed = self._check_topic(topic)
        if allowed:
            self.messages += 1
            if qos == 2 and self._qos2_denied:
                self._qos2_denied.discard(packet_id)
            return True
        self._deny_publish(topic, qos, packet_id)
        return False

    def _control(self, first: int, data: bytes, start: int, avail: int, length: int) -> Verdict:
        kind = first >> 4
        if kind in (SUBSCRIBE, PUBREL):
            if avail < start + length:
                return None
            body = data[start : start + length]
            return self._subscribe(first, body) if kind == SUBSCRIBE else self._pubrel(body)
        if kind in _PASSED:
            return True
        raise malformed(f"packet type {kind} is not one a client may send")

    def _resolve_alias(self, topic: bytes, alias: int) -> bytes:
        if alias > self._alias_max:
            raise malformed(f"topic alias {alias} above the maximum {self._alias_max}")
        if not topic:
            known = self._aliases.get(alias)
            if known is None:
                raise malformed(f"topic alias {alias} was never set")
            return known
        old = self._aliases.get(alias, b"")
        self._alias_bytes += len(topic) - len(old)
        if self._alias_bytes > _ALIAS_BYTES:
            raise malformed("topic aliases hold too many bytes")
        self._aliases[alias] = topic
        return topic

    def _check_topic(self, topic: bytes) -> bool:
        if not topic:
            raise malformed("PUBLISH without a topic")
        text = decode_text(topic)
        if "+" in text or "#" in text:
            raise malformed("wildcard in a PUBLISH topic")
        allowed = may_publish(self._grant, text)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[topic] = allowed
        return allowed

    def _deny_publish(self, topic: bytes, qos: int, packet_id: int) -> None:
        self.denials += 1
        self._on_denied("publish_denied", topic.decode("utf-8", "replace"))
        if qos == 1:
            self._broker.inject(build_ack(PUBACK, packet_id, self._level, V5_NOT_AUTHORIZED))
        elif qos == 2:
            # The client answers PUBREC with PUBREL (paho does even after a v5 refusal).
            self._qos2_denied.add(packet_id)
            self._broker.inject(build_ack(PUBREC, packet_id, self._level, V5_NOT_AUTHORIZED))

    def _pubrel(self, body: bytes) -> Verdict:
        packet_id = packet_id_of(body)
        if packet_id not in self._qos2_denied:
            return True
        self._qos2_denied.discard(packet_id)
        self._broker.inject(build_ack(PUBCOMP, packet_id, self._level))
        return False

    def _subscribe(self, first: int, body: bytes) -> Verdict:
        request = parse_subscribe(first, body, self._level)
        codes = [self._refusal(f) for f, _options in request.subscriptions]
        kept = tuple(
            s for s, code in zip(request.subscriptions, codes, strict=True) if code is None
        )
        if len(kept) == len(codes):
            return True
        if not kept:
            ack = SubAck(request.packet_id, bytes(c or 0 for c in codes))
            self._broker.inject(build_suback(ack, self._level))
            return False
        self._broker.pending[request.packet_id] = codes
        return build_subscribe(replace(request, subscriptions=kept), self._level)

    def _refusal(self, topic_filter: str) -> int | None:
        """The SUBACK failure code for `topic_filter`, None when it may be subscribed."""
        if not valid_subscription(topic_filter):
            return V5_FILTER_INVALID if self._v5 else V3_SUBACK_FAILURE
        if may_subscribe(self._grant, split_shared(topic_filter)[1]):
            return None
        self.denials += 1
        self._on_denied("subscribe_denied", topic_filter)
        return V5_NOT_AUTHORIZED if self._v5 else V3_SUBACK_FAILURE


def may_publish(grant: MqttGrant, topic: str) -> bool:
    """Ask the grant, never for ``$`` topics; a failing grant denies."""
    if topic.startswith("$"):
        return False
    try:
        return bool(grant.may_publish(topic))
    except Exception:
        _LOGGER.exception("MQTT grant failed on publish to %r; denied", topic)
        return False


def may_subscribe(grant: MqttGrant, topic_filter: str) -> bool:
    """Ask the grant, never for ``$`` filters; a failing grant denies."""
    if topic_filter.startswith("$"):
        return False
    try:
        return bool(grant.may_subscribe(topic_filter))
    except Exception:
        _LOGGER.exception("MQTT grant failed on subscribe to %r; denied", topic_filter)
        return False
