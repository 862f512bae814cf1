"""The gateway's MQTT codec and pumps: round trips, paho's bytes, random bytes, split streams."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from werk.uns.gateway_pump import BrokerPump, ClientPump, PacketTooLarge
from werk.uns.gateway_subscribe import (
    SubAck,
    Subscribe,
    build_suback,
    build_subscribe,
    parse_suback,
    parse_subscribe,
    split_shared,
    valid_subscription,
)
from werk.uns.mqtt_packets import (
    MQTT5,
    MQTT311,
    PROP_TOPIC_ALIAS,
    PUBACK,
    PUBCOMP,
    PUBREC,
    PUBREL,
    Connect,
    MalformedPacket,
    Will,
    build_ack,
    build_connack,
    build_connect,
    build_disconnect,
    build_publish,
    encode_varint,
    frame_head,
    iter_properties,
    parse_connack,
    parse_connect,
    property_u16,
    publish_head,
    read_varint,
)

levels = st.sampled_from([MQTT311, MQTT5])
texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)
topics = st.text(st.characters(codec="utf-8", exclude_characters="\x00+#"), min_size=1, max_size=40)


def body_of(packet: bytes) -> tuple[int, bytes]:
    """(first byte, body) of one whole packet."""
    head = frame_head(packet, 0, len(packet))
    assert head is not None
    first, header, length = head
    assert header + length == len(packet)
    return first, packet[header:]


def paho_properties(kind: int, **values: object) -> bytes:
    """A property block packed by paho (an independent encoder)."""
    props = Properties(kind)  # type: ignore[no-untyped-call]
    for name, value in values.items():
        setattr(props, name, value)
    return bytes(props.pack())  # type: ignore[no-untyped-call]


# --- primitives -------------------------------------------------------------------------


@given(st.integers(0, 268_435_455))
def test_varint_round_trips(value: int) -> None:
    raw = encode_varint(value)
    assert len(raw) <= 4
    assert read_varint(raw + b"tail", 0, len(raw) + 4) == (value, len(raw))
    assert read_varint(raw[:-1], 0, len(raw) - 1) is None


def test_a_five_byte_length_is_malformed() -> None:
    with pytest.raises(MalformedPacket):
        frame_head(b"\x30\xff\xff\xff\xff\x01", 0, 6)


def test_paho_properties_are_walked() -> None:
    block = paho_properties(
        PacketTypes.PUBLISH, TopicAlias=7, ContentType="json", UserProperty=[("a", "b")],
        MessageExpiryInterval=30, SubscriptionIdentifier=[300], CorrelationData=b"\x00\x01",
    )  # fmt: skip
    length, start = read_varint(block, 0, len(block)) or (0, 0)
    found = {ident for ident, _s, _e in iter_properties(block, start, start + length)}
    assert found == {0x23, 0x03, 0x26, 0x02, 0x0B, 0x09}
    assert property_u16(block, PROP_TOPIC_ALIAS) == 7


# --- CONNECT / CONNACK --------------------------------------------------------------------


@st.composite
def connects(draw: st.DrawFn) -> Connect:
    level = draw(levels)
    v5 = level == MQTT5
    props = paho_properties(PacketTypes.CONNECT, SessionExpiryInterval=draw(st.integers(0, 99)))
    will = None
    if draw(st.booleans()):
        will_props = paho_properties(PacketTypes.WILLMESSAGE, WillDelayInterval=5)
        will = Will(
            draw(topics), draw(st.binary(max_size=50)), draw(st.integers(0, 2)),
            draw(st.booleans()), will_props if v5 else b"",
        )  # fmt: skip
    username = draw(st.none() | texts)
    password = draw(st.none() | st.binary(max_size=30))
    if not v5 and username is None:
        password = None
    return Connect(
        level, draw(st.booleans()), draw(st.integers(0, 65535)), draw(texts),
        props if v5 else b"", will, username, password,
    )  # fmt: skip


@given(connects())
def test_connect_round_trips(connect: Connect) -> None:
    first, body = body_of(build_connect(connect))
    assert first == 0x10
    assert parse_connect(body) == connect


def test_a_connect_written_by_paho_parses() -> None:
    # Bytes as paho 2.2 sends them for MQTT 5 with will, user and password.
    will_props = paho_properties(PacketTypes.WILLMESSAGE, WillDelayInterval=1)
    sent = Connect(MQTT5, True, 30, "dev-1", b"\x00", Will("d/w", b"bye", 1, True, will_props),
                   "dev", b"wk_secret")  # fmt: skip
    parsed = parse_connect(body_of(build_connect(sent))[1])
    assert parsed.will == sent.will
    assert (parsed.username, parsed.password, parsed.keepalive) == ("dev", b"wk_secret", 30)


@pytest.mark.parametrize(
    ("level", "code", "expected"),
    [(MQTT311, 0x04, "20020004"), (MQTT311, 0x05, "20020005"),
     (MQTT5, 0x86, "2003008600"), (MQTT5, 0x87, "2003008700")],
)  # fmt: skip
def test_refusing_connacks_are_exact(level: int, code: int, expected: str) -> None:
    packet = build_connack(level, code)
    assert packet.hex() == expected
    assert parse_connack(body_of(packet)[1], level)[0] == code


def test_connect_flags_that_break_the_protocol_are_refused() -> None:
    good = body_of(build_connect(Connect(MQTT311, True, 10, "c", username="u", password=b"p")))[1]
    flags_at = 7  # after the protocol name (6 bytes) and level
    for flags in (0x03, 0x18 | 0x04, 0x08, 0x40 | 0x02):
        bad = good[:flags_at] + bytes((flags,)) + good[flags_at + 1 :]
        with pytest.raises(MalformedPacket):
            parse_connect(bad)


# --- PUBLISH, acks ------------------------------------------------------------------------


@given(
    topic=topics, payload=st.binary(max_size=100), qos=st.integers(0, 2), level=levels,
    packet_id=st.integers(1, 65535), alias=st.integers(0, 100),
)  # fmt: skip
def test_publish_head_round_trips(
    topic: str, payload: bytes, qos: int, level: int, packet_id: int, alias: int
) -> None:
    props = paho_properties(PacketTypes.PUBLISH, TopicAlias=alias) if alias else b"\x00"
    packet = build_publish(
        topic, payload, level=level, qos=qos, packet_id=packet_id, properties=props
    )
    first, body = body_of(packet)
    v5 = level == MQTT5
    head = publish_head(body, 0, len(body), len(body), qos, v5)
    assert head is not None
    topic_end, got_id, got_alias, payload_start = head
    assert body[2:topic_end].decode() == topic
    assert body[payload_start:] == payload
    assert (got_id, got_alias) == (packet_id if qos else 0, alias if v5 else 0)
    assert (first >> 1) & 3 == qos
    for cut in range(payload_start):  # the head cut short: wait for more, never guess
        assert publish_head(body[:cut], 0, cut, len(body), qos, v5) is None


@pytest.mark.parametrize("kind", [PUBACK, PUBREC, PUBREL, PUBCOMP])
def test_acks_carry_a_reason_only_on_mqtt5(kind: int) -> None:
    assert body_of(build_ack(kind, 513, MQTT311, 0x87))[1] == b"\x02\x01"
    assert body_of(build_ack(kind, 513, MQTT5, 0x87))[1] == b"\x02\x01\x87"
    assert body_of(build_ack(kind, 513, MQTT5))[1] == b"\x02\x01"
    assert build_ack(PUBREL, 1, MQTT311)[0] == 0x62
    assert build_disconnect(MQTT5, 0x98) == b"\xe0\x01\x98"


# --- SUBSCRIBE / SUBACK, filters ----------------------------------------------------------


@given(
    level=levels, packet_id=st.integers(1, 65535),
    entries=st.lists(st.tuples(texts.filter(bool), st.integers(0, 2)), min_size=1, max_size=5),
    options=st.integers(0, 0x2F).filter(lambda o: o & 3 != 3 and (o >> 4) & 3 != 3),
)  # fmt: skip
def test_subscribe_and_suback_round_trip(
    level: int, packet_id: int, entries: list[tuple[str, int]], options: int
) -> None:
    if level == MQTT5:
        entries = [(f, options) for f, _ in entries]
        props = paho_properties(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=[42])
    else:
        props = b""
    request = Subscribe(packet_id, tuple(entries), props)
    first, body = body_of(build_subscribe(request, level))
    assert parse_subscribe(first, body, level) == request
    ack = SubAck(packet_id, bytes([0x01, 0x80, 0x87][: len(entries)]), b"\x00" if props else b"")
    assert parse_suback(body_of(build_suback(ack, level))[1], level) == ack


@pytest.mark.parametrize(
    ("topic_filter", "valid"),
    [("a/+/b", True), ("#", True), ("a/#", True), ("$share/g/a/#", True), ("a/#/b", False),
     ("a+", False), ("a/b#", False), ("", False), ("$share//a", False), ("$share/g+/a", False),
     ("$share/g", False)],
)  # fmt: skip
def test_filters_are_checked(topic_filter: str, valid: bool) -> None:
    assert valid_subscription(topic_filter) is valid


def test_shared_subscriptions_are_split() -> None:
    assert split_shared("$share/grp/uns/#") == ("grp", "uns/#")
    assert split_shared("uns/#") == (None, "uns/#")


# --- random bytes -------------------------------------------------------------------------


@settings(max_examples=300)
@given(data=st.binary(max_size=200), level=levels, first=st.integers(0, 255))
def test_random_bytes_raise_only_malformed_packet(data: bytes, level: int, first: int) -> None:
    v5 = level == MQTT5
    calls = [
        lambda: parse_connect(data),
        lambda: parse_subscribe(first, data, level),
        lambda: parse_suback(data, level),
        lambda: parse_connack(data, level),
        lambda: list(iter_properties(data, 0, len(data))),
        lambda: frame_head(data, 0, len(data)),
        lambda: publish_head(data, 0, len(data), len(data), first & 3, v5),
        lambda: publish_head(data, 0, len(data) // 2, len(data), first & 3, v5),
    ]
    for call in calls:
        with contextlib.suppress(MalformedPacket):
            call()


@settings(max_examples=200)
@given(data=st.binary(max_size=300), level=levels, cut=st.integers(1, 50))
def test_random_streams_raise_only_malformed_packet(data: bytes, level: int, cut: int) -> None:
    pump = make_pipe(level).pump
    try:
        for i in range(0, len(data), cut):
            pump.feed(data[i : i + cut])
    except MalformedPacket:
        pass


# --- pumps --------------------------------------------------------------------------------


@dataclass
class Rules:
    """A grant for the pump tests: publish and subscribe only under ``ok/``."""

    principal_id: str = "p1"

    def may_publish(self, topic: str) -> bool:
        return topic.startswith("ok/")

    def may_subscribe(self, topic_filter: str) -> bool:
        return topic_filter.startswith("ok/")


@dataclass
class Pipe:
    """A client pump, the broker pump it answers through, and what each wrote."""

    pump: ClientPump
    broker: BrokerPump
    upstream: list[bytes]
    to_client: list[bytes]


def make_pipe(level: int, limit: int = 100_000) -> Pipe:
    upstream: list[bytes] = []
    to_client: list[bytes] = []
    broker = BrokerPump(to_client.append, limit, level)
    pump = ClientPump(upstream.append, limit, level=level, grant=Rules(), broker=broker,
                      on_denied=lambda _k, _d: None, alias_max=10)  # fmt: skip
    return Pipe(pump, broker, upstream, to_client)


packets = st.tuples(
    st.sampled_from(["ok/a", "ok/b/c", "no/a", "$SYS/x"]), st.integers(0, 2),
    st.binary(max_size=300),
)  # fmt: skip


@settings(max_examples=150)
@given(level=levels, items=st.lists(packets, min_size=1, max_size=12), cuts=st.data())
def test_pumps_forward_the_same_bytes_however_the_stream_is_cut(
    level: int, items: list[tuple[str, int, bytes]], cuts: st.DataObject
) -> None:
    stream = b"".join(
        build_publish(t, p, level=level, qos=q, packet_id=i + 1)
        for i, (t, q, p) in enumerate(items)
    )
    allowed = b"".join(
        build_publish(t, p, level=level, qos=q, packet_id=i + 1)
        for i, (t, q, p) in enumerate(items)
        if t.startswith("ok/")
    )
    pipe = make_pipe(level)
    pump, upstream, to_client = pipe.pump, pipe.upstream, pipe.to_client
    pos = 0
    while pos < len(stream):
        step = cuts.draw(st.integers(1, 64))
        pump.feed(stream[pos : pos + step])
        pos += step
    assert b"".join(upstream) == allowed
    denied_acks = [q for t, q, _ in items if not t.startswith("ok/") and q]
    assert len(to_client) == len(denied_acks)
    assert pump.messages == sum(t.startswith("ok/") for t, _, _ in items)


def test_a_denied_qos2_publish_is_completed_by_the_pump() -> None:
    pipe = make_pipe(MQTT5)
    pump, upstream, to_client = pipe.pump, pipe.upstream, pipe.to_client
    pump.feed(build_publish("no/x", b"1", level=MQTT5, qos=2, packet_id=9))
    assert to_client == [build_ack(PUBREC, 9, MQTT5, 0x87)]
    pump.feed(build_ack(PUBREL, 9, MQTT5))
    assert to_client[-1] == build_ack(PUBCOMP, 9, MQTT5)
    pump.feed(build_ack(PUBREL, 10, MQTT5))  # not ours: goes to the broker
    assert upstream == [build_ack(PUBREL, 10, MQTT5)]


def test_mixed_subscribe_is_filtered_and_its_suback_completed() -> None:
    pipe = make_pipe(MQTT5)
    pump, upstream, to_client = pipe.pump, pipe.upstream, pipe.to_client
    request = Subscribe(5, (("no/#", 1), ("ok/#", 1), ("$share/g/$SYS/#", 0), ("a/#/b", 0)))
    pump.feed(build_subscribe(request, MQTT5))
    assert upstream == [build_subscribe(Subscribe(5, (("ok/#", 1),)), MQTT5)]
    pipe.broker.feed(build_suback(SubAck(5, b"\x01"), MQTT5))
    assert to_client == [build_suback(SubAck(5, b"\x87\x01\x87\x8f"), MQTT5)]


def test_topic_aliases_resolve_per_connection() -> None:
    pipe = make_pipe(MQTT5)
    pump, upstream = pipe.pump, pipe.upstream
    alias = paho_properties(PacketTypes.PUBLISH, TopicAlias=3)
    pump.feed(build_publish("ok/a", b"1", level=MQTT5, properties=alias))
    pump.feed(build_publish("", b"2", level=MQTT5, properties=alias))
    pump.feed(build_publish("no/a", b"3", level=MQTT5, properties=alias))
    pump.feed(build_publish("", b"4", level=MQTT5, properties=alias))  # now "no/a": denied
    assert len(upstream) == 2
    with pytest.raises(MalformedPacket):
        pump.feed(build_publish("", b"5", level=MQTT5,
                                properties=paho_properties(PacketTypes.PUBLISH, TopicAlias=4)))  # fmt: skip
    with pytest.raises(MalformedPacket):
        pump.feed(build_publish("ok/b", b"5", level=MQTT5,
                                properties=paho_properties(PacketTypes.PUBLISH, TopicAlias=11)))  # fmt: skip


def test_large_publishes_stream_through_without_buffering() -> None:
    pipe = make_pipe(MQTT311, limit=1_000_000)
    pump, upstream = pipe.pump, pipe.upstream
    packet = build_publish("ok/big", b"x" * 500_000, level=MQTT311, qos=1, packet_id=1)
    for i in range(0, len(packet), 1000):
        pump.feed(packet[i : i + 1000])
    assert b"".join(upstream) == packet
    assert max(len(chunk) for chunk in upstream) <= 1000


def test_oversized_and_forbidden_packets_are_refused() -> None:
    pump = make_pipe(MQTT311, limit=1000).pump
    with pytest.raises(PacketTooLarge):
        pump.feed(build_publish("ok/a", b"x" * 2000, level=MQTT311)[:10])
    for bad in (build_connack(MQTT311, 0), build_publish("ok/+", b"", level=MQTT311),
                b"\x36\x05\x00\x01a\x00\x00", b"\x00\x00"):  # fmt: skip
        with pytest.raises(MalformedPacket):
            make_pipe(MQTT311).pump.feed(bad)
