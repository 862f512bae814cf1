"""The edge-node protocol: bdSeq, seq, aliases, rebirth throttle, births, data, commands."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from tests.edge_device import MemoryDevice

from werk.edge.buffer import Sample
from werk.edge.commands import CommandRunner, rebirth_requested
from werk.edge.model import Reading, TagSpec
from werk.edge.node import BdSeq, EdgeNode, RebirthThrottle, fit_value
from werk.sparkplug.codec import Metric, Payload, PropertySet, decode, encode
from werk.sparkplug.datatypes import DataType
from werk.uns.contracts import Quality

T = 1_700_000_000_000  # ms
SPECS = [
    TagSpec("Speed", DataType.DOUBLE, writable=True, unit="rpm"),
    TagSpec("Temp", DataType.FLOAT, unit="degC"),
    TagSpec("Offset", DataType.INT32, writable=True),
    TagSpec("Count", DataType.UINT64),
    TagSpec("Program", DataType.STRING),
]


def _node() -> EdgeNode:
    node = EdgeNode("acme", "gw-1")
    node.set_device("cnc-1", SPECS)
    return node


def _by_name(payload: Payload) -> dict[str, Metric]:
    return {m.name: m for m in payload.metrics if m.name is not None}


def _props(metric: Metric) -> dict[str, object]:
    assert metric.properties is not None
    return {key: value.value for key, value in metric.properties.items}


# -- bdSeq, seq, aliases, throttle -------------------------------------------------------


def test_bdseq_counts_connects_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "bdseq"
    first = BdSeq(path)
    assert (first.last, first.next()) == (None, 0)
    first.commit(first.next())
    again = BdSeq(path)
    assert (again.last, again.next()) == (0, 1)
    again.commit(255)
    assert BdSeq(path).next() == 0  # wraps


def test_an_unreadable_bdseq_file_starts_over(tmp_path: Path) -> None:
    (tmp_path / "bdseq").write_text("garbage")
    assert BdSeq(tmp_path / "bdseq").next() == 0


def test_seq_starts_at_zero_with_nbirth_and_wraps_after_255() -> None:
    node = _node()
    seqs = [node.nbirth(0, T).seq, node.dbirth("cnc-1", T).seq]
    seqs += [node.ddeath(T).seq for _ in range(255)]
    assert seqs[:3] == [0, 1, 2]
    assert seqs[255:] == [255, 0]
    assert node.nbirth(0, T).seq == 0
    assert node.ndeath(3, None).seq is None  # NDEATH carries no seq


def test_aliases_are_unique_across_the_node_and_stable() -> None:
    node = _node()
    node.set_device("press", [TagSpec("Speed", DataType.DOUBLE)])
    node.set_node_metric("Edge/Buffer Bytes", DataType.UINT64, 0)
    aliases = [node.alias("cnc-1", s.name) for s in SPECS]
    aliases += [node.alias("press", "Speed"), node.alias(None, "Edge/Buffer Bytes")]
    assert len(set(aliases)) == len(aliases)
    node.remove_device("press")
    assert node.set_device("press", [TagSpec("Speed", DataType.DOUBLE)]) is True
    assert node.alias("press", "Speed") == aliases[-2]


def test_redeclaring_a_device_reports_whether_its_births_change() -> None:
    node = _node()
    assert node.set_device("cnc-1", SPECS) is False
    assert node.set_device("cnc-1", [*SPECS, TagSpec("New", DataType.BOOLEAN)]) is True


def test_rebirths_are_throttled_to_one_per_interval() -> None:
    throttle = RebirthThrottle(1.0)
    assert not throttle.due(100.0)
    throttle.request()
    assert throttle.due(100.0)
    throttle.done(100.0)
    throttle.request()
    assert not throttle.due(100.5)  # a second request within the second waits...
    assert throttle.due(101.0)  # ...and is not lost


# -- births ---------------------------------------------------------------------------------


def test_nbirth_declares_bdseq_rebirth_and_node_metrics() -> None:
    node = _node()
    node.set_node_metric("Edge/Buffered Samples", DataType.UINT64, 12)
    payload = decode(encode(node.nbirth(7, T)))
    metrics = _by_name(payload)
    assert payload.seq == 0
    bdseq = metrics["bdSeq"]
    assert (bdseq.datatype, bdseq.value) == (DataType.INT64, 7)
    rebirth = metrics["Node Control/Rebirth"]
    assert (rebirth.datatype, rebirth.value, rebirth.timestamp) == (DataType.BOOLEAN, False, T)
    assert rebirth.alias is not None
    buffered = metrics["Edge/Buffered Samples"]
    assert (buffered.datatype, buffered.value, buffered.alias) == (
        DataType.UINT64, 12, node.alias(None, "Edge/Buffered Samples"),
    )  # fmt: skip


def test_dbirth_carries_every_tag_with_current_value_and_properties() -> None:
    node = _node()
    node.accept("cnc-1", [Reading("Speed", 1200.5, (T - 5) * 1_000_000, Quality.GOOD)])
    node.accept("cnc-1", [Reading("Temp", None, (T - 2) * 1_000_000, Quality.BAD)])
    metrics = _by_name(decode(encode(node.dbirth("cnc-1", T))))
    assert set(metrics) == {s.name for s in SPECS}
    speed = metrics["Speed"]
    assert (speed.value, speed.timestamp, speed.datatype) == (1200.5, T - 5, DataType.DOUBLE)
    assert speed.alias == node.alias("cnc-1", "Speed")
    assert _props(speed) == {"Quality": 192, "Writable": True, "engUnit": "rpm"}
    temp = metrics["Temp"]
    assert (temp.is_null, temp.timestamp, _props(temp)["Quality"]) == (True, T - 2, 0)
    never = metrics["Count"]  # no reading yet: null, bad, stamped with the birth
    assert (never.is_null, never.timestamp, _props(never)) == (
        True, T, {"Quality": 0, "Writable": False},
    )  # fmt: skip


# -- data -----------------------------------------------------------------------------------


def _lookup(node: EdgeNode) -> Any:
    types = {m.alias: m.datatype for m in node.dbirth("cnc-1", T).metrics}
    return lambda _name, alias: types.get(alias)


def test_ddata_sends_aliases_and_values_that_decode_by_the_birth_types() -> None:
    node = _node()
    samples = [
        Sample("Speed", DataType.DOUBLE, 1.5, T * 1_000_000, Quality.GOOD),
        Sample("Temp", DataType.FLOAT, 21.25, T * 1_000_000, Quality.UNCERTAIN),
        Sample("Offset", DataType.INT32, -5, (T + 1) * 1_000_000, Quality.GOOD),
        Sample("Count", DataType.UINT64, 2**64 - 1, (T + 2) * 1_000_000, Quality.GOOD),
        Sample("Program", DataType.STRING, None, (T + 3) * 1_000_000, Quality.BAD),
    ]
    sent = node.ddata("cnc-1", samples, T)
    assert all(m.name is None and m.alias is not None for m in sent.metrics)
    assert sent.metrics[0].datatype is None  # a double needs no datatype on the wire
    got = decode(encode(sent), _lookup(node)).metrics
    assert [m.value for m in got] == [1.5, 21.25, -5, 2**64 - 1, None]
    assert [m.timestamp for m in got] == [T, T, T + 1, T + 2, T + 3]
    assert got[0].properties is None  # quality only when not good
    assert _props(got[1]) == {"Quality": 64}
    assert (got[4].is_null, _props(got[4])) == (True, {"Quality": 0})
    assert not any(m.is_historical for m in got)


def test_historical_ddata_marks_every_metric() -> None:
    node = _node()
    samples = [Sample("Speed", DataType.DOUBLE, float(i), i, Quality.GOOD) for i in range(3)]
    got = decode(encode(node.ddata("cnc-1", samples, T, historical=True)), _lookup(node))
    assert all(m.is_historical for m in got.metrics)


def test_values_that_do_not_fit_their_datatype_go_out_as_bad() -> None:
    node = _node()
    accepted, unknown = node.accept(
        "cnc-1",
        [
            Reading("Offset", 2**40, 1, Quality.GOOD),
            Reading("Speed", 3, 1, Quality.GOOD),
            Reading("Nope", 1, 1, Quality.GOOD),
        ],
    )
    assert [(r.tag, r.value, r.quality) for r in accepted] == [
        ("Offset", None, Quality.BAD), ("Speed", 3.0, Quality.GOOD),
    ]  # fmt: skip
    assert unknown == ["Nope"]


@given(
    st.sampled_from([DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
def test_any_fitting_signed_integer_survives_ddata(datatype: DataType, value: int) -> None:
    node = EdgeNode("g", "n")
    node.set_device("d", [TagSpec("x", datatype)])
    fitted = fit_value(datatype, value)
    if fitted is None:
        return
    payload = node.ddata("d", [Sample("x", datatype, fitted, T * 1_000_000, Quality.GOOD)], T)
    types = {node.alias("d", "x"): datatype}
    assert decode(encode(payload), lambda _n, a: types.get(a)).metrics[0].value == value


def test_replayed_samples_of_undeclared_tags_or_types_are_not_publishable() -> None:
    node = _node()
    kept, skipped = node.publishable("cnc-1", [
        Sample("Speed", DataType.DOUBLE, 1.0, 1, Quality.GOOD),
        Sample("Speed", DataType.INT32, 1, 1, Quality.GOOD),
        Sample("Gone", DataType.DOUBLE, 1.0, 1, Quality.GOOD),
    ])  # fmt: skip
    assert (len(kept), skipped) == (1, 2)


# -- commands -------------------------------------------------------------------------------


def _dcmd(*metrics: Metric) -> bytes:
    return encode(Payload(timestamp=T, metrics=metrics))


def _command_id(value: str) -> PropertySet:
    return PropertySet.of(**{"werk.command_id": (DataType.STRING, value)})


async def _run_commands(data: bytes) -> tuple[list[Payload], MemoryDevice, EdgeNode]:
    node = _node()
    node.accept("cnc-1", [Reading("Offset", 3, T * 1_000_000, Quality.GOOD)])
    device = MemoryDevice("cnc-1", SPECS)
    await device.start(lambda _readings: None)
    results: list[Payload] = []
    runner = CommandRunner(node, {"cnc-1": device}, lambda _t, p: results.append(p) or True)
    runner.add_device("cnc-1")
    runner.submit("cnc-1", "spBv1.0/acme/DCMD/gw-1/cnc-1", data)
    for _ in range(100):
        if results:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    await runner.remove_device("cnc-1")
    await device.stop()
    return results, device, node


def test_a_dcmd_by_name_writes_and_reports_done_with_the_read_back() -> None:
    data = _dcmd(Metric(name="Speed", datatype=DataType.DOUBLE, value=99.5,
                        properties=_command_id("c-1")))  # fmt: skip
    results, device, node = asyncio.run(_run_commands(data))
    assert device.values == {"Speed": 99.5}
    (result,) = results[0].metrics
    assert (result.alias, result.value) == (node.alias("cnc-1", "Speed"), 99.5)
    assert _props(result) == {"werk.command_status": "done", "werk.command_id": "c-1"}


def test_a_dcmd_by_alias_works_too() -> None:
    node = _node()
    data = _dcmd(Metric(alias=node.alias("cnc-1", "Offset"), datatype=DataType.INT32, value=-7))
    results, device, _ = asyncio.run(_run_commands(data))
    assert device.values == {"Offset": -7}
    assert _props(results[0].metrics[0])["werk.command_status"] == "done"


def test_a_dcmd_to_a_read_only_tag_fails_with_the_last_known_value() -> None:
    data = _dcmd(Metric(name="Count", datatype=DataType.UINT64, value=5,
                        properties=_command_id("c-2")))  # fmt: skip
    results, device, _ = asyncio.run(_run_commands(data))
    assert device.values == {}
    props = _props(results[0].metrics[0])
    assert props["werk.command_status"] == "failed"
    assert "read-only" in str(props["werk.command_error"])
    assert props["werk.command_id"] == "c-2"


def test_a_dcmd_for_an_unknown_metric_fails_by_its_name_with_null() -> None:
    results, _, _ = asyncio.run(_run_commands(_dcmd(Metric(name="Nope", value=1))))
    (result,) = results[0].metrics
    assert (result.name, result.is_null, result.alias) == ("Nope", True, None)
    assert _props(result)["werk.command_status"] == "failed"


def test_a_dcmd_with_a_value_of_the_wrong_type_fails() -> None:
    results, device, _ = asyncio.run(_run_commands(_dcmd(Metric(name="Offset", value="ten"))))
    assert device.values == {}
    result = results[0].metrics[0]
    assert _props(result)["werk.command_status"] == "failed"
    assert result.value == 3  # the last known value


def test_garbage_dcmd_is_ignored_without_a_result() -> None:
    results, device, _ = asyncio.run(_run_commands(b"\xff\x00garbage"))
    assert (results, device.values) == ([], {})


def test_ncmd_rebirth_by_name_or_alias() -> None:
    node = _node()
    node.nbirth(0, T)
    by_name = encode(Payload(metrics=(Metric(name="Node Control/Rebirth", value=True),)))
    by_alias = encode(
        Payload(metrics=(Metric(alias=node.alias(None, "Node Control/Rebirth"), value=True),))
    )
    other = encode(Payload(metrics=(Metric(name="Edge/Buffer Bytes", value=0),)))
    assert rebirth_requested(node, by_name)
    assert rebirth_requested(node, by_alias)
    assert not rebirth_requested(node, other)
    assert not rebirth_requested(node, b"\x08\xff")


def test_fit_value_rejects_booleans_as_numbers() -> None:
    assert fit_value(DataType.INT32, True) is None
    assert fit_value(DataType.DOUBLE, False) is None
    assert fit_value(DataType.BOOLEAN, 1) is None
    assert fit_value(DataType.UINT8, 256) is None
    assert fit_value(DataType.FLOAT, 2) == 2.0
