"""Value types of the historian."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

# A sample as a tuple: tag path, source ns, value, quality code, then anything else.
SampleRow = tuple[str, int, bool | int | float | str, int, Any]


class Aggregate(StrEnum):
    """Aggregates a bucketed history query can return."""

    MIN = "min"
    MAX = "max"
    AVG = "avg"
    COUNT = "count"
    FIRST = "first"
    LAST = "last"


AGGREGATES: Final = tuple(Aggregate)
_NUMBERS: Final = frozenset({int, float})


@dataclass(slots=True)
class RawColumns:
    """A batch of raw samples in column form, as the writer appends them.

    `value` holds numbers and booleans (as 0/1, remembered per tag in `boolean_tags`);
    `text` holds string values; exactly one of the two is set per row.
    """

    tag: list[str] = field(default_factory=list)
    ts_ns: list[int] = field(default_factory=list)
    ingest_ns: list[int] = field(default_factory=list)
    value: list[float | None] = field(default_factory=list)
    text: list[str | None] = field(default_factory=list)
    quality: list[int] = field(default_factory=list)
    msg_id: list[int] = field(default_factory=list)
    boolean_tags: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.tag)

    def append(
        self,
        tag: str,
        ts_ns: int,
        ingest_ns: int,
        value: bool | int | float | str,
        quality: int,
        msg_id: int,
    ) -> None:
        """Add one row."""
        self.tag.append(tag)
        self.ts_ns.append(ts_ns)
        self.ingest_ns.append(ingest_ns)
        if type(value) is bool:
            self.boolean_tags.add(tag)
        if isinstance(value, str):
            self.value.append(None)
            self.text.append(value)
        else:
            self.value.append(float(value))
            self.text.append(None)
        self.quality.append(quality)
        self.msg_id.append(msg_id)

    def append_row(self, other: RawColumns, index: int) -> None:
        """Copy row `index` of another batch."""
        self.tag.append(other.tag[index])
        self.ts_ns.append(other.ts_ns[index])
        self.ingest_ns.append(other.ingest_ns[index])
        self.value.append(other.value[index])
        self.text.append(other.text[index])
        self.quality.append(other.quality[index])
        self.msg_id.append(other.msg_id[index])

    def extend_columns(
        self,
        tags: list[str],
        stamps: list[int],
        values: Sequence[bool | int | float | str],
        quality: int,
        ingest_ns: int,
        msg_id: int,
    ) -> None:
        """Add the samples of one message given as columns with one quality."""
        count = len(tags)
        kinds = set(map(type, values))
        self.tag.extend(tags)
        self.ts_ns.extend(stamps)
        self.ingest_ns.extend([ingest_ns] * count)
        if kinds <= _NUMBERS:
            self.value.extend(map(float, values))
            self.text.extend([None] * count)
        else:
            self.value.extend([None if type(v) is str else float(v) for v in values])
            self.text.extend([v if type(v) is str else None for v in values])
            if bool in kinds:
                flags = zip(tags, values, strict=True)
                self.boolean_tags.update(t for t, v in flags if type(v) is bool)
        self.quality.extend([quality] * count)
        self.msg_id.extend([msg_id] * count)

    def extend(self, samples: Sequence[SampleRow], ingest_ns: int, msg_id: int) -> None:
        """Add the samples of one message (column-wise, for speed)."""
        if not samples:
            return
        tags, stamps, values, qualities = list(zip(*samples, strict=False))[:4]
        count = len(samples)
        self.tag.extend(tags)
        self.ts_ns.extend(stamps)
        self.ingest_ns.extend([ingest_ns] * count)
        self.value.extend([None if type(v) is str else float(v) for v in values])
        if bool in map(type, values):
            flags = zip(tags, values, strict=True)
            self.boolean_tags.update(t for t, v in flags if type(v) is bool)
        self.text.extend([v if type(v) is str else None for v in values])
        self.quality.extend(qualities)
        self.msg_id.extend([msg_id] * count)


@dataclass(frozen=True, slots=True)
class Point:
    """One stored sample as a query returns it."""

    ts_ns: int
    ingest_ns: int
    value: bool | float | str | None
    quality: int
    msg_id: int
    flags: int = 0


@dataclass(frozen=True, slots=True)
class Bucket:
    """Aggregates of one time bucket."""

    start_ns: int
    count: int
    min: float | None
    max: float | None
    avg: float | None
    first: float | None
    last: float | None


@dataclass(frozen=True, slots=True)
class TagLast:
    """The newest stored sample of a tag."""

    tag: str
    point: Point
