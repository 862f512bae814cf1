"""How the edge node's values travel as Sparkplug B metrics (no I/O).

A value is fitted to its tag's datatype before it is kept or sent. Data messages carry
a datatype only where the value alone would land in another protobuf field than the
birth's datatype does. Quality travels as the Int32 property ``Quality`` (OPC codes),
in births always and in data only when not good.
"""

from __future__ import annotations

from typing import Final

from werk.edge.model import Reading, TagSpec, Value
from werk.sparkplug.codec import Metric, PropertySet
from werk.sparkplug.datatypes import (
    FLOAT_TYPES,
    INTEGER_TYPES,
    OPC_BAD,
    OPC_GOOD,
    OPC_UNCERTAIN,
    QUALITY_PROPERTY,
    TEXT_TYPES,
    DataType,
)
from werk.uns.contracts import Quality

UNIT_PROPERTY: Final = "engUnit"
WRITABLE_PROPERTY: Final = "Writable"
# No OPC code for STALE exists in werk's convention; a stale value is an uncertain one.
OPC_CODES: Final = {
    Quality.GOOD: OPC_GOOD,
    Quality.UNCERTAIN: OPC_UNCERTAIN,
    Quality.BAD: OPC_BAD,
    Quality.STALE: OPC_UNCERTAIN,
}
_IMPLIED: Final = frozenset(
    {DataType.BOOLEAN, DataType.DOUBLE, DataType.STRING, DataType.TEXT, DataType.UUID}
    | {DataType.UINT8, DataType.UINT16, DataType.UINT32}
)
_SMALL_INTS: Final = frozenset({DataType.INT8, DataType.INT16, DataType.INT32})
_INT_RANGES: Final = {
    DataType.INT8: (-(2**7), 2**7 - 1),
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
    DataType.UINT8: (0, 2**8 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.UINT64: (0, 2**64 - 1),
    DataType.DATETIME: (0, 2**63 - 1),
}


def birth_metric(alias: int, spec: TagSpec, current: Reading | None, now_ms: int) -> Metric:
    """A device tag as its DBIRTH declares it: name, alias, properties, current value."""
    value = None if current is None else current.value
    quality = Quality.BAD if current is None else current.quality
    props: dict[str, tuple[DataType, object]] = {
        QUALITY_PROPERTY: (DataType.INT32, OPC_CODES[quality]),
        WRITABLE_PROPERTY: (DataType.BOOLEAN, spec.writable),
    }
    if spec.unit:
        props[UNIT_PROPERTY] = (DataType.STRING, spec.unit)
    return Metric(
        name=spec.name,
        alias=alias,
        timestamp=now_ms if current is None else current.ts_ns // 1_000_000,
        datatype=spec.datatype,
        value=value,
        is_null=value is None,
        properties=PropertySet.of(**props),
    )


def data_metric(
    alias: int,
    datatype: DataType,
    value: Value | None,
    ts_ms: int,
    quality: Quality = Quality.GOOD,
    *,
    historical: bool = False,
) -> Metric:
    """A metric of a data message: alias only, quality only when not good."""
    properties = None
    if quality is not Quality.GOOD:
        properties = PropertySet.of(**{QUALITY_PROPERTY: (DataType.INT32, OPC_CODES[quality])})
    return Metric(
        alias=alias,
        timestamp=ts_ms,
        datatype=wire_datatype(datatype, value),
        value=value,
        is_null=value is None,
        is_historical=historical,
        properties=properties,
    )


def wire_datatype(datatype: DataType, value: Value | None) -> DataType | None:
    """The datatype a data message must carry: none, unless the value's Python type alone
    would put it in another protobuf field than the birth's datatype does (Float, 64-bit
    integers, DateTime, negative integers)."""
    if value is None or datatype in _IMPLIED:
        return None
    if datatype in _SMALL_INTS and isinstance(value, int) and value >= 0:
        return None
    return datatype


def fit_value(datatype: DataType, value: Value | None) -> Value | None:
    """`value` as `datatype` carries it, or None when it cannot be carried."""
    if value is None:
        return None
    if datatype in INTEGER_TYPES:
        low, high = _INT_RANGES[datatype]
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        return value if ok else None
    if datatype in FLOAT_TYPES:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return None
    if datatype is DataType.BOOLEAN:
        return value if isinstance(value, bool) else None
    if datatype in TEXT_TYPES:
        return value if isinstance(value, str) else None
    return value
