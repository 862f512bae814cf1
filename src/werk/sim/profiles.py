"""What each kind of simulated machine is: its spec, states, tags, texts and setpoints.

Pure definitions with no I/O; `werk.sim.machines` steps machines built from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

from werk.core.errors import ValidationFailed
from werk.uns.topics import Node, check_segment

MachineKind = Literal["cnc", "press", "robot", "oven", "packer", "conveyor"]
Value = float | int | bool | str

AMBIENT_C: Final = 22.0
NO_REASON: Final = "none"
DISABLED: Final = "disabled"
SPEED_SETPOINT: Final = "speed_setpoint"
ENABLED: Final = "enabled"
TEMPERATURE_SETPOINT: Final = "temperature_setpoint"
MAX_SPEED_FACTOR: Final = 1.2
MAX_TEMPERATURE_FACTOR: Final = 1.25


class State(StrEnum):
    """What a machine is doing, published as the `state` tag."""

    RUNNING = "RUNNING"
    IDLE = "IDLE"
    STOPPED = "STOPPED"
    FAULT = "FAULT"
    SETUP = "SETUP"


@dataclass(frozen=True, slots=True)
class Profile:
    """The tag names, stop reasons and fault codes of one machine kind."""

    speed_tag: str
    temperature_tag: str
    stop_reasons: tuple[str, ...]
    fault_codes: tuple[str, ...]


_COMMON_STOPS: Final = ("material_starvation", "blocked_downstream", "operator_break")

_PROFILES: Final[dict[MachineKind, Profile]] = {
    "cnc": Profile(
        "spindle.speed",
        "spindle.temperature",
        (*_COMMON_STOPS, "tool_change", "tool_change", "quality_check"),
        ("F101 spindle overload", "F214 coolant pressure low", "F305 axis following error"),
    ),
    "press": Profile(
        "motor.speed",
        "oil.temperature",
        (*_COMMON_STOPS, "jam", "quality_check"),
        ("P120 tonnage overload", "P210 die misalignment", "P330 lube pressure low"),
    ),
    "robot": Profile(
        "motor.speed",
        "motor.temperature",
        (*_COMMON_STOPS, "jam"),
        ("R050 collision detected", "R112 gripper vacuum lost", "R207 servo overcurrent"),
    ),
    "oven": Profile(
        "fan.speed",
        "chamber.temperature",
        _COMMON_STOPS,
        ("O301 overtemperature", "O115 burner flame loss", "O220 fan failure"),
    ),
    "packer": Profile(
        "motor.speed",
        "motor.temperature",
        (*_COMMON_STOPS, "jam", "jam"),
        ("K401 film break", "K230 sealer overtemperature", "K118 drive fault"),
    ),
    "conveyor": Profile(
        "motor.speed",
        "motor.temperature",
        ("material_starvation", "blocked_downstream", "jam"),
        ("C010 belt slip", "C044 motor overload", "C090 emergency stop"),
    ),
}


def profile_of(kind: MachineKind) -> Profile:
    """The profile of machines of `kind`."""
    return _PROFILES[kind]


@dataclass(frozen=True, slots=True)
class MachineSpec:
    """What a machine is, where it stands, and its nominal operating point."""

    asset: str
    kind: MachineKind
    cell: Node
    speed_rpm: float
    power_kw: float
    temperature_c: float
    vibration_mm_s: float
    cycle_s: float
    scrap_rate: float = 0.01

    def __post_init__(self) -> None:
        check_segment(self.asset)
        if min(self.speed_rpm, self.power_kw, self.vibration_mm_s, self.cycle_s) <= 0:
            raise ValueError(f"nominal values of {self.asset!r} must be positive")
        if not 0.0 <= self.scrap_rate < 1.0:
            raise ValueError(f"scrap rate of {self.asset!r} must be in [0, 1)")

    @property
    def node(self) -> Node:
        """The machine's own node: its cell plus the asset name."""
        return Node.from_segments((*self.cell.segments, self.asset))


@dataclass(frozen=True, slots=True)
class Setpoint:
    """A writable setpoint: a number within [low, high], or a switch when both are None."""

    name: str
    unit: str | None = None
    low: float | None = None
    high: float | None = None

    def check(self, value: object) -> Value:
        """Return `value` as the setpoint takes it; raise ValidationFailed if it does not fit."""
        if self.low is None or self.high is None:
            if isinstance(value, bool):
                return value
            raise self._bad("expects a boolean", value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._bad("expects a number", value)
        if not self.low <= value <= self.high:  # also false for NaN
            raise self._bad(f"expects {self.low:g} to {self.high:g} {self.unit}", value)
        return float(value)

    def _bad(self, expectation: str, value: object) -> ValidationFailed:
        return ValidationFailed(
            f"{self.name} {expectation}, got {value!r}",
            code="bad_value",
            setpoint=self.name,
        )


def setpoints_of(spec: MachineSpec) -> tuple[Setpoint, ...]:
    """Every setpoint a machine of `spec` takes, with its range."""
    setpoints = (
        Setpoint(ENABLED),
        Setpoint(SPEED_SETPOINT, "rpm", 0.0, MAX_SPEED_FACTOR * spec.speed_rpm),
    )
    if spec.kind != "oven":
        return setpoints
    high = MAX_TEMPERATURE_FACTOR * spec.temperature_c
    return (*setpoints, Setpoint(TEMPERATURE_SETPOINT, "degC", AMBIENT_C, high))


def kind_tags(kind: MachineKind) -> dict[str, str | None]:
    """Every tag a machine of `kind` reports, with its unit."""
    profile = profile_of(kind)
    return {
        **dict.fromkeys(("state", "stop.reason", "fault.code", "alarm.active")),
        profile.speed_tag: "rpm",
        profile.temperature_tag: "degC",
        "vibration.rms": "mm/s",
        "power": "kW",
        "parts.good": "pcs",
        "parts.bad": "pcs",
    }


def kind_texts(kind: MachineKind) -> dict[str, tuple[str, ...]]:
    """Every value the text tags of a machine of `kind` can take."""
    profile = profile_of(kind)
    reasons = (NO_REASON, DISABLED, "changeover", "fault", *profile.stop_reasons)
    return {
        "state": tuple(State),
        "stop.reason": tuple(dict.fromkeys(reasons)),
        "fault.code": (NO_REASON, *profile.fault_codes),
    }
