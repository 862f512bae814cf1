"""Sparkplug B 3.0 payloads as plain immutable Python values (no protobuf in sight).

Python value per datatype: INT8..UINT64 and DATETIME -> int (DateTime = epoch ms, UTC);
FLOAT/DOUBLE -> float; BOOLEAN -> bool; STRING/TEXT/UUID -> str; BYTES/FILE -> bytes; *_ARRAY ->
tuple of the element type (DateTimeArray -> ints in ms); DATASET -> DataSet; TEMPLATE ->
Template; PROPERTY_SET -> PropertySet; PROPERTY_SET_LIST -> tuple[PropertySet, ...].
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeAlias, cast

from werk.sparkplug.datatypes import DataType

ScalarValue: TypeAlias = bool | int | float | str
PropertyValueType: TypeAlias = "ScalarValue | PropertySet | tuple[PropertySet, ...] | None"
MetricValue: TypeAlias = (
    "bool | int | float | str | bytes | tuple[int, ...] | tuple[float, ...] | tuple[bool, ...]"
    " | tuple[str, ...] | DataSet | Template | PropertySet | tuple[PropertySet, ...] | None"
)
DatatypeLookup: TypeAlias = Callable[[str | None, int | None], DataType | None]
"""(metric name, alias) -> the datatype announced for it in the birth, or None if unknown."""


@dataclass(frozen=True, slots=True)
class PropertyValue:
    """One typed value of a property set."""

    datatype: DataType
    value: PropertyValueType
    is_null: bool = False


@dataclass(frozen=True, slots=True)
class PropertySet:
    """Ordered key/value properties of a metric (keys may contain dots, e.g. "werk.command_id")."""

    items: tuple[tuple[str, PropertyValue], ...] = ()

    def get(self, key: str) -> PropertyValue | None:
        """Return the first value stored under `key`, or None."""
        for name, value in self.items:
            if name == key:
                return value
        return None

    @classmethod
    def of(cls, **values: tuple[DataType, object]) -> PropertySet:
        """Build a property set from keyword pairs; a None value makes a null property."""
        return cls.from_pairs(
            (key, PropertyValue(datatype, cast(PropertyValueType, value), value is None))
            for key, (datatype, value) in values.items()
        )

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, PropertyValue]]) -> PropertySet:
        """Build a property set from (key, value) pairs, keeping their order."""
        return cls(tuple(pairs))


@dataclass(frozen=True, slots=True)
class MetaData:
    """Optional metadata of a metric (mostly for BYTES / FILE values)."""

    is_multi_part: bool | None = None
    content_type: str | None = None
    size: int | None = None
    seq: int | None = None
    file_name: str | None = None
    file_type: str | None = None
    md5: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class DataSet:
    """A table: named, typed columns and rows of scalar values (None = null cell)."""

    columns: tuple[str, ...]
    types: tuple[DataType, ...]
    rows: tuple[tuple[ScalarValue | None, ...], ...]


@dataclass(frozen=True, slots=True)
class Parameter:
    """A template parameter (a default in a definition, the instance's value in an instance)."""

    name: str
    datatype: DataType
    value: ScalarValue | None


@dataclass(frozen=True, slots=True)
class Template:
    """A user-defined type: a definition (is_definition) or an instance (template_ref)."""

    metrics: tuple[Metric, ...] = ()
    parameters: tuple[Parameter, ...] = ()
    version: str | None = None
    template_ref: str | None = None
    is_definition: bool = False


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric; NDATA/DDATA usually carry only alias, timestamp and value."""

    name: str | None = None
    alias: int | None = None
    timestamp: int | None = None
    datatype: DataType | None = None
    value: MetricValue = None
    is_null: bool = False
    is_historical: bool = False
    is_transient: bool = False
    properties: PropertySet | None = None
    metadata: MetaData | None = None


@dataclass(frozen=True, slots=True)
class Payload:
    """A Sparkplug B payload (timestamp in epoch ms)."""

    timestamp: int | None = None
    metrics: tuple[Metric, ...] = ()
    seq: int | None = None
    uuid: str | None = None
    body: bytes | None = None
