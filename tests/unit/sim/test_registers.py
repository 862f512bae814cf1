"""The demo plant's register map, its encodings, and the connector configs built from it."""

from __future__ import annotations

import math
from itertools import pairwise
from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from werk.core.errors import ValidationFailed
from werk.edge.connectors.modbus import ModbusConfig, ModbusTag
from werk.edge.connectors.opcua import OpcUaTag
from werk.sim import demo_machines
from werk.sim.machines import MachineKind, kind_tags, kind_texts, setpoints_of
from werk.sim.plant import demo_specs
from werk.sim.registers import (
    BIT_TABLES,
    RUNNING,
    WRITABLE_TABLES,
    Register,
    modbus_poll_groups,
    modbus_tag_configs,
    opcua_tag_configs,
    register_map,
)

KINDS: tuple[MachineKind, ...] = get_args(MachineKind)
CONFIG_KEYS = {
    "name",
    "table",
    "address",
    "type",
    "length",
    "bit",
    "scale",
    "offset",
    "writable",
    "unit",
}
WIDTHS = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "int64": 4, "float64": 4}
RAW_RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}


@pytest.mark.parametrize("kind", KINDS)
def test_no_two_tags_share_an_address(kind: MachineKind) -> None:
    for table in ("coil", "discrete_input", "holding_register", "input_register"):
        spans = sorted((r.address, r.end) for r in register_map(kind) if r.table == table)
        assert spans, table
        for (_, end), (start, _) in pairwise(spans):
            assert end <= start, (kind, table, spans)


@pytest.mark.parametrize("kind", KINDS)
def test_every_tag_and_setpoint_is_mapped(kind: MachineKind) -> None:
    spec = next(s for s in demo_specs() if s.kind == kind)
    names = [r.name for r in register_map(kind)]
    expected = {*kind_tags(kind), *(s.name for s in setpoints_of(spec)), RUNNING}
    assert sorted(names) == sorted(expected)


@pytest.mark.parametrize("kind", KINDS)
def test_configs_keep_their_invariants(kind: MachineKind) -> None:
    texts = kind_texts(kind)
    for config in modbus_tag_configs(kind):
        assert set(config) == CONFIG_KEYS
        bits = config["table"] in BIT_TABLES
        assert bits == (config["type"] == "bool"), config
        assert config["writable"] == (config["table"] in WRITABLE_TABLES), config
        assert config["scale"] != 0
        assert config["bit"] is None
        if config["type"] == "string":
            longest = max(len(text.encode()) for text in texts[config["name"]])
            assert 2 * config["length"] >= longest, config
        else:
            assert config["length"] == 1, config
        if bits or config["type"] == "string":
            assert (config["scale"], config["offset"]) == (1.0, 0.0)
        size = WIDTHS.get(config["type"], config["length"])
        assert config["address"] >= 0 and config["address"] + size <= 65536
        ModbusTag.model_validate(config)


@pytest.mark.parametrize("kind", KINDS)
def test_poll_groups_make_a_valid_connector_config(kind: MachineKind) -> None:
    groups = modbus_poll_groups(kind, interval_ms=500)
    config = ModbusConfig(name="unit-1", host="127.0.0.1", port=5020, unit_id=1, groups=groups)
    tags = [tag for group in config.groups for tag in group.tags]
    assert sorted(t.name for t in tags) == sorted(c["name"] for c in modbus_tag_configs(kind))
    assert {g.name: g.interval_ms for g in config.groups} == {"measurements": 500, "setpoints": 500}
    writable = {t.name for t in tags if t.writable}
    assert writable == {t.name for t in config.groups[1].tags}


def test_numbers_are_big_endian_in_bytes_and_words() -> None:
    speed = Register("speed", "input_register", 0, "float32")
    assert speed.encode(1.0) == [0x3F80, 0x0000]
    assert Register("n", "input_register", 0, "uint32").encode(65538) == [0x0001, 0x0002]
    temperature = Register("t", "input_register", 0, "int16", scale=0.1)
    assert temperature.encode(-1.5) == [0xFFF1]
    assert temperature.decode([0xFFF1]) == pytest.approx(-1.5)
    text = Register("s", "input_register", 0, "string", length=3)
    assert text.encode("RUN") == [0x5255, 0x4E00, 0x0000]
    assert text.decode([0x5255, 0x4E00, 0x0000]) == "RUN"


def numeric_registers() -> list[Register]:
    """Every numeric register of every kind, without repeats."""
    found = {r.name: r for kind in KINDS for r in register_map(kind)}
    return [r for r in found.values() if r.type not in ("bool", "string")]


def representable(register: Register) -> st.SearchStrategy[float]:
    """Values the register can hold."""
    if register.type == "float32":
        return st.floats(allow_nan=False, allow_infinity=False, width=32)
    low, high = RAW_RANGES[register.type]
    ends = sorted((low * register.scale + register.offset, high * register.scale + register.offset))
    return st.floats(ends[0], ends[1], allow_nan=False)


@pytest.mark.parametrize("register", numeric_registers(), ids=lambda r: r.name)
@given(data=st.data())
def test_numbers_round_trip_within_their_resolution(
    register: Register, data: st.DataObject
) -> None:
    value = data.draw(representable(register))
    words = register.encode(value)
    assert len(words) == register.size
    assert all(0 <= word <= 0xFFFF for word in words)
    decoded = register.decode(words)
    assert isinstance(decoded, int | float)
    if register.type == "float32":
        assert decoded == value
    else:
        assert abs(decoded - value) <= register.scale / 2 + 1e-9 * abs(value)


@given(text=st.text(st.characters(codec="ascii", exclude_characters="\x00"), max_size=16))
def test_texts_round_trip(text: str) -> None:
    register = Register("fault.code", "input_register", 0, "string", length=8)
    assert register.decode(register.encode(text)) == text


@pytest.mark.parametrize(
    ("register", "value"),
    [
        (Register("t", "input_register", 0, "int16", scale=0.1), 5000.0),
        (Register("v", "input_register", 0, "uint16", scale=0.001), -0.5),
        (Register("p", "input_register", 0, "uint32"), math.nan),
        (Register("f", "input_register", 0, "float32"), 1e39),
        (Register("n", "input_register", 0, "uint16"), True),
        (Register("s", "input_register", 0, "string", length=2), "RUNNING"),
        (Register("s", "input_register", 0, "string", length=2), 7),
    ],
)
def test_values_that_do_not_fit_are_refused(register: Register, value: float | str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        register.encode(value)
    assert caught.value.code == "bad_value"


def test_opcua_configs_name_every_tag_and_setpoint() -> None:
    machines = demo_machines()
    for machine in machines:
        configs = opcua_tag_configs(machine)
        names = [c["name"] for c in configs]
        assert names == [*machine.tags, *machine.setpoints]
        assert {c["name"] for c in configs if c["writable"]} == set(machine.setpoints)
        for config in configs:
            OpcUaTag.model_validate(config)
    node_ids = [c["node_id"] for m in machines for c in opcua_tag_configs(m)]
    assert len(set(node_ids)) == len(node_ids)
    cnc = next(m for m in machines if m.spec.asset == "cnc-1")
    assert opcua_tag_configs(cnc)[4] == {
        "name": "spindle.speed",
        "node_id": "ns=2;s=line-1/cnc-1/spindle.speed",
        "writable": False,
        "unit": "rpm",
    }
    assert opcua_tag_configs(cnc)[-1]["node_id"] == "ns=2;s=line-1/cnc-1/Setpoints/speed_setpoint"
