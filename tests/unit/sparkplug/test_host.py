"""The host application's message logic: births, deaths, sequence, aliases, mapping."""

from __future__ import annotations

import base64
import contextlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import make_settings

from werk.core.errors import PayloadError, WerkError
from werk.core.settings import SparkplugRoute
from werk.sparkplug.codec import (
    DataSet,
    Metric,
    Payload,
    PropertySet,
    Template,
    encode,
)
from werk.sparkplug.datatypes import COMMAND_ID, COMMAND_STATUS, QUALITY_PROPERTY, DataType
from werk.sparkplug.effects import CommandResult
from werk.sparkplug.host import SparkplugHost
from werk.sparkplug.state import EdgeNodeState
from werk.uns.contracts import Quality, Sample
from werk.uns.translate import Translation

T = 1_795_000_000_000  # ms
NOW_NS = (T + 500) * 1_000_000
G, E = "plant", "gw-1"
NODE_PATH = "acme/berlin/machining/line-1/gw"
DEVICE_PATH = "acme/berlin/machining/line-1/cnc-1"


class Recorder:
    """Records what the host asks of the outside world."""

    def __init__(self) -> None:
        self.rebirths: list[tuple[str, str]] = []
        self.births: list[tuple[str, str | None]] = []
        self.deaths: list[tuple[str, str | None]] = []
        self.results: list[tuple[str, str, object, str | None]] = []
        self.values: dict[str, Any] = {}
        self.sources: list[tuple[str, str]] = []
        self.types: dict[str, str] = {}

    def request_rebirth(self, group: str, edge_node: str) -> None:
        self.rebirths.append((group, edge_node))

    def record_birth(self, node: EdgeNodeState, device: str | None, payload: bytes) -> None:
        self.births.append((node.edge_node, device))

    def record_death(self, node: EdgeNodeState, device: str | None) -> None:
        self.deaths.append((node.edge_node, device))

    def command_result(self, result: CommandResult) -> None:
        self.results.append((result.command_id, result.status, result.value, result.error))
        self.sources.append((result.topic, result.metric))

    def last_value(self, tag_path: str) -> Any:
        return self.values.get(tag_path)

    def tag_type(self, tag_path: str) -> str | None:
        return self.types.get(tag_path)


def _host(
    tmp_path: Path, reorder_ms: int = 0, throttle_s: float = 5.0
) -> tuple[SparkplugHost, Recorder]:
    routes = [
        SparkplugRoute(group=G, edge_node=E, device="node", path=NODE_PATH),
        SparkplugRoute(
            group=G, edge_node=E, device="*", path="acme/berlin/machining/line-1/{device}"
        ),
    ]
    settings = make_settings(
        tmp_path,
        sparkplug_routes=routes,
        sparkplug_reorder_timeout_ms=reorder_ms,
        sparkplug_rebirth_throttle_s=throttle_s,
    )
    recorder = Recorder()
    return SparkplugHost(settings, recorder), recorder


def _topic(kind: str, device: str | None = None) -> str:
    return f"spBv1.0/{G}/{kind}/{E}" + (f"/{device}" if device else "")


def _send(host: SparkplugHost, kind: str, payload: Payload, device: str | None = None,
          at_ns: int = NOW_NS) -> Translation:  # fmt: skip
    return host.translate(_topic(kind, device), encode(payload), at_ns)


def _nbirth(host: SparkplugHost, bd_seq: int = 0) -> Translation:
    metrics = (
        Metric(name="bdSeq", datatype=DataType.UINT64, value=bd_seq, timestamp=T),
        Metric(name="Node Control/Rebirth", datatype=DataType.BOOLEAN, value=False, timestamp=T),
        Metric(
            name="Edge/Buffered Samples", alias=1, datatype=DataType.UINT64, value=0, timestamp=T
        ),
    )
    return _send(host, "NBIRTH", Payload(timestamp=T, metrics=metrics, seq=0))


def _dbirth(host: SparkplugHost, seq: int = 1) -> Translation:
    unit = PropertySet.of(engUnit=(DataType.STRING, "rpm"))
    metrics = (
        Metric(
            name="Spindle/Speed",
            alias=10,
            datatype=DataType.DOUBLE,
            value=1200.0,
            timestamp=T,
            properties=unit,
        ),
        Metric(name="Parts", alias=11, datatype=DataType.INT64, value=-5, timestamp=T),
        Metric(name="Running", alias=12, datatype=DataType.BOOLEAN, value=True, timestamp=T),
        Metric(name="Program", alias=13, datatype=DataType.STRING, value="O100", timestamp=T),
    )
    return _send(host, "DBIRTH", Payload(timestamp=T, metrics=metrics, seq=seq), "cnc-1")


def _ddata(host: SparkplugHost, seq: int, *metrics: Metric, at_ns: int = NOW_NS) -> Translation:
    return _send(host, "DDATA", Payload(timestamp=T + 1, metrics=metrics, seq=seq), "cnc-1", at_ns)


def _by_tag(translation: Translation) -> dict[str, Sample]:
    decoded = translation.decoded
    assert decoded is not None
    rows = decoded.samples + ([] if decoded.columns is None else decoded.columns.rows())
    return {s.tag_path: s for s in rows}


def test_births_and_data_become_uns_samples_under_the_mapped_paths(tmp_path: Path) -> None:
    host, recorder = _host(tmp_path)
    node_samples = _by_tag(_nbirth(host))
    assert list(node_samples) == [f"{NODE_PATH}/Edge.Buffered_Samples"]  # no bdSeq, no Node Control
    birth = _by_tag(_dbirth(host))
    speed = birth[f"{DEVICE_PATH}/Spindle.Speed"]
    assert (speed.value, speed.unit, speed.ts_ns) == (1200.0, "rpm", T * 1_000_000)
    assert birth[f"{DEVICE_PATH}/Parts"].value == -5
    assert birth[f"{DEVICE_PATH}/Running"].value is True
    data = _by_tag(
        _ddata(host, 2, Metric(alias=10, value=1250.5, timestamp=T + 7), Metric(alias=11, value=7))
    )
    assert data[f"{DEVICE_PATH}/Spindle.Speed"].value == 1250.5
    assert data[f"{DEVICE_PATH}/Spindle.Speed"].ts_ns == (T + 7) * 1_000_000
    assert data[f"{DEVICE_PATH}/Parts"].ts_ns == (T + 1) * 1_000_000  # payload timestamp
    assert recorder.births == [(E, None), (E, "cnc-1")]
    assert recorder.rebirths == []
    node = host.node(G, E)
    assert node is not None and node.online and node.bd_seq == 0


def test_a_sequence_gap_asks_for_a_rebirth_at_most_once_per_throttle(tmp_path: Path) -> None:
    host, recorder = _host(tmp_path)
    _nbirth(host)
    _dbirth(host, seq=1)
    _ddata(host, 5, Metric(alias=10, value=1.0))
    _ddata(host, 9, Metric(alias=10, value=2.0))
    assert recorder.rebirths == [(G, E)]
    node = host.node(G, E)
    assert node is not None and node.stats.seq_errors == 2


def test_seq_wraps_from_255_to_0(tmp_path: Path) -> None:
    host, recorder = _host(tmp_path)
    _send(host, "NBIRTH", Payload(timestamp=T, seq=254, metrics=(
        Metric(name="bdSeq", datatype=DataType.UINT64, value=3),
        Metric(name="Temp", alias=1, datatype=DataType.FLOAT, value=1.5),
    )))  # fmt: skip
    for seq in (255, 0, 1):
        _send(host, "NDATA", Payload(timestamp=T, seq=seq, metrics=(Metric(alias=1, value=2.5),)))
    assert recorder.rebirths == []


def test_a_late_message_within_the_reorder_timeout_is_no_gap(tmp_path: Path) -> None:
    host, recorder = _host(tmp_path, reorder_ms=1000)
    _nbirth(host)
    _dbirth(host, seq=1)
    _ddata(host, 3, Metric(alias=10, value=1.0))
    _ddata(host, 2, Metric(alias=10, value=2.0))
    host.tick(NOW_NS + 2_000_000_000)
    assert recorder.rebirths == []
    _ddata(host, 6, Metric(alias=10, value=3.0))
    host.tick(NOW_NS + 500_000_000)
    assert recorder.rebirths == []
    host.tick(NOW_NS + 1_500_000_000)
    assert recorder.rebirths == [(G, E)]


def test_a_late_ndeath_is_ignored_and_a_current_one_makes_every_metric_stale(
    tmp_path: Path,
) -> None:
    host, recorder = _host(tmp_path)
    _nbirth(host, bd_seq=4)
    _dbirth(host)
    recorder.values = {f"{DEVICE_PATH}/Spindle.Speed": 1200.0, f"{DEVICE_PATH}/Running": True}
    late = _send(
        host, "NDEATH", Payload(metrics=(Metric(name="bdSeq", datatype=DataType.UINT64, value=3),))
    )
    assert late.decoded is None
    node = host.node(G, E)
    assert node is not None and node.online and node.stats.late_deaths == 1
    death_ns = NOW_NS + 10**9
    dead = _send(
        host,
        "NDEATH",
        Payload(metrics=(Metric(name="bdSeq", datatype=DataType.UINT64, value=4),)),
        at_ns=death_ns,
    )
    stale = _by_tag(dead)
    assert set(stale) == {
        f"{DEVICE_PATH}/{t}" for t in ("Spindle.Speed", "Parts", "Running", "Program")
    } | {f"{NODE_PATH}/Edge.Buffered_Samples"}
    assert all(s.quality is Quality.STALE and s.ts_ns == death_ns for s in stale.values())
    assert stale[f"{DEVICE_PATH}/Spindle.Speed"].value == 1200.0
    assert not node.online and not node.devices["cnc-1"].online
    assert recorder.deaths == [(E, None)]


def test_data_before_a_birth_is_quarantined_and_asks_for_a_rebirth(tmp_path: Path) -> None:
    host, recorder = _host(tmp_path)
    with pytest.raises(PayloadError) as caught:
        _send(host, "NDATA", Payload(timestamp=T, seq=3, metrics=(Metric(alias=1, value=1.0),)))
    assert caught.value.code == "sparkplug_no_birth"
    _nbirth(host)
    with pytest.raises(PayloadError):
        _ddata(host, 1, Metric(alias=10, value=1.0))  # device not born
    assert recorder.rebirths == [(G, E)]  # the second request fell within the throttle


def test_unknown_aliases_are_reported_and_known_metrics_kept(tmp_path: Path) -> None:
    host, recorder = _host(tmp_path)
    _nbirth(host)
    _dbirth(host)
    result = _ddata(
        host, 2, Metric(alias=10, value=3.0), Metric(alias=99, datatype=DataType.DOUBLE, value=4.0)
    )
    assert list(_by_tag(result)) == [f"{DEVICE_PATH}/Spindle.Speed"]
    assert [code for code, _ in result.problems] == ["sparkplug_unknown_alias"]
    assert recorder.rebirths == [(G, E)]


def test_device_death_makes_only_that_device_stale(tmp_path: Path) -> None:
    host, recorder = _host(tmp_path)
    _nbirth(host)
    _dbirth(host)
    recorder.values = {f"{DEVICE_PATH}/Parts": 7, f"{NODE_PATH}/Edge.Buffered_Samples": 0}
    dead = _send(host, "DDEATH", Payload(timestamp=T, seq=2), "cnc-1")
    assert set(_by_tag(dead)) == {
        f"{DEVICE_PATH}/{t}" for t in ("Spindle.Speed", "Parts", "Running", "Program")
    }
    node = host.node(G, E)
    assert node is not None and node.online and not node.devices["cnc-1"].online
    with pytest.raises(PayloadError):
        _ddata(host, 3, Metric(alias=10, value=1.0))


def test_quality_historical_and_command_results_come_through(tmp_path: Path) -> None:
    host, recorder = _host(tmp_path)
    _nbirth(host)
    _dbirth(host)
    bad = PropertySet.of(**{QUALITY_PROPERTY: (DataType.INT32, 0)})
    result = PropertySet.of(
        **{COMMAND_ID: (DataType.STRING, "c1"), COMMAND_STATUS: (DataType.STRING, "done")}
    )
    translation = _ddata(
        host, 2,
        Metric(alias=10, value=5.0, properties=bad, is_historical=True),
        Metric(alias=11, value=9, properties=result),
    )  # fmt: skip
    samples = _by_tag(translation)
    assert samples[f"{DEVICE_PATH}/Spindle.Speed"].quality is Quality.BAD
    assert translation.historical
    assert recorder.results == [("c1", "done", 9, None)]
    assert recorder.sources == [(_topic("DDATA", "cnc-1"), "Parts")]


def test_complex_values_become_text_and_templates_become_member_tags(tmp_path: Path) -> None:
    host, _ = _host(tmp_path)
    _nbirth(host)
    motor = Template(template_ref="Motor", metrics=(
        Metric(name="Speed", datatype=DataType.DOUBLE, value=10.5),
        Metric(name="Amps", datatype=DataType.FLOAT, value=2.5),
    ))  # fmt: skip
    table = DataSet(
        columns=("a", "b"), types=(DataType.INT32, DataType.STRING), rows=((1, "x"), (2, None))
    )
    metrics = (
        Metric(name="Motor", alias=20, datatype=DataType.TEMPLATE, value=motor, timestamp=T),
        Metric(
            name="Curve", alias=21, datatype=DataType.DOUBLE_ARRAY, value=(1.0, 2.5), timestamp=T
        ),
        Metric(name="Blob", alias=22, datatype=DataType.BYTES, value=b"\x00\x01", timestamp=T),
        Metric(name="Table", alias=23, datatype=DataType.DATASET, value=table, timestamp=T),
    )
    samples = _by_tag(_send(host, "DBIRTH", Payload(timestamp=T, seq=1, metrics=metrics), "cnc-1"))
    assert samples[f"{DEVICE_PATH}/Motor.Speed"].value == 10.5
    assert samples[f"{DEVICE_PATH}/Motor.Amps"].value == 2.5
    assert orjson.loads(samples[f"{DEVICE_PATH}/Curve"].value) == [1.0, 2.5]  # type: ignore[arg-type]
    assert base64.b64decode(samples[f"{DEVICE_PATH}/Blob"].value) == b"\x00\x01"  # type: ignore[arg-type]
    assert orjson.loads(samples[f"{DEVICE_PATH}/Table"].value)["rows"] == [[1, "x"], [2, None]]  # type: ignore[arg-type]


def test_restore_rebuilds_aliases_without_side_effects(tmp_path: Path) -> None:
    births = [(_topic("NBIRTH"), encode(Payload(timestamp=T, seq=0, metrics=(
        Metric(name="bdSeq", datatype=DataType.UINT64, value=1),
    ))))]  # fmt: skip
    births.append((_topic("DBIRTH", "cnc-1"), encode(Payload(timestamp=T, seq=1, metrics=(
        Metric(name="Spindle/Speed", alias=10, datatype=DataType.DOUBLE, value=1.0),
    )))))  # fmt: skip
    host, recorder = _host(tmp_path)
    host.restore(births)
    samples = _by_tag(_ddata(host, 77, Metric(alias=10, value=2.0)))
    assert samples[f"{DEVICE_PATH}/Spindle.Speed"].value == 2.0
    assert recorder.births == [] and recorder.rebirths == []


def test_unrouted_devices_get_the_default_path(tmp_path: Path) -> None:
    host, _ = _host(tmp_path)
    host.translate("spBv1.0/other/NBIRTH/gw 2", encode(Payload(timestamp=T, seq=0, metrics=(
        Metric(name="bdSeq", datatype=DataType.UINT64, value=0),
        Metric(name="Temp", alias=1, datatype=DataType.DOUBLE, value=20.0),
    ))), NOW_NS)  # fmt: skip
    node = host.node("other", "gw 2")
    assert node is not None
    assert node.devices[None].node.path == "other/gw_2/sparkplug/devices/node"


def test_commands_and_state_messages_carry_no_samples(tmp_path: Path) -> None:
    host, _ = _host(tmp_path)
    assert (
        host.translate(
            "spBv1.0/STATE/other-host", b'{"online": true, "timestamp": 1}', NOW_NS
        ).decoded
        is None
    )
    ncmd = encode(
        Payload(
            metrics=(Metric(name="Node Control/Rebirth", datatype=DataType.BOOLEAN, value=True),)
        )
    )
    assert host.translate(_topic("NCMD"), ncmd, NOW_NS).decoded is None


def test_malformed_payloads_raise_payload_errors(tmp_path: Path) -> None:
    host, _ = _host(tmp_path)
    with pytest.raises(PayloadError):
        host.translate(_topic("NBIRTH"), b"\xff\xff\xff", NOW_NS)
    with pytest.raises(PayloadError) as caught:
        _send(
            host,
            "NBIRTH",
            Payload(
                timestamp=T,
                seq=0,
                metrics=(Metric(name="x", alias=1, datatype=DataType.INT8, value=1),),
            ),
        )
    assert caught.value.code == "sparkplug_no_bdseq"


def test_a_metric_that_changed_type_is_left_out_and_the_rest_of_the_birth_kept(
    tmp_path: Path,
) -> None:
    host, recorder = _host(tmp_path)
    recorder.types = {f"{DEVICE_PATH}/Program": "number"}  # the namespace knows it as a number
    _nbirth(host)
    birth = _dbirth(host)
    samples = _by_tag(birth)
    assert f"{DEVICE_PATH}/Program" not in samples
    assert samples[f"{DEVICE_PATH}/Spindle.Speed"].value == 1200.0
    assert [code for code, _ in birth.problems] == ["type_changed"]
    data = _ddata(host, 2, Metric(alias=13, value="O200"), Metric(alias=10, value=5.0))
    assert list(_by_tag(data)) == [f"{DEVICE_PATH}/Spindle.Speed"]


@pytest.mark.parametrize(
    ("code", "quality"),
    [
        (192, Quality.GOOD), (64, Quality.UNCERTAIN), (0, Quality.BAD), (500, Quality.STALE),
        (1073742080, Quality.UNCERTAIN), (1073742081, Quality.UNCERTAIN),
        (-2147483136, Quality.BAD), (2147483648 + 0x200, Quality.BAD),
    ],
)  # fmt: skip
def test_quality_codes_of_opc_da_ignition_7_and_ignition_8(code: int, quality: Quality) -> None:
    from werk.sparkplug.samples import quality_of

    assert quality_of(PropertySet.of(**{QUALITY_PROPERTY: (DataType.INT64, code)})) is quality


def test_a_death_right_after_data_makes_the_newest_value_stale(tmp_path: Path) -> None:
    host, recorder = _host(tmp_path)
    _nbirth(host, bd_seq=1)
    _dbirth(host)
    recorder.values = {f"{DEVICE_PATH}/Spindle.Speed": 1200.0}  # the namespace lags a batch
    ahead_ms = NOW_NS // 1_000_000 + 3000  # the edge node's clock runs 3 s ahead
    _ddata(host, 2, *[Metric(alias=10, value=1300.0 + i, timestamp=ahead_ms) for i in range(8)])
    dead = _send(host, "NDEATH", Payload(metrics=(
        Metric(name="bdSeq", datatype=DataType.UINT64, value=1),
    )))  # fmt: skip
    stale = _by_tag(dead)[f"{DEVICE_PATH}/Spindle.Speed"]
    assert stale.value == 1307.0 and stale.quality is Quality.STALE
    assert stale.ts_ns > ahead_ms * 1_000_000


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_messages_never_crash_the_host(tmp_path: Path, data: st.DataObject) -> None:
    host, _ = _host(tmp_path)
    _nbirth(host)
    _dbirth(host)
    kind, device, payload = data.draw(st.sampled_from(_SEEDS))
    raw = bytearray(encode(payload))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(raw)))
    with contextlib.suppress(WerkError):  # anything else fails the test
        host.translate(_topic(kind, device), bytes(raw[:cut]), NOW_NS)


_SEEDS = [
    ("NBIRTH", None, Payload(timestamp=T, seq=0, metrics=(
        Metric(name="bdSeq", datatype=DataType.UINT64, value=0),
        Metric(name="A/B", alias=1, datatype=DataType.DOUBLE_ARRAY, value=(1.0, 2.0), timestamp=T),
    ))),
    ("DBIRTH", "cnc-1", Payload(timestamp=T, seq=1, metrics=(
        Metric(name="T", alias=40, datatype=DataType.TEMPLATE, timestamp=T,
               value=Template(metrics=(Metric(name="m", datatype=DataType.INT32, value=-3),))),
    ))),
    ("DDATA", "cnc-1", Payload(timestamp=T, seq=2, metrics=tuple(
        Metric(alias=10, value=float(i), timestamp=T + i) for i in range(10)
    ))),
    ("NDEATH", None, Payload(metrics=(Metric(name="bdSeq", datatype=DataType.UINT64, value=0),))),
]  # fmt: skip
