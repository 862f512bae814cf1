"""The ISA-95 Unified Namespace topic model: pure code, no I/O.

A UNS topic is::

    <root>/<enterprise>/<site>/<area>/<line>/<cell>[/<asset>...]/_<class>[/<tag>]

`root` is configurable (default ``uns/v1``). The five ISA-95 levels are mandatory, up
to `MAX_ASSET_LEVELS` asset levels may follow, then a data-class marker that starts
with ``_`` (so it can never be mistaken for a level name), then, for classes that
address a single tag, the tag name as one segment (dots group tags:
``spindle.speed``). A *tag path* is the same without root and marker:
``acme/berlin/machining/line-1/cell-2/cnc-1/spindle.speed``. See docs/adr/0002.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from werk.core.errors import TopicError
from werk.core.filters import check_levels

ISA95_LEVELS: Final = ("enterprise", "site", "area", "line", "cell")
MAX_ASSET_LEVELS: Final = 8
MAX_SEGMENT_CHARS: Final = 64
MAX_TOPIC_BYTES: Final = 1024
DEFAULT_ROOT: Final = "uns/v1"

_NAME = re.compile(r"[^\W_][\w.\-~]*\Z")
_ROOT_SEGMENT = re.compile(r"[\w.\-]+\Z")


class DataClass(StrEnum):
    """The kinds of message a UNS topic can carry; each has a versioned contract."""

    VALUE = "value"
    BATCH = "batch"
    COMMAND = "cmd"

    @property
    def marker(self) -> str:
        """Topic segment that announces the class."""
        return f"_{self.value}"

    @property
    def has_tag(self) -> bool:
        """Whether topics of this class end in a tag name."""
        return self is not DataClass.BATCH


_MARKERS: Final = {cls.marker: cls for cls in DataClass}


@dataclass(frozen=True, slots=True)
class Node:
    """A place in the ISA-95 hierarchy: the five levels plus optional asset levels."""

    enterprise: str
    site: str
    area: str
    line: str
    cell: str
    assets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for segment in self.segments:
            check_segment(segment)
        if len(self.assets) > MAX_ASSET_LEVELS:
            raise TopicError(
                f"at most {MAX_ASSET_LEVELS} asset levels are allowed, got {len(self.assets)}",
                code="too_deep",
            )

    @property
    def segments(self) -> tuple[str, ...]:
        """Every level name, top down."""
        return (self.enterprise, self.site, self.area, self.line, self.cell, *self.assets)

    @property
    def path(self) -> str:
        """The node as a `/`-joined path."""
        return "/".join(self.segments)

    @classmethod
    def from_segments(cls, segments: tuple[str, ...] | list[str]) -> Node:
        """Build a node from at least five level names."""
        if len(segments) < len(ISA95_LEVELS):
            raise TopicError(
                f"an ISA-95 path needs {len(ISA95_LEVELS)} levels "
                f"({'/'.join(ISA95_LEVELS)}), got {len(segments)}",
                code="too_short",
            )
        e, s, a, line, cell = segments[:5]
        return cls(e, s, a, line, cell, assets=tuple(segments[5:]))


@dataclass(frozen=True, slots=True)
class UnsTopic:
    """A parsed UNS topic: where, what kind of message, and which tag."""

    node: Node
    data_class: DataClass
    tag: str | None = None

    def __post_init__(self) -> None:
        if self.data_class.has_tag and self.tag is None:
            raise TopicError(f"a _{self.data_class} topic must end in a tag name", code="no_tag")
        if not self.data_class.has_tag and self.tag is not None:
            raise TopicError(f"a _{self.data_class} topic carries no tag name", code="extra_tag")
        if self.tag is not None:
            check_tag(self.tag)

    def topic(self, root: str = DEFAULT_ROOT) -> str:
        """Render the MQTT topic under `root`."""
        parts = [root, self.node.path, self.data_class.marker]
        if self.tag is not None:
            parts.append(self.tag)
        return "/".join(parts)

    @property
    def tag_path(self) -> str:
        """The tag path (node path plus tag); only for classes that carry a tag."""
        if self.tag is None:
            raise TopicError("a batch topic has no single tag path", code="no_tag")
        return f"{self.node.path}/{self.tag}"


def check_segment(segment: str) -> str:
    """Validate one level name; return it unchanged."""
    return _check_name(segment, what="level name", code="bad_segment")


def check_tag(tag: str) -> str:
    """Validate a tag name (one segment; dots group related tags)."""
    return _check_name(tag, what="tag name", code="bad_tag")


def _check_name(name: str, *, what: str, code: str) -> str:
    _check_text(name, what=what)
    if not _NAME.match(name):
        raise TopicError(
            f"{what} {name!r} must start with a letter or digit and contain only "
            "letters, digits, '.', '-', '_' or '~'",
            code=code,
            name=name,
        )
    return name


def check_root(root: str) -> str:
    """Validate the configured topic root, e.g. ``uns/v1``."""
    segments = root.split("/")
    if not root or not all(_ROOT_SEGMENT.match(s) for s in segments):
        raise TopicError(f"topic root {root!r} is not valid", code="bad_root")
    return root


def _check_text(text: str, *, what: str) -> None:
    if not text:
        raise TopicError(f"empty {what}", code="empty_segment")
    if "\x00" in text:
        raise TopicError(f"{what} contains a NUL character", code="nul")
    if "+" in text or "#" in text:
        raise TopicError(f"{what} {text!r} contains an MQTT wildcard", code="wildcard")
    if len(text) > MAX_SEGMENT_CHARS:
        raise TopicError(
            f"{what} is {len(text)} characters long; the limit is {MAX_SEGMENT_CHARS}",
            code="too_long",
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TopicError(f"{what} is not valid UTF-8", code="not_utf8") from exc


def _check_topic_text(topic: str) -> None:
    if not topic:
        raise TopicError("empty topic", code="empty_topic")
    if "\x00" in topic:
        raise TopicError("topic contains a NUL character", code="nul")
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise TopicError("topic is not valid UTF-8", code="not_utf8") from exc
    if size > MAX_TOPIC_BYTES:
        raise TopicError(
            f"topic is {size} bytes long; the limit is {MAX_TOPIC_BYTES}", code="too_long"
        )


def parse_topic(topic: str, root: str = DEFAULT_ROOT) -> UnsTopic:
    """Parse an MQTT topic into a `UnsTopic`; raise `TopicError` saying what is wrong."""
    _check_topic_text(topic)
    prefix = root + "/"
    if not topic.startswith(prefix):
        raise TopicError(f"topic {topic!r} is not under the UNS root {root!r}", code="bad_root")
    segments = topic[len(prefix) :].split("/")
    marker_at = next((i for i, s in enumerate(segments) if s.startswith("_")), None)
    if marker_at is None:
        raise TopicError(
            f"topic {topic!r} has no data-class segment (one of {', '.join(_MARKERS)})",
            code="no_class",
        )
    data_class = _MARKERS.get(segments[marker_at])
    if data_class is None:
        raise TopicError(
            f"unknown data class {segments[marker_at]!r}; known: {', '.join(_MARKERS)}",
            code="unknown_class",
        )
    node = Node.from_segments(segments[:marker_at])
    rest = segments[marker_at + 1 :]
    if len(rest) > 1:
        raise TopicError(
            f"a tag name is one segment; group tags with '.', not '/': {'/'.join(rest)!r}",
            code="bad_tag",
        )
    return UnsTopic(node, data_class, rest[0] if rest else None)


def parse_tag_path(tag_path: str) -> tuple[Node, str]:
    """Split a tag path (``enterprise/.../cell[/asset...]/tag``) into node and tag."""
    _check_topic_text(tag_path)
    segments = tag_path.split("/")
    if len(segments) < len(ISA95_LEVELS) + 1:
        raise TopicError(
            f"tag path {tag_path!r} needs the five ISA-95 levels and a tag name",
            code="too_short",
        )
    return Node.from_segments(segments[:-1]), check_tag(segments[-1])


def value_topic(tag_path: str, root: str = DEFAULT_ROOT) -> str:
    """The MQTT topic that carries single values of `tag_path`."""
    node, tag = parse_tag_path(tag_path)
    return UnsTopic(node, DataClass.VALUE, tag).topic(root)


def check_filter(topic_filter: str) -> str:
    """Validate an MQTT topic filter (wildcards allowed in their places)."""
    _check_topic_text(topic_filter)
    return check_levels(topic_filter)
