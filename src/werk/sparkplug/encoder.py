"""Build Sparkplug B protobuf messages from werk's payload values, checking every value."""

from __future__ import annotations

from typing import Any, Final

from werk.sparkplug import arrays
from werk.sparkplug import sparkplug_b_pb2 as pb
from werk.sparkplug.datatypes import DataType
from werk.sparkplug.payload import (
    DataSet,
    MetaData,
    Metric,
    Parameter,
    Payload,
    PropertySet,
    PropertyValue,
    Template,
)
from werk.sparkplug.values import (
    MAX_DEPTH,
    SCALAR_ENCODERS,
    SCALAR_TYPES,
    Fault,
    check_str,
    check_uint,
    raw_field,
)

_BYTES_TYPES: Final = frozenset({DataType.BYTES, DataType.FILE})
_META_TEXT: Final = ("content_type", "file_name", "file_type", "md5", "description")


def payload(value: Payload) -> pb.Payload:
    """Build the protobuf message of a payload."""
    if type(value) is not Payload:
        raise Fault("sparkplug_encode", f"encode() needs a Payload, got {type(value).__name__}")
    message = pb.Payload()
    if value.timestamp is not None:
        message.timestamp = check_uint(value.timestamp, 64, "payload timestamp")
    if value.seq is not None:
        message.seq = check_uint(value.seq, 64, "payload seq")
    if value.uuid is not None:
        message.uuid = check_str(value.uuid, "payload uuid")
    if value.body is not None:
        message.body = _bytes(value.body, "payload body")
    for item in value.metrics:
        metric(message.metrics.add(), item, 0)
    return message


def metric(target: pb.Payload.Metric, value: Metric, depth: int) -> None:
    """Fill `target` from a metric; a failure names the metric in the Fault's path."""
    if type(value) is not Metric:
        raise Fault("sparkplug_encode", f"a Metric is needed, got {type(value).__name__}")
    try:
        _metric(target, value, depth)
    except Fault as fault:
        label = repr(value.name) if value.name is not None else f"alias {value.alias}"
        fault.path.insert(0, label)
        raise


def _metric(target: pb.Payload.Metric, value: Metric, depth: int) -> None:
    if value.name is not None:
        target.name = check_str(value.name, "metric name")
    if value.alias is not None:
        target.alias = check_uint(value.alias, 64, "alias")
    if value.timestamp is not None:
        target.timestamp = check_uint(value.timestamp, 64, "timestamp")
    datatype = _datatype(value.datatype)
    if datatype is not None:
        target.datatype = datatype
    if value.is_historical:
        target.is_historical = True
    if value.is_transient:
        target.is_transient = True
    _metric_value(target, datatype, value, depth)
    if value.properties is not None:
        target.properties.SetInParent()
        property_set(target.properties, value.properties, depth + 1)
    if value.metadata is not None:
        target.metadata.SetInParent()
        metadata(target.metadata, value.metadata)


def _datatype(datatype: object) -> DataType | None:
    if datatype is None or datatype is DataType.UNKNOWN:
        return None
    if isinstance(datatype, DataType):
        return datatype
    raise Fault("sparkplug_encode", f"datatype must be a DataType, got {datatype!r}")


def _metric_value(
    target: pb.Payload.Metric, datatype: DataType | None, value: Metric, depth: int
) -> None:
    if value.is_null:
        if value.value is not None:
            raise Fault("sparkplug_encode", "is_null is set but the metric has a value")
        target.is_null = True
    elif value.value is not None:
        _set_value(target, datatype or _implied_type(value.value), value.value, depth)


def _implied_type(value: object) -> DataType | None:
    if type(value) is Template:
        return DataType.TEMPLATE
    if type(value) is DataSet:
        return DataType.DATASET
    if type(value) is bytes:
        return DataType.BYTES
    return None


def _set_value(
    target: pb.Payload.Metric, datatype: DataType | None, value: Any, depth: int
) -> None:
    if datatype is None:
        setattr(target, raw_field(value), value)
    elif datatype is DataType.TEMPLATE:
        target.template_value.SetInParent()
        template(target.template_value, _expect(Template, value, datatype), depth + 1)
    elif datatype is DataType.DATASET:
        target.dataset_value.SetInParent()
        dataset(target.dataset_value, _expect(DataSet, value, datatype))
    elif datatype in _BYTES_TYPES:
        target.bytes_value = _bytes(value, datatype.name)
    elif datatype.is_array:
        target.bytes_value = arrays.pack(datatype, value)
    elif datatype in SCALAR_ENCODERS:
        field, convert = SCALAR_ENCODERS[datatype]
        setattr(target, field, convert(value))
    else:
        raise Fault("sparkplug_encode", f"{datatype.name} is not a metric datatype")


def _expect(kind: type[Any], value: object, datatype: DataType) -> Any:
    if type(value) is kind:
        return value
    raise Fault("sparkplug_encode", f"{datatype.name} needs a {kind.__name__}, got {value!r}")


def _bytes(value: object, what: str) -> bytes:
    if type(value) is bytes:
        return value
    raise Fault("sparkplug_encode", f"{what} needs bytes, got {type(value).__name__}")


def template(target: pb.Payload.Template, value: Template, depth: int) -> None:
    """Fill `target` from a template definition or instance."""
    _check_depth(depth)
    if value.version is not None:
        target.version = check_str(value.version, "template version")
    if value.template_ref is not None:
        target.template_ref = check_str(value.template_ref, "template_ref")
    target.is_definition = value.is_definition is True
    for item in value.metrics:
        metric(target.metrics.add(), item, depth)
    for parameter in value.parameters:
        _parameter(target.parameters.add(), parameter)


def _parameter(target: pb.Payload.Template.Parameter, value: Parameter) -> None:
    target.name = check_str(value.name, "template parameter name")
    datatype = _basic_type(value.datatype, f"template parameter {value.name!r}")
    if datatype is not DataType.UNKNOWN:
        target.type = datatype
    if value.value is not None:
        field, raw = _basic_value(datatype, value.value)
        setattr(target, field, raw)


def dataset(target: pb.Payload.DataSet, value: DataSet) -> None:
    """Fill `target` from a DataSet, checking widths and every cell against its column type."""
    types = [_basic_type(datatype, "DataSet column") for datatype in value.types]
    if len(types) != len(value.columns) or DataType.UNKNOWN in types:
        raise Fault("sparkplug_encode", f"DataSet columns {value.columns} do not match types")
    target.num_of_columns = len(types)
    target.columns.extend(check_str(column, "DataSet column name") for column in value.columns)
    target.types.extend(types)
    for row in value.rows:
        if len(row) != len(types):
            raise Fault("sparkplug_encode", f"DataSet row {row!r} does not have {len(types)} cells")
        cells = target.rows.add().elements
        for cell, datatype in zip(row, types, strict=True):
            element = cells.add()
            if cell is not None:
                field, raw = _basic_value(datatype, cell)
                setattr(element, field, raw)


def _basic_type(datatype: object, what: str) -> DataType:
    if isinstance(datatype, DataType) and (
        datatype is DataType.UNKNOWN or datatype in SCALAR_TYPES
    ):
        return datatype
    raise Fault("sparkplug_encode", f"{what} cannot have datatype {datatype!r}")


def _basic_value(datatype: DataType, value: object) -> tuple[str, Any]:
    if datatype is DataType.UNKNOWN:
        return raw_field(value), value
    field, convert = SCALAR_ENCODERS[datatype]
    return field, convert(value)


def property_set(target: pb.Payload.PropertySet, value: PropertySet, depth: int) -> None:
    """Fill `target` from a property set."""
    _check_depth(depth)
    if type(value) is not PropertySet:
        raise Fault("sparkplug_encode", f"a PropertySet is needed, got {value!r}")
    for key, item in value.items:
        target.keys.append(check_str(key, "property key"))
        try:
            _property(target.values.add(), item, depth)
        except Fault as fault:
            fault.path.insert(0, f"property {key!r}")
            raise


def _property(target: pb.Payload.PropertyValue, value: PropertyValue, depth: int) -> None:
    if type(value) is not PropertyValue or not isinstance(value.datatype, DataType):
        raise Fault("sparkplug_encode", f"a PropertyValue with a DataType is needed, got {value!r}")
    if value.datatype is not DataType.UNKNOWN:
        target.type = value.datatype
    if value.is_null:
        if value.value is not None:
            raise Fault("sparkplug_encode", "is_null is set but the property has a value")
        target.is_null = True
    elif value.value is not None:
        _property_value(target, value.datatype, value.value, depth)


def _property_value(
    target: pb.Payload.PropertyValue, datatype: DataType, value: object, depth: int
) -> None:
    unknown = datatype is DataType.UNKNOWN
    if datatype is DataType.PROPERTY_SET or (unknown and type(value) is PropertySet):
        target.propertyset_value.SetInParent()
        property_set(target.propertyset_value, value, depth + 1)  # type: ignore[arg-type]
    elif datatype is DataType.PROPERTY_SET_LIST or (unknown and type(value) is tuple):
        _property_sets(target.propertysets_value, value, depth)
    elif unknown or datatype in SCALAR_TYPES:
        field, raw = _basic_value(datatype, value)
        setattr(target, field, raw)
    else:
        raise Fault("sparkplug_encode", f"a property cannot have datatype {datatype.name}")


def _property_sets(target: pb.Payload.PropertySetList, value: object, depth: int) -> None:
    if type(value) is not tuple and type(value) is not list:
        raise Fault("sparkplug_encode", f"PROPERTY_SET_LIST needs a tuple, got {value!r}")
    target.SetInParent()
    for item in value:
        property_set(target.propertyset.add(), item, depth + 1)


def metadata(target: pb.Payload.MetaData, value: MetaData) -> None:
    """Fill `target` from a metric's metadata."""
    if type(value) is not MetaData:
        raise Fault("sparkplug_encode", f"a MetaData is needed, got {value!r}")
    if value.is_multi_part is not None:
        if type(value.is_multi_part) is not bool:
            raise Fault("sparkplug_encode", "metadata is_multi_part must be a bool")
        target.is_multi_part = value.is_multi_part
    if value.size is not None:
        target.size = check_uint(value.size, 64, "metadata size")
    if value.seq is not None:
        target.seq = check_uint(value.seq, 64, "metadata seq")
    for field in _META_TEXT:
        text = getattr(value, field)
        if text is not None:
            setattr(target, field, check_str(text, f"metadata {field}"))


def _check_depth(depth: int) -> None:
    if depth > MAX_DEPTH:
        raise Fault("sparkplug_too_deep", f"nesting is deeper than {MAX_DEPTH} levels")
