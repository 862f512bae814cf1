"""A small MQTT 3.1.1 and 5 packet codec: just what the MQTT gateway reads and writes.

Parsers take the bytes of one packet body (what follows the fixed header) and raise
`MalformedPacket` for anything that breaks the protocol; builders return whole packets.
Functions on the PUBLISH path work on offsets into the received bytes, without copies.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from werk.core.errors import ValidationFailed

CONNECT: Final = 1
CONNACK: Final = 2
PUBLISH: Final = 3
PUBACK: Final = 4
PUBREC: Final = 5
PUBREL: Final = 6
PUBCOMP: Final = 7
SUBSCRIBE: Final = 8
SUBACK: Final = 9
UNSUBSCRIBE: Final = 10
PINGREQ: Final = 12
DISCONNECT: Final = 14

MQTT311: Final = 4
MQTT5: Final = 5

# CONNACK return codes (3.1.1) and reason codes (5) the gateway answers with.
V3_UNACCEPTABLE_PROTOCOL: Final = 0x01
V3_SERVER_UNAVAILABLE: Final = 0x03
V3_BAD_CREDENTIALS: Final = 0x04
V3_NOT_AUTHORIZED: Final = 0x05
V3_SUBACK_FAILURE: Final = 0x80
V5_MALFORMED: Final = 0x81
V5_BAD_CREDENTIALS: Final = 0x86
V5_NOT_AUTHORIZED: Final = 0x87
V5_SERVER_UNAVAILABLE: Final = 0x88
V5_BAD_AUTH_METHOD: Final = 0x8C
V5_FILTER_INVALID: Final = 0x8F
V5_ADMINISTRATIVE_ACTION: Final = 0x98
V5_RATE_EXCEEDED: Final = 0x9F

PROP_TOPIC_ALIAS: Final = 0x23
PROP_TOPIC_ALIAS_MAXIMUM: Final = 0x22
PROP_AUTH_METHOD: Final = 0x15

_MAX_VARINT: Final = 268_435_455
_PROPERTY_KINDS: Final = {
    **dict.fromkeys((0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A), "byte"),
    **dict.fromkeys((0x13, 0x21, 0x22, 0x23), "u16"),
    **dict.fromkeys((0x02, 0x11, 0x18, 0x27), "u32"),
    0x0B: "varint",
    **dict.fromkeys((0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F, 0x09, 0x16), "bytes"),
    0x26: "pair",
}


class MalformedPacket(ValidationFailed):
    """Bytes that are not a valid MQTT packet (the connection is closed)."""

    default_code = "bad_mqtt_packet"


def malformed(why: str) -> MalformedPacket:
    """The error for a packet that breaks the protocol in the way `why` says."""
    return MalformedPacket(f"malformed MQTT packet: {why}")


# --- primitives -------------------------------------------------------------------------


def encode_varint(value: int) -> bytes:
    """The MQTT variable byte integer for `value`."""
    if not 0 <= value <= _MAX_VARINT:
        raise malformed(f"length {value} out of range")
    out = bytearray()
    while True:
        digit, value = value & 0x7F, value >> 7
        out.append(digit | 0x80 if value else digit)
        if not value:
            return bytes(out)


def read_varint(data: bytes, pos: int, end: int) -> tuple[int, int] | None:
    """Decode a variable byte integer at `pos`: (value, next position), None if cut short."""
    value = shift = 0
    for i in range(pos, min(pos + 4, end)):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i + 1
        shift += 7
    if end - pos >= 4:
        raise malformed("variable byte integer longer than 4 bytes")
    return None


def frame_head(data: bytes, pos: int, end: int) -> tuple[int, int, int] | None:
    """The fixed header at `pos`: (first byte, header length, remaining length) or None."""
    if pos >= end:
        return None
    got = read_varint(data, pos + 1, end)
    if got is None:
        return None
    return data[pos], got[1] - pos, got[0]


def frame(first: int, body: bytes) -> bytes:
    """A whole packet from its first byte and body."""
    return bytes((first,)) + encode_varint(len(body)) + body


class Cursor:
    """Reads the fields of one packet body, checking every length against its end."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data, self.pos = data, pos
        self.end = len(data) if end is None else end

    def take(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise malformed("field runs past the end of the packet")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def byte(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def varint(self) -> int:
        got = read_varint(self.data, self.pos, self.end)
        if got is None:
            raise malformed("variable byte integer runs past the end")
        self.pos = got[1]
        return got[0]

    def binary(self) -> bytes:
        return self.take(self.u16())

    def text(self) -> str:
        return decode_text(self.binary())

    def properties(self) -> bytes:
        """The raw property block, length prefix included (validated)."""
        start = self.pos
        length = self.varint()
        body_start = self.pos
        self.take(length)
        for _ in iter_properties(self.data, body_start, self.pos):
            pass
        return self.data[start : self.pos]

    def done(self) -> bool:
        return self.pos >= self.end


def decode_text(raw: bytes) -> str:
    """A UTF-8 string field; MQTT forbids invalid UTF-8 and U+0000."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise malformed("string is not valid UTF-8") from exc
    if "\x00" in text:
        raise malformed("string contains U+0000")
    return text


def encode_text(value: str | bytes) -> bytes:
    """A length-prefixed string or binary field."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    if len(raw) > 0xFFFF:
        raise malformed("string longer than 65535 bytes")
    return len(raw).to_bytes(2, "big") + raw


def iter_properties(data: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int]]:
    """Walk a property block body: (identifier, value start, value end) per property."""
    cursor = Cursor(data, pos, end)
    while not cursor.done():
        ident = cursor.varint()
        kind = _PROPERTY_KINDS.get(ident)
        start = cursor.pos
        if kind is None:
            raise malformed(f"unknown property 0x{ident:02x}")
        if kind == "varint":
            cursor.varint()
        elif kind == "bytes":
            cursor.binary()
        elif kind == "pair":
            cursor.binary()
            cursor.binary()
        else:
            cursor.take({"byte": 1, "u16": 2, "u32": 4}[kind])
        yield ident, start, cursor.pos


def property_u16(block: bytes, ident: int) -> int | None:
    """The two-byte integer property `ident` of a raw property block (with length prefix)."""
    got = read_varint(block, 0, len(block))
    if got is None:
        return None
    for found, start, _end in iter_properties(block, got[1], len(block)):
        if found == ident:
            return int.from_bytes(block[start : start + 2], "big")
    return None


# --- CONNECT / CONNACK ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Will:
    """The will message a CONNECT carries."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: bytes = b""


@dataclass(frozen=True, slots=True)
class Connect:
    """A parsed CONNECT; `properties` is the raw MQTT 5 property block."""

    level: int
    clean: bool
    keepalive: int
    client_id: str
    properties: bytes = b""
    will: Will | None = None
    username: str | None = None
    password: bytes | None = field(default=None, repr=False)


def parse_connect(body: bytes) -> Connect:
    """Parse a CONNECT body (MQTT 3.1.1 or 5)."""
    cursor = Cursor(body)
    name, level = cursor.binary(), cursor.byte()
    if (name, level) not in ((b"MQTT", MQTT311), (b"MQTT", MQTT5), (b"MQIsdp", 3)):
        raise malformed("unknown protocol name or level")
    flags, keepalive = cursor.byte(), cursor.u16()
    _check_connect_flags(flags, level)
    properties = cursor.properties() if level == MQTT5 else b""
    client_id = cursor.text()
    will = None
    if flags & 0x04:
        will_props = cursor.properties() if level == MQTT5 else b""
        topic, payload = cursor.text(), cursor.binary()
        will = Will(topic, payload, (flags >> 3) & 3, bool(flags & 0x20), will_props)
    username = cursor.text() if flags & 0x80 else None
    password = cursor.binary() if flags & 0x40 else None
    if not cursor.done():
        raise malformed("bytes after the CONNECT payload")
    return Connect(
        level, bool(flags & 2), keepalive, client_id, properties, will, username, password
    )


def _check_connect_flags(flags: int, level: int) -> None:
    if flags & 0x01:
        raise malformed("reserved CONNECT flag set")
    will_qos = (flags >> 3) & 3
    if will_qos == 3 or (not flags & 0x04 and flags & 0x38):
        raise malformed("bad will QoS or flags")
    if level != MQTT5 and flags & 0x40 and not flags & 0x80:
        raise malformed("password without user name")


def build_connect(c: Connect) -> bytes:
    """A whole CONNECT packet for `c`."""
    flags = (0x02 if c.clean else 0) | (0x80 if c.username is not None else 0)
    flags |= 0x40 if c.password is not None else 0
    name = b"MQIsdp" if c.level == 3 else b"MQTT"
    parts = [encode_text(name), bytes((c.level,)), b"", c.keepalive.to_bytes(2, "big")]
    if c.level == MQTT5:
        parts.append(c.properties or b"\x00")
    parts.append(encode_text(c.client_id))
    if c.will is not None:
        flags |= 0x04 | (c.will.qos << 3) | (0x20 if c.will.retain else 0)
        if c.level == MQTT5:
            parts.append(c.will.properties or b"\x00")
        parts += [encode_text(c.will.topic), encode_text(c.will.payload)]
    if c.username is not None:
        parts.append(encode_text(c.username))
    if c.password is not None:
        parts.append(encode_text(c.password))
    parts[2] = bytes((flags,))
    return frame(CONNECT << 4, b"".join(parts))


def build_connack(level: int, code: int, *, session_present: bool = False) -> bytes:
    """A CONNACK with `code` (return code on 3.1.1, reason code on 5)."""
    body = bytes((1 if session_present else 0, code))
    return frame(CONNACK << 4, body + b"\x00" if level == MQTT5 else body)


def parse_connack(body: bytes, level: int) -> tuple[int, bytes]:
    """(return or reason code, raw property block) of a CONNACK body."""
    cursor = Cursor(body)
    cursor.byte()
    code = cursor.byte()
    properties = cursor.properties() if level == MQTT5 and not cursor.done() else b""
    return code, properties


# --- PUBLISH and acknowledgements ------------------------------------------------------------


def publish_head(
    data: bytes, pos: int, avail: int, length: int, qos: int, v5: bool
) -> tuple[int, int, int, int] | None:
    """(topic end, packet id, topic alias, payload start) of the PUBLISH body at `pos`.

    The topic starts at ``pos + 2``. `length` is the body's length, `avail` where the
    received bytes end; returns None while the head is not all there yet.
    """
    body_end = pos + length
    at = pos + 2
    if at > avail:
        _check_cut(avail, body_end)
        return None
    topic_end = at = at + ((data[pos] << 8) | data[pos + 1])
    if qos:
        at += 2
    if at > avail:
        _check_cut(avail, body_end)
        return None
    packet_id = (data[at - 2] << 8) | data[at - 1] if qos else 0
    if qos and not packet_id:
        raise malformed("PUBLISH with QoS > 0 and packet id 0")
    if v5:
        if at >= avail:
            _check_cut(avail, body_end)
            return None
        if data[at]:  # properties: rare on the hot path
            return _with_properties(data, at, avail, body_end, topic_end, packet_id)
        at += 1
    if at > body_end:
        raise malformed("PUBLISH head runs past the packet")
    return topic_end, packet_id, 0, at


def _check_cut(avail: int, body_end: int) -> None:
    """Raise when the whole body is here and the head still does not fit."""
    if avail >= body_end:
        raise malformed("PUBLISH head runs past the packet")


def _with_properties(
    data: bytes, at: int, avail: int, body_end: int, topic_end: int, packet_id: int
) -> tuple[int, int, int, int] | None:
    got = read_varint(data, at, min(avail, body_end))
    if got is None:
        _check_cut(avail, body_end)
        return None
    length, start = got
    if start + length > body_end:
        raise malformed("PUBLISH properties run past the packet")
    if start + length > avail:
        return None
    alias = 0
    for ident, value_start, _value_end in iter_properties(data, start, start + length):
        if ident == PROP_TOPIC_ALIAS:
            alias = (data[value_start] << 8) | data[value_start + 1]
            if not alias:
                raise malformed("topic alias 0")
    return topic_end, packet_id, alias, start + length


def build_publish(
    topic: str | bytes,
    payload: bytes,
    *,
    level: int,
    qos: int = 0,
    packet_id: int = 0,
    retain: bool = False,
    properties: bytes = b"\x00",
) -> bytes:
    """A whole PUBLISH packet (`properties`: the raw MQTT 5 block, length prefix included)."""
    head = encode_text(topic) + (packet_id.to_bytes(2, "big") if qos else b"")
    if level == MQTT5:
        head += properties
    return frame((PUBLISH << 4) | (qos << 1) | int(retain), head + payload)


def build_ack(kind: int, packet_id: int, level: int, reason: int = 0) -> bytes:
    """A PUBACK, PUBREC, PUBREL or PUBCOMP; MQTT 5 carries `reason` unless it is 0."""
    first = (kind << 4) | (0x02 if kind == PUBREL else 0)
    body = packet_id.to_bytes(2, "big")
    if level == MQTT5 and reason:
        body += bytes((reason,))
    return frame(first, body)


def build_disconnect(level: int, reason: int = 0) -> bytes:
    """A DISCONNECT (with a reason code on MQTT 5)."""
    return frame(DISCONNECT << 4, bytes((reason,)) if level == MQTT5 and reason else b"")


def packet_id_of(body: bytes) -> int:
    """The packet id that starts a PUBREL / PUBACK / SUBACK body."""
    if len(body) < 2:
        raise malformed("packet shorter than its packet id")
    return (body[0] << 8) | body[1]
