"""Fast decoding of plain data payloads: the metrics are read column by column, not one by one.

A busy NDATA/DDATA carries many metrics of one simple shape (alias, timestamp, value). Reading
them one protobuf field at a time costs about a microsecond per metric. Here the payload bytes are
parsed once more as `PayloadColumns`, where protobuf itself gathers each field of all metrics into
one list. That is only right when every metric carries exactly the fields of the non-empty
columns, once each, and the checks below prove it:

* the parsed payload serializes to exactly as many bytes as were received, so no field occurred
  twice within a metric (protobuf keeps the last one and drops the others) and no metric held
  two value fields;
* `PayloadWireCheck` found no scalar field sent length-delimited (protobuf would read such a field
  as a packed list of several values in the columns view, and ignore it in the real message);
* every per-metric column is empty or holds one entry per metric, and the value columns hold one
  value per metric in total.

Anything else (nulls, properties, datasets, templates, a bad value) goes to the field-by-field
decoder, which also gives the precise error for a bad payload.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from functools import partial
from itertools import repeat
from typing import Any, Final, NamedTuple, cast

from google.protobuf.message import DecodeError

from werk.sparkplug import arrays
from werk.sparkplug import sparkplug_b_pb2 as pb
from werk.sparkplug.datatypes import DataType
from werk.sparkplug.payload import DatatypeLookup, Metric
from werk.sparkplug.values import (
    DATATYPES,
    RAW_DECODERS,
    SCALAR_DECODERS,
    Decoder,
    Fault,
    unchanged,
)

_MIN_METRICS: Final = 8  # below this the two extra parses cost more than they save
_PER_METRIC: Final = ("name", "alias", "timestamp", "datatype", "is_historical", "is_transient")
_ABSENT: Final = (
    "is_null",
    "metadata",
    "properties",
    "dataset_value",
    "template_value",
    "extension_value",
)
_VALUES: Final = (
    "int_value",
    "long_value",
    "float_value",
    "double_value",
    "boolean_value",
    "string_value",
    "bytes_value",
)
_WIRE: Final = tuple(field.name for field in pb.MetricWireCheck.DESCRIPTOR.fields)
_BYTES_TYPES: Final = frozenset({DataType.BYTES, DataType.FILE})


class _MetricSlots:
    """Metric's slot layout without the frozen guard, to build decoded metrics quickly.

    A frozen dataclass stores each of its ten fields through object.__setattr__; plain slot
    stores, then switching the instance's class to Metric (allowed because both classes have
    the same slots), cost a quarter of that.
    """

    __slots__ = Metric.__slots__

    def __init__(
        self,
        name: str | None,
        alias: int | None,
        timestamp: int | None,
        datatype: DataType | None,
        value: Any,
        is_historical: bool,
        is_transient: bool,
    ) -> None:
        self.name = name
        self.alias = alias
        self.timestamp = timestamp
        self.datatype = datatype
        self.value = value
        self.is_null = False
        self.is_historical = is_historical
        self.is_transient = is_transient
        self.properties = None
        self.metadata = None
        self.__class__ = Metric  # type: ignore[assignment]


def metrics(
    data: bytes, message: pb.Payload, datatype_of: DatatypeLookup | None
) -> tuple[Metric, ...] | None:
    """Decode the metrics of `message` column-wise, or None if it needs the full decoder."""
    count = len(message.metrics)
    if count < _MIN_METRICS or message.ByteSize() != len(data):
        return None
    try:
        columns = pb.PayloadColumns.FromString(data).metrics
        wire = pb.PayloadWireCheck.FromString(data).metrics
    except DecodeError:
        return None
    if any(getattr(wire, field) for field in _WIRE) or not _plain(columns, count):
        return None
    try:
        return _build(message, columns, count, datatype_of)
    except Fault:
        return None


class DataColumns(NamedTuple):
    """A plain data payload as columns: metrics by alias with timestamp and scalar value."""

    timestamp: int | None
    seq: int | None
    aliases: list[int]
    timestamps: list[int | None]
    values: list[Any]


def data_columns(data: bytes, alias_types: Mapping[int, DataType]) -> DataColumns | None:
    """Decode a payload of plain metrics, all by alias and all typed by `alias_types`.

    None when the payload is anything else (names, flags, an alias `alias_types` lacks, a
    defect): `decode` then gives the metrics or the precise error.
    """
    try:
        message = pb.Payload.FromString(data)
    except DecodeError:
        return None
    count = len(message.metrics)
    if count < _MIN_METRICS or message.ByteSize() != len(data):
        return None
    try:
        columns = pb.PayloadColumns.FromString(data).metrics
        wire = pb.PayloadWireCheck.FromString(data).metrics
    except DecodeError:
        return None
    if any(getattr(wire, field) for field in _WIRE) or not _plain(columns, count):
        return None
    if columns.name or columns.datatype or columns.is_historical or columns.is_transient:
        return None
    return _typed_columns(message, columns, count, alias_types)


def _typed_columns(
    message: pb.Payload,
    columns: pb.MetricColumns,
    count: int,
    alias_types: Mapping[int, DataType],
) -> DataColumns | None:
    aliases = columns.alias[:]
    if len(aliases) != count or not alias_types.keys() >= set(aliases):
        return None
    fields, values = _values(message, columns)
    if fields is None:
        return None
    try:
        values = _convert(list(map(alias_types.__getitem__, aliases)), fields, values)
    except Fault:
        return None
    timestamp = message.timestamp if message.HasField("timestamp") else None
    seq = message.seq if message.HasField("seq") else None
    return DataColumns(timestamp, seq, aliases, _column(columns.timestamp[:], count), values)


def _plain(columns: pb.MetricColumns, count: int) -> bool:
    if any(getattr(columns, field) for field in _ABSENT):
        return False
    if any(len(getattr(columns, field)) not in (0, count) for field in _PER_METRIC):
        return False
    return sum(len(getattr(columns, field)) for field in _VALUES) == count


def _build(
    message: pb.Payload,
    columns: pb.MetricColumns,
    count: int,
    datatype_of: DatatypeLookup | None,
) -> tuple[Metric, ...] | None:
    names = _column(columns.name[:], count)
    if columns.name and set(map(type, names)) != {str}:
        return None  # a name that is not UTF-8: the full decoder reports it
    aliases = _column(columns.alias[:], count)
    datatypes = _datatypes(columns.datatype[:], names, aliases, datatype_of, count)
    fields, values = _values(message, columns)
    if fields is None:
        return None
    values = _convert(datatypes, fields, values)
    timestamps = _column(columns.timestamp[:], count)
    historical = columns.is_historical[:] or repeat(False, count)
    transient = columns.is_transient[:] or repeat(False, count)
    built = map(_MetricSlots, names, aliases, timestamps, datatypes, values, historical, transient)
    return cast(tuple[Metric, ...], tuple(built))


def _column(values: list[Any], count: int) -> list[Any]:
    return values or [None] * count


def _datatypes(
    numbers: list[int],
    names: list[Any],
    aliases: list[Any],
    datatype_of: DatatypeLookup | None,
    count: int,
) -> list[DataType | None]:
    if not numbers:
        if datatype_of is None:
            return [None] * count
        return list(map(datatype_of, names, aliases))
    if max(numbers) >= len(DATATYPES):
        raise Fault("sparkplug_datatype", "unknown datatype number")
    datatypes: list[DataType | None] = list(map(DATATYPES.__getitem__, numbers))
    if 0 not in numbers:
        return datatypes
    lookup = datatype_of or _no_lookup
    together = zip(datatypes, names, aliases, strict=True)
    return [own or lookup(name, alias) for own, name, alias in together]


def _no_lookup(name: str | None, alias: int | None) -> None:
    return None


def _values(message: pb.Payload, columns: pb.MetricColumns) -> tuple[Any, list[Any]]:
    present = [(field, getattr(columns, field)[:]) for field in _VALUES]
    present = [(field, values) for field, values in present if values]
    if len(present) == 1:
        return present[0]
    # Several value fields in use: protobuf tells which one each metric carries.
    fields: list[str | None] = [item.WhichOneof("value") for item in message.metrics]
    per_field = Counter(fields)
    if any(per_field[field] != len(values) for field, values in present):
        return None, []
    pulls = {field: iter(values).__next__ for field, values in present}
    return fields, [pulls[cast(str, field)]() for field in fields]


def _convert(datatypes: list[DataType | None], fields: str | list[str], values: list[Any]) -> Any:
    kinds = set(datatypes)
    if DataType.UNKNOWN in kinds:
        datatypes[:] = [datatype or None for datatype in datatypes]  # UNKNOWN tells nothing
        kinds = set(datatypes)
    if isinstance(fields, str):
        by_type = {datatype: _decoder(datatype, fields) for datatype in kinds}
        if all(decode is unchanged for decode in by_type.values()):
            return values
        return [by_type[datatype](value) for datatype, value in zip(datatypes, values, strict=True)]
    pairs = list(zip(datatypes, fields, strict=True))
    by_pair = {pair: _decoder(*pair) for pair in set(pairs)}
    return [by_pair[pair](value) for pair, value in zip(pairs, values, strict=True)]


def _decoder(datatype: DataType | None, field: str) -> Decoder:
    if field == "bytes_value":
        return _bytes_decoder(datatype)
    decode = RAW_DECODERS[field] if datatype is None else SCALAR_DECODERS.get((datatype, field))
    if decode is None:
        raise Fault("sparkplug_datatype", "value field does not match the datatype")
    return decode


def _bytes_decoder(datatype: DataType | None) -> Callable[[bytes], Any]:
    if datatype is None or datatype in _BYTES_TYPES:
        return unchanged
    if datatype.is_array:
        return partial(arrays.unpack, datatype)
    raise Fault("sparkplug_datatype", "value field does not match the datatype")
