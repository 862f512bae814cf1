"""Modbus register <-> value conversion: pure code, no I/O.

Registers are 16-bit words. A multi-register value is laid out by `word_order` (which
word comes first: the most significant for "big") and `byte_order` (which byte of
each word comes first on the wire: the most significant for "big"). Strings use only
the byte order; their characters run in register order and are padded with NUL.
Scaled numbers are `raw * scale + offset`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Generic, Literal, TypeVar

from werk.core.errors import ValidationFailed
from werk.edge.model import Value
from werk.sparkplug.datatypes import DataType

ModbusType = Literal[
    "bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"
]
Order = Literal["big", "little"]

_INTEGERS: Final[dict[str, tuple[str, int, int]]] = {
    "int16": ("h", -(2**15), 2**15 - 1),
    "uint16": ("H", 0, 2**16 - 1),
    "int32": ("i", -(2**31), 2**31 - 1),
    "uint32": ("I", 0, 2**32 - 1),
    "int64": ("q", -(2**63), 2**63 - 1),
    "uint64": ("Q", 0, 2**64 - 1),
}
_FLOATS: Final = {"float32": "f", "float64": "d"}
_WIDTH: Final = {"h": 1, "H": 1, "i": 2, "I": 2, "q": 4, "Q": 4, "f": 2, "d": 4}
_DATATYPES: Final = {
    "bool": DataType.BOOLEAN,
    "int16": DataType.INT16,
    "uint16": DataType.UINT16,
    "int32": DataType.INT32,
    "uint32": DataType.UINT32,
    "int64": DataType.INT64,
    "uint64": DataType.UINT64,
    "float32": DataType.FLOAT,
    "float64": DataType.DOUBLE,
    "string": DataType.STRING,
}
FLOAT32_MAX: Final = struct.unpack(">f", b"\x7f\x7f\xff\xff")[0]


@dataclass(frozen=True, slots=True)
class RegisterCodec:
    """How one tag's value is stored in registers (or in one bit of a register)."""

    type: ModbusType
    byte_order: Order = "big"
    word_order: Order = "big"
    length: int = 1
    bit: int | None = None
    scale: float = 1.0
    offset: float = 0.0

    @property
    def scaled(self) -> bool:
        """Whether values are converted with scale and offset."""
        return self.scale != 1.0 or self.offset != 0.0

    @property
    def registers(self) -> int:
        """How many registers the value occupies."""
        if self.type == "string":
            return self.length
        if self.type == "bool":
            return 1
        return _WIDTH[_format(self.type)]

    @property
    def datatype(self) -> DataType:
        """The Sparkplug datatype of the tag's values (DOUBLE when scaled)."""
        return DataType.DOUBLE if self.scaled else _DATATYPES[self.type]

    def decode(self, registers: Sequence[int]) -> Value:
        """Turn the tag's registers into its value."""
        if self.type == "bool":
            return bool(_word(registers[0], self.byte_order) >> (self.bit or 0) & 1)
        data = b"".join(_pack_word(r, self.byte_order) for r in self._words(registers))
        if self.type == "string":
            return data.rstrip(b"\x00").decode("utf-8", errors="replace")
        raw: int | float = struct.unpack(f">{_format(self.type)}", data)[0]
        return raw * self.scale + self.offset if self.scaled else raw

    def encode(self, value: Value) -> list[int]:
        """Turn a value into the tag's registers; raise ValidationFailed if it does not fit."""
        if self.type == "bool":
            raise ValidationFailed("a bit is written with set_bit", code="bad_value")
        if self.type == "string":
            return self._encode_string(value)
        fmt = _format(self.type)
        data = struct.pack(f">{fmt}", self._raw(value, fmt))
        words = [_unpack_word(data[i : i + 2], self.byte_order) for i in range(0, len(data), 2)]
        return self._words(words)

    def set_bit(self, register: int, value: Value) -> int:
        """Return `register` with the tag's bit set to `value`."""
        flag = check_bool(value)
        mask = 1 << (self.bit or 0)
        word = _word(register, self.byte_order)
        word = word | mask if flag else word & ~mask
        return _word(word, self.byte_order)

    def _words(self, words: Sequence[int]) -> list[int]:
        if self.word_order == "little" and self.type != "string":
            return list(reversed(words))
        return list(words)

    def _encode_string(self, value: Value) -> list[int]:
        if not isinstance(value, str):
            raise _bad(f"expects a string, got {value!r}")
        data = value.encode("utf-8")
        if len(data) > 2 * self.length or b"\x00" in data:
            raise _bad(f"expects a string of at most {2 * self.length} UTF-8 bytes without NUL")
        data = data.ljust(2 * self.length, b"\x00")
        return [_unpack_word(data[i : i + 2], self.byte_order) for i in range(0, len(data), 2)]

    def _raw(self, value: Value, fmt: str) -> int | float:
        number = self._unscale(value)
        if fmt in "fd":
            if fmt == "f" and math.isfinite(number) and abs(number) > FLOAT32_MAX:
                raise _bad(f"expects a number within ±{FLOAT32_MAX:g}", value)
            return float(number)
        _, low, high = _INTEGERS[self.type]
        if isinstance(number, float):
            if not number.is_integer() and not self.scaled:
                raise _bad(f"expects an integer from {low} to {high}", value)
            number = round(number) if math.isfinite(number) else number
        if not isinstance(number, int) or not low <= number <= high:
            raise _bad(self._range_text(low, high), value)
        return number

    def _unscale(self, value: Value) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _bad("expects a number", value)
        if not self.scaled:
            return value
        if not math.isfinite(value):
            raise _bad("expects a finite number", value)
        return (value - self.offset) / self.scale

    def _range_text(self, low: int, high: int) -> str:
        if not self.scaled:
            return f"expects an integer from {low} to {high}"
        ends = sorted((low * self.scale + self.offset, high * self.scale + self.offset))
        return f"expects a number from {ends[0]:g} to {ends[1]:g}"


def check_bool(value: Value) -> bool:
    """Return `value` if it is a boolean; raise ValidationFailed otherwise."""
    if not isinstance(value, bool):
        raise _bad("expects a boolean", value)
    return value


def _format(modbus_type: str) -> str:
    return _FLOATS.get(modbus_type) or _INTEGERS[modbus_type][0]


def _word(register: int, byte_order: Order) -> int:
    """The register as a number read in `byte_order` (swapping its bytes for "little")."""
    return register if byte_order == "big" else ((register & 0xFF) << 8) | (register >> 8)


def _pack_word(register: int, byte_order: Order) -> bytes:
    return register.to_bytes(2, byte_order)


def _unpack_word(data: bytes, byte_order: Order) -> int:
    return int.from_bytes(data, byte_order)


def _bad(expectation: str, value: Value | None = None) -> ValidationFailed:
    shown = "" if value is None else f", got {value!r}"
    return ValidationFailed(f"the tag {expectation}{shown}", code="bad_value")


Table = Literal["coil", "discrete_input", "holding_register", "input_register"]
MAX_REGISTERS_PER_READ: Final = 125
MAX_BITS_PER_READ: Final = 2000

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Span(Generic[T]):
    """The addresses one item occupies in one table."""

    table: Table
    address: int
    size: int
    item: T

    @property
    def end(self) -> int:
        """The first address after the item."""
        return self.address + self.size


@dataclass(frozen=True, slots=True)
class ReadPlan(Generic[T]):
    """One read request covering the spans of several items."""

    table: Table
    address: int
    count: int
    spans: tuple[Span[T], ...]


def plan_reads(spans: Iterable[Span[T]], max_gap: int) -> list[ReadPlan[T]]:
    """Merge spans of one table that lie at most `max_gap` apart into as few reads as fit."""
    plans: list[ReadPlan[T]] = []
    current: list[Span[T]] = []
    end = 0
    for span in sorted(spans, key=lambda s: (s.table, s.address, s.size)):
        if current and not _fits(current[0], end, span, max_gap):
            plans.append(_plan(current, end))
            current = []
        end = max(end, span.end) if current else span.end
        current.append(span)
    if current:
        plans.append(_plan(current, end))
    return plans


def read_limit(table: Table) -> int:
    """The most addresses one read of `table` may cover."""
    return MAX_BITS_PER_READ if table in ("coil", "discrete_input") else MAX_REGISTERS_PER_READ


def _fits(first: Span[T], end: int, span: Span[T], max_gap: int) -> bool:
    if span.table != first.table or span.address - end > max_gap:
        return False
    return max(end, span.end) - first.address <= read_limit(span.table)


def _plan(spans: list[Span[T]], end: int) -> ReadPlan[T]:
    start = spans[0].address
    return ReadPlan(spans[0].table, start, end - start, tuple(spans))
