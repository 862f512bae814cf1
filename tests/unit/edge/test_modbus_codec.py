"""Register <-> value conversion and read planning of the Modbus connector."""

from __future__ import annotations

import itertools
import math
import struct
from typing import Any, get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from werk.core.errors import ValidationFailed
from werk.edge.connectors.modbus_codec import (
    ModbusType,
    Order,
    RegisterCodec,
    Span,
    plan_reads,
)
from werk.sparkplug.datatypes import DataType

ORDERS = st.sampled_from(get_args(Order))
INTEGERS = {
    "int16": (-(2**15), 2**15 - 1, 1),
    "uint16": (0, 2**16 - 1, 1),
    "int32": (-(2**31), 2**31 - 1, 2),
    "uint32": (0, 2**32 - 1, 2),
    "int64": (-(2**63), 2**63 - 1, 4),
    "uint64": (0, 2**64 - 1, 4),
}


def same(a: Any, b: Any) -> bool:
    return (isinstance(a, float) and math.isnan(a) and math.isnan(b)) or a == b


@st.composite
def integer_cases(draw: st.DrawFn) -> tuple[RegisterCodec, int]:
    kind = draw(st.sampled_from(sorted(INTEGERS)))
    low, high, _ = INTEGERS[kind]
    codec = RegisterCodec(kind, draw(ORDERS), draw(ORDERS))  # type: ignore[arg-type]
    return codec, draw(st.integers(low, high))


@given(integer_cases())
def test_integers_round_trip_in_every_order(case: tuple[RegisterCodec, int]) -> None:
    codec, value = case
    registers = codec.encode(value)
    assert len(registers) == codec.registers == INTEGERS[codec.type][2]
    assert all(0 <= r <= 0xFFFF for r in registers)
    decoded = codec.decode(registers)
    assert decoded == value and type(decoded) is int


@given(ORDERS, ORDERS, st.floats(width=32))
def test_float32_round_trips(byte_order: Order, word_order: Order, value: float) -> None:
    codec = RegisterCodec("float32", byte_order, word_order)
    assert same(codec.decode(codec.encode(value)), value)


@given(ORDERS, ORDERS, st.floats())
def test_float64_round_trips(byte_order: Order, word_order: Order, value: float) -> None:
    codec = RegisterCodec("float64", byte_order, word_order)
    assert same(codec.decode(codec.encode(value)), value)


@given(ORDERS, st.integers(1, 8), st.data())
def test_strings_round_trip(byte_order: Order, length: int, data: st.DataObject) -> None:
    alphabet = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))
    text = data.draw(
        st.text(alphabet, max_size=2 * length).filter(lambda t: len(t.encode()) <= 2 * length)
    )
    codec = RegisterCodec("string", byte_order, length=length)
    assert len(codec.encode(text)) == length
    assert codec.decode(codec.encode(text)) == text


def test_layouts_match_the_wire() -> None:
    big = struct.unpack(">HH", struct.pack(">i", -123456789))
    assert RegisterCodec("int32").encode(-123456789) == list(big)
    assert RegisterCodec("int32", word_order="little").encode(-123456789) == list(big[::-1])
    swapped = [((r & 0xFF) << 8) | (r >> 8) for r in big]
    assert RegisterCodec("int32", byte_order="little").encode(-123456789) == swapped
    assert RegisterCodec("string", length=2).encode("AB") == [0x4142, 0]
    assert RegisterCodec("string", "little", length=2).encode("AB") == [0x4241, 0]


@given(
    st.sampled_from(["int16", "uint16", "int32", "uint32"]),
    st.floats(0.001, 1000),
    st.floats(-1e4, 1e4),
    st.data(),
)
def test_scaled_integers_round_trip_within_one_step(
    kind: ModbusType, scale: float, offset: float, data: st.DataObject
) -> None:
    low, high, _ = INTEGERS[kind]
    raw = data.draw(st.integers(low, high))
    value = raw * scale + offset
    codec = RegisterCodec(kind, scale=scale, offset=offset)
    assert codec.datatype is DataType.DOUBLE
    decoded = codec.decode(codec.encode(value))
    assert isinstance(decoded, float)
    assert math.isclose(decoded, value, rel_tol=1e-9, abs_tol=scale / 2 + 1e-9)


def test_scaling_decodes_raw_times_scale_plus_offset() -> None:
    codec = RegisterCodec("int16", scale=0.1, offset=-10)
    assert codec.decode([2155]) == pytest.approx(205.5)
    assert codec.encode(205.5) == [2155]
    assert codec.decode(codec.encode(-3286.8)) == pytest.approx(-3286.8)


@pytest.mark.parametrize(
    ("codec", "value", "message"),
    [
        (RegisterCodec("uint16"), 65536, "from 0 to 65535"),
        (RegisterCodec("int16"), -32769, "from -32768 to 32767"),
        (RegisterCodec("uint64"), -1, "from 0 to"),
        (RegisterCodec("int32"), 1.5, "integer"),
        (RegisterCodec("int32"), True, "number"),
        (RegisterCodec("int32"), "7", "number"),
        (RegisterCodec("int16", scale=0.1), 3276.8, "from -3276.8 to 3276.7"),
        (RegisterCodec("int16", scale=0.1), math.inf, "finite"),
        (RegisterCodec("float32"), 1e39, r"within ±3\.40282e\+38"),
        (RegisterCodec("string", length=2), "ABCDE", "at most 4 UTF-8 bytes"),
        (RegisterCodec("string", length=2), 5, "string"),
    ],
)
def test_values_that_do_not_fit_are_refused(codec: RegisterCodec, value: Any, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message) as refused:
        codec.encode(value)
    assert refused.value.code == "bad_value"


def test_integral_floats_are_accepted_for_integer_tags() -> None:
    assert RegisterCodec("uint16").encode(42.0) == [42]


@given(ORDERS, st.integers(0, 15), st.integers(0, 0xFFFF), st.booleans())
def test_set_bit_changes_only_that_bit(order: Order, bit: int, register: int, flag: bool) -> None:
    codec = RegisterCodec("bool", order, bit=bit)
    updated = codec.set_bit(register, flag)
    assert codec.decode([updated]) is flag
    for other in range(16):
        if other != bit:
            neighbour = RegisterCodec("bool", order, bit=other)
            assert neighbour.decode([updated]) == neighbour.decode([register])


def test_set_bit_needs_a_boolean() -> None:
    with pytest.raises(ValidationFailed, match="boolean"):
        RegisterCodec("bool", bit=0).set_bit(0, 1)


def test_datatypes() -> None:
    assert RegisterCodec("bool", bit=1).datatype is DataType.BOOLEAN
    assert RegisterCodec("float32").datatype is DataType.FLOAT
    assert RegisterCodec("float32", offset=1).datatype is DataType.DOUBLE
    assert RegisterCodec("uint64").datatype is DataType.UINT64


def test_plan_merges_near_spans_of_one_table_only() -> None:
    spans = [
        Span("holding_register", 0, 2, "a"),
        Span("holding_register", 5, 1, "b"),  # gap of 3
        Span("holding_register", 20, 1, "c"),  # gap of 14
        Span("input_register", 1, 1, "d"),
        Span("holding_register", 0, 1, "e"),  # overlaps a
    ]
    plans = plan_reads(spans, max_gap=8)
    assert [(p.table, p.address, p.count) for p in plans] == [
        ("holding_register", 0, 6),
        ("holding_register", 20, 1),
        ("input_register", 1, 1),
    ]
    assert sorted(s.item for s in plans[0].spans) == ["a", "b", "e"]


@given(
    st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 4)), min_size=1, max_size=300),
    st.integers(0, 20),
    st.sampled_from(["holding_register", "coil"]),
)
def test_plans_cover_every_span_within_request_limits(
    spans: list[tuple[int, int]], gap: int, table: Any
) -> None:
    items = [Span(table, address, size, i) for i, (address, size) in enumerate(spans)]
    plans = plan_reads(items, gap)
    limit = 2000 if table == "coil" else 125
    assert sorted(s.item for p in plans for s in p.spans) == list(range(len(spans)))
    for plan in plans:
        assert plan.count <= limit
        for span in plan.spans:
            assert plan.address <= span.address and span.end <= plan.address + plan.count
    for before, after in itertools.pairwise(plans):
        end = before.address + before.count
        too_far = after.address - end > gap
        too_long = max(end, after.spans[0].end) - before.address > limit
        assert too_far or too_long  # otherwise they should have been one request
