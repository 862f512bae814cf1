"""Decode parsed Sparkplug B protobuf messages into werk's payload values, field by field."""

from __future__ import annotations

from typing import Any, Final, Literal, TypeAlias

from werk.sparkplug import arrays
from werk.sparkplug import sparkplug_b_pb2 as pb
from werk.sparkplug.datatypes import DataType
from werk.sparkplug.payload import (
    DataSet,
    DatatypeLookup,
    MetaData,
    Metric,
    MetricValue,
    Parameter,
    Payload,
    PropertySet,
    PropertyValue,
    PropertyValueType,
    ScalarValue,
    Template,
)
from werk.sparkplug.values import (
    MAX_DEPTH,
    RAW_DECODERS,
    SCALAR_DECODERS,
    SCALAR_TYPES,
    Fault,
    datatype_of_number,
    text,
)

_BYTES_TYPES: Final = frozenset({DataType.BYTES, DataType.FILE})
_MetaText: TypeAlias = Literal["content_type", "file_name", "file_type", "md5", "description"]


def payload(message: pb.Payload, datatype_of: DatatypeLookup | None) -> Payload:
    """Decode a whole parsed payload."""
    return payload_around(message, tuple(metric(item, datatype_of, 0) for item in message.metrics))


def payload_around(message: pb.Payload, metrics: tuple[Metric, ...]) -> Payload:
    """Decode the payload-level fields of `message` around already decoded metrics."""
    return Payload(
        timestamp=message.timestamp if message.HasField("timestamp") else None,
        metrics=metrics,
        seq=message.seq if message.HasField("seq") else None,
        uuid=text(message.uuid, "payload uuid") if message.HasField("uuid") else None,
        body=message.body if message.HasField("body") else None,
    )


def metric(message: pb.Payload.Metric, datatype_of: DatatypeLookup | None, depth: int) -> Metric:
    """Decode one metric; a failure names it in the Fault's path."""
    alias = message.alias if message.HasField("alias") else None
    name = None
    try:
        name = text(message.name, "metric name") if message.HasField("name") else None
        return _metric(message, name, alias, datatype_of, depth)
    except Fault as fault:
        fault.path.insert(0, repr(name) if name is not None else f"alias {alias}")
        raise


def _metric(
    message: pb.Payload.Metric,
    name: str | None,
    alias: int | None,
    datatype_of: DatatypeLookup | None,
    depth: int,
) -> Metric:
    datatype = datatype_of_number(message.datatype) if message.datatype else None
    if datatype is None and datatype_of is not None:
        datatype = datatype_of(name, alias) or None  # UNKNOWN from a birth tells nothing
    return Metric(
        name=name,
        alias=alias,
        timestamp=message.timestamp if message.HasField("timestamp") else None,
        datatype=datatype,
        value=_metric_value(message, datatype, depth),
        is_null=message.is_null,
        is_historical=message.is_historical,
        is_transient=message.is_transient,
        properties=(
            property_set(message.properties, depth + 1) if message.HasField("properties") else None
        ),
        metadata=metadata(message.metadata) if message.HasField("metadata") else None,
    )


def _metric_value(message: pb.Payload.Metric, datatype: DataType | None, depth: int) -> MetricValue:
    field = message.WhichOneof("value")
    if field is None:
        return None
    if message.is_null:
        raise Fault("sparkplug_value", f"is_null is set but {field} carries a value")
    raw = getattr(message, field)
    if field == "template_value" and datatype in (None, DataType.TEMPLATE):
        return template(raw, depth + 1)
    if field == "dataset_value" and datatype in (None, DataType.DATASET):
        return dataset(raw)
    if field == "bytes_value" and (datatype is None or datatype in _BYTES_TYPES):
        return bytes(raw)
    if field == "bytes_value" and datatype is not None and datatype.is_array:
        return arrays.unpack(datatype, raw)
    return scalar(datatype, field, raw)


def scalar(datatype: DataType | None, field: str, raw: Any) -> ScalarValue:
    """Decode a scalar oneof field; datatype None keeps the raw field value."""
    decode = RAW_DECODERS.get(field) if datatype is None else SCALAR_DECODERS.get((datatype, field))
    if decode is None:
        carried = datatype.name if datatype is not None else "a value without datatype"
        raise Fault("sparkplug_datatype", f"{carried} cannot be carried in {field}")
    value: ScalarValue = decode(raw)
    return value


def template(message: pb.Payload.Template, depth: int) -> Template:
    """Decode a template definition or instance."""
    _check_depth(depth)
    return Template(
        metrics=tuple(metric(item, None, depth) for item in message.metrics),
        parameters=tuple(_parameter(item) for item in message.parameters),
        version=text(message.version, "template version") if message.HasField("version") else None,
        template_ref=(
            text(message.template_ref, "template_ref") if message.HasField("template_ref") else None
        ),
        is_definition=message.is_definition,
    )


def _parameter(message: pb.Payload.Template.Parameter) -> Parameter:
    if not message.HasField("name"):
        raise Fault("sparkplug_value", "a template parameter has no name")
    name = text(message.name, "template parameter name")
    datatype = _basic_type(message.type, f"template parameter {name!r}")
    field = message.WhichOneof("value")
    value = None if field is None else _basic_value(datatype, field, getattr(message, field))
    return Parameter(name=name, datatype=datatype, value=value)


def dataset(message: pb.Payload.DataSet) -> DataSet:
    """Decode a DataSet, checking that columns, types and every row agree in width."""
    columns = tuple(text(column, "DataSet column name") for column in message.columns)
    types = tuple(_basic_type(number, "DataSet column") for number in message.types)
    if len(types) != len(columns) or DataType.UNKNOWN in types:
        raise Fault("sparkplug_value", f"DataSet has {len(columns)} columns but types {types}")
    if message.HasField("num_of_columns") and message.num_of_columns != len(columns):
        raise Fault(
            "sparkplug_value",
            f"DataSet says {message.num_of_columns} columns but names {len(columns)}",
        )
    return DataSet(columns, types, tuple(_row(row, types) for row in message.rows))


def _row(message: pb.Payload.DataSet.Row, types: tuple[DataType, ...]) -> tuple[Any, ...]:
    if len(message.elements) != len(types):
        raise Fault(
            "sparkplug_value", f"a DataSet row has {len(message.elements)} cells, not {len(types)}"
        )
    return tuple(
        _cell(cell, datatype) for cell, datatype in zip(message.elements, types, strict=True)
    )


def _cell(message: pb.Payload.DataSet.DataSetValue, datatype: DataType) -> ScalarValue | None:
    field = message.WhichOneof("value")
    return None if field is None else _basic_value(datatype, field, getattr(message, field))


def _basic_type(number: int, what: str) -> DataType:
    datatype = datatype_of_number(number)
    if datatype is DataType.UNKNOWN or datatype in SCALAR_TYPES:
        return datatype
    raise Fault("sparkplug_datatype", f"{what} cannot have datatype {datatype.name}")


def _basic_value(datatype: DataType, field: str, raw: Any) -> ScalarValue:
    return scalar(None if datatype is DataType.UNKNOWN else datatype, field, raw)


def property_set(message: pb.Payload.PropertySet, depth: int) -> PropertySet:
    """Decode a property set (keys and values pair up by position)."""
    _check_depth(depth)
    if len(message.keys) != len(message.values):
        raise Fault(
            "sparkplug_value",
            f"property set has {len(message.keys)} keys but {len(message.values)} values",
        )
    keys = [text(key, "property key") for key in message.keys]
    return PropertySet(
        tuple(
            (key, _property(key, value, depth))
            for key, value in zip(keys, message.values, strict=True)
        )
    )


def _property(key: str, message: pb.Payload.PropertyValue, depth: int) -> PropertyValue:
    try:
        return _property_value(message, depth)
    except Fault as fault:
        fault.path.insert(0, f"property {key!r}")
        raise


def _property_value(message: pb.Payload.PropertyValue, depth: int) -> PropertyValue:
    datatype = datatype_of_number(message.type)
    field = message.WhichOneof("value")
    if field is None:
        return PropertyValue(datatype, None, message.is_null)
    if message.is_null:
        raise Fault("sparkplug_value", f"is_null is set but {field} carries a value")
    return PropertyValue(datatype, _property_content(datatype, field, message, depth))


def _property_content(
    datatype: DataType, field: str, message: pb.Payload.PropertyValue, depth: int
) -> PropertyValueType:
    if field == "propertyset_value" and datatype in (DataType.PROPERTY_SET, DataType.UNKNOWN):
        return property_set(message.propertyset_value, depth + 1)
    if field == "propertysets_value" and datatype in (
        DataType.PROPERTY_SET_LIST,
        DataType.UNKNOWN,
    ):
        sets = message.propertysets_value.propertyset
        return tuple(property_set(item, depth + 1) for item in sets)
    if datatype is not DataType.UNKNOWN and datatype not in SCALAR_TYPES:
        raise Fault("sparkplug_datatype", f"{datatype.name} cannot be carried in {field}")
    return _basic_value(datatype, field, getattr(message, field))


def metadata(message: pb.Payload.MetaData) -> MetaData:
    """Decode a metric's metadata."""
    return MetaData(
        is_multi_part=message.is_multi_part if message.HasField("is_multi_part") else None,
        content_type=_meta_text(message, "content_type"),
        size=message.size if message.HasField("size") else None,
        seq=message.seq if message.HasField("seq") else None,
        file_name=_meta_text(message, "file_name"),
        file_type=_meta_text(message, "file_type"),
        md5=_meta_text(message, "md5"),
        description=_meta_text(message, "description"),
    )


def _meta_text(message: pb.Payload.MetaData, field: _MetaText) -> str | None:
    if message.HasField(field):
        return text(getattr(message, field), f"metadata {field}")
    return None


def _check_depth(depth: int) -> None:
    if depth > MAX_DEPTH:
        raise Fault("sparkplug_too_deep", f"nesting is deeper than {MAX_DEPTH} levels")
