"""Scalar Sparkplug values: which protobuf field carries each datatype, and the conversions.

Signed integers travel as two's complement in the unsigned `int_value` (Int8/16/32) and
`long_value` (Int64). werk encodes them width-specific (Int8 -1 -> 0xFF, Int16 -1 -> 0xFFFF),
as pysparkplug and Eclipse Tahu's Python library do; pysparkplug rejects anything else, while
Tahu's Java decoder narrows the field and so reads either form. Decoding accepts both that and the
32-bit sign extension Tahu's Java encoder sends (Int8 -1 -> 0xFFFFFFFF): for valid values the two
never overlap. Any integer type is accepted from either `int_value` or `long_value` (Tahu's Java
encoder sends UInt32 in `long_value`), FLOAT and DOUBLE from either float field; everything else
must sit in its own field. DateTime is epoch milliseconds, read as a signed 64-bit number like
the 8-byte elements of DateTimeArray, so dates before 1970 survive.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

from werk.sparkplug.datatypes import DataType

REASONS: Final[dict[str, str]] = {
    "sparkplug_protobuf": "not a valid Sparkplug B protobuf payload",
    "sparkplug_datatype": "unknown datatype number, or a value field that does not match it",
    "sparkplug_value": "value out of range for its datatype, bad array bytes or bad UTF-8",
    "sparkplug_too_deep": "templates or property sets nested deeper than 16 levels",
    "sparkplug_encode": "a value given to encode() does not fit its datatype",
}

MAX_DEPTH: Final = 16
DATATYPES: Final = tuple(DataType)  # DATATYPES[n] is the DataType numbered n
FLOAT32_MAX: Final = 3.4028234663852886e38
_U32: Final = 1 << 32
_U64: Final = 1 << 64
_INT_AS_FLOAT_MAX: Final = 1 << 1023

Decoder = Callable[[Any], Any]
Encoder = Callable[[Any], Any]


class Fault(Exception):
    """A decoding or encoding failure, before it is told which metric it belongs to."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.path: list[str] = []


def datatype_of_number(number: int) -> DataType:
    """Return the DataType numbered `number`, or fail with sparkplug_datatype."""
    if 0 <= number < len(DATATYPES):
        return DATATYPES[number]
    raise Fault("sparkplug_datatype", f"unknown datatype number {number}")


def text(value: str | bytes, what: str) -> str:
    """Return a decoded protobuf string; upb hands over bytes when they are not UTF-8."""
    if type(value) is str:
        return value
    raise Fault("sparkplug_value", f"{what} is not valid UTF-8")


def _unsigned(datatype: DataType, bits: int) -> Decoder:
    limit = 1 << bits

    def decode(raw: int) -> int:
        if raw < limit:
            return raw
        raise Fault("sparkplug_value", f"{raw} is out of range for {datatype.name}")

    return decode


def _signed(datatype: DataType, bits: int) -> Decoder:
    half, full = 1 << (bits - 1), 1 << bits

    def decode(raw: int) -> int:
        if raw < half:
            return raw
        if raw < full:
            return raw - full
        if _U32 - half <= raw < _U32:
            return raw - _U32
        if raw >= _U64 - half:
            return raw - _U64
        raise Fault("sparkplug_value", f"{raw:#x} is not a two's complement {datatype.name}")

    return decode


def _float32_range(raw: float) -> float:
    if math.isfinite(raw) and abs(raw) > FLOAT32_MAX:
        raise Fault("sparkplug_value", f"{raw} is out of range for FLOAT")
    return raw


def _check_text(raw: str | bytes) -> str:
    return text(raw, "string value")


def unchanged(raw: Any) -> Any:
    """Return the raw field value as it is (the decoder of fields Python already has right)."""
    return raw


_INT_BITS: Final = {
    DataType.INT8: (8, True),
    DataType.INT16: (16, True),
    DataType.INT32: (32, True),
    DataType.INT64: (64, True),
    DataType.UINT8: (8, False),
    DataType.UINT16: (16, False),
    DataType.UINT32: (32, False),
    DataType.UINT64: (64, False),
    DataType.DATETIME: (64, True),
}
SCALAR_TYPES: Final = frozenset(DataType(n) for n in range(DataType.INT8, DataType.UUID + 1))
"""Datatypes a DataSet column, a template parameter or a plain property value may have."""


def _scalar_decoders() -> dict[tuple[DataType, str], Decoder]:
    table: dict[tuple[DataType, str], Decoder] = {}
    for datatype, (bits, signed) in _INT_BITS.items():
        convert = _signed(datatype, bits) if signed else _unsigned(datatype, bits)
        table[datatype, "int_value"] = convert
        table[datatype, "long_value"] = convert
    table[DataType.FLOAT, "float_value"] = unchanged
    table[DataType.FLOAT, "double_value"] = _float32_range
    table[DataType.DOUBLE, "float_value"] = unchanged
    table[DataType.DOUBLE, "double_value"] = unchanged
    table[DataType.BOOLEAN, "boolean_value"] = unchanged
    for datatype in (DataType.STRING, DataType.TEXT, DataType.UUID):
        table[datatype, "string_value"] = _check_text
    return table


SCALAR_DECODERS: Final = _scalar_decoders()
"""(datatype, protobuf value field) -> raw field value to Python value, for scalar types."""

RAW_DECODERS: Final[dict[str, Decoder]] = {
    "int_value": unchanged,
    "long_value": unchanged,
    "float_value": unchanged,
    "double_value": unchanged,
    "boolean_value": unchanged,
    "string_value": _check_text,
}
"""Protobuf value field -> Python value, when nobody knows the datatype."""


def _encode_int(datatype: DataType, bits: int, signed: bool) -> Encoder:
    low, high = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    mask = (1 << bits) - 1

    def encode(value: Any) -> int:
        if type(value) is not int:
            raise Fault("sparkplug_encode", f"{datatype.name} needs an int, got {_kind(value)}")
        if not low <= value < high:
            raise Fault("sparkplug_encode", f"{value} is out of range for {datatype.name}")
        return value & mask

    return encode


def _encode_float32(value: Any) -> float:
    number = _encode_double(value)
    if math.isfinite(number) and abs(number) > FLOAT32_MAX:
        raise Fault("sparkplug_encode", f"{number} is out of range for FLOAT")
    return number


def _encode_double(value: Any) -> float:
    if type(value) is float:
        return value
    if type(value) is int and abs(value) <= _INT_AS_FLOAT_MAX:
        return float(value)
    raise Fault("sparkplug_encode", f"a float is needed, got {value!r}")


def _encode_bool(value: Any) -> bool:
    if type(value) is bool:
        return value
    raise Fault("sparkplug_encode", f"BOOLEAN needs a bool, got {_kind(value)}")


def _encode_text(value: Any) -> str:
    return check_str(value, "the value")


def _kind(value: object) -> str:
    return type(value).__name__


def _scalar_encoders() -> dict[DataType, tuple[str, Encoder]]:
    table: dict[DataType, tuple[str, Encoder]] = {}
    for datatype, (bits, signed) in _INT_BITS.items():
        field = "long_value" if bits == 64 else "int_value"
        table[datatype] = (field, _encode_int(datatype, bits, signed))
    table[DataType.FLOAT] = ("float_value", _encode_float32)
    table[DataType.DOUBLE] = ("double_value", _encode_double)
    table[DataType.BOOLEAN] = ("boolean_value", _encode_bool)
    for datatype in (DataType.STRING, DataType.TEXT, DataType.UUID):
        table[datatype] = ("string_value", _encode_text)
    return table


SCALAR_ENCODERS: Final = _scalar_encoders()
"""Scalar datatype -> (protobuf value field, Python value to raw field value)."""


def raw_field(value: object) -> str:
    """Choose the protobuf field for a scalar value sent without a datatype."""
    kind = type(value)
    if kind is bool:
        return "boolean_value"
    if kind is int:
        return _raw_int_field(value)  # type: ignore[arg-type]
    if kind is float:
        return "double_value"
    if kind is str:
        check_str(value, "the value")
        return "string_value"
    raise Fault("sparkplug_encode", f"a {_kind(value)} value needs a datatype")


def _raw_int_field(value: int) -> str:
    if 0 <= value < _U32:
        return "int_value"
    if 0 <= value < _U64:
        return "long_value"
    raise Fault("sparkplug_encode", f"{value} needs a datatype (only 0..2**64-1 go without one)")


def check_uint(value: object, bits: int, what: str) -> int:
    """Return `value` if it is an int that fits `bits` unsigned bits, else fail encoding."""
    if type(value) is int and 0 <= value < (1 << bits):
        return value
    raise Fault("sparkplug_encode", f"{what} must be an int in 0..2**{bits}-1, got {value!r}")


def check_str(value: object, what: str) -> str:
    """Return `value` if it is a str that UTF-8 can encode, else fail encoding."""
    if type(value) is not str:
        raise Fault("sparkplug_encode", f"{what} must be a str, got {_kind(value)}")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            raise Fault("sparkplug_encode", f"{what} cannot be encoded as UTF-8") from exc
    return value
