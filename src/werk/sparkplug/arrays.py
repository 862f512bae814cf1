"""Sparkplug B 3.0 array datatypes, carried packed in a metric's `bytes_value`.

Numeric arrays are the elements packed little-endian (FloatArray as 4-byte IEEE floats,
DateTimeArray as 8-byte epoch milliseconds). BooleanArray is a 4-byte little-endian element
count followed by the bits packed most significant bit first (the specification's example:
[F, F, T, T, F, T, F, F, T, T, F, T] -> 0C 00 00 00 34 D0), padding bits ignored. StringArray is
UTF-8 strings each terminated by NUL.
"""

from __future__ import annotations

import math
import struct
from itertools import chain
from typing import Any, Final

from werk.sparkplug.datatypes import DataType
from werk.sparkplug.values import FLOAT32_MAX, Fault

_FORMATS: Final = {
    DataType.INT8_ARRAY: "b",
    DataType.INT16_ARRAY: "h",
    DataType.INT32_ARRAY: "i",
    DataType.INT64_ARRAY: "q",
    DataType.UINT8_ARRAY: "B",
    DataType.UINT16_ARRAY: "H",
    DataType.UINT32_ARRAY: "I",
    DataType.UINT64_ARRAY: "Q",
    DataType.FLOAT_ARRAY: "f",
    DataType.DOUBLE_ARRAY: "d",
    DataType.DATETIME_ARRAY: "q",
}
_FLOATS: Final = frozenset({DataType.FLOAT_ARRAY, DataType.DOUBLE_ARRAY})
# _BITS[byte] is that byte's 8 bits, most significant first, as bools.
_BITS: Final = tuple(tuple(bool(byte >> (7 - i) & 1) for i in range(8)) for byte in range(256))


def unpack(datatype: DataType, raw: bytes) -> tuple[Any, ...]:
    """Decode the `bytes_value` of an array metric."""
    if datatype is DataType.BOOLEAN_ARRAY:
        return _unpack_bools(raw)
    if datatype is DataType.STRING_ARRAY:
        return _unpack_strings(raw)
    code = _FORMATS[datatype]
    size = struct.calcsize(code)
    if len(raw) % size:
        raise Fault(
            "sparkplug_value",
            f"{datatype.name} needs a multiple of {size} bytes, got {len(raw)}",
        )
    return struct.unpack(f"<{len(raw) // size}{code}", raw)


def pack(datatype: DataType, values: Any) -> bytes:
    """Encode an array value into the `bytes_value` of a metric."""
    if type(values) is not tuple and type(values) is not list:
        raise Fault(
            "sparkplug_encode", f"{datatype.name} needs a tuple, got {type(values).__name__}"
        )
    if len(values) >= 1 << 32:
        raise Fault("sparkplug_encode", f"{datatype.name} cannot hold {len(values)} values")
    if datatype is DataType.BOOLEAN_ARRAY:
        return _pack_bools(values)
    if datatype is DataType.STRING_ARRAY:
        return _pack_strings(values)
    return _pack_numbers(datatype, values)


def _pack_numbers(datatype: DataType, values: tuple[Any, ...] | list[Any]) -> bytes:
    wanted = (float, int) if datatype in _FLOATS else (int,)
    for value in values:
        if type(value) not in wanted:
            raise Fault("sparkplug_encode", f"{datatype.name} cannot hold {value!r}")
    if datatype is DataType.FLOAT_ARRAY:
        _check_float32(values)
    try:
        return struct.pack(f"<{len(values)}{_FORMATS[datatype]}", *values)
    except (struct.error, OverflowError) as exc:
        raise Fault("sparkplug_encode", f"{datatype.name} cannot hold a value: {exc}") from exc


def _check_float32(values: tuple[Any, ...] | list[Any]) -> None:
    for value in values:
        if math.isfinite(value) and abs(value) > FLOAT32_MAX:
            raise Fault("sparkplug_encode", f"{value} is out of range for FLOAT_ARRAY")


def _unpack_bools(raw: bytes) -> tuple[bool, ...]:
    if len(raw) < 4:
        raise Fault("sparkplug_value", "BOOLEAN_ARRAY is shorter than its 4-byte count")
    count = int.from_bytes(raw[:4], "little")
    if len(raw) - 4 != (count + 7) // 8:
        raise Fault(
            "sparkplug_value",
            f"BOOLEAN_ARRAY of {count} values needs {(count + 7) // 8} bytes, got {len(raw) - 4}",
        )
    return tuple(chain.from_iterable(_BITS[byte] for byte in raw[4:]))[:count]


def _pack_bools(values: tuple[Any, ...] | list[Any]) -> bytes:
    body = bytearray((len(values) + 7) // 8)
    for index, value in enumerate(values):
        if type(value) is not bool:
            raise Fault("sparkplug_encode", f"BOOLEAN_ARRAY cannot hold {value!r}")
        if value:
            body[index >> 3] |= 0x80 >> (index & 7)
    return len(values).to_bytes(4, "little") + bytes(body)


def _unpack_strings(raw: bytes) -> tuple[str, ...]:
    if not raw:
        return ()
    # The terminator after the last string is required by the specification; a missing one
    # still leaves the strings unambiguous, so it is tolerated.
    parts = (raw[:-1] if raw.endswith(b"\x00") else raw).split(b"\x00")
    try:
        return tuple(part.decode() for part in parts)
    except UnicodeDecodeError as exc:
        raise Fault("sparkplug_value", "STRING_ARRAY holds a string that is not UTF-8") from exc


def _pack_strings(values: tuple[Any, ...] | list[Any]) -> bytes:
    parts = []
    for value in values:
        if type(value) is not str or "\x00" in value:
            raise Fault("sparkplug_encode", f"STRING_ARRAY cannot hold {value!r}")
        try:
            parts.append(value.encode())
        except UnicodeEncodeError as exc:
            raise Fault("sparkplug_encode", f"STRING_ARRAY cannot hold {value!r}") from exc
    return b"".join(part + b"\x00" for part in parts)
