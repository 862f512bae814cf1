"""Payload contracts: what is accepted, what is rejected and why, and message ids."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from werk.core.errors import PayloadError
from werk.uns.contracts import CONTRACTS, Quality, decode
from werk.uns.topics import parse_topic

VALUE = parse_topic("uns/v1/acme/berlin/machining/line-1/cell-1/cnc-1/_value/temp")
BATCH = parse_topic("uns/v1/acme/berlin/machining/line-1/cell-1/cnc-1/_batch")
NOW = 1_795_270_000_000_000_000
TAG = "acme/berlin/machining/line-1/cell-1/cnc-1/temp"


def test_value_payload_keeps_timestamp_quality_and_unit() -> None:
    decoded = decode(
        VALUE, b'{"value": 21.5, "ts": 1794999999000, "quality": "uncertain", "unit": "degC"}', NOW
    )
    (sample,) = decoded.samples
    assert (sample.tag_path, sample.value, sample.unit) == (TAG, 21.5, "degC")
    assert sample.ts_ns == 1_794_999_999_000_000_000
    assert sample.quality is Quality.UNCERTAIN


@pytest.mark.parametrize(
    ("payload", "value"),
    [(b"0.0", 0.0), (b"1", 1), (b"0", 0), (b"1.0", 1.0), (b"false", False), (b'"1"', "1")],
)
def test_numbers_never_turn_into_booleans_or_strings(payload: bytes, value: object) -> None:
    for body in (payload, b'{"value": ' + payload + b"}"):
        (sample,) = decode(VALUE, body, NOW).samples
        assert sample.value == value
        assert type(sample.value) is type(value)
    (batched,) = decode(BATCH, b'{"values": {"x": ' + payload + b"}}", NOW).samples
    assert type(batched.value) is type(value)


def test_iso_timestamps_are_accepted() -> None:
    decoded = decode(VALUE, b'{"value": 1, "ts": "2026-11-21T12:00:00.250Z"}', NOW)
    assert decoded.samples[0].ts_ns == 1_795_262_400_250_000_000


@pytest.mark.parametrize(
    ("payload", "value"), [(b"21.5", 21.5), (b"true", True), (b'"RUNNING"', "RUNNING")]
)
def test_bare_scalars_are_shorthand_stamped_on_arrival(payload: bytes, value: object) -> None:
    (sample,) = decode(VALUE, payload, NOW).samples
    assert sample.value == value
    assert sample.ts_ns == NOW


def test_batch_carries_many_tags_with_defaults_and_overrides() -> None:
    payload = b'{"ts": 1794999999000, "values": {"a": 1, "b": {"value": "RUN", "quality": "bad", "unit": "x"}}}'
    a, b = decode(BATCH, payload, NOW).samples
    assert a.tag_path.endswith("/cnc-1/a") and a.value == 1 and a.quality is Quality.GOOD
    assert b.value == "RUN" and b.quality is Quality.BAD and b.unit == "x"
    assert a.ts_ns == b.ts_ns == 1_794_999_999_000_000_000


@pytest.mark.parametrize(
    ("topic", "payload", "code", "words"),
    [
        (VALUE, b'{"value": ', "not_json", "Invalid JSON"),
        (VALUE, b"\xff\xfe", "not_json", "Invalid JSON"),
        (VALUE, b'{"value": [1, 2]}', "contract", "value"),
        (VALUE, b'{"value": {"nested": 1}}', "contract", "value"),
        (VALUE, b'{"value": null}', "contract", "value"),
        (VALUE, b'{"value": 1, "quality": "meh"}', "contract", "quality"),
        (VALUE, b'{"value": 1, "colour": "red"}', "contract", "colour"),
        (VALUE, b'{"value": 1e999}', "contract", "finite"),
        (VALUE, b'{"value": 1' + b"0" * 400 + b"}", "contract", "finite"),
        (VALUE, b'{"value": NaN}', "contract", "finite"),
        (VALUE, b'{"unit": "degC"}', "contract", "value"),
        (VALUE, b'{"value": 1, "ts": -1}', "timestamp_out_of_range", "1970"),
        (VALUE, b'{"value": 1, "ts": 99999999999999}', "timestamp_out_of_range", "future"),
        (VALUE, b'{"value": 1, "ts": "yesterday"}', "contract", "ts"),
        (BATCH, b'{"values": {}}', "contract", "values"),
        (BATCH, b'{"values": {"a b": 1}}', "bad_tag", "a b"),
        (BATCH, b'{"values": {"ok": [1]}}', "contract", "values.ok"),
    ],
)
def test_bad_payloads_are_rejected_with_a_reason(
    topic: object, payload: bytes, code: str, words: str
) -> None:
    with pytest.raises(PayloadError) as info:
        decode(topic, payload, NOW)  # type: ignore[arg-type]
    assert info.value.code == code
    assert words in info.value.message


def test_a_redelivered_message_has_the_same_id() -> None:
    payload = b'{"value": 21.5, "ts": 1794999999000}'
    assert decode(VALUE, payload, NOW).message_id == decode(VALUE, payload, NOW + 5).message_id


def test_publisher_ids_identify_messages() -> None:
    first = decode(VALUE, b'{"value": 1, "id": "m-1"}', NOW).message_id
    assert decode(VALUE, b'{"value": 2, "id": "m-1"}', NOW + 9).message_id == first
    assert decode(VALUE, b'{"value": 1, "id": "m-2"}', NOW).message_id != first


def test_untimed_identical_readings_are_different_messages() -> None:
    assert decode(VALUE, b"21.5", NOW).message_id != decode(VALUE, b"21.5", NOW + 1).message_id


def test_same_payload_on_another_tag_is_another_message() -> None:
    other = parse_topic("uns/v1/acme/berlin/machining/line-1/cell-1/cnc-1/_value/speed")
    payload = b'{"value": 1, "ts": 1794999999000}'
    assert decode(VALUE, payload, NOW).message_id != decode(other, payload, NOW).message_id


def test_every_contract_publishes_a_json_schema() -> None:
    names = {c.name for c in CONTRACTS}
    assert names == {"value/v1", "batch/v1", "cmd/v1"}
    assert all(c.json_schema()["type"] == "object" for c in CONTRACTS)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_decoder(payload: bytes) -> None:
    for topic in (VALUE, BATCH):
        try:
            decoded = decode(topic, payload, NOW)
        except PayloadError as exc:
            assert exc.code and exc.message
        else:
            assert decoded.samples


def test_a_command_carries_its_value_and_who_asked() -> None:
    from werk.uns.contracts import decode_command

    topic = parse_topic("uns/v1/acme/berlin/machining/line-1/cell-1/cnc-1/_cmd/speed_setpoint")
    command = decode_command(topic, b'{"value": 9000, "by": "line-lead"}', 1, "uns/v1")
    assert (command.tag_path, command.value, command.requested_by) == (
        "acme/berlin/machining/line-1/cell-1/cnc-1/speed_setpoint",
        9000,
        "line-lead",
    )
    bare = decode_command(topic, b"true", 1, "uns/v1")
    assert bare.value is True and bare.requested_by == "uns"
    with pytest.raises(PayloadError):
        decode_command(topic, b'{"value": null}', 1, "uns/v1")
