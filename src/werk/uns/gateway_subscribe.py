"""SUBSCRIBE and SUBACK for the MQTT gateway: their codec and the filter checks."""

from __future__ import annotations

from dataclasses import dataclass

from werk.uns.mqtt_packets import (
    MQTT5,
    SUBACK,
    SUBSCRIBE,
    Cursor,
    encode_text,
    frame,
    malformed,
)


@dataclass(frozen=True, slots=True)
class Subscribe:
    """A parsed SUBSCRIBE: (filter, options byte) pairs in packet order."""

    packet_id: int
    subscriptions: tuple[tuple[str, int], ...]
    properties: bytes = b""


def parse_subscribe(first: int, body: bytes, level: int) -> Subscribe:
    """Parse a SUBSCRIBE body."""
    if first & 0x0F != 0x02:
        raise malformed("SUBSCRIBE with wrong fixed header flags")
    cursor = Cursor(body)
    packet_id = cursor.u16()
    properties = cursor.properties() if level == MQTT5 else b""
    entries: list[tuple[str, int]] = []
    while not cursor.done():
        topic_filter, options = cursor.text(), cursor.byte()
        reserved = 0xC0 if level == MQTT5 else 0xFC
        if options & reserved or options & 3 == 3 or (options >> 4) & 3 == 3:
            raise malformed("bad subscription options")
        entries.append((topic_filter, options))
    if not packet_id or not entries:
        raise malformed("SUBSCRIBE without packet id or filters")
    return Subscribe(packet_id, tuple(entries), properties)


def build_subscribe(s: Subscribe, level: int) -> bytes:
    """A whole SUBSCRIBE packet for `s`."""
    parts = [s.packet_id.to_bytes(2, "big")]
    if level == MQTT5:
        parts.append(s.properties or b"\x00")
    parts += [encode_text(f) + bytes((o,)) for f, o in s.subscriptions]
    return frame((SUBSCRIBE << 4) | 0x02, b"".join(parts))


@dataclass(frozen=True, slots=True)
class SubAck:
    """A SUBACK: one return or reason code per filter."""

    packet_id: int
    codes: bytes
    properties: bytes = b""


def parse_suback(body: bytes, level: int) -> SubAck:
    """Parse a SUBACK body."""
    cursor = Cursor(body)
    packet_id = cursor.u16()
    properties = cursor.properties() if level == MQTT5 else b""
    return SubAck(packet_id, cursor.take(cursor.end - cursor.pos), properties)


def build_suback(s: SubAck, level: int) -> bytes:
    """A whole SUBACK packet for `s`."""
    props = (s.properties or b"\x00") if level == MQTT5 else b""
    return frame(SUBACK << 4, s.packet_id.to_bytes(2, "big") + props + s.codes)


def valid_filter(topic_filter: str) -> bool:
    """Whether `topic_filter` is a valid MQTT topic filter (wildcards where allowed)."""
    if not topic_filter:
        return False
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def split_shared(topic_filter: str) -> tuple[str | None, str]:
    """(share group, filter) of a ``$share/group/filter`` subscription; group None otherwise."""
    if not topic_filter.startswith("$share/"):
        return None, topic_filter
    _, group, rest = [*topic_filter.split("/", 2), "", ""][:3]
    return group, rest


def valid_subscription(topic_filter: str) -> bool:
    """Whether a SUBSCRIBE may carry `topic_filter` (shared subscriptions included)."""
    group, inner = split_shared(topic_filter)
    if group is not None and (not group or "+" in group or "#" in group):
        return False
    return valid_filter(inner)
