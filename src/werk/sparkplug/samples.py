"""Sparkplug metric values into UNS sample values: pure code.

Scalars stay what they are; DateTime stays epoch milliseconds; bytes and files become
base64 text; arrays, data sets and property sets become JSON text; template instances
are flattened into one tag per member (``Motor.Speed``).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any, Final

import orjson

from werk.core.clock import NS_PER_MS
from werk.sparkplug.codec import DataSet, Metric, PropertySet, PropertyValue, Template
from werk.sparkplug.datatypes import (
    FLOAT_TYPES,
    INTEGER_TYPES,
    OPC_GOOD,
    OPC_UNCERTAIN,
    QUALITY_PROPERTY,
    DataType,
)
from werk.sparkplug.mapping import UnsMapper
from werk.uns.contracts import Quality

UnsValue = bool | int | float | str
_BINARY: Final = frozenset({DataType.BYTES, DataType.FILE})
_IGNITION_STALE: Final = 500
_OPC_DA_MAX: Final = 255
_SEVERITY: Final = (Quality.GOOD, Quality.UNCERTAIN, Quality.BAD, Quality.BAD)
_STRUCTURED: Final = frozenset(
    {DataType.DATASET, DataType.PROPERTY_SET, DataType.PROPERTY_SET_LIST}
)


def converter(datatype: DataType) -> Callable[[Any], UnsValue] | None:
    """How values of a datatype become UNS values; None when they are used as they are."""
    if datatype in _BINARY:
        return _base64
    if datatype.is_array or datatype in _STRUCTURED:
        return _json_text
    return None


def uns_type(datatype: DataType) -> str | None:
    """The namespace data type of a metric's values; None for templates (their members)."""
    if datatype is DataType.TEMPLATE:
        return None
    if datatype is DataType.BOOLEAN:
        return "boolean"
    if datatype in INTEGER_TYPES or datatype in FLOAT_TYPES:
        return "number"
    return "string"


def quality_of(properties: PropertySet | None) -> Quality:
    """The sample quality a metric's ``Quality`` property stands for.

    0-255 are OPC DA codes (192 good, 64 uncertain, 0 bad), as werk's edge agent sends
    them; 500 is Ignition 7's stale; larger codes are 32-bit OPC UA style codes (Ignition
    8), whose top two bits say good, uncertain or bad.
    """
    if properties is None:
        return Quality.GOOD
    found = properties.get(QUALITY_PROPERTY)
    if found is None or not isinstance(found.value, int) or isinstance(found.value, bool):
        return Quality.GOOD
    code = found.value
    if code == _IGNITION_STALE:
        return Quality.STALE
    if not 0 <= code <= _OPC_DA_MAX:
        return _SEVERITY[((code & 0xFFFFFFFF) >> 30) & 3]
    if code >= OPC_GOOD:
        return Quality.GOOD
    return Quality.UNCERTAIN if code >= OPC_UNCERTAIN else Quality.BAD


def text_property(properties: PropertySet | None, key: str) -> str | None:
    """A string property of a metric, if present."""
    found = None if properties is None else properties.get(key)
    return found.value if found is not None and isinstance(found.value, str) else None


def bool_property(properties: PropertySet | None, key: str) -> bool | None:
    """A boolean property of a metric, if present."""
    found = None if properties is None else properties.get(key)
    return found.value if found is not None and isinstance(found.value, bool) else None


def template_members(
    tag_path: str, template: Template, default_ms: int
) -> Iterator[tuple[str, int, UnsValue, Quality]]:
    """Flatten a template instance into (tag path, ts ms, value, quality) per member."""
    for member in template.metrics:
        if member.name is None or member.is_null or member.value is None:
            continue
        name = UnsMapper.tag(member.name)
        if name is None:
            continue
        path = f"{tag_path}.{name}"
        ts_ms = member.timestamp if member.timestamp is not None else default_ms
        if isinstance(member.value, Template):
            yield from template_members(path, member.value, ts_ms)
            continue
        value = _member_value(member)
        yield path, ts_ms, value, quality_of(member.properties)


def _member_value(member: Metric) -> UnsValue:
    convert = converter(member.datatype) if member.datatype is not None else None
    value = member.value
    if convert is not None:
        return convert(value)
    if isinstance(value, bool | int | float | str):
        return value
    return _json_text(value)


def ms_to_ns(ms: int) -> int:
    """Sparkplug milliseconds to werk nanoseconds."""
    return ms * NS_PER_MS


def _base64(value: Any) -> str:
    return base64.b64encode(bytes(value)).decode("ascii")


def _json_text(value: Any) -> str:
    return orjson.dumps(_plain(value)).decode()


def _plain(value: Any) -> Any:
    if isinstance(value, DataSet):
        return {"columns": list(value.columns), "rows": [list(r) for r in value.rows]}
    if isinstance(value, PropertySet):
        return {key: _plain(item) for key, item in value.items}
    if isinstance(value, PropertyValue):
        return None if value.is_null else _plain(value.value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Template):
        return asdict(value)
    return value
