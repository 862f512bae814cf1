"""What connectors and the edge node exchange: tag definitions, readings and writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from werk.sparkplug.datatypes import DataType
from werk.uns.contracts import Quality

Value = bool | int | float | str


@dataclass(frozen=True, slots=True)
class TagSpec:
    """One tag a connector provides: its Sparkplug metric name, type and write access."""

    name: str
    datatype: DataType
    writable: bool = False
    unit: str | None = None
    deadband: float = 0.0
    description: str | None = None


class Reading(NamedTuple):
    """One sample of a tag as a connector read it; `value` is None when unreadable."""

    tag: str
    value: Value | None
    ts_ns: int
    quality: Quality
