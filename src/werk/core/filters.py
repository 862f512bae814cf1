"""MQTT-style filters (`+` one level, `#` the rest) over slash-separated names.

The UNS matches topics with them; the historian matches tag paths, KPI names and
dataset names for quality rules and retention.
"""

from __future__ import annotations

from werk.core.errors import TopicError


def matches(topic_filter: str, topic: str) -> bool:
    """Whether `topic` matches the MQTT `topic_filter` (MQTT 5 §4.7 rules)."""
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    if topic.startswith("$") and filter_levels[0] in ("+", "#"):
        return False
    for i, level in enumerate(filter_levels):
        if level == "#":
            return True
        if i >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[i]:
            return False
    return len(filter_levels) == len(topic_levels)


def check_levels(topic_filter: str) -> str:
    """Refuse a filter whose wildcards do not fill whole levels or whose `#` is not last."""
    if not topic_filter:
        raise TopicError("a filter must not be empty", code="bad_filter")
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if level == "#":
            if i != len(levels) - 1:
                raise TopicError("'#' must be the last level of a filter", code="bad_filter")
        elif level != "+" and ("+" in level or "#" in level):
            raise TopicError(
                f"a wildcard must fill a whole level, not {level!r}", code="bad_filter"
            )
    return topic_filter


def filter_within(inner: str, outer: str) -> bool:
    """Whether every topic the filter `inner` matches is also matched by `outer`."""
    inner_levels = inner.split("/")
    outer_levels = outer.split("/")
    for i, level in enumerate(outer_levels):
        if level == "#":
            return not (i == 0 and inner_levels[0].startswith("$"))
        if i >= len(inner_levels):
            return False
        mine = inner_levels[i]
        if mine == "#" or (level != "+" and level != mine):
            return False
        if level == "+" and i == 0 and mine.startswith("$"):
            return False
    return len(inner_levels) == len(outer_levels)
