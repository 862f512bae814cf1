"""werk and pysparkplug, an independent Sparkplug B implementation, on werk's real broker.

pysparkplug edge nodes publish to werk's host (every datatype pysparkplug has, by name
and by alias, births, deaths, rebirth requests); werk's edge agent publishes to a
pysparkplug client, and a pysparkplug host application sends the agent commands.
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import queue
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pysparkplug as ps
import pytest
from fastapi.testclient import TestClient
from tests.conftest import make_settings, wait_until
from tests.integration.sparkplug.interop_support import (
    MemoryDevice,
    Recorder,
    SparkplugClient,
    bd_seq_of,
    connected,
    edge_topic,
    metrics_by_name,
    publish_by_alias,
)

from werk.api import create_app
from werk.core.clock import now_ns
from werk.core.settings import Settings, SparkplugRoute
from werk.edge.agent import EdgeAgent
from werk.edge.config import BufferConfig, EdgeConfig, NodeConfig
from werk.edge.model import Reading, TagSpec
from werk.runtime import Runtime
from werk.sparkplug.datatypes import DataType
from werk.uns.contracts import Quality

GROUP = "interop"
DT = ps.DataType
MT = ps.MessageType

# name: (datatype, value in the birth, value sent later by alias only, without datatype)
DEVICE_TYPES: dict[str, tuple[ps.DataType, Any, Any]] = {
    "Int8": (DT.INT8, -128, -1),
    "Int16": (DT.INT16, -32768, -2),
    "Int32": (DT.INT32, -(2**31), -3),
    "Int64": (DT.INT64, -(2**63), 2**63 - 1),
    "UInt8": (DT.UINT8, 255, 0),
    "UInt16": (DT.UINT16, 65535, 1),
    "UInt32": (DT.UINT32, 2**32 - 1, 2),
    "UInt64": (DT.UINT64, 2**53 + 1, 3),
    "Float": (DT.FLOAT, 3.14159, -0.1),
    "Double": (DT.DOUBLE, 2.718281828459045, -1e300),
    "Boolean": (DT.BOOLEAN, True, False),
    "String": (DT.STRING, "Grüße, 工場", ""),
    "DateTime": (DT.DATETIME, datetime(2024, 5, 17, 8, 30, 15, 250_000, UTC),
                 datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    "Text": (DT.TEXT, "line one\nline two", "x" * 1000),
    "UUID": (DT.UUID, "123e4567-e89b-12d3-a456-426614174000",
             "00000000-0000-0000-0000-000000000000"),
    "Bytes": (DT.BYTES, b"\x00\x01\xfe\xff", b"\x80"),
    "File": (DT.FILE, b"%PDF-1.7\n", b"\x00" * 16),
}  # fmt: skip
FIRST_ALIAS = 100


@pytest.fixture(scope="module")
def werk_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    routes = [SparkplugRoute(group=GROUP, edge_node="*", device="*",
                             path="acme/interop/edge/{edge_node}/{device}")]  # fmt: skip
    data = tmp_path_factory.mktemp("interop") / "data"
    return make_settings(data, sparkplug_routes=routes, sparkplug_rebirth_throttle_s=0)


@pytest.fixture(scope="module")
def werk(werk_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(Runtime(werk_settings), web=False)) as client:
        yield client


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as exits:
        yield exits


class Peer:
    """A connected pysparkplug edge node, the commands it got and what it published."""

    def __init__(
        self, stack: contextlib.ExitStack, port: int, edge_node: str,
        metrics: list[ps.Metric], devices: tuple[ps.Device, ...] = (),
    ) -> None:  # fmt: skip
        self.recorder = Recorder(port, edge_topic(GROUP, edge_node))
        stack.callback(self.recorder.close)
        self.commands: queue.Queue[ps.Message] = queue.Queue()
        self.client = SparkplugClient(edge_node)
        self.node = ps.EdgeNode(
            GROUP, edge_node, metrics, client=self.client,
            cmd_callback=lambda _node, message: self.commands.put(message),
        )  # fmt: skip
        for device in devices:
            self.node.register(device)
        stack.enter_context(connected(self.node, self.client, port))
        (nbirth,) = wait_until(lambda: self.recorder.messages(MT.NBIRTH))
        self.bd_seq = bd_seq_of(nbirth)
        self.edge_node = edge_node


def _tag(werk: TestClient, path: str) -> dict[str, Any] | None:
    response = werk.get(f"/api/v1/tags/{path}")
    return response.json() if response.status_code == 200 else None  # type: ignore[no-any-return]


def _tags(werk: TestClient, base: str, names: list[str]) -> dict[str, Any]:
    return {name: _tag(werk, f"{base}/{name}") for name in names}


def _node(werk: TestClient, edge_node: str) -> dict[str, Any]:
    response = werk.get(f"/api/v1/sparkplug/nodes/{GROUP}/{edge_node}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _epoch_ms(moment: datetime) -> int:
    return calendar.timegm(moment.utctimetuple()) * 1000 + moment.microsecond // 1000


def _uns(datatype: ps.DataType, value: Any) -> tuple[Any, str]:
    """What werk's tag API should show for a Sparkplug value: (value, data_type)."""
    if datatype is DT.FLOAT:  # float32 on the wire
        return pytest.approx(value, rel=1e-6), "number"
    if datatype is DT.DATETIME:
        return _epoch_ms(value), "number"
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii"), "string"
    if isinstance(value, bool):
        return value, "boolean"
    return value, "string" if isinstance(value, str) else "number"


def _stored(datatype: ps.DataType, value: Any) -> Any:
    """What werk's history should show: numbers as doubles."""
    shown, kind = _uns(datatype, value)
    return float(shown) if kind == "number" and isinstance(shown, int) else shown


def _device(birth_ms: int, name: str = "press-1") -> ps.Device:
    return ps.Device(name, [
        ps.Metric(birth_ms, f"Types/{tag}", datatype, value, alias=FIRST_ALIAS + i)
        for i, (tag, (datatype, value, _later)) in enumerate(DEVICE_TYPES.items())
    ])  # fmt: skip


def _node_metrics(birth_ms: int) -> list[ps.Metric]:
    return [
        ps.Metric(birth_ms, "Temperature", DT.DOUBLE, 21.5, alias=1),
        ps.Metric(birth_ms, "Counter", DT.UINT32, 5, alias=2),
    ]


# -- pysparkplug edge node -> werk host -------------------------------------------------


def test_every_pysparkplug_datatype_becomes_a_typed_tag_by_name_and_by_alias(
    werk: TestClient, werk_settings: Settings, stack: contextlib.ExitStack
) -> None:
    birth_ms = ps.get_current_timestamp() - 1000
    peer = Peer(stack, werk_settings.mqtt_port, "ps-types", _node_metrics(birth_ms),
                (_device(birth_ms),))  # fmt: skip
    base, names = "acme/interop/edge/ps-types/press-1", [f"Types.{t}" for t in DEVICE_TYPES]
    born = wait_until(lambda: all((t := _tags(werk, base, names)).values()) and t)
    assert {n: (t["value"], t["data_type"]) for n, t in born.items()} == {
        f"Types.{tag}": _uns(datatype, value) for tag, (datatype, value, _) in DEVICE_TYPES.items()
    }

    data_ms = birth_ms + 500
    peer.node.update([ps.Metric(data_ms, "Temperature", DT.DOUBLE, 22.25)])  # by name
    publish_by_alias(peer.node, peer.client, [ps.Metric(data_ms, None, DT.UINT32, 7, alias=2)])
    publish_by_alias(peer.node, peer.client, [
        ps.Metric(data_ms, None, datatype, later, alias=FIRST_ALIAS + i)
        for i, (datatype, _, later) in enumerate(DEVICE_TYPES.values())
    ], device="press-1")  # fmt: skip

    def updated() -> dict[str, Any] | None:
        tags = _tags(werk, base, names)
        return tags if all(t and t["ts"] != born[n]["ts"] for n, t in tags.items()) else None

    latest = wait_until(updated)
    assert {n: (t["value"], t["data_type"]) for n, t in latest.items()} == {
        f"Types.{tag}": _uns(datatype, later) for tag, (datatype, _, later) in DEVICE_TYPES.items()
    }
    assert datetime.fromisoformat(latest["Types.Int8"]["ts"]).timestamp() * 1000 == data_ms
    gateway = wait_until(lambda: (t := _tag(werk, "acme/interop/edge/ps-types/node/Counter"))
                         and t["value"] == 7 and t)  # fmt: skip
    assert gateway["data_type"] == "number"
    assert _tag(werk, "acme/interop/edge/ps-types/node/Temperature")["value"] == 22.25  # type: ignore[index]
    for tag, (datatype, value, later) in DEVICE_TYPES.items():
        history = werk.get(f"/api/v1/history/{base}/Types.{tag}").json()
        points = [p["value"] for p in history["points"]]
        assert points == [_stored(datatype, value), _stored(datatype, later)], tag

    node = _node(werk, "ps-types")
    assert (node["online"], node["bd_seq"]) == (True, peer.bd_seq)
    assert (node["seq_errors"], node["unknown_aliases"], node["expected_seq"]) == (0, 0, 5)
    (listed,) = [n for n in werk.get("/api/v1/sparkplug/nodes").json()
                 if n["edge_node"] == "ps-types"]  # fmt: skip
    assert (listed["online"], listed["bd_seq"]) == (True, peer.bd_seq)
    press = next(d for d in node["devices"] if d["device"] == "press-1")
    assert {m["name"]: (m["alias"], m["datatype"]) for m in press["metric_list"]} == {
        f"Types/{tag}": (FIRST_ALIAS + i, datatype.name)
        for i, (tag, (datatype, _, _)) in enumerate(DEVICE_TYPES.items())
    }


def test_a_uint64_above_int64_keeps_its_value_in_the_tag_api(
    werk: TestClient, werk_settings: Settings, stack: contextlib.ExitStack
) -> None:
    birth_ms = ps.get_current_timestamp()
    big = ps.Metric(birth_ms, "Energy/Total", DT.UINT64, 2**64 - 1, alias=1)
    Peer(stack, werk_settings.mqtt_port, "ps-uint64", [big])
    tag = wait_until(lambda: _tag(werk, "acme/interop/edge/ps-uint64/node/Energy.Total"))
    assert tag["value"] == 2**64 - 1  # Sparkplug UInt64 spans 0 .. 2**64 - 1


def test_ddeath_and_ndeath_from_pysparkplug_make_werk_mark_metrics_stale(
    werk: TestClient, werk_settings: Settings, stack: contextlib.ExitStack
) -> None:
    now = ps.get_current_timestamp()
    speed = ps.Metric(now, "Spindle/Speed", DT.DOUBLE, 1200.0, alias=10)
    peer = Peer(stack, werk_settings.mqtt_port, "ps-death",
                [ps.Metric(now, "Temperature", DT.DOUBLE, 30.5, alias=1)],
                (ps.Device("press-2", [speed]),))  # fmt: skip
    base = "acme/interop/edge/ps-death"
    wait_until(lambda: _tag(werk, f"{base}/press-2/Spindle.Speed"))

    peer.node.deregister("press-2")  # DDEATH
    stale = wait_until(lambda: (t := _tag(werk, f"{base}/press-2/Spindle.Speed"))
                       and t["quality"] == "stale" and t)  # fmt: skip
    assert stale["value"] == 1200.0
    assert _tag(werk, f"{base}/node/Temperature")["quality"] == "good"  # type: ignore[index]
    node = _node(werk, "ps-death")
    assert node["online"] and [(d["device"], d["online"]) for d in node["devices"]] == [
        (None, True), ("press-2", False),
    ]  # fmt: skip

    bd_seq = ps.Metric(ps.get_current_timestamp(), "bdSeq", DT.INT64, peer.bd_seq)
    ndeath = ps.NDeath(ps.get_current_timestamp(), bd_seq)
    topic = ps.Topic(message_type=MT.NDEATH, group_id=GROUP, edge_node_id="ps-death")
    peer.client.publish(ps.Message(topic, ndeath, ps.QoS.AT_LEAST_ONCE, False))
    temperature = wait_until(lambda: (t := _tag(werk, f"{base}/node/Temperature"))
                             and t["quality"] == "stale" and t)  # fmt: skip
    assert temperature["value"] == 30.5
    node = _node(werk, "ps-death")
    assert (node["online"], node["late_deaths"], node["bd_seq"]) == (False, 0, peer.bd_seq)


def test_an_unclean_disconnect_of_pysparkplug_makes_werk_mark_metrics_stale(
    werk: TestClient, werk_settings: Settings, stack: contextlib.ExitStack
) -> None:
    now = ps.get_current_timestamp()
    level = ps.Metric(now, "Tank/Level", DT.FLOAT, 0.75, alias=10)
    peer = Peer(stack, werk_settings.mqtt_port, "ps-lost",
                [ps.Metric(now, "Temperature", DT.DOUBLE, 18.0, alias=1)],
                (ps.Device("tank-1", [level]),))  # fmt: skip
    base = "acme/interop/edge/ps-lost"
    wait_until(lambda: _tag(werk, f"{base}/tank-1/Tank.Level"))

    peer.client.drop_connection()  # the broker publishes pysparkplug's Will: NDEATH
    (will,) = wait_until(lambda: peer.recorder.messages(MT.NDEATH))
    assert bd_seq_of(will) == peer.bd_seq
    for path in (f"{base}/tank-1/Tank.Level", f"{base}/node/Temperature"):
        wait_until(lambda p=path: (t := _tag(werk, p)) and t["quality"] == "stale")  # type: ignore[misc]
    node = _node(werk, "ps-lost")
    assert (node["online"], node["late_deaths"]) == (False, 0)
    assert not any(d["online"] for d in node["devices"])


def test_a_rebirth_request_from_werk_is_an_ncmd_pysparkplug_decodes(
    werk: TestClient, werk_settings: Settings, stack: contextlib.ExitStack
) -> None:
    now = ps.get_current_timestamp()
    peer = Peer(stack, werk_settings.mqtt_port, "ps-rebirth",
                [ps.Metric(now, "Temperature", DT.DOUBLE, 18.0, alias=1)])  # fmt: skip
    wait_until(lambda: _node(werk, "ps-rebirth")["online"])

    assert werk.post(f"/api/v1/sparkplug/nodes/{GROUP}/ps-rebirth/rebirth").status_code == 202
    # pysparkplug leaves rebirths to the application: its node hands the NCMD over.
    command = peer.commands.get(timeout=10)
    assert command.topic == ps.Topic(message_type=MT.NCMD, group_id=GROUP,
                                     edge_node_id="ps-rebirth")  # fmt: skip
    assert isinstance(command.payload, ps.NCmd)
    (metric,) = command.payload.metrics
    assert (metric.name, metric.alias, metric.datatype, metric.value) == (
        "Node Control/Rebirth", None, DT.BOOLEAN, True,
    )  # fmt: skip
    assert metric.timestamp is not None
    assert abs(command.payload.timestamp - ps.get_current_timestamp()) < 60_000

    # What a pysparkplug application can do about it: start its node again, which is
    # a new session with the next bdSeq.
    peer.node.disconnect()
    again = Peer(stack, werk_settings.mqtt_port, "ps-rebirth",
                 [ps.Metric(now + 1, "Temperature", DT.DOUBLE, 18.5, alias=1)])  # fmt: skip
    assert again.bd_seq != peer.bd_seq
    node = wait_until(lambda: (n := _node(werk, "ps-rebirth"))["bd_seq"] == again.bd_seq and n)
    assert node["online"] and node["seq_errors"] == 0
    path = "acme/interop/edge/ps-rebirth/node/Temperature"
    wait_until(lambda: (t := _tag(werk, path)) and t["value"] == 18.5)


def test_pysparkplug_ddata_without_a_device_id_is_quarantined_not_lost(
    werk: TestClient, werk_settings: Settings, stack: contextlib.ExitStack
) -> None:
    now = ps.get_current_timestamp()
    speed = ps.Metric(now, "Speed", DT.DOUBLE, 10.0, alias=10)
    peer = Peer(stack, werk_settings.mqtt_port, "ps-quirk",
                [ps.Metric(now, "Temperature", DT.DOUBLE, 18.0, alias=1)],
                (ps.Device("belt-1", [speed]),))  # fmt: skip
    wait_until(lambda: _tag(werk, "acme/interop/edge/ps-quirk/belt-1/Speed"))

    # pysparkplug 0.3 publishes a device's data on spBv1.0/<group>/DDATA/<node>, without
    # the device id that Sparkplug requires on DDATA topics.
    peer.node.update_device("belt-1", [ps.Metric(now + 1, "Speed", DT.DOUBLE, 11.0)])
    topic = f"spBv1.0/{GROUP}/DDATA/ps-quirk"

    def quarantined() -> list[dict[str, Any]]:
        items = werk.get("/api/v1/quarantine", params={"limit": 1000}).json()["items"]
        return [i for i in items if i["topic"] == topic]

    (record,) = wait_until(quarantined)
    assert record["reason"] == "sparkplug_topic"
    assert _tag(werk, "acme/interop/edge/ps-quirk/belt-1/Speed")["value"] == 10.0  # type: ignore[index]


# -- werk edge agent -> pysparkplug ------------------------------------------------------

AGENT_TAGS: dict[str, tuple[DataType, Any]] = {
    "Spindle/Speed": (DataType.DOUBLE, 1234.5),
    "Spindle/Load": (DataType.FLOAT, 0.1),
    "Axis/Offset": (DataType.INT8, -128),
    "Axis/Steps": (DataType.INT16, -32768),
    "Counter/Parts": (DataType.INT32, -(2**31)),
    "Counter/Total": (DataType.INT64, -(2**63)),
    "Raw/Byte": (DataType.UINT8, 255),
    "Raw/Word": (DataType.UINT16, 65535),
    "Raw/DWord": (DataType.UINT32, 2**32 - 1),
    "Raw/QWord": (DataType.UINT64, 2**64 - 1),
    "State/Running": (DataType.BOOLEAN, True),
    "State/Program": (DataType.STRING, "O1234 (ROUGH) Grüße 工場"),
    "State/Note": (DataType.TEXT, "line one\nline two"),
    "State/Since": (DataType.DATETIME, 1_715_934_615_250),
}


def _start_agent(
    stack: contextlib.ExitStack, tmp_path: Path, settings: Settings, edge_node: str,
    device: MemoryDevice, **node: Any,
) -> EdgeAgent:  # fmt: skip
    config = EdgeConfig(
        node=NodeConfig(group=GROUP, edge_node=edge_node,
                        broker=f"mqtt://127.0.0.1:{settings.mqtt_port}",
                        primary_host=settings.sparkplug_host_id, keepalive_s=5,
                        publish_interval_ms=20, **node),
        buffer=BufferConfig(path=tmp_path / edge_node, fsync=False),
    )  # fmt: skip
    agent = EdgeAgent(config, connectors=[device])
    agent.start_in_thread()
    stack.callback(agent.stop_thread)
    return agent


def _as_pysparkplug(datatype: DataType, value: Any) -> Any:
    """A value as pysparkplug decodes it."""
    if datatype is DataType.FLOAT:  # float32 on the wire
        return pytest.approx(value, rel=1e-6)
    if datatype is DataType.DATETIME:
        return datetime.fromtimestamp(value / 1000, UTC)
    return value


def test_pysparkplug_reads_werks_host_state(werk: TestClient, werk_settings: Settings) -> None:
    host_id = werk_settings.sparkplug_host_id
    recorder = Recorder(werk_settings.mqtt_port,
                        ps.Topic(message_type=MT.STATE, sparkplug_host_id=host_id))  # fmt: skip
    try:
        (state,) = wait_until(lambda: recorder.messages(MT.STATE))
    finally:
        recorder.close()
    assert isinstance(state.payload, ps.State) and state.retain
    assert state.payload.online is True
    assert abs(state.payload.timestamp - ps.get_current_timestamp()) < 600_000


def test_pysparkplug_decodes_the_agents_births_and_data_and_seq_wraps(
    werk: TestClient, werk_settings: Settings, stack: contextlib.ExitStack, tmp_path: Path
) -> None:
    recorder = Recorder(werk_settings.mqtt_port, edge_topic(GROUP, "agent-1"))
    stack.callback(recorder.close)
    specs = [TagSpec(name, datatype) for name, (datatype, _) in AGENT_TAGS.items()]
    agent = _start_agent(stack, tmp_path, werk_settings, "agent-1", MemoryDevice("cell-1", specs),
                         max_metrics_per_message=1)  # fmt: skip

    (nbirth,) = wait_until(lambda: recorder.messages(MT.NBIRTH))
    (dbirth,) = wait_until(lambda: recorder.messages(MT.DBIRTH, device="cell-1"))
    assert (nbirth.payload.seq, dbirth.payload.seq) == (0, 1)  # type: ignore[attr-defined]
    assert bd_seq_of(nbirth) == agent.status().bdseq
    rebirth = metrics_by_name(nbirth)["Node Control/Rebirth"]
    assert (rebirth.datatype, rebirth.value) == (DT.BOOLEAN, False)
    declared = metrics_by_name(dbirth)
    assert {n: m.datatype.value for n, m in declared.items()} == {
        name: datatype.value for name, (datatype, _) in AGENT_TAGS.items()
    }
    aliases = [m.alias for m in (*nbirth.payload.metrics, *dbirth.payload.metrics)  # type: ignore[attr-defined]
               if m.name != "bdSeq"]  # fmt: skip
    assert None not in aliases and len(set(aliases)) == len(aliases)

    ts_ms = now_ns() // 1_000_000
    agent.submit("cell-1", [Reading(name, value, ts_ms * 1_000_000, Quality.GOOD)
                            for name, (_, value) in AGENT_TAGS.items()])  # fmt: skip
    data = wait_until(lambda: len(d := recorder.messages(MT.DDATA)) == len(AGENT_TAGS) and d)
    received = {m.name: m for message in data for m in message.payload.metrics}  # type: ignore[attr-defined]
    assert {n: (m.alias, m.datatype, m.value, m.timestamp) for n, m in received.items()} == {
        name: (declared[name].alias, declared[name].datatype,
               _as_pysparkplug(datatype, value), ts_ms)
        for name, (datatype, value) in AGENT_TAGS.items()
    }  # fmt: skip

    parts = [Reading("Counter/Parts", i, (ts_ms + 1 + i) * 1_000_000, Quality.GOOD)
             for i in range(260)]  # fmt: skip
    agent.submit("cell-1", parts)
    wait_until(lambda: len(recorder.messages(MT.DDATA)) == len(AGENT_TAGS) + 260)
    counted = [m.payload.metrics[0] for m in recorder.messages(MT.DDATA)[len(AGENT_TAGS):]]  # type: ignore[attr-defined]
    assert [(m.name, m.value) for m in counted] == [("Counter/Parts", i) for i in range(260)]
    sent = recorder.messages(MT.NBIRTH, MT.DBIRTH, MT.NDATA, MT.DDATA)
    seqs = [m.payload.seq for m in sent]  # type: ignore[attr-defined]
    assert len(seqs) > 256 and seqs == [i % 256 for i in range(len(seqs))]

    node = _node(werk, "agent-1")  # werk's own host followed the same session
    assert (node["online"], node["bd_seq"], node["seq_errors"]) == (True, bd_seq_of(nbirth), 0)


def test_a_pysparkplug_host_commands_the_agent(
    werk: TestClient, werk_settings: Settings, stack: contextlib.ExitStack, tmp_path: Path
) -> None:
    recorder = Recorder(werk_settings.mqtt_port, edge_topic(GROUP, "agent-2"))
    stack.callback(recorder.close)
    device = MemoryDevice("cell-2", [TagSpec("Spindle/Speed", DataType.DOUBLE, writable=True)])
    _start_agent(stack, tmp_path, werk_settings, "agent-2", device)
    (nbirth,) = wait_until(lambda: recorder.messages(MT.NBIRTH))
    wait_until(lambda: recorder.messages(MT.DBIRTH))
    host = SparkplugClient("interop-host")
    host.connect("127.0.0.1", port=werk_settings.mqtt_port, keepalive=10)
    stack.callback(host.disconnect)
    wait_until(lambda: host.is_connected)

    now = ps.get_current_timestamp()
    write = ps.DCmd(now, metrics=(ps.Metric(now, "Spindle/Speed", DT.DOUBLE, 1500.0),))
    topic = ps.Topic(message_type=MT.DCMD, group_id=GROUP, edge_node_id="agent-2",
                     device_id="cell-2")  # fmt: skip
    host.publish(ps.Message(topic, write, ps.QoS.AT_MOST_ONCE, False), include_dtypes=True)
    wait_until(lambda: device.values == {"Spindle/Speed": 1500.0})
    answers = wait_until(lambda: [m for d in recorder.messages(MT.DDATA)
                                  for m in d.payload.metrics])  # type: ignore[attr-defined]  # fmt: skip
    assert [(m.name, m.value) for m in answers] == [("Spindle/Speed", 1500.0)]

    rebirth = ps.NCmd(now, metrics=(ps.Metric(now, "Node Control/Rebirth", DT.BOOLEAN, True),))
    topic = ps.Topic(message_type=MT.NCMD, group_id=GROUP, edge_node_id="agent-2")
    host.publish(ps.Message(topic, rebirth, ps.QoS.AT_MOST_ONCE, False), include_dtypes=True)
    births = wait_until(lambda: len(b := recorder.messages(MT.NBIRTH)) == 2 and b)
    assert bd_seq_of(births[1]) == bd_seq_of(nbirth) and births[1].payload.seq == 0  # type: ignore[attr-defined]
