"""Fuzzing the Sparkplug B decoder: no input makes it raise anything but PayloadError."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.sparkplug.test_codec import comparable, metric_values, payloads

from werk.core.errors import PayloadError
from werk.sparkplug import decoder
from werk.sparkplug import sparkplug_b_pb2 as pb
from werk.sparkplug.codec import Metric, Payload, decode, encode
from werk.sparkplug.datatypes import DataType
from werk.sparkplug.values import Fault

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MANY = settings(max_examples=500, deadline=None)

# A lookup that claims a datatype for some aliases, as a birth would.
lookups = st.none() | st.dictionaries(
    st.integers(0, 40), st.sampled_from(list(DataType)), max_size=8
).map(lambda types: lambda name, alias: types.get(alias) if alias is not None else None)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with a few bytes flipped, inserted or removed, or cut short."""
    buffer = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(buffer)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip" and position < len(buffer):
            buffer[position] ^= draw(st.integers(1, 255))
        elif action == "insert":
            buffer[position:position] = draw(st.binary(min_size=1, max_size=3))
        elif action == "delete":
            del buffer[position : position + draw(st.integers(1, 3))]
        else:
            del buffer[position:]
    return bytes(buffer)


def decode_consistently(data: bytes, datatype_of: Any) -> None:
    """Decode; on success, the result must survive encode and decode unchanged."""
    try:
        first = decode(data, datatype_of)
    except PayloadError:
        return
    assert isinstance(first, Payload)
    assert comparable(decode(encode(first), datatype_of)) == comparable(first)


@MANY
@given(st.binary(max_size=300), lookups)
def test_arbitrary_bytes_decode_or_raise_payload_error(data: bytes, datatype_of: Any) -> None:
    decode_consistently(data, datatype_of)


@FUZZ
@given(payloads.map(encode).flatmap(mutated), lookups)
def test_damaged_payloads_decode_or_raise_payload_error(data: bytes, datatype_of: Any) -> None:
    decode_consistently(data, datatype_of)


data_types = [DataType.DOUBLE, DataType.INT32, DataType.UINT8, DataType.BOOLEAN, DataType.STRING]


@st.composite
def damaged_data_messages(draw: st.DrawFn) -> tuple[bytes, dict[int, DataType]]:
    """A mutated NDATA-like payload (many alias/timestamp/value metrics) and its birth types."""
    types = draw(st.lists(st.sampled_from(data_types), min_size=8, max_size=16))
    values = [draw(metric_values(datatype, 0)) for datatype in types]
    sent = Payload(
        timestamp=1,
        seq=2,
        metrics=tuple(
            Metric(alias=alias, timestamp=alias, datatype=t, value=v)
            for alias, (t, v) in enumerate(zip(types, values, strict=True))
        ),
    )
    message = pb.Payload.FromString(encode(sent))
    for item in message.metrics:
        item.ClearField("datatype")
    return draw(mutated(message.SerializeToString())), dict(enumerate(types))


@MANY
@given(damaged_data_messages())
def test_the_column_decoder_never_disagrees_with_the_field_by_field_decoder(
    case: tuple[bytes, dict[int, DataType]],
) -> None:
    data, births = case

    def datatype_of(name: str | None, alias: int | None) -> DataType | None:
        return births.get(alias) if alias is not None else None

    try:
        message = pb.Payload.FromString(data)
    except Exception:  # the outer parse failing is covered above
        return
    try:
        expected: Any = comparable(decoder.payload(message, datatype_of))
    except Fault as fault:
        expected = fault.code
    try:
        got: Any = comparable(decode(data, datatype_of))
    except PayloadError as error:
        got = error.code
    assert got == expected
