"""The ISA-95 topic model: parse, build, validate, match (property-based where it counts)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from werk.core.errors import TopicError
from werk.core.filters import matches
from werk.uns.topics import (
    MAX_ASSET_LEVELS,
    MAX_SEGMENT_CHARS,
    DataClass,
    Node,
    UnsTopic,
    check_filter,
    parse_tag_path,
    parse_topic,
    value_topic,
)

_FIRST = st.characters(categories=("Lu", "Ll", "Nd"), codec="utf-8")
_REST = st.one_of(_FIRST, st.sampled_from("._-~"))
segment = st.builds(
    lambda a, b: a + b, _FIRST, st.text(_REST, max_size=MAX_SEGMENT_CHARS - 1)
).filter(lambda s: len(s) <= MAX_SEGMENT_CHARS)
nodes = st.builds(
    lambda head, assets: Node(*head, assets=tuple(assets)),
    st.lists(segment, min_size=5, max_size=5),
    st.lists(segment, max_size=3),
)


@given(node=nodes, tag=segment)
def test_value_topic_round_trips(node: Node, tag: str) -> None:
    topic = UnsTopic(node, DataClass.VALUE, tag)
    text = topic.topic()
    if len(text.encode()) <= 1024:
        assert parse_topic(text) == topic
        assert parse_tag_path(topic.tag_path) == (node, tag)


@given(node=nodes)
def test_batch_topic_round_trips(node: Node) -> None:
    topic = UnsTopic(node, DataClass.BATCH)
    if len(topic.topic().encode()) <= 1024:
        assert parse_topic(topic.topic()) == topic


def test_parse_names_every_part() -> None:
    parsed = parse_topic("uns/v1/acme/berlin/machining/line-1/cell-2/cnc-1/_value/spindle.speed")
    assert parsed.node.segments == ("acme", "berlin", "machining", "line-1", "cell-2", "cnc-1")
    assert parsed.node.assets == ("cnc-1",)
    assert parsed.data_class is DataClass.VALUE
    assert parsed.tag_path == "acme/berlin/machining/line-1/cell-2/cnc-1/spindle.speed"


def test_unicode_level_names_are_allowed() -> None:
    parsed = parse_topic("uns/v1/müller/köln/größe/linie-1/zelle-1/_value/temperatur")
    assert parsed.node.enterprise == "müller"


@pytest.mark.parametrize(
    ("topic", "code"),
    [
        ("", "empty_topic"),
        ("other/acme/b/c/d/e/_value/t", "bad_root"),
        ("uns/v1/acme/b/c/d/e/t", "no_class"),
        ("uns/v1/acme/b/c/d/e/_nope/t", "unknown_class"),
        ("uns/v1/acme/b/c/d/_value/t", "too_short"),
        ("uns/v1/acme/b/c/d/e/_value", "no_tag"),
        ("uns/v1/acme/b/c/d/e/_batch/t", "extra_tag"),
        ("uns/v1/acme/b/c/d/e/_value/a/b", "bad_tag"),
        ("uns/v1/acme/b/+/d/e/_value/t", "wildcard"),
        ("uns/v1/acme/b/#/d/e/_value/t", "wildcard"),
        ("uns/v1/acme/b/c\x00/d/e/_value/t", "nul"),
        ("uns/v1/acme//c/d/e/_value/t", "empty_segment"),
        ("uns/v1/acme/b c/c/d/e/_value/t", "bad_segment"),
        ("uns/v1/acme/b/c/d/e/_value/-t", "bad_tag"),
        ("uns/v1/" + "x" * 65 + "/b/c/d/e/_value/t", "too_long"),
        ("uns/v1/a/b/c/d/e/" + "/".join(["f"] * (MAX_ASSET_LEVELS + 1)) + "/_value/t", "too_deep"),
        ("uns/v1/a/b/c/d/e/_value/\udcff", "not_utf8"),
        ("uns/v1/" + "/".join(["abcdefgh"] * 120) + "/_value/t", "too_long"),
    ],
)
def test_bad_topics_say_what_is_wrong(topic: str, code: str) -> None:
    with pytest.raises(TopicError) as info:
        parse_topic(topic)
    assert info.value.code == code


def test_value_topic_from_tag_path() -> None:
    assert value_topic("a/b/c/d/e/t") == "uns/v1/a/b/c/d/e/_value/t"
    assert value_topic("a/b/c/d/e/t", root="plant") == "plant/a/b/c/d/e/_value/t"


def _reference_match(topic_filter: str, topic: str) -> bool:
    """MQTT matching through a regular expression, as an independent oracle."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    parts = []
    for level in topic_filter.split("/"):
        parts.append({"+": "[^/]*", "#": None}.get(level, re.escape(level)))
    if parts == [None]:
        pattern = ".*"
    elif parts[-1] is None:
        body = "/".join(p for p in parts[:-1] if p is not None)
        pattern = f"{body}(?:/.*)?"
    else:
        pattern = "/".join(p for p in parts if p is not None)
    return re.fullmatch(pattern, topic, flags=re.DOTALL) is not None


level = st.sampled_from(["a", "b", "c", "", "$SYS"])
topics = st.lists(level, min_size=1, max_size=5).map("/".join)
filters = (
    st.lists(st.sampled_from(["a", "b", "c", "", "+", "$SYS"]), min_size=1, max_size=5)
    .flatmap(lambda levels: st.sampled_from(["/".join(levels), "/".join([*levels, "#"]), "#"]))
    .filter(bool)
)


@given(topic_filter=filters, topic=topics)
def test_matching_agrees_with_a_regex_oracle(topic_filter: str, topic: str) -> None:
    assert matches(topic_filter, topic) == _reference_match(topic_filter, topic)


@given(topic=topics)
def test_hash_matches_every_normal_topic_and_topic_matches_itself(topic: str) -> None:
    assert matches("#", topic) == (not topic.startswith("$"))
    assert matches(topic, topic)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("sport/tennis/player1/#", "sport/tennis/player1", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
        ("sport/+", "sport", False),
        ("sport/+", "sport/", True),
        ("+/+", "/finance", True),
        ("/+", "/finance", True),
        ("+", "/finance", False),
        ("#", "$SYS/broker", False),
        ("$SYS/#", "$SYS/broker", True),
    ],
)
def test_matching_follows_the_mqtt_spec_examples(
    topic_filter: str, topic: str, *, expected: bool
) -> None:
    assert matches(topic_filter, topic) is expected


@pytest.mark.parametrize("bad", ["a/#/b", "a/b#", "a+/b", "", "a/\x00"])
def test_bad_filters_are_rejected(bad: str) -> None:
    with pytest.raises(TopicError):
        check_filter(bad)


@given(topic_filter=filters)
def test_generated_filters_are_valid(topic_filter: str) -> None:
    assert check_filter(topic_filter) == topic_filter
