"""Behaviour of the simulated machines and the demo plant layout (no broker)."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise

import orjson
import pytest

from werk.core.errors import TopicError
from werk.sim import DemoPlant, Machine, MachineSpec, Reading, State, demo_machines
from werk.sim.machines import AMBIENT_C, NO_REASON
from werk.sim.plant import batch_payload, value_payload
from werk.uns.topics import DataClass, Node, parse_topic

T0_MS = 1_700_000_000_000
HOUR_S = 3600
STOP_REASONS = {
    "material_starvation",
    "blocked_downstream",
    "operator_break",
    "tool_change",
    "jam",
    "quality_check",
}


@dataclass(frozen=True)
class Sample:
    """One step of one machine, keyed by tag."""

    second: int
    values: dict[str, Reading]

    def __getitem__(self, tag: str) -> Reading:
        return self.values[tag]

    @property
    def state(self) -> str:
        return str(self.values["state"].value)


def run(machine: Machine, seconds: int, step_s: float = 1.0) -> list[Sample]:
    """Step `machine` for `seconds` simulated seconds."""
    steps = int(seconds / step_s)
    return [
        Sample(i, {r.tag: r for r in machine.step(T0_MS + round(i * step_s * 1000))})
        for i in range(steps)
    ]


def tag_with_unit(machine: Machine, unit: str) -> str:
    """The machine's tag measured in `unit`."""
    return next(tag for tag, tag_unit in machine.tags.items() if tag_unit == unit)


def fault_episodes(samples: list[Sample]) -> Iterator[tuple[int, int]]:
    """Yield (first, last) indexes of each run of FAULT samples."""
    start: int | None = None
    for i, sample in enumerate(samples):
        if sample.state == "FAULT" and start is None:
            start = i
        elif sample.state != "FAULT" and start is not None:
            yield start, i - 1
            start = None


@pytest.fixture(scope="module")
def hour() -> dict[str, tuple[Machine, list[Sample]]]:
    """One simulated hour of every demo machine, keyed by asset."""
    return {m.spec.asset: (m, run(m, HOUR_S)) for m in demo_machines(seed=7)}


def test_same_seed_gives_same_readings() -> None:
    first = [run(m, 300) for m in demo_machines(seed=3)]
    again = [run(m, 300) for m in demo_machines(seed=3)]
    assert first == again


def test_other_seed_gives_other_readings() -> None:
    first = [run(m, 300) for m in demo_machines(seed=3)]
    other = [run(m, 300) for m in demo_machines(seed=4)]
    assert first != other


def test_plant_has_two_lines_and_every_kind() -> None:
    machines = demo_machines()
    lines = {(m.node.enterprise, m.node.site, m.node.area, m.node.line) for m in machines}
    assert lines == {
        ("acme", "berlin", "machining", "line-1"),
        ("acme", "berlin", "machining", "line-2"),
    }
    assert len(machines) >= 6
    assert len({m.spec.asset for m in machines}) == len(machines)
    kinds = {m.spec.kind for m in machines}
    assert kinds == {"cnc", "press", "robot", "oven", "packer", "conveyor"}
    for line in ("line-1", "line-2"):
        assert sum(m.node.line == line for m in machines) >= 3


def test_counters_never_decrease_and_only_count_while_running(
    hour: dict[str, tuple[Machine, list[Sample]]],
) -> None:
    for _, samples in hour.values():
        for before, after in pairwise(samples):
            for tag in ("parts.good", "parts.bad"):
                assert isinstance(after[tag].value, int)
                assert after[tag].value >= before[tag].value
            if after.state != "RUNNING":
                assert after["parts.good"].value == before["parts.good"].value
                assert after["parts.bad"].value == before["parts.bad"].value
        assert samples[-1]["parts.good"].value > samples[-1]["parts.bad"].value
    assert sum(samples[-1]["parts.bad"].value for _, samples in hour.values()) > 0


def test_an_hour_shows_stops_setups_and_faults(
    hour: dict[str, tuple[Machine, list[Sample]]],
) -> None:
    seen = {sample.state for _, samples in hour.values() for sample in samples}
    assert seen == {state.value for state in State}
    faults = sum(len(list(fault_episodes(samples))) for _, samples in hour.values())
    assert faults >= 1
    for _, samples in hour.values():
        running = sum(sample.state == "RUNNING" for sample in samples)
        assert running > 0.6 * len(samples)


def test_stop_reason_and_fault_code_follow_the_state(
    hour: dict[str, tuple[Machine, list[Sample]]],
) -> None:
    for _, samples in hour.values():
        for sample in samples:
            reason, code = sample["stop.reason"].value, sample["fault.code"].value
            assert sample["alarm.active"].value is (sample.state == "FAULT")
            if sample.state == "RUNNING":
                assert (reason, code) == (NO_REASON, NO_REASON)
            elif sample.state in ("IDLE", "STOPPED"):
                assert reason in STOP_REASONS
            elif sample.state == "FAULT":
                assert reason == "fault"
                assert code != NO_REASON


def test_a_minute_of_demo_shows_a_stop() -> None:
    for seed in range(20):
        machines = demo_machines(seed)
        states = {sample.state for m in machines for sample in run(m, 60)}
        assert states & {"IDLE", "STOPPED", "FAULT", "SETUP"}, f"seed {seed}"


def test_speed_is_zero_when_stopped(hour: dict[str, tuple[Machine, list[Sample]]]) -> None:
    for machine, samples in hour.values():
        speed = tag_with_unit(machine, "rpm")
        for sample in samples:
            if sample.state in ("IDLE", "STOPPED", "FAULT"):
                assert sample[speed].value == 0.0
            if sample.state == "RUNNING" and sample[speed].quality == "good":
                assert sample[speed].value > 0.0


def test_values_stay_plausible(hour: dict[str, tuple[Machine, list[Sample]]]) -> None:
    for machine, samples in hour.values():
        spec = machine.spec
        speed, temperature = tag_with_unit(machine, "rpm"), tag_with_unit(machine, "degC")
        hot = spec.temperature_c + 0.25 * (spec.temperature_c - AMBIENT_C) + 8
        for sample in samples:
            # A glitched reading may be up to 10 % off.
            off = 1.1 if sample[temperature].quality == "uncertain" else 1.0
            assert AMBIENT_C - 5 <= sample[temperature].value <= hot * off
            assert 0.0 <= sample[speed].value <= 1.15 * spec.speed_rpm
            assert 0.0 <= sample["vibration.rms"].value <= 8 * spec.vibration_mm_s
            assert 0.0 <= sample["power"].value <= 1.3 * spec.power_kw


def test_running_speed_follows_the_setpoint(
    hour: dict[str, tuple[Machine, list[Sample]]],
) -> None:
    for machine, samples in hour.values():
        speed = tag_with_unit(machine, "rpm")
        running = [s[speed].value for s in samples if s.state == "RUNNING"]
        assert statistics.median(running) == pytest.approx(machine.spec.speed_rpm, rel=0.02)


def test_temperature_rises_during_faults(hour: dict[str, tuple[Machine, list[Sample]]]) -> None:
    checked = 0
    for machine, samples in hour.values():
        temperature = tag_with_unit(machine, "degC")
        for first, last in fault_episodes(samples):
            assert samples[last][temperature].value > samples[first][temperature].value
            checked += 1
    assert checked > 0


def test_vibration_spikes_before_faults(hour: dict[str, tuple[Machine, list[Sample]]]) -> None:
    for _, samples in hour.values():
        running = [s["vibration.rms"].value for s in samples if s.state == "RUNNING"]
        typical = statistics.median(running)
        for first, _ in fault_episodes(samples):
            before = samples[max(0, first - 10) : first]
            assert max(s["vibration.rms"].value for s in before) > 1.8 * typical


def test_glitches_are_rare_uncertain_and_only_on_measurements(
    hour: dict[str, tuple[Machine, list[Sample]]],
) -> None:
    readings = [r for _, samples in hour.values() for s in samples for r in s.values.values()]
    uncertain = [r for r in readings if r.quality != "good"]
    assert 0 < len(uncertain) < 0.01 * len(readings)
    assert all(r.quality == "uncertain" and isinstance(r.value, float) for r in uncertain)


def test_sampling_twice_at_one_instant_makes_no_parts() -> None:
    machine = demo_machines()[0]
    run(machine, 600)
    now = T0_MS + 600_000
    first = {r.tag: r.value for r in machine.step(now)}
    again = {r.tag: r.value for r in machine.step(now)}
    assert (first["parts.good"], first["parts.bad"]) == (again["parts.good"], again["parts.bad"])


def test_sub_second_sampling_keeps_the_same_rates() -> None:
    fast = demo_machines(seed=11)[4]
    samples = run(fast, 600, step_s=0.2)
    assert samples[-1]["parts.good"].value > 0
    assert {s.state for s in samples} & {"IDLE", "STOPPED", "FAULT", "SETUP"}


def test_tags_carry_units() -> None:
    machine = next(m for m in demo_machines() if m.spec.kind == "cnc")
    assert machine.tags == {
        "state": None,
        "stop.reason": None,
        "fault.code": None,
        "alarm.active": None,
        "spindle.speed": "rpm",
        "spindle.temperature": "degC",
        "vibration.rms": "mm/s",
        "power": "kW",
        "parts.good": "pcs",
        "parts.bad": "pcs",
    }


def test_spec_rejects_a_bad_asset_name() -> None:
    cell = Node("acme", "berlin", "machining", "line-1", "cell-1")
    with pytest.raises(TopicError):
        MachineSpec("cnc/1", "cnc", cell, 12000, 15, 38, 1.2, 45)


def test_spec_rejects_a_zero_cycle() -> None:
    cell = Node("acme", "berlin", "machining", "line-1", "cell-1")
    with pytest.raises(ValueError, match="positive"):
        MachineSpec("cnc-9", "cnc", cell, 12000, 15, 38, 1.2, 0)


def test_plant_topics_parse_and_use_both_classes() -> None:
    plant = DemoPlant("127.0.0.1", 1883)
    parsed = [parse_topic(topic) for topic in plant.topics()]
    assert {p.data_class for p in parsed} == {DataClass.VALUE, DataClass.BATCH}
    assert {p.node for p in parsed} == {m.node for m in plant.machines}
    assert len(set(plant.topics())) == len(plant.topics())


def test_plant_rejects_a_bad_root() -> None:
    with pytest.raises(TopicError):
        DemoPlant("127.0.0.1", 1883, root="uns/#")


def test_payloads_follow_the_contracts() -> None:
    speed = Reading("spindle.speed", 11990.5, "rpm", "uncertain")
    state = Reading("state", "RUNNING")
    assert orjson.loads(value_payload(speed, T0_MS)) == {
        "value": 11990.5,
        "ts": T0_MS,
        "quality": "uncertain",
        "unit": "rpm",
    }
    assert orjson.loads(value_payload(state, T0_MS)) == {
        "value": "RUNNING",
        "ts": T0_MS,
        "quality": "good",
    }
    assert orjson.loads(batch_payload([speed, state], T0_MS)) == {
        "ts": T0_MS,
        "values": {
            "spindle.speed": {"value": 11990.5, "unit": "rpm", "quality": "uncertain"},
            "state": "RUNNING",
        },
    }
