"""The demo plant's Modbus register map and OPC UA node ids, as data for servers and edges.

Every machine behind the Modbus server is one unit id with the same layout (an oven adds
its temperature setpoint). Multi-register values are big-endian in both senses: the
most significant byte of a register comes first, and so does the most significant
register of a 32-bit value. A scaled number is ``raw * scale + offset``. A string is
UTF-8 (ASCII in practice), two characters per register with the first in the high
byte, padded with NUL; `length` counts registers. Addresses are 0-based.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from werk.core.errors import ValidationFailed
from werk.sim.machines import (
    ENABLED,
    SPEED_SETPOINT,
    TEMPERATURE_SETPOINT,
    Machine,
    MachineKind,
    Value,
    kind_tags,
)

Table = Literal["coil", "discrete_input", "holding_register", "input_register"]
RegisterType = Literal[
    "bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"
]

BYTE_ORDER: Final = "big"
WORD_ORDER: Final = "big"
RUNNING: Final = "running"
BIT_TABLES: Final[frozenset[Table]] = frozenset({"coil", "discrete_input"})
WRITABLE_TABLES: Final[frozenset[Table]] = frozenset({"coil", "holding_register"})
NAMESPACE_URI: Final = "urn:werk:demo-plant"
# The server registers its namespace right after the standard (0) and its own (1) ones.
NAMESPACE_INDEX: Final = 2
SETPOINTS_FOLDER: Final = "Setpoints"

_STRUCT: Final = {
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "int64": "q",
    "uint64": "Q",
    "float32": "f",
    "float64": "d",
}


@dataclass(frozen=True, slots=True)
class Register:
    """Where one tag lives on a unit and how its value is stored."""

    name: str
    table: Table
    address: int
    type: RegisterType
    length: int = 1
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None
    writable: bool = False

    @property
    def size(self) -> int:
        """How many addresses of its table the tag occupies."""
        if self.type in ("bool", "string"):
            return self.length
        return struct.calcsize(f">{_STRUCT[self.type]}") // 2

    @property
    def end(self) -> int:
        """The first address after the tag."""
        return self.address + self.size

    @property
    def scaled(self) -> bool:
        """Whether the raw number is converted with scale and offset."""
        return self.scale != 1.0 or self.offset != 0.0

    def encode(self, value: Value) -> list[int]:
        """Turn a value into the tag's registers; raise ValidationFailed if it does not fit."""
        if self.type == "string":
            return _encode_text(self, value)
        if self.type == "bool" or isinstance(value, bool | str):
            raise _bad(self, "is not a number", value)
        try:
            data = struct.pack(f">{_STRUCT[self.type]}", self._raw(value))
        except (struct.error, OverflowError) as exc:
            raise _bad(self, "does not fit its register", value) from exc
        return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]

    def decode(self, words: Sequence[int]) -> Value:
        """Turn the tag's registers into its value."""
        data = b"".join(word.to_bytes(2, "big") for word in words[: self.size])
        if self.type == "string":
            return data.rstrip(b"\x00").decode("utf-8", errors="replace")
        raw: int | float = struct.unpack(f">{_STRUCT[self.type]}", data)[0]
        return raw * self.scale + self.offset if self.scaled else raw

    def config(self) -> dict[str, Any]:
        """The tag in the shape of the edge's Modbus connector config."""
        return {
            "name": self.name,
            "table": self.table,
            "address": self.address,
            "type": self.type,
            "length": self.length,
            "bit": None,
            "scale": self.scale,
            "offset": self.offset,
            "writable": self.writable,
            "unit": self.unit,
        }

    def _raw(self, value: float) -> int | float:
        raw = (value - self.offset) / self.scale
        if self.type.startswith("float"):
            return raw
        if not math.isfinite(raw):
            raise _bad(self, "is not finite", value)
        return round(raw)


def _encode_text(register: Register, value: Value) -> list[int]:
    if not isinstance(value, str):
        raise _bad(register, "is not a text", value)
    data = value.encode("utf-8")
    if len(data) > 2 * register.length or b"\x00" in data:
        raise _bad(register, f"does not fit {register.length} registers", value)
    data = data.ljust(2 * register.length, b"\x00")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def _bad(register: Register, problem: str, value: object) -> ValidationFailed:
    return ValidationFailed(
        f"{value!r} {problem} ({register.name}, {register.type})",
        code="bad_value",
        tag=register.name,
    )


def register_map(kind: MachineKind) -> tuple[Register, ...]:
    """Every register of one unit holding a machine of `kind`."""
    by_unit = {unit: tag for tag, unit in kind_tags(kind).items()}
    speed, temperature = by_unit["rpm"], by_unit["degC"]
    registers = (
        Register(speed, "input_register", 0, "float32", unit="rpm"),
        Register(temperature, "input_register", 2, "int16", scale=0.1, unit="degC"),
        Register("vibration.rms", "input_register", 3, "uint16", scale=0.001, unit="mm/s"),
        Register("power", "input_register", 4, "float32", unit="kW"),
        Register("parts.good", "input_register", 6, "uint32", unit="pcs"),
        Register("parts.bad", "input_register", 8, "uint32", unit="pcs"),
        Register("state", "input_register", 100, "string", length=8),
        Register("stop.reason", "input_register", 108, "string", length=16),
        Register("fault.code", "input_register", 124, "string", length=16),
        Register(RUNNING, "discrete_input", 0, "bool"),
        Register("alarm.active", "discrete_input", 1, "bool"),
        Register(ENABLED, "coil", 0, "bool", writable=True),
        Register(SPEED_SETPOINT, "holding_register", 0, "uint16", unit="rpm", writable=True),
    )
    if kind != "oven":
        return registers
    oven = Register(
        TEMPERATURE_SETPOINT, "holding_register", 1, "int16", scale=0.1, unit="degC", writable=True
    )
    return (*registers, oven)


def modbus_tag_configs(kind: MachineKind) -> list[dict[str, Any]]:
    """Every register of a machine of `kind` in the Modbus connector's tag shape."""
    return [register.config() for register in register_map(kind)]


def modbus_poll_groups(kind: MachineKind, interval_ms: int = 1000) -> list[dict[str, Any]]:
    """The connector's poll groups for a machine of `kind`: measurements and setpoints."""
    registers = register_map(kind)
    measured = [r.config() for r in registers if r.table not in WRITABLE_TABLES]
    setpoints = [r.config() for r in registers if r.table in WRITABLE_TABLES]
    return [
        {"name": "measurements", "interval_ms": interval_ms, "tags": measured},
        {"name": "setpoints", "interval_ms": interval_ms, "tags": setpoints},
    ]


def node_prefix(machine: Machine) -> str:
    """The string part of the machine object's node id: ``<line>/<asset>``."""
    return f"{machine.node.line}/{machine.spec.asset}"


def node_id(machine: Machine, tag: str, *, setpoint: bool = False) -> str:
    """The node id of one of the machine's variables, e.g. ``ns=2;s=line-1/cnc-1/power``."""
    folder = f"/{SETPOINTS_FOLDER}" if setpoint else ""
    return f"ns={NAMESPACE_INDEX};s={node_prefix(machine)}{folder}/{tag}"


def opcua_tag_configs(machine: Machine) -> list[dict[str, Any]]:
    """Every variable of `machine` in the OPC UA connector's tag shape."""
    measured = [
        {"name": tag, "node_id": node_id(machine, tag), "writable": False, "unit": unit}
        for tag, unit in machine.tags.items()
    ]
    setpoints = [
        {
            "name": name,
            "node_id": node_id(machine, name, setpoint=True),
            "writable": True,
            "unit": machine.setpoint(name).unit,
        }
        for name in machine.setpoints
    ]
    return measured + setpoints
