"""Simulated machines: pure, seeded signal models with no I/O.

Each `Machine` owns a `random.Random`, so the same seed and the same `step` times give
the same readings. Per running second a machine rolls for an event:

* a short stop with probability `P_STOP_PER_S` (1/60: a run lasts about a minute), as
  IDLE (starved or blocked, 3-15 s) or STOPPED (tool change, jam, break, check, 8-30 s);
* a changeover (SETUP, 60-180 s) with probability `P_SETUP_PER_S` (1/2400);
* a fault with probability `P_FAULT_PER_S` (1/1200, higher with wear). A fault is
  announced by 10-30 s of vibration spikes, rising temperature and more scrap before
  the machine goes to FAULT for 30-120 s; repair resets the wear.

Setpoints change what the machine does: `speed_setpoint` is the running speed the drive
follows (0 to 1.2x nominal), `enabled` False stops the machine until it is enabled again
(a fault still runs out its repair time first), and an oven's `temperature_setpoint` is
the chamber temperature it heats toward.

With the nine demo machines a 60-second demo sees about seven stops (the chance of
none is below 0.1 %), and an hour sees a couple of faults per machine. About one
analog reading in 500 is a sensor glitch: a value up to 10 % off, quality "uncertain".
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Final, Literal

from werk.core.errors import NotFound
from werk.sim.profiles import (
    AMBIENT_C,
    DISABLED,
    ENABLED,
    MAX_SPEED_FACTOR,
    MAX_TEMPERATURE_FACTOR,
    NO_REASON,
    SPEED_SETPOINT,
    TEMPERATURE_SETPOINT,
    MachineKind,
    MachineSpec,
    Setpoint,
    State,
    Value,
    kind_tags,
    kind_texts,
    profile_of,
    setpoints_of,
)
from werk.uns.topics import Node

__all__ = [
    "AMBIENT_C",
    "DISABLED",
    "ENABLED",
    "MAX_SPEED_FACTOR",
    "MAX_STEP_S",
    "MAX_TEMPERATURE_FACTOR",
    "NO_REASON",
    "P_FAULT_PER_S",
    "P_GLITCH",
    "P_SETUP_PER_S",
    "P_STOP_PER_S",
    "SPEED_SETPOINT",
    "TEMPERATURE_SETPOINT",
    "Machine",
    "MachineKind",
    "MachineSpec",
    "Quality",
    "Reading",
    "Setpoint",
    "State",
    "Value",
    "kind_tags",
    "kind_texts",
    "setpoints_of",
]

Quality = Literal["good", "uncertain", "bad"]

P_STOP_PER_S: Final = 1 / 60
P_SETUP_PER_S: Final = 1 / 2400
P_FAULT_PER_S: Final = 1 / 1200
P_GLITCH: Final = 1 / 500
MAX_STEP_S: Final = 10.0

_IDLE_S: Final = (3.0, 15.0)
_STOPPED_S: Final = (8.0, 30.0)
_SETUP_S: Final = (60.0, 180.0)
_FAULT_S: Final = (30.0, 120.0)
_PRECURSOR_S: Final = (10.0, 30.0)
_IDLE_REASONS: Final = frozenset({"material_starvation", "blocked_downstream"})
_WEAR_PER_S: Final = 1e-4
_TEMPERATURE_TAU_S: Final = 90.0
_SPEED_TAU_S: Final = 2.0
_SETUP_SPEED: Final = 0.25


# Share of nominal load per state; drives power, temperature and vibration.
_LOAD: Final = {
    State.RUNNING: 1.0,
    State.SETUP: 0.3,
    State.IDLE: 0.1,
    State.STOPPED: 0.05,
    State.FAULT: 0.05,
}


@dataclass(frozen=True, slots=True)
class Reading:
    """One sampled tag value."""

    tag: str
    value: Value
    unit: str | None = None
    quality: Quality = "good"


def _chance(per_s: float, dt: float) -> float:
    """Turn a probability per second into one for a step of `dt` seconds."""
    return 1.0 - math.pow(1.0 - min(per_s, 1.0), dt)


def _lag(current: float, target: float, dt: float, tau_s: float) -> float:
    """Move a first-order lag from `current` toward `target` over `dt` seconds."""
    return target + (current - target) * math.exp(-dt / tau_s)


class Machine:
    """A simulated machine: call `step` once per sample to advance it and read its tags."""

    def __init__(self, spec: MachineSpec, seed: int | str = 0) -> None:
        self.spec = spec
        self._profile = profile_of(spec.kind)
        self._rng = random.Random(seed)
        self._state = State.RUNNING
        self._reason = NO_REASON
        self._fault_code = NO_REASON
        self._until_ms = 0
        self._fault_at_ms: int | None = None
        self._last_ms: int | None = None
        self._wear = 0.0
        self._cycle = 0.0
        self._good = 0
        self._bad = 0
        self._speed = spec.speed_rpm
        self._heat = spec.temperature_c
        self._drift = 0.0
        self._temperature = spec.temperature_c
        self._vibration = spec.vibration_mm_s
        self._power = spec.power_kw
        self._setpoints = {s.name: s for s in setpoints_of(spec)}
        self._enabled = True
        self._speed_setpoint = spec.speed_rpm
        self._temperature_setpoint = spec.temperature_c

    @property
    def state(self) -> State:
        """The current machine state."""
        return self._state

    @property
    def node(self) -> Node:
        """Where the machine publishes."""
        return self.spec.node

    @property
    def tags(self) -> dict[str, str | None]:
        """Every tag the machine reports, with its unit."""
        return {reading.tag: reading.unit for reading in self._readings()}

    @property
    def setpoints(self) -> dict[str, Value]:
        """The current value of every setpoint."""
        values: dict[str, Value] = {ENABLED: self._enabled, SPEED_SETPOINT: self._speed_setpoint}
        if TEMPERATURE_SETPOINT in self._setpoints:
            values[TEMPERATURE_SETPOINT] = self._temperature_setpoint
        return values

    def setpoint(self, name: str) -> Setpoint:
        """Describe one setpoint; raise NotFound for a name the machine does not take."""
        try:
            return self._setpoints[name]
        except KeyError:
            raise NotFound(
                f"{self.spec.asset} has no setpoint {name!r}",
                code="unknown_setpoint",
                setpoint=name,
            ) from None

    def check(self, setpoint: str, value: object) -> Value:
        """Return the value `apply` would set, without setting it."""
        return self.setpoint(setpoint).check(value)

    def apply(self, setpoint: str, value: object) -> Value:
        """Set a setpoint and return the value applied; it takes effect with the next step."""
        applied = self.check(setpoint, value)
        if setpoint == ENABLED:
            self._enabled = bool(applied)
        elif setpoint == SPEED_SETPOINT:
            self._speed_setpoint = float(applied)
        else:
            self._temperature_setpoint = float(applied)
        return applied

    def step(self, now_ms: int) -> list[Reading]:
        """Advance the simulation to `now_ms` (epoch ms) and return every tag's reading."""
        dt = self._elapsed_s(now_ms)
        self._advance_state(now_ms, dt)
        self._advance_signals(dt)
        self._count_parts(dt)
        return [self._glitch(reading) for reading in self._readings()]

    def _elapsed_s(self, now_ms: int) -> float:
        # The first sample counts as one second so a fresh machine already moves.
        last, self._last_ms = self._last_ms, now_ms
        if last is None:
            return 1.0
        return min(max((now_ms - last) / 1000, 0.0), MAX_STEP_S)

    @property
    def _pre_fault(self) -> bool:
        return self._fault_at_ms is not None

    def _advance_state(self, now_ms: int, dt: float) -> None:
        if not self._enabled:
            self._hold_disabled(now_ms)
        elif self._state is not State.RUNNING:
            if now_ms >= self._until_ms:
                self._enter_running()
        elif self._fault_at_ms is not None:
            if now_ms >= self._fault_at_ms:
                self._enter_fault(now_ms)
        else:
            self._roll_event(now_ms, dt)

    def _hold_disabled(self, now_ms: int) -> None:
        if self._state is State.FAULT:
            if now_ms < self._until_ms:
                return
            self._wear = 0.0
        self._fault_at_ms = None
        self._state, self._reason, self._fault_code = State.STOPPED, DISABLED, NO_REASON
        # Due at once, so enabling the machine again resumes it with the next step.
        self._until_ms = now_ms

    def _roll_event(self, now_ms: int, dt: float) -> None:
        roll = self._rng.random()
        events = (
            (P_FAULT_PER_S * (1.0 + 2.0 * self._wear), self._schedule_fault),
            (P_STOP_PER_S, self._enter_stop),
            (P_SETUP_PER_S, self._enter_setup),
        )
        for per_s, event in events:
            chance = _chance(per_s, dt)
            if roll < chance:
                event(now_ms)
                return
            roll -= chance

    def _enter(self, state: State, reason: str, now_ms: int, span_s: tuple[float, float]) -> None:
        self._state = state
        self._reason = reason
        self._until_ms = now_ms + round(self._rng.uniform(*span_s) * 1000)

    def _enter_running(self) -> None:
        if self._state is State.FAULT:
            self._wear = 0.0
        self._state = State.RUNNING
        self._reason = NO_REASON
        self._fault_code = NO_REASON

    def _enter_stop(self, now_ms: int) -> None:
        reason = self._rng.choice(self._profile.stop_reasons)
        if reason == "tool_change":
            self._wear = 0.0
        if reason in _IDLE_REASONS:
            self._enter(State.IDLE, reason, now_ms, _IDLE_S)
        else:
            self._enter(State.STOPPED, reason, now_ms, _STOPPED_S)

    def _enter_setup(self, now_ms: int) -> None:
        self._enter(State.SETUP, "changeover", now_ms, _SETUP_S)

    def _schedule_fault(self, now_ms: int) -> None:
        self._fault_at_ms = now_ms + round(self._rng.uniform(*_PRECURSOR_S) * 1000)

    def _enter_fault(self, now_ms: int) -> None:
        self._fault_at_ms = None
        self._fault_code = self._rng.choice(self._profile.fault_codes)
        self._enter(State.FAULT, "fault", now_ms, _FAULT_S)

    def _advance_signals(self, dt: float) -> None:
        if self._state is State.RUNNING:
            self._wear += _WEAR_PER_S * dt
        self._advance_speed(dt)
        self._advance_temperature(dt)
        self._advance_vibration()
        self._advance_power()

    def _advance_speed(self, dt: float) -> None:
        nominal = self.spec.speed_rpm
        if self._state is State.RUNNING:
            target, noise = self._speed_setpoint, self._rng.gauss(0.0, 0.004 * nominal)
        elif self._state is State.SETUP:
            target, noise = _SETUP_SPEED * self._speed_setpoint, 0.0
        else:
            # Drives brake to a standstill within one sample.
            self._speed = 0.0
            return
        self._speed = max(0.0, _lag(self._speed, target, dt, _SPEED_TAU_S) + noise)

    def _advance_temperature(self, dt: float) -> None:
        setpoint = self._temperature_setpoint
        rise = setpoint - AMBIENT_C
        if self._pre_fault or self._state is State.FAULT:
            target = setpoint + 0.2 * abs(rise) + 5.0
        else:
            target = AMBIENT_C + rise * (0.6 + 0.4 * _LOAD[self._state])
        self._heat = _lag(self._heat, target, dt, _TEMPERATURE_TAU_S)
        # A bounded, mean-reverting random walk makes the slow wander real sensors show.
        self._drift = self._drift * math.exp(-dt / 600) + self._rng.gauss(0.0, 0.05 * math.sqrt(dt))
        self._temperature = self._heat + self._drift + self._rng.gauss(0.0, 0.1)

    def _advance_vibration(self) -> None:
        nominal = self.spec.vibration_mm_s
        level = nominal * (1.0 + self._wear) * _LOAD[self._state] + 0.02 * nominal
        if self._pre_fault and self._rng.random() < 0.35:
            level *= self._rng.uniform(2.0, 4.0)
        self._vibration = max(0.0, level + self._rng.gauss(0.0, 0.05 * level))

    def _advance_power(self) -> None:
        nominal = self.spec.power_kw
        load = _LOAD[self._state]
        if self._state is State.RUNNING:
            load *= self._speed / self.spec.speed_rpm
        level = nominal * (0.05 + 0.95 * load) * (1.0 + 0.1 * self._wear)
        self._power = max(0.0, level + self._rng.gauss(0.0, 0.02 * level))

    def _count_parts(self, dt: float) -> None:
        if self._state is not State.RUNNING:
            return
        self._cycle += dt / self.spec.cycle_s * self._speed / self.spec.speed_rpm
        scrap = self.spec.scrap_rate * (4.0 if self._pre_fault else 1.0)
        while self._cycle >= 1.0:
            self._cycle -= 1.0
            if self._rng.random() < scrap:
                self._bad += 1
            else:
                self._good += 1

    def _readings(self) -> list[Reading]:
        profile = self._profile
        return [
            Reading("state", self._state.value),
            Reading("stop.reason", self._reason),
            Reading("fault.code", self._fault_code),
            Reading("alarm.active", self._state is State.FAULT),
            Reading(profile.speed_tag, round(self._speed, 1), "rpm"),
            Reading(profile.temperature_tag, round(self._temperature, 2), "degC"),
            Reading("vibration.rms", round(self._vibration, 3), "mm/s"),
            Reading("power", round(self._power, 2), "kW"),
            Reading("parts.good", self._good, "pcs"),
            Reading("parts.bad", self._bad, "pcs"),
        ]

    def _glitch(self, reading: Reading) -> Reading:
        if not isinstance(reading.value, float) or self._rng.random() >= P_GLITCH:
            return reading
        value = round(reading.value * self._rng.uniform(0.9, 1.1), 3)
        return replace(reading, value=value, quality="uncertain")
