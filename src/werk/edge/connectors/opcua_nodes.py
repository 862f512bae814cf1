"""OPC UA address-space discovery and value conversion for the OPC UA connector."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds

from werk.core.clock import NS_PER_MS, from_datetime, now_ns
from werk.core.errors import ValidationFailed
from werk.edge.model import Value
from werk.sparkplug.datatypes import DataType
from werk.uns.contracts import Quality

CHUNK: Final = 500
_VARIANTS: Final = {
    ua.VariantType.Boolean: DataType.BOOLEAN,
    ua.VariantType.SByte: DataType.INT8,
    ua.VariantType.Byte: DataType.UINT8,
    ua.VariantType.Int16: DataType.INT16,
    ua.VariantType.UInt16: DataType.UINT16,
    ua.VariantType.Int32: DataType.INT32,
    ua.VariantType.UInt32: DataType.UINT32,
    ua.VariantType.Int64: DataType.INT64,
    ua.VariantType.UInt64: DataType.UINT64,
    ua.VariantType.Float: DataType.FLOAT,
    ua.VariantType.Double: DataType.DOUBLE,
    ua.VariantType.String: DataType.STRING,
    ua.VariantType.DateTime: DataType.DATETIME,
}
_DATATYPE_VARIANTS: Final = {datatype: variant for variant, datatype in _VARIANTS.items()}
# Standard subtypes of built-in types that servers commonly use for variables.
_SUBTYPES: Final = {
    ObjectIds.UtcTime: ua.VariantType.DateTime,
    ObjectIds.Duration: ua.VariantType.Double,
    ObjectIds.LocaleId: ua.VariantType.String,
}
_INT_RANGES: Final = {
    ua.VariantType.SByte: (-(2**7), 2**7 - 1),
    ua.VariantType.Byte: (0, 2**8 - 1),
    ua.VariantType.Int16: (-(2**15), 2**15 - 1),
    ua.VariantType.UInt16: (0, 2**16 - 1),
    ua.VariantType.Int32: (-(2**31), 2**31 - 1),
    ua.VariantType.UInt32: (0, 2**32 - 1),
    ua.VariantType.Int64: (-(2**63), 2**63 - 1),
    ua.VariantType.UInt64: (0, 2**64 - 1),
}
_FLOAT32_MAX: Final = 3.4028234663852886e38
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DATETIME_MS: Final = (-11644473600000, 253402300799999)  # OPC UA dates: 1601 to 9999
_CURRENT_WRITE: Final = ua.AccessLevelType.CurrentWrite
_BROWSE_CLASSES: Final = ua.NodeClass.Object | ua.NodeClass.Variable
_ATTRIBUTES: Final = (
    AttributeIds.DataType,
    AttributeIds.AccessLevel,
    AttributeIds.ValueRank,
)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What werk needs to know about a variable: its value type and write access."""

    variant: ua.VariantType | None
    writable: bool
    scalar: bool
    exists: bool


def datatype_of(variant: ua.VariantType) -> DataType | None:
    """The Sparkplug datatype of an OPC UA built-in type, or None if werk cannot carry it."""
    return _VARIANTS.get(variant)


def variant_of(datatype: DataType) -> ua.VariantType | None:
    """The OPC UA built-in type that carries a Sparkplug datatype."""
    return _DATATYPE_VARIANTS.get(datatype)


def quality_of(status: ua.StatusCode | None) -> Quality:
    """Good* -> GOOD, Uncertain* -> UNCERTAIN, Bad* -> BAD."""
    if status is None or status.is_good():
        return Quality.GOOD
    return Quality.UNCERTAIN if status.is_uncertain() else Quality.BAD


def timestamp_of(data: ua.DataValue) -> int:
    """Source timestamp, else server timestamp, else now, in epoch nanoseconds."""
    moment = data.SourceTimestamp or data.ServerTimestamp
    return now_ns() if moment is None else from_datetime(moment)


def reading_value(data: ua.DataValue) -> tuple[Value | None, Quality]:
    """The werk value and quality carried by a data value."""
    quality = quality_of(data.StatusCode)
    raw = data.Value.Value if data.Value is not None else None
    if quality is Quality.BAD or raw is None:
        return None, quality
    value = to_value(raw)
    return (value, quality) if value is not None else (None, Quality.BAD)


def to_value(raw: Any) -> Value | None:
    """Turn a decoded OPC UA scalar into a werk value (DateTime as epoch ms)."""
    if isinstance(raw, datetime):
        return from_datetime(raw) // NS_PER_MS
    if isinstance(raw, bool | int | float | str):
        return raw
    return None


def to_variant(value: Value, variant: ua.VariantType) -> ua.Variant:
    """Turn a werk value into a variant of exactly `variant`; raise ValidationFailed if unfit."""
    if variant is ua.VariantType.Boolean:
        if not isinstance(value, bool):
            raise _bad("expects a boolean", value)
        return ua.Variant(value, variant)
    if variant is ua.VariantType.String:
        if not isinstance(value, str):
            raise _bad("expects a string", value)
        return ua.Variant(value, variant)
    number = _number(value)
    if variant in (ua.VariantType.Float, ua.VariantType.Double):
        return ua.Variant(_float(number, variant), variant)
    if variant is ua.VariantType.DateTime:
        ms = _integer(number, *_DATETIME_MS, what="epoch milliseconds")
        return ua.Variant(_EPOCH + timedelta(milliseconds=ms), variant)
    return ua.Variant(_integer(number, *_INT_RANGES[variant]), variant)


async def browse_variables(
    client: Client, root: ua.NodeId, max_depth: int | None
) -> list[tuple[str, ua.NodeId]]:
    """Every variable below `root` as (browse path relative to root, node id)."""
    found: list[tuple[str, ua.NodeId]] = []
    level: list[tuple[str, ua.NodeId]] = [("", root)]
    seen = {root}
    depth = 0
    while level and (max_depth is None or depth < max_depth):
        depth += 1
        children = await _browse_level(client, [node_id for _, node_id in level])
        next_level: list[tuple[str, ua.NodeId]] = []
        for (path, _), refs in zip(level, children, strict=True):
            for ref in refs:
                node_id = plain_node_id(ref.NodeId)
                if node_id in seen:
                    continue
                seen.add(node_id)
                entry = (f"{path}/{ref.BrowseName.Name}".lstrip("/"), node_id)
                is_variable = ref.NodeClass == ua.NodeClass.Variable
                (found if is_variable else next_level).append(entry)
        level = next_level
    return found


def plain_node_id(node_id: ua.NodeId) -> ua.NodeId:
    """The local NodeId of a (possibly expanded) node id, for use as a dictionary key."""
    return ua.NodeId(node_id.Identifier, node_id.NamespaceIndex, node_id.NodeIdType)


async def read_node_info(client: Client, node_ids: Sequence[ua.NodeId]) -> list[NodeInfo]:
    """Data type, access level and value rank of each node, in as few reads as fit."""
    infos: list[NodeInfo] = []
    for chunk in _chunks(node_ids, CHUNK):
        params = ua.ReadParameters()
        params.NodesToRead = [
            ua.ReadValueId(NodeId=node_id, AttributeId=attr)
            for node_id in chunk
            for attr in _ATTRIBUTES
        ]
        values = await client.uaclient.read(params)
        infos.extend(_node_info(values[i : i + 3]) for i in range(0, len(values), 3))
    return infos


def _node_info(values: Sequence[ua.DataValue]) -> NodeInfo:
    datatype, access, rank = values
    exists = datatype.StatusCode is None or datatype.StatusCode.is_good()
    type_id = datatype.Value.Value if exists and datatype.Value is not None else None
    access_bits = access.Value.Value if access.Value is not None else None
    rank_value = rank.Value.Value if rank.Value is not None else None
    return NodeInfo(
        variant=_variant_of_type(type_id),
        writable=isinstance(access_bits, int)
        and bool(access_bits & ua.AccessLevelType.CurrentWrite),
        scalar=not isinstance(rank_value, int) or rank_value < 0,
        exists=exists,
    )


def _variant_of_type(type_id: Any) -> ua.VariantType | None:
    if not isinstance(type_id, ua.NodeId) or type_id.NamespaceIndex != 0:
        return None
    identifier = type_id.Identifier
    if not isinstance(identifier, int):
        return None
    if identifier in _SUBTYPES:
        return _SUBTYPES[identifier]
    try:
        variant = ua.VariantType(identifier)
    except ValueError:
        return None
    return variant if variant in _VARIANTS else None


async def _browse_level(
    client: Client, node_ids: Sequence[ua.NodeId]
) -> list[list[ua.ReferenceDescription]]:
    refs: list[list[ua.ReferenceDescription]] = []
    for chunk in _chunks(node_ids, CHUNK):
        params = ua.BrowseParameters()
        params.NodesToBrowse = [_browse_description(node_id) for node_id in chunk]
        results = await client.uaclient.browse(params)
        refs.extend([await _all_references(client, result) for result in results])
    return refs


def _browse_description(node_id: ua.NodeId) -> ua.BrowseDescription:
    return ua.BrowseDescription(
        NodeId=node_id,
        BrowseDirection=ua.BrowseDirection.Forward,
        ReferenceTypeId=ua.NodeId(ua.Int32(ObjectIds.HierarchicalReferences)),
        IncludeSubtypes=True,
        NodeClassMask=_BROWSE_CLASSES,
        ResultMask=ua.BrowseResultMask.All,
    )


async def _all_references(client: Client, result: ua.BrowseResult) -> list[ua.ReferenceDescription]:
    refs = list(result.References)
    while result.ContinuationPoint:
        params = ua.BrowseNextParameters(
            ReleaseContinuationPoints=False, ContinuationPoints=[result.ContinuationPoint]
        )
        result = (await client.uaclient.browse_next(params))[0]
        refs.extend(result.References)
    return refs


def _chunks(items: Sequence[ua.NodeId], size: int) -> Iterator[Sequence[ua.NodeId]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _number(value: Value) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad("expects a number", value)
    return value


def _float(number: int | float, variant: ua.VariantType) -> float:
    try:
        result = float(number)
    except OverflowError as exc:
        raise _bad("expects a number within the range of a double", number) from exc
    if variant is ua.VariantType.Float and math.isfinite(result) and abs(result) > _FLOAT32_MAX:
        raise _bad(f"expects a number within ±{_FLOAT32_MAX:g} (Float)", number)
    return result


def _integer(number: int | float, low: int, high: int, *, what: str = "an integer") -> int:
    if isinstance(number, float):
        if not number.is_integer():
            raise _bad(f"expects {what} from {low} to {high}", number)
        number = int(number)
    if not low <= number <= high:
        raise _bad(f"expects {what} from {low} to {high}", number)
    return number


def _bad(expectation: str, value: Value) -> ValidationFailed:
    return ValidationFailed(f"the tag {expectation}, got {value!r}", code="bad_value")
