"""The Sparkplug topic namespace and the STATE message."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from werk.core.errors import PayloadError, TopicError
from werk.sparkplug.topics import (
    NAMESPACE,
    HostState,
    MessageType,
    SparkplugTopic,
    StateTopic,
    decode_state,
    encode_state,
    parse_topic,
    state_topic,
)

ids = st.text(
    st.characters(blacklist_characters="/+#\x00", blacklist_categories=["Cs"]), min_size=1
)


@st.composite
def topics(draw: st.DrawFn) -> SparkplugTopic:
    kind = draw(st.sampled_from(list(MessageType)))
    group = draw(ids.filter(lambda value: value != "STATE"))
    return SparkplugTopic(group, kind, draw(ids), draw(ids) if kind.is_device else None)


@given(topics())
def test_any_valid_topic_renders_and_parses_back(topic: SparkplugTopic) -> None:
    assert parse_topic(topic.topic) == topic
    assert topic.node_key == (topic.group, topic.edge_node)


@given(ids)
def test_any_valid_host_id_makes_a_state_topic_that_parses_back(host_id: str) -> None:
    assert state_topic(host_id) == f"spBv1.0/STATE/{host_id}"
    assert parse_topic(state_topic(host_id)) == StateTopic(host_id)


def test_topics_of_the_specification_parse() -> None:
    node = parse_topic("spBv1.0/Sparkplug B Devices/NBIRTH/Raspberry Pi")
    assert node == SparkplugTopic("Sparkplug B Devices", MessageType.NBIRTH, "Raspberry Pi")
    device = parse_topic("spBv1.0/Sparkplug B Devices/DDATA/Raspberry Pi/Pibrella")
    assert isinstance(device, SparkplugTopic)
    assert (device.device, device.node_key) == ("Pibrella", ("Sparkplug B Devices", "Raspberry Pi"))
    assert parse_topic("spBv1.0/STATE/scada-1").topic == "spBv1.0/STATE/scada-1"  # type: ignore[union-attr]


def test_message_types_know_what_they_are() -> None:
    births = {kind for kind in MessageType if kind.is_birth}
    assert births == {MessageType.NBIRTH, MessageType.DBIRTH}
    assert {kind for kind in MessageType if kind.is_death} == {
        MessageType.NDEATH,
        MessageType.DDEATH,
    }
    assert {kind for kind in MessageType if kind.is_data} == {MessageType.NDATA, MessageType.DDATA}
    assert {kind for kind in MessageType if kind.is_command} == {MessageType.NCMD, MessageType.DCMD}
    assert {kind for kind in MessageType if kind.is_device} == {
        MessageType.DBIRTH,
        MessageType.DDEATH,
        MessageType.DDATA,
        MessageType.DCMD,
    }
    assert MessageType("NDATA") == "NDATA"


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("", "namespace"),
        ("spAv1.0/g/NDATA/n", "namespace"),
        ("spbv1.0/g/NDATA/n", "namespace"),
        ("/spBv1.0/g/NDATA/n", "namespace"),
        (NAMESPACE, "levels"),
        ("spBv1.0/g", "levels"),
        ("spBv1.0/g/NDATA", "levels"),
        ("spBv1.0/g/DDATA/n/d/extra", "levels"),
        ("spBv1.0/g/NDATA/n/", "device_not_allowed"),
        ("spBv1.0/g/ndata/n", "message_type"),
        ("spBv1.0/g/STATE/n", "message_type"),
        ("spBv1.0/g/NDATA/n/d", "device_not_allowed"),
        ("spBv1.0/g/NCMD/n/d", "device_not_allowed"),
        ("spBv1.0/g/DDATA/n", "device_missing"),
        ("spBv1.0/g/DBIRTH/n/", "empty_id"),
        ("spBv1.0//NDATA/n", "empty_id"),
        ("spBv1.0/g/NDATA/", "empty_id"),
        ("spBv1.0/g+/NDATA/n", "reserved_char"),
        ("spBv1.0/g/NDATA/#", "reserved_char"),
        ("spBv1.0/g/DDATA/n/+", "reserved_char"),
        ("spBv1.0/g/NDATA/n\x00", "reserved_char"),
        ("spBv1.0/g/NDATA/\ud800", "utf8"),
        ("spBv1.0/STATE", "levels"),
        ("spBv1.0/STATE/", "empty_id"),
        ("spBv1.0/STATE/host/extra", "levels"),
        ("spBv1.0/STATE/NBIRTH/n", "levels"),
        ("spBv1.0/STATE/+", "reserved_char"),
    ],
)
def test_every_invalid_shape_is_a_topic_error_with_a_precise_reason(
    topic: str, reason: str
) -> None:
    with pytest.raises(TopicError) as caught:
        parse_topic(topic)
    assert caught.value.code == "sparkplug_topic"
    assert caught.value.params["reason"] == reason
    assert caught.value.params["topic"] == topic
    assert repr(topic) in caught.value.message


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda: SparkplugTopic("STATE", MessageType.NDATA, "n"), "reserved_group"),
        (lambda: SparkplugTopic("g", MessageType.DDATA, "n"), "device_missing"),
        (lambda: SparkplugTopic("g", MessageType.NDATA, "n", "d"), "device_not_allowed"),
        (lambda: SparkplugTopic("g", "NDATA", "n"), "message_type"),  # type: ignore[arg-type]
        (lambda: SparkplugTopic("a/b", MessageType.NDATA, "n"), "reserved_char"),
        (lambda: state_topic(""), "empty_id"),
    ],
)
def test_topics_that_cannot_be_rendered_are_refused(build: object, reason: str) -> None:
    with pytest.raises(TopicError) as caught:
        build()  # type: ignore[operator]
    assert caught.value.params["reason"] == reason


@given(st.booleans(), st.integers(0, 2**63 - 1))
def test_state_round_trips_as_sparkplug_json(online: bool, timestamp: int) -> None:
    state = HostState(online=online, timestamp=timestamp)
    assert decode_state(encode_state(state)) == state


def test_state_json_has_the_shape_of_the_specification() -> None:
    assert encode_state(HostState(online=True, timestamp=1700000000000)) == (
        b'{"online":true,"timestamp":1700000000000}'
    )
    assert decode_state(b'{"online" : false, "timestamp" : 1668114759262}') == HostState(
        False, 1668114759262
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"online",
        b"[true, 1]",
        b'{"online": true}',
        b'{"timestamp": 1}',
        b'{"online": 1, "timestamp": 1}',
        b'{"online": "true", "timestamp": 1}',
        b'{"online": true, "timestamp": 1.5}',
        b'{"online": true, "timestamp": -1}',
        b'{"online": true, "timestamp": true}',
        b"\xff\xfe",
    ],
)
def test_bad_state_payloads_are_payload_errors(data: bytes) -> None:
    with pytest.raises(PayloadError) as caught:
        decode_state(data)
    assert caught.value.code == "sparkplug_state"


def test_a_state_that_is_not_valid_is_not_encoded() -> None:
    with pytest.raises(PayloadError) as caught:
        encode_state(HostState(online=True, timestamp=-5))
    assert caught.value.code == "sparkplug_state"
