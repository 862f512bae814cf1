"""The Sparkplug B codec: round trips of every datatype, wire conventions, and every error code."""

from __future__ import annotations

import dataclasses
import math
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from werk.core.errors import PayloadError
from werk.sparkplug import columns, decoder
from werk.sparkplug import sparkplug_b_pb2 as pb
from werk.sparkplug.codec import (
    REASONS,
    DataSet,
    MetaData,
    Metric,
    Parameter,
    Payload,
    PropertySet,
    PropertyValue,
    Template,
    decode,
    encode,
)
from werk.sparkplug.datatypes import DataType as D

T = 1_700_000_000_000
U64 = (1 << 64) - 1

INT_RANGES = {
    D.INT8: (-(2**7), 2**7 - 1),
    D.INT16: (-(2**15), 2**15 - 1),
    D.INT32: (-(2**31), 2**31 - 1),
    D.INT64: (-(2**63), 2**63 - 1),
    D.UINT8: (0, 2**8 - 1),
    D.UINT16: (0, 2**16 - 1),
    D.UINT32: (0, 2**32 - 1),
    D.UINT64: (0, 2**64 - 1),
    D.DATETIME: (-(2**63), 2**63 - 1),
}
ARRAY_ELEMENTS = {
    D.INT8_ARRAY: D.INT8,
    D.INT16_ARRAY: D.INT16,
    D.INT32_ARRAY: D.INT32,
    D.INT64_ARRAY: D.INT64,
    D.UINT8_ARRAY: D.UINT8,
    D.UINT16_ARRAY: D.UINT16,
    D.UINT32_ARRAY: D.UINT32,
    D.UINT64_ARRAY: D.UINT64,
    D.DATETIME_ARRAY: D.DATETIME,
}
SCALARS = [D(n) for n in range(D.INT8, D.UUID + 1)]
METRIC_TYPES = [d for d in D if d not in (D.UNKNOWN, D.PROPERTY_SET, D.PROPERTY_SET_LIST)]


# ---- strategies -------------------------------------------------------------------------------

texts = st.text(max_size=12)


def scalar_values(datatype: D) -> st.SearchStrategy[Any]:
    """Any valid Python value of a scalar datatype."""
    if datatype in INT_RANGES:
        low, high = INT_RANGES[datatype]
        return st.integers(low, high)
    if datatype is D.FLOAT:
        return st.floats(width=32)
    if datatype is D.DOUBLE:
        return st.floats()
    if datatype is D.BOOLEAN:
        return st.booleans()
    return texts


def array_values(datatype: D) -> st.SearchStrategy[tuple[Any, ...]]:
    """Any valid tuple for an array datatype, empty included."""
    if datatype in ARRAY_ELEMENTS:
        element = scalar_values(ARRAY_ELEMENTS[datatype])
    elif datatype is D.FLOAT_ARRAY:
        element = st.floats(width=32)
    elif datatype is D.DOUBLE_ARRAY:
        element = st.floats()
    elif datatype is D.BOOLEAN_ARRAY:
        element = st.booleans()
    else:
        element = st.text(st.characters(blacklist_characters="\x00"), max_size=8)
    return st.lists(element, max_size=20).map(tuple)


@st.composite
def datasets(draw: st.DrawFn) -> DataSet:
    types = tuple(draw(st.lists(st.sampled_from(SCALARS), max_size=5)))
    row = st.tuples(*(st.none() | scalar_values(t) for t in types))
    rows = tuple(draw(st.lists(row, max_size=4)))
    return DataSet(
        tuple(draw(st.lists(texts, min_size=len(types), max_size=len(types)))), types, rows
    )


def property_sets(depth: int = 3) -> st.SearchStrategy[PropertySet]:
    """Property sets, nested up to `depth` levels."""
    plain = st.sampled_from(SCALARS).flatmap(
        lambda t: st.builds(PropertyValue, st.just(t), scalar_values(t))
    )
    null = st.sampled_from(SCALARS).map(lambda t: PropertyValue(t, None, is_null=True))
    values = plain | null
    if depth > 1:
        inner = property_sets(depth - 1)
        values |= st.builds(PropertyValue, st.just(D.PROPERTY_SET), inner)
        values |= st.builds(
            PropertyValue,
            st.just(D.PROPERTY_SET_LIST),
            st.lists(inner, max_size=2).map(tuple),
        )
    pairs = st.lists(st.tuples(texts, values), max_size=3)
    return pairs.map(PropertySet.from_pairs)


metadatas = st.builds(
    MetaData,
    is_multi_part=st.none() | st.booleans(),
    content_type=st.none() | texts,
    size=st.none() | st.integers(0, U64),
    seq=st.none() | st.integers(0, U64),
    file_name=st.none() | texts,
    file_type=st.none() | texts,
    md5=st.none() | texts,
    description=st.none() | texts,
)


@st.composite
def parameters(draw: st.DrawFn) -> Parameter:
    datatype = draw(st.sampled_from(SCALARS))
    return Parameter(draw(texts), datatype, draw(st.none() | scalar_values(datatype)))


def templates(depth: int = 2) -> st.SearchStrategy[Template]:
    """Template definitions and instances whose member metrics may be templates again."""
    return st.builds(
        Template,
        metrics=st.lists(metrics(depth - 1), max_size=3).map(tuple),
        parameters=st.lists(parameters(), max_size=3).map(tuple),
        version=st.none() | texts,
        template_ref=st.none() | texts,
        is_definition=st.booleans(),
    )


def metric_values(datatype: D, depth: int) -> st.SearchStrategy[Any]:
    """Any valid value of a metric datatype."""
    if datatype.is_array:
        return array_values(datatype)
    if datatype in (D.BYTES, D.FILE):
        return st.binary(max_size=16)
    if datatype is D.DATASET:
        return datasets()
    if datatype is D.TEMPLATE:
        return templates(depth) if depth > 0 else st.builds(Template)
    return scalar_values(datatype)


@st.composite
def metrics(draw: st.DrawFn, depth: int = 2) -> Metric:
    datatype = draw(st.sampled_from(METRIC_TYPES))
    is_null = draw(st.booleans()) and draw(st.booleans())
    return Metric(
        name=draw(st.none() | texts),
        alias=draw(st.none() | st.integers(0, U64)),
        timestamp=draw(st.none() | st.integers(0, U64)),
        datatype=datatype,
        value=None if is_null else draw(metric_values(datatype, depth)),
        is_null=is_null,
        is_historical=draw(st.booleans()),
        is_transient=draw(st.booleans()),
        properties=draw(st.none() | property_sets()),
        metadata=draw(st.none() | metadatas),
    )


payloads = st.builds(
    Payload,
    timestamp=st.none() | st.integers(0, U64),
    metrics=st.lists(metrics(), max_size=4).map(tuple),
    seq=st.none() | st.integers(0, U64),
    uuid=st.none() | texts,
    body=st.none() | st.binary(max_size=8),
)


def comparable(value: Any) -> Any:
    """`value` with NaN made equal to itself, so decoded payloads compare with ==."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = (getattr(value, f.name) for f in dataclasses.fields(value))
        return (type(value).__name__, *map(comparable, fields))
    if isinstance(value, tuple | list):
        return tuple(map(comparable, value))
    return value


def error_of(call: Callable[[], object]) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        call()
    assert caught.value.code in REASONS
    return caught.value


def wire(*metrics: pb.Payload.Metric, **fields: Any) -> bytes:
    """Serialize a payload built directly from protobuf metrics (the way other stacks do)."""
    message = pb.Payload(**fields)
    message.metrics.extend(metrics)
    return message.SerializeToString()


# ---- round trips ------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads)
def test_any_valid_payload_survives_a_round_trip(payload: Payload) -> None:
    assert comparable(decode(encode(payload))) == comparable(payload)


@pytest.mark.parametrize("datatype", sorted(INT_RANGES))
def test_integers_at_the_edges_of_their_range_round_trip(datatype: D) -> None:
    low, high = INT_RANGES[datatype]
    sent = tuple(
        Metric(name=f"m{i}", datatype=datatype, value=v) for i, v in enumerate((low, 0, high))
    )
    assert decode(encode(Payload(metrics=sent))).metrics == sent


@pytest.mark.parametrize("datatype", [d for d in METRIC_TYPES if d.is_array])
def test_arrays_round_trip_with_values_at_the_edges_and_empty(datatype: D) -> None:
    if datatype in ARRAY_ELEMENTS:
        low, high = INT_RANGES[ARRAY_ELEMENTS[datatype]]
        full: tuple[Any, ...] = (low, 0, high)
    else:
        full = {
            D.FLOAT_ARRAY: (-3.4028234663852886e38, 1.5, math.inf),
            D.DOUBLE_ARRAY: (-1.7976931348623157e308, 5e-324, -math.inf),
            D.BOOLEAN_ARRAY: (True, False) * 9,
            D.STRING_ARRAY: ("ABC", "", "héllo ✓"),
        }[datatype]
    sent = (Metric(name="full", datatype=datatype, value=full), Metric(datatype=datatype, value=()))
    assert decode(encode(Payload(metrics=sent))).metrics == sent


def test_nan_and_infinities_are_kept_for_float_and_double() -> None:
    sent = Payload(
        metrics=tuple(
            Metric(alias=i, datatype=t, value=v)
            for i, (t, v) in enumerate(
                [
                    (D.FLOAT, math.nan),
                    (D.DOUBLE, math.nan),
                    (D.FLOAT, -math.inf),
                    (D.DOUBLE, math.inf),
                ]
            )
        )
    )
    values = [m.value for m in decode(encode(sent)).metrics]
    assert math.isnan(values[0]) and math.isnan(values[1])
    assert values[2:] == [-math.inf, math.inf]


def test_a_dataset_with_mixed_column_types_and_nulls_round_trips() -> None:
    table = DataSet(
        columns=("id", "temp", "ok", "label", "at", "big"),
        types=(D.INT8, D.FLOAT, D.BOOLEAN, D.STRING, D.DATETIME, D.UINT64),
        rows=(
            (-1, 1.5, True, "a", T, U64),
            (None, None, None, None, None, None),
            (127, 0.0, False, "", 0, 0),
        ),
    )
    sent = Payload(metrics=(Metric(name="Table", datatype=D.DATASET, value=table),))
    assert decode(encode(sent)) == sent


def test_a_template_definition_and_an_instance_with_parameters_and_nesting_round_trip() -> None:
    axis = Template(
        metrics=(Metric(name="Position", datatype=D.DOUBLE, value=0.0),),
        parameters=(Parameter("Unit", D.STRING, "mm"),),
        is_definition=True,
    )
    motor = Template(
        version="2.1",
        metrics=(
            Metric(name="Speed", datatype=D.INT16, value=-1500),
            Metric(name="X", datatype=D.TEMPLATE, value=Template(template_ref="Axis")),
            Metric(name="Faults", datatype=D.STRING_ARRAY, value=("E1", "E7")),
        ),
        parameters=(Parameter("Rated", D.UINT32, 4000), Parameter("Note", D.TEXT, None)),
        template_ref="Motor",
    )
    sent = Payload(
        timestamp=T,
        seq=0,
        metrics=(
            Metric(name="_types_/Axis", datatype=D.TEMPLATE, value=axis),
            Metric(name="Motor1", alias=7, datatype=D.TEMPLATE, value=motor, timestamp=T),
        ),
    )
    assert decode(encode(sent)) == sent


def test_property_sets_and_property_set_lists_nest_and_round_trip() -> None:
    inner = PropertySet.of(engUnit=(D.STRING, "rpm"), limit=(D.DOUBLE, 99.5))
    props = PropertySet.from_pairs(
        [
            ("Quality", PropertyValue(D.INT32, 192)),
            ("werk.command_id", PropertyValue(D.STRING, "c-17")),
            ("nested", PropertyValue(D.PROPERTY_SET, inner)),
            ("list", PropertyValue(D.PROPERTY_SET_LIST, (inner, PropertySet()))),
            ("missing", PropertyValue(D.INT64, None, is_null=True)),
        ]
    )
    sent = Payload(metrics=(Metric(alias=1, datatype=D.INT32, value=-7, properties=props),))
    got = decode(encode(sent)).metrics[0].properties
    assert got == props
    assert got is not None and got.get("werk.command_id") == PropertyValue(D.STRING, "c-17")
    assert got.get("absent") is None


def test_metadata_flags_and_payload_fields_round_trip() -> None:
    meta = MetaData(True, "text/plain", 3, 1, "a.txt", "txt", "900150983cd24fb0", "first part")
    sent = Payload(
        timestamp=T,
        seq=255,
        uuid="6f1c2c6e-5b0e-4f4a-9a5e-3b1f7c3d2e10",
        body=b"\x00raw",
        metrics=(
            Metric(name="File", datatype=D.FILE, value=b"abc", metadata=meta, is_transient=True),
            Metric(
                name="Old", alias=3, timestamp=T - 5, datatype=D.UUID, value="x", is_historical=True
            ),
            Metric(name="Gone", datatype=D.DOUBLE, is_null=True),
        ),
    )
    assert decode(encode(sent)) == sent


def test_values_without_datatype_come_back_as_the_raw_field() -> None:
    sent = Payload(
        metrics=(
            Metric(alias=1, value=True),
            Metric(alias=2, value=7),
            Metric(alias=3, value=2**40),
            Metric(alias=4, value=2.5),
            Metric(alias=5, value="s"),
            Metric(alias=6, value=b"\x01"),
        )
    )
    got = decode(encode(sent))
    assert got == sent
    assert [m.datatype for m in got.metrics] == [None] * 6


# ---- wire conventions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("datatype", "value", "field", "raw"),
    [
        (D.INT8, -1, "int_value", 0xFF),
        (D.INT8, -128, "int_value", 0x80),
        (D.INT16, -2, "int_value", 0xFFFE),
        (D.INT32, -1, "int_value", 0xFFFFFFFF),
        (D.INT64, -1, "long_value", U64),
        (D.UINT32, 2**32 - 1, "int_value", 2**32 - 1),
        (D.DATETIME, T, "long_value", T),
        (D.DATETIME, -1, "long_value", U64),
    ],
)
def test_integers_are_encoded_width_specific_twos_complement(
    datatype: D, value: int, field: str, raw: int
) -> None:
    message = pb.Payload.FromString(
        encode(Payload(metrics=(Metric(datatype=datatype, value=value),)))
    )
    assert message.metrics[0].WhichOneof("value") == field
    assert getattr(message.metrics[0], field) == raw


@pytest.mark.parametrize(
    ("datatype", "field", "raw", "value"),
    [
        (D.INT8, "int_value", 0xFF, -1),  # width-specific (pysparkplug, Tahu Python)
        (D.INT8, "int_value", 0xFFFFFFFF, -1),  # sign-extended to 32 bits (Tahu Java)
        (D.INT8, "int_value", 0xFFFFFF80, -128),
        (D.INT8, "int_value", 0x7F, 127),
        (D.INT16, "int_value", 0x8000, -32768),
        (D.INT16, "int_value", 0xFFFF8000, -32768),
        (D.INT32, "int_value", 0x80000000, -(2**31)),
        (D.INT8, "long_value", U64, -1),  # sign-extended to 64 bits in long_value
        (D.INT64, "long_value", 2**63, -(2**63)),
        (D.UINT32, "long_value", 2**32 - 1, 2**32 - 1),  # Tahu Java sends UInt32 as a long
        (D.INT64, "int_value", 5, 5),
        (D.FLOAT, "double_value", 0.1, 0.1),
        (D.DOUBLE, "float_value", 0.5, 0.5),
    ],
)
def test_both_signed_integer_conventions_and_either_width_field_decode(
    datatype: D, field: str, raw: Any, value: Any
) -> None:
    data = wire(pb.Payload.Metric(alias=1, **{field: raw}))
    assert decode(data, lambda name, alias: datatype).metrics[0].value == value


def test_types_come_from_datatype_of_when_data_messages_omit_them() -> None:
    births = {10: D.INT16, 11: D.UINT64, 12: D.BOOLEAN_ARRAY, 13: D.DOUBLE}
    asked: list[tuple[str | None, int | None]] = []

    def datatype_of(name: str | None, alias: int | None) -> D | None:
        asked.append((name, alias))
        return births.get(alias) if alias is not None else None

    data = wire(
        pb.Payload.Metric(alias=10, timestamp=T, int_value=0xFFFF),
        pb.Payload.Metric(alias=11, long_value=U64),
        pb.Payload.Metric(alias=12, bytes_value=bytes.fromhex("0c00000034d0")),
        pb.Payload.Metric(alias=13, datatype=D.INT8, int_value=0xFE),  # own type wins
        pb.Payload.Metric(alias=99, int_value=0xFFFF),  # unknown everywhere: raw
        timestamp=T,
        seq=4,
    )
    got = decode(data, datatype_of).metrics
    assert [(m.alias, m.datatype, m.value) for m in got] == [
        (10, D.INT16, -1),
        (11, D.UINT64, U64),
        (
            12,
            D.BOOLEAN_ARRAY,
            (False, False, True, True, False, True, False, False, True, True, False, True),
        ),
        (13, D.INT8, -2),
        (99, None, 0xFFFF),
    ]
    assert (None, 13) not in asked
    assert got[0].timestamp == T


@pytest.mark.parametrize(
    ("datatype", "values", "packed"),
    [  # the array examples of the Sparkplug B 3.0 specification
        (D.INT16_ARRAY, (-30000, 30000), "d08a3075"),
        (D.INT32_ARRAY, (-1, 315338746), "fffffffffaafcb12"),
        (D.UINT8_ARRAY, (23, 250), "17fa"),
        (D.UINT16_ARRAY, (30, 52360), "1e0088cc"),
        (D.UINT32_ARRAY, (52, 3293969225), "3400000049fb55c4"),
        (D.UINT64_ARRAY, (52, 16444743074749521625), "3400000000000000d99e02d1b27637e4"),
        (
            D.BOOLEAN_ARRAY,
            (False, False, True, True, False, True, False, False, True, True, False, True),
            "0c00000034d0",
        ),
        (D.STRING_ARRAY, ("ABC", "hello"), "41424300" + "68656c6c6f00"),
        (D.DATETIME_ARRAY, (1256102875335, 1656107875000), "c7d0907524010000b8bab89781010000"),
        (D.FLOAT_ARRAY, (1.5, -2.0), struct.pack("<2f", 1.5, -2.0).hex()),
        (
            D.DOUBLE_ARRAY,
            (12.354213, 1022.9123213),
            struct.pack("<2d", 12.354213, 1022.9123213).hex(),
        ),
    ],
)
def test_arrays_use_the_packed_little_endian_layout_of_the_specification(
    datatype: D, values: tuple[Any, ...], packed: str
) -> None:
    message = pb.Payload.FromString(
        encode(Payload(metrics=(Metric(datatype=datatype, value=values),)))
    )
    assert message.metrics[0].bytes_value.hex() == packed
    assert decode(message.SerializeToString()).metrics[0].value == values


def test_string_array_without_the_final_terminator_still_decodes() -> None:
    data = wire(pb.Payload.Metric(datatype=D.STRING_ARRAY, bytes_value=b"a\x00b"))
    assert decode(data).metrics[0].value == ("a", "b")


# ---- the column-wise fast path ------------------------------------------------------------------

data_metric = st.sampled_from(
    [D.DOUBLE, D.FLOAT, D.INT8, D.UINT32, D.INT64, D.BOOLEAN, D.STRING, D.INT16_ARRAY, D.BYTES]
).flatmap(lambda t: st.tuples(st.just(t), metric_values(t, 0)))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(data_metric, min_size=8, max_size=30),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_the_column_decoder_agrees_with_the_field_by_field_decoder(
    sent: list[tuple[D, Any]], with_types: bool, with_names: bool, historical: bool
) -> None:
    births = {alias: datatype for alias, (datatype, _) in enumerate(sent)}
    payload = Payload(
        timestamp=T,
        seq=1,
        metrics=tuple(
            Metric(
                name=f"m{alias}" if with_names else None,
                alias=alias,
                timestamp=T + alias,
                datatype=datatype,
                value=value,
                is_historical=historical,
            )
            for alias, (datatype, value) in enumerate(sent)
        ),
    )
    message = pb.Payload.FromString(encode(payload))
    if not with_types:
        for item in message.metrics:
            item.ClearField("datatype")
    data = message.SerializeToString()

    def datatype_of(name: str | None, alias: int | None) -> D | None:
        return births.get(alias) if alias is not None else None

    fast = columns.metrics(data, pb.Payload.FromString(data), datatype_of)
    assert fast is not None
    slow = decoder.payload(pb.Payload.FromString(data), datatype_of)
    assert comparable(fast) == comparable(slow.metrics) == comparable(payload.metrics)
    assert comparable(decode(data, datatype_of)) == comparable(payload)


def test_a_data_message_shaped_for_the_fast_path_but_not_plain_falls_back() -> None:
    plain = [pb.Payload.Metric(alias=i, timestamp=T, double_value=i) for i in range(10)]
    aliasless = pb.Payload.Metric(timestamp=T, double_value=2.0)
    # the last metric carries alias twice (11 then 12): protobuf keeps the last one
    body = pb.Payload.Metric(alias=11, timestamp=T, double_value=1.0).SerializeToString()
    body += b"\x10\x0c"
    data = wire(*plain, aliasless) + bytes([0x12, len(body)]) + body
    got = decode(data, lambda name, alias: D.DOUBLE)
    assert [m.alias for m in got.metrics[-2:]] == [None, 12]
    assert columns.metrics(data, pb.Payload.FromString(data), None) is None


def test_a_scalar_field_sent_length_delimited_is_ignored_not_read_as_a_list() -> None:
    body = pb.Payload.Metric(alias=1, double_value=1.0).SerializeToString() + b"\x12\x01\x07"
    junk = bytes([0x12, len(body)]) + body  # alias 1, plus field 2 length-delimited [7]
    lacking = [pb.Payload.Metric(double_value=2.0)]
    data = junk + wire(
        *[pb.Payload.Metric(alias=i, double_value=i) for i in range(2, 10)], *lacking
    )
    got = decode(data, lambda name, alias: D.DOUBLE)
    assert [m.alias for m in got.metrics][:1] == [1]
    assert got.metrics[-1].alias is None


def test_decoded_metrics_are_real_frozen_metrics() -> None:
    data = wire(*[pb.Payload.Metric(alias=i, double_value=i) for i in range(10)])
    metric = decode(data, lambda name, alias: D.DOUBLE).metrics[3]
    assert type(metric) is Metric
    assert metric == Metric(alias=3, datatype=D.DOUBLE, value=3.0)
    assert hash(metric) == hash(Metric(alias=3, datatype=D.DOUBLE, value=3.0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        metric.value = 1.0  # type: ignore[misc]


# ---- errors -----------------------------------------------------------------------------------


def deep_templates(levels: int) -> pb.Payload.Template:
    template = pb.Payload.Template(is_definition=True)
    for _ in range(levels - 1):
        outer = pb.Payload.Template(is_definition=True)
        outer.metrics.add(name="in", datatype=D.TEMPLATE).template_value.CopyFrom(template)
        template = outer
    return template


def deep_properties(levels: int) -> pb.Payload.PropertySet:
    props = pb.Payload.PropertySet()
    for _ in range(levels - 1):
        outer = pb.Payload.PropertySet(keys=["k"])
        outer.values.add(type=D.PROPERTY_SET).propertyset_value.CopyFrom(props)
        props = outer
    return props


@pytest.mark.parametrize(
    ("data", "code", "where"),
    [
        (b"\x12\x05\x10", "sparkplug_protobuf", "payload"),
        (b"\xff\xff\xff", "sparkplug_protobuf", "payload"),
        (
            wire(pb.Payload.Metric(name="T", datatype=D.DOUBLE, string_value="1.5")),
            "sparkplug_datatype",
            "'T'",
        ),
        (
            wire(pb.Payload.Metric(alias=3, datatype=35, int_value=1)),
            "sparkplug_datatype",
            "alias 3",
        ),
        (
            wire(pb.Payload.Metric(name="P", datatype=D.PROPERTY_SET, int_value=1)),
            "sparkplug_datatype",
            "'P'",
        ),
        (
            wire(pb.Payload.Metric(name="E", datatype=D.INT32, extension_value={})),
            "sparkplug_datatype",
            "'E'",
        ),
        (
            wire(pb.Payload.Metric(name="B", datatype=D.UINT8, int_value=256)),
            "sparkplug_value",
            "'B'",
        ),
        (
            wire(pb.Payload.Metric(name="S", datatype=D.INT8, int_value=0xFFFFFF7F)),
            "sparkplug_value",
            "'S'",
        ),
        (
            wire(pb.Payload.Metric(name="A", datatype=D.INT32_ARRAY, bytes_value=b"\x01\x02\x03")),
            "sparkplug_value",
            "'A'",
        ),
        (
            wire(
                pb.Payload.Metric(
                    name="Q", datatype=D.BOOLEAN_ARRAY, bytes_value=b"\x09\x00\x00\x00\x01"
                )
            ),
            "sparkplug_value",
            "'Q'",
        ),
        (
            wire(pb.Payload.Metric(name="W", datatype=D.STRING_ARRAY, bytes_value=b"\xff\x00")),
            "sparkplug_value",
            "'W'",
        ),
        (
            wire(pb.Payload.Metric(name="N", datatype=D.DOUBLE, is_null=True, double_value=1.0)),
            "sparkplug_value",
            "'N'",
        ),
        (b"\x12\x06\x10\x05\x0a\x02\xff\xfe", "sparkplug_value", "alias 5"),
        (wire(uuid="u") + b"\x22\x01\xff", "sparkplug_value", "payload"),
        (
            wire(
                pb.Payload.Metric(
                    name="D",
                    dataset_value=pb.Payload.DataSet(
                        columns=["a"], types=[3], rows=[pb.Payload.DataSet.Row()]
                    ),
                )
            ),
            "sparkplug_value",
            "'D'",
        ),
        (
            wire(
                pb.Payload.Metric(
                    name="D", dataset_value=pb.Payload.DataSet(columns=["a"], types=[17])
                )
            ),
            "sparkplug_datatype",
            "'D'",
        ),
        (
            wire(pb.Payload.Metric(name="Deep", template_value=deep_templates(17))),
            "sparkplug_too_deep",
            "'Deep'",
        ),
        (
            wire(pb.Payload.Metric(name="Props", properties=deep_properties(17))),
            "sparkplug_too_deep",
            "'Props'",
        ),
    ],
)
def test_each_defect_raises_its_code_and_names_the_metric(
    data: bytes, code: str, where: str
) -> None:
    error = error_of(lambda: decode(data))
    assert error.code == code
    assert where in error.message
    assert error.params["reason"] == REASONS[code]


def test_sixteen_levels_of_nesting_are_fine() -> None:
    data = wire(
        pb.Payload.Metric(name="T", template_value=deep_templates(16)),
        pb.Payload.Metric(name="P", properties=deep_properties(16)),
    )
    assert len(decode(data).metrics) == 2


def test_a_bad_property_is_named_with_its_metric() -> None:
    props = pb.Payload.PropertySet(
        keys=["Quality"], values=[pb.Payload.PropertyValue(type=D.UINT8, int_value=300)]
    )
    error = error_of(lambda: decode(wire(pb.Payload.Metric(name="Temp", properties=props))))
    assert error.code == "sparkplug_value"
    assert error.message.startswith("metric 'Temp' > property 'Quality': ")


@pytest.mark.parametrize(
    ("metric", "code"),
    [
        (Metric(name="x", datatype=D.INT8, value=128), "sparkplug_encode"),
        (Metric(name="x", datatype=D.UINT16, value=-1), "sparkplug_encode"),
        (Metric(name="x", datatype=D.INT32, value=True), "sparkplug_encode"),
        (Metric(name="x", datatype=D.DOUBLE, value="1.5"), "sparkplug_encode"),
        (Metric(name="x", datatype=D.FLOAT, value=1e39), "sparkplug_encode"),
        (Metric(name="x", datatype=D.BOOLEAN, value=1), "sparkplug_encode"),
        (Metric(name="x", datatype=D.STRING, value="\ud800"), "sparkplug_encode"),
        (Metric(name="x", datatype=D.BYTES, value="text"), "sparkplug_encode"),
        (Metric(name="x", datatype=D.INT8_ARRAY, value=(1, 300)), "sparkplug_encode"),
        (Metric(name="x", datatype=D.STRING_ARRAY, value=("a\x00b",)), "sparkplug_encode"),
        (Metric(name="x", datatype=D.BOOLEAN_ARRAY, value=(1, 0)), "sparkplug_encode"),
        (Metric(name="x", datatype=D.PROPERTY_SET, value=PropertySet()), "sparkplug_encode"),
        (
            Metric(name="x", datatype=D.DATASET, value=DataSet(("a",), (D.INT8,), ((1, 2),))),
            "sparkplug_encode",
        ),
        (
            Metric(name="x", datatype=D.DATASET, value=DataSet(("a",), (D.BYTES,), ())),
            "sparkplug_encode",
        ),
        (Metric(name="x", value=-5), "sparkplug_encode"),
        (Metric(name="x", value=(1, 2)), "sparkplug_encode"),
        (Metric(name="x", alias=-1, value=1), "sparkplug_encode"),
        (Metric(name="x", datatype=D.INT8, value=1, is_null=True), "sparkplug_encode"),
        (
            Metric(name="x", properties=PropertySet.of(q=(D.BYTES, b"")), value=1),
            "sparkplug_encode",
        ),
    ],
)
def test_encode_rejects_values_that_do_not_fit_and_names_the_metric(
    metric: Metric, code: str
) -> None:
    error = error_of(lambda: encode(Payload(metrics=(metric,))))
    assert error.code == code
    assert "metric 'x'" in error.message


def test_encode_refuses_nesting_deeper_than_sixteen() -> None:
    template = Template()
    for _ in range(17):
        template = Template(metrics=(Metric(name="in", datatype=D.TEMPLATE, value=template),))
    error = error_of(lambda: encode(Payload(metrics=(Metric(name="x", value=template),))))
    assert error.code == "sparkplug_too_deep"


def test_reasons_describe_every_code() -> None:
    assert set(REASONS) == {
        "sparkplug_protobuf",
        "sparkplug_datatype",
        "sparkplug_value",
        "sparkplug_too_deep",
        "sparkplug_encode",
    }
    assert all(REASONS.values())
