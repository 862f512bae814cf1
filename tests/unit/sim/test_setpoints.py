"""Machine setpoints: their ranges, refusals, and how a machine follows them."""

from __future__ import annotations

import math
import statistics

import pytest

from werk.core.errors import NotFound, ValidationFailed
from werk.sim import Machine, demo_machines
from werk.sim.machines import AMBIENT_C, DISABLED, MachineKind, State

T0_MS = 1_700_000_000_000


def machine_of(kind: MachineKind) -> Machine:
    """A fresh demo machine of `kind`."""
    return next(m for m in demo_machines() if m.spec.kind == kind)


def step(machine: Machine, seconds: int, start_s: int = 0) -> list[dict[str, object]]:
    """Advance `machine` second by second; return each sample's values by tag."""
    return [
        {r.tag: r.value for r in machine.step(T0_MS + (start_s + i) * 1000)} for i in range(seconds)
    ]


def test_machines_start_at_their_nominal_setpoints() -> None:
    oven = machine_of("oven")
    assert oven.setpoints == {
        "enabled": True,
        "speed_setpoint": oven.spec.speed_rpm,
        "temperature_setpoint": oven.spec.temperature_c,
    }
    assert set(machine_of("cnc").setpoints) == {"enabled", "speed_setpoint"}


@pytest.mark.parametrize(
    ("setpoint", "value"),
    [
        ("speed_setpoint", 1.21 * 12000),
        ("speed_setpoint", -1.0),
        ("speed_setpoint", math.nan),
        ("speed_setpoint", "fast"),
        ("speed_setpoint", True),
        ("enabled", 1),
        ("enabled", None),
    ],
)
def test_a_bad_setpoint_value_is_refused_and_not_applied(setpoint: str, value: object) -> None:
    cnc = machine_of("cnc")
    before = cnc.setpoints
    with pytest.raises(ValidationFailed) as caught:
        cnc.apply(setpoint, value)
    assert caught.value.code == "bad_value"
    assert cnc.setpoints == before


def test_an_unknown_setpoint_is_not_found() -> None:
    with pytest.raises(NotFound) as caught:
        machine_of("cnc").apply("temperature_setpoint", 50.0)
    assert caught.value.code == "unknown_setpoint"


def test_apply_returns_the_value_applied() -> None:
    cnc = machine_of("cnc")
    assert cnc.apply("speed_setpoint", 9000) == 9000.0
    assert isinstance(cnc.setpoints["speed_setpoint"], float)
    assert cnc.apply("speed_setpoint", 1.2 * 12000) == 14400.0
    assert cnc.apply("enabled", False) is False


def test_running_speed_follows_the_setpoint() -> None:
    cnc = machine_of("cnc")
    cnc.apply("speed_setpoint", 6000.0)
    samples = step(cnc, 600)
    running = [s["spindle.speed"] for s in samples[10:] if s["state"] == "RUNNING"]
    assert len(running) > 300
    assert statistics.median(running) == pytest.approx(6000.0, rel=0.02)


def test_disabled_machine_stops_until_enabled() -> None:
    cnc = machine_of("cnc")
    step(cnc, 30)
    cnc.apply("enabled", False)
    held = step(cnc, 300, start_s=30)
    # A fault runs out its repair time first; then the machine waits for its enable.
    first = next(i for i, s in enumerate(held) if s["state"] == State.STOPPED)
    assert all(s["state"] == State.FAULT for s in held[:first])
    for sample in held[first:]:
        assert (sample["state"], sample["stop.reason"]) == (State.STOPPED, DISABLED)
        assert sample["spindle.speed"] == 0.0
    assert held[-1]["parts.good"] == held[first]["parts.good"]
    cnc.apply("enabled", True)
    assert step(cnc, 1, start_s=330)[0]["state"] == State.RUNNING


def test_oven_heats_toward_its_temperature_setpoint() -> None:
    oven = machine_of("oven")
    with pytest.raises(ValidationFailed):
        oven.apply("temperature_setpoint", AMBIENT_C - 1)
    oven.apply("temperature_setpoint", 120.0)
    samples = step(oven, 900)
    assert samples[0]["chamber.temperature"] > 170
    late = [s["chamber.temperature"] for s in samples[600:] if s["state"] == "RUNNING"]
    assert statistics.median(late) == pytest.approx(120.0, abs=5.0)


def test_setpoint_changes_keep_runs_reproducible() -> None:
    def run(seed: int) -> list[list[dict[str, object]]]:
        machines = demo_machines(seed)
        for machine in machines:
            machine.apply("speed_setpoint", 0.8 * machine.spec.speed_rpm)
        first = [step(m, 100) for m in machines]
        for machine in machines:
            machine.apply("enabled", False)
        return first + [step(m, 50, start_s=100) for m in machines]

    assert run(5) == run(5)
    assert run(5) != run(6)
