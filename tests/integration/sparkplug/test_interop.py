"""werk and pysparkplug, an independent Sparkplug B implementation, over real brokers.

pysparkplug edge nodes publish to werk's host (every datatype pysparkplug has, by name
and by alias, births, deaths, rebirth requests, writes); werk's edge agent publishes to
a pysparkplug client, and a pysparkplug primary host brings the agent online and sends it
commands through Mosquitto.
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pysparkplug as ps
import pytest
from fastapi.testclient import TestClient
from tests.conftest import admin_client, make_settings, wait_until
from tests.integration.sparkplug.interop_support import (
    AGENT_TAGS,
    DEVICE_TYPES,
    FIRST_ALIAS,
    GROUP,
    MemoryDevice,
    Peer,
    Recorder,
    SparkplugClient,
    as_pysparkplug,
    bd_seq_of,
    edge_topic,
    epoch_ms,
    metrics_by_name,
    node_view,
    publish_by_alias,
    publish_state,
    read_tag,
    read_tags,
    start_agent,
    stored_view,
    topic,
    typed_peer,
    uns_view,
    wait_for_tag,
)

from werk.core.clock import now_ns
from werk.core.settings import Settings, SparkplugRoute
from werk.edge.model import Reading, TagSpec
from werk.runtime import Runtime
from werk.sparkplug.datatypes import DataType
from werk.uns.contracts import Quality

DT = ps.DataType
MT = ps.MessageType
ROOT = "acme/interop/edge"

TAGS = [f"Types.{name}" for name in DEVICE_TYPES]


@pytest.fixture(scope="module")
def werk_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    route = SparkplugRoute(group=GROUP, edge_node="*", device="*",
                           path=ROOT + "/{edge_node}/{device}")  # fmt: skip
    data = tmp_path_factory.mktemp("interop") / "data"
    return make_settings(data, sparkplug_routes=[route], sparkplug_rebirth_throttle_s=0)


@pytest.fixture(scope="module")
def werk(werk_settings: Settings) -> Iterator[TestClient]:
    with admin_client(Runtime(werk_settings)) as client:
        yield client


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as exits:
        yield exits


# -- pysparkplug edge node -> werk host -------------------------------------------------


def test_every_pysparkplug_datatype_in_a_birth_becomes_a_typed_tag(
    werk: TestClient, werk_settings: Settings, stack: contextlib.ExitStack
) -> None:
    peer = typed_peer(stack, werk_settings.mqtt_port, "ps-types", ps.get_current_timestamp())
    base = f"{ROOT}/ps-types/press-1"
    born = wait_until(lambda: all((t := read_tags(werk, base, TAGS)).values()) and t)
    assert {n: (t["value"], t["data_type"]) for n, t in born.items()} == {
        f"Types.{name}": uns_view(datatype, value)
        for name, (datatype, value, _) in DEVICE_TYPES.items()
    }
    assert read_tag(werk, f"{ROOT}/ps-types/node/Temperature")["value"] == 21.5

    node = node_view(werk, "ps-types")
    assert (node["online"], node["bd_seq"], node["seq_errors"]) == (True, peer.bd_seq, 0)
    press = next(d for d in node["devices"] if d["device"] == "press-1")
    assert {m["name"]: (m["alias"], m["datatype"]) for m in press["metric_list"]} == {
        f"Types/{name}": (FIRST_ALIAS + i, datatype.name)
        for i, (name, (datatype, _, _)) in enumerate(DEVICE_TYPES.items())
    }
    (listed,) = [n for n in werk.get("/api/v1/sparkplug/nodes").json()
                 if n["edge_node"] == "ps-types"]  # fmt: skip
    assert (listed["group"], listed["online"], listed["bd_seq"]) == (GROUP, True, peer.bd_seq)


def test_data_by_alias_without_datatypes_updates_the_right_tags_and_history(
    werk: TestClient, werk_settings: Settings, stack: contextlib.ExitStack
) -> None:
    birth_ms = ps.get_current_timestamp() - 1000
    peer = typed_peer(stack, werk_settings.mqtt_port, "ps-alias", birth_ms)
    base = f"{ROOT}/ps-alias/press-1"
    born = wait_until(lambda: all((t := read_tags(werk, base, TAGS)).values()) and t)

    data_ms = birth_ms + 500
    peer.node.update([ps.Metric(data_ms, "Temperature", DT.DOUBLE, 22.25)])  # by name
    publish_by_alias(peer.node, peer.client, [ps.Metric(data_ms, None, DT.UINT32, 7, alias=2)])
    publish_by_alias(peer.node, peer.client, [
        ps.Metric(data_ms, None, datatype, later, alias=FIRST_ALIAS + i)
        for i, (datatype, _, later) in enumerate(DEVICE_TYPES.values())
    ], device="press-1")  # fmt: skip

    def updated() -> dict[str, Any] | None:
        now = read_tags(werk, base, TAGS)
        return now if all(t and t["ts"] != born[n]["ts"] for n, t in now.items()) else None

    latest = wait_until(updated)
    assert {n: (t["value"], t["data_type"]) for n, t in latest.items()} == {
        f"Types.{name}": uns_view(datatype, later)
        for name, (datatype, _, later) in DEVICE_TYPES.items()
    }
    assert epoch_ms(datetime.fromisoformat(latest["Types.Int8"]["ts"])) == data_ms
    wait_for_tag(werk, f"{ROOT}/ps-alias/node/Counter", value=7, data_type="number")
    assert read_tag(werk, f"{ROOT}/ps-alias/node/Temperature")["value"] == 22.25
    for name, (datatype, value, later) in DEVICE_TYPES.items():
        history = werk.get(f"/api/v1/history/{base}/Types.{name}?layer=raw").json()
        points = [p["value"] for p in history["points"]]
        assert points == [stored_view(datatype, value), stored_view(datatype, later)], name
    node = node_view(werk, "ps-alias")
    assert (node["seq_errors"], node["unknown_aliases"], node["expected_seq"]) == (0, 0, 5)


def test_a_uint64_above_int64_keeps_its_value_in_the_tag_api(
    werk: TestClient, werk_settings: Settings, stack: contextlib.ExitStack
) -> None:
    big = ps.Metric(ps.get_current_timestamp(), "Energy/Total", DT.UINT64, 2**64 - 1, alias=1)
    Peer(stack, werk_settings.mqtt_port, "ps-uint64", [big])
    tag = wait_for_tag(werk, f"{ROOT}/ps-uint64/node/Energy.Total")
    assert tag["value"] == 2**64 - 1  # Sparkplug UInt64 spans 0 .. 2**64 - 1


def test_ddeath_and_ndeath_from_pysparkplug_make_werk_mark_metrics_stale(
    werk: TestClient, werk_settings: Settings, stack: contextlib.ExitStack
) -> None:
    now = ps.get_current_timestamp()
    speed = ps.Metric(now, "Spindle/Speed", DT.DOUBLE, 1200.0, alias=10)
    peer = Peer(stack, werk_settings.mqtt_port, "ps-death",
                [ps.Metric(now, "Temperature", DT.DOUBLE, 30.5, alias=1)],
                (ps.Device("press-2", [speed]),))  # fmt: skip
    base = f"{ROOT}/ps-death"
    wait_for_tag(werk, f"{base}/press-2/Spindle.Speed")

    peer.node.deregister("press-2")  # DDEATH
    wait_for_tag(werk, f"{base}/press-2/Spindle.Speed", quality="stale", value=1200.0)
    assert read_tag(werk, f"{base}/node/Temperature")["quality"] == "good"
    node = node_view(werk, "ps-death")
    assert node["online"] and [(d["device"], d["online"]) for d in node["devices"]] == [
        (None, True), ("press-2", False),
    ]  # fmt: skip

    bd_seq = ps.Metric(ps.get_current_timestamp(), "bdSeq", DT.INT64, peer.bd_seq)
    ndeath = ps.NDeath(ps.get_current_timestamp(), bd_seq)
    peer.client.publish(ps.Message(topic(MT.NDEATH, "ps-death"), ndeath, ps.QoS.AT_LEAST_ONCE,
                                   False))  # fmt: skip
    wait_for_tag(werk, f"{base}/node/Temperature", quality="stale", value=30.5)
    node = node_view(werk, "ps-death")
    assert (node["online"], node["late_deaths"], node["bd_seq"]) == (False, 0, peer.bd_seq)


def test_an_unclean_disconnect_of_pysparkplug_makes_werk_mark_metrics_stale(
    werk: TestClient, werk_settings: Settings, stack: contextlib.ExitStack
) -> None:
    now = ps.get_current_timestamp()
    level = ps.Metric(now, "Tank/Level", DT.FLOAT, 0.75, alias=10)
    peer = Peer(stack, werk_settings.mqtt_port, "ps-lost",
                [ps.Metric(now, "Temperature", DT.DOUBLE, 18.0, alias=1)],
                (ps.Device("tank-1", [level]),))  # fmt: skip
    base = f"{ROOT}/ps-lost"
    wait_for_tag(werk, f"{base}/tank-1/Tank.Level")

    peer.client.drop_connection()  # the broker publishes pysparkplug's Will: NDEATH
    (will,) = wait_until(lambda: peer.recorder.messages(MT.NDEATH))
    assert bd_seq_of(will) == peer.bd_seq
    wait_for_tag(werk, f"{base}/tank-1/Tank.Level", quality="stale", value=0.75)
    wait_for_tag(werk, f"{base}/node/Temperature", quality="stale", value=18.0)
    node = node_view(werk, "ps-lost")
    assert (node["online"], node["late_deaths"]) == (False, 0)
    assert not any(d["online"] for d in node["devices"])


def test_a_rebirth_request_from_werk_is_an_ncmd_pysparkplug_decodes(
    werk: TestClient, werk_settings: Settings, stack: contextlib.ExitStack
) -> None:
    now = ps.get_current_timestamp()
    peer = Peer(stack, werk_settings.mqtt_port, "ps-rebirth",
                [ps.Metric(now, "Temperature", DT.DOUBLE, 18.0, alias=1)])  # fmt: skip
    wait_until(lambda: node_view(werk, "ps-rebirth")["online"])

    assert werk.post(f"/api/v1/sparkplug/nodes/{GROUP}/ps-rebirth/rebirth").status_code == 202
    # pysparkplug leaves rebirths to the application: its node hands the NCMD over.
    command = peer.commands.get(timeout=10)
    assert command.topic == topic(MT.NCMD, "ps-rebirth")
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
    node = wait_until(lambda: (n := node_view(werk, "ps-rebirth"))["bd_seq"] == again.bd_seq and n)
    assert node["online"] and node["seq_errors"] == 0
    wait_for_tag(werk, f"{ROOT}/ps-rebirth/node/Temperature", value=18.5)


def test_writes_from_werk_are_dcmds_pysparkplug_decodes(
    werk: TestClient, werk_settings: Settings, stack: contextlib.ExitStack
) -> None:
    now = ps.get_current_timestamp()
    commands: queue.Queue[ps.Message] = queue.Queue()
    valve = ps.Device("valve-1", [
        ps.Metric(now, "Setpoint/Flow", DT.FLOAT, 1.5, alias=10),
        ps.Metric(now, "Setpoint/Offset", DT.INT16, 0, alias=11),
        ps.Metric(now, "Setpoint/Enabled", DT.BOOLEAN, False, alias=12),
    ], cmd_callback=lambda _node, message: commands.put(message))  # fmt: skip
    Peer(stack, werk_settings.mqtt_port, "ps-write", [], (valve,))
    base = f"{ROOT}/ps-write/valve-1"
    wait_for_tag(werk, f"{base}/Setpoint.Enabled")

    writes = {"Setpoint.Flow": 2.75, "Setpoint.Offset": -300, "Setpoint.Enabled": True}
    for name, value in writes.items():
        body = {"tag": f"{base}/{name}", "value": value, "wait_s": 0}
        response = werk.post("/api/v1/commands", json=body)
        assert response.status_code == 202, response.text  # pysparkplug does not answer
    received = [commands.get(timeout=10) for _ in writes]
    assert all(m.topic == topic(MT.DCMD, "ps-write", "valve-1") for m in received)
    assert all(isinstance(m.payload, ps.DCmd) for m in received)
    metrics = [m for message in received for m in message.payload.metrics]
    assert [(m.name, m.datatype, m.value) for m in metrics] == [
        ("Setpoint/Flow", DT.FLOAT, 2.75),
        ("Setpoint/Offset", DT.INT16, -300),
        ("Setpoint/Enabled", DT.BOOLEAN, True),
    ]


def test_pysparkplug_ddata_without_a_device_id_is_quarantined_not_lost(
    werk: TestClient, werk_settings: Settings, stack: contextlib.ExitStack
) -> None:
    now = ps.get_current_timestamp()
    speed = ps.Metric(now, "Speed", DT.DOUBLE, 10.0, alias=10)
    peer = Peer(stack, werk_settings.mqtt_port, "ps-quirk", [],
                (ps.Device("belt-1", [speed]),))  # fmt: skip
    wait_for_tag(werk, f"{ROOT}/ps-quirk/belt-1/Speed")

    # pysparkplug 0.3 publishes a device's data on spBv1.0/<group>/DDATA/<node>, without
    # the device id that Sparkplug requires on DDATA topics.
    peer.node.update_device("belt-1", [ps.Metric(now + 1, "Speed", DT.DOUBLE, 11.0)])
    where = f"spBv1.0/{GROUP}/DDATA/ps-quirk"

    def quarantined() -> list[dict[str, Any]]:
        items = werk.get("/api/v1/quarantine", params={"limit": 1000}).json()["items"]
        return [i for i in items if i["topic"] == where]

    (record,) = wait_until(quarantined)
    assert record["reason"] == "sparkplug_topic"
    assert read_tag(werk, f"{ROOT}/ps-quirk/belt-1/Speed")["value"] == 10.0


# -- werk edge agent -> pysparkplug ------------------------------------------------------


def test_pysparkplug_reads_werks_host_state(werk: TestClient, werk_settings: Settings) -> None:
    host_id = werk_settings.sparkplug_host_id
    where = ps.Topic(message_type=MT.STATE, sparkplug_host_id=host_id)
    recorder = Recorder(werk_settings.mqtt_port, where)
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
    port, host_id = werk_settings.mqtt_port, werk_settings.sparkplug_host_id
    recorder = Recorder(port, edge_topic("agent-cell-1"))
    stack.callback(recorder.close)
    specs = [TagSpec(name, datatype) for name, (datatype, _) in AGENT_TAGS.items()]
    device = MemoryDevice("cell-1", specs)
    agent = start_agent(stack, tmp_path, port, host_id, device, max_metrics_per_message=1)

    (nbirth,) = wait_until(lambda: recorder.messages(MT.NBIRTH))
    (dbirth,) = wait_until(lambda: recorder.messages(MT.DBIRTH, device="cell-1"))
    assert (nbirth.payload.seq, dbirth.payload.seq) == (0, 1)
    assert bd_seq_of(nbirth) == agent.status().bdseq
    rebirth = metrics_by_name(nbirth)["Node Control/Rebirth"]
    assert (rebirth.datatype, rebirth.value) == (DT.BOOLEAN, False)
    declared = metrics_by_name(dbirth)
    assert {n: m.datatype.value for n, m in declared.items()} == {
        name: datatype.value for name, (datatype, _) in AGENT_TAGS.items()
    }
    aliases = [m.alias for m in (*nbirth.payload.metrics, *dbirth.payload.metrics)
               if m.name != "bdSeq"]  # fmt: skip
    assert None not in aliases and len(set(aliases)) == len(aliases)

    ts_ms = now_ns() // 1_000_000
    agent.submit("cell-1", [Reading(name, value, ts_ms * 1_000_000, Quality.GOOD)
                            for name, (_, value) in AGENT_TAGS.items()])  # fmt: skip
    data = wait_until(lambda: len(d := recorder.messages(MT.DDATA)) == len(AGENT_TAGS) and d)
    received = {m.name: m for message in data for m in message.payload.metrics}
    assert {n: (m.alias, m.datatype, m.value, m.timestamp) for n, m in received.items()} == {
        name: (declared[name].alias, declared[name].datatype,
               as_pysparkplug(datatype, value), ts_ms)
        for name, (datatype, value) in AGENT_TAGS.items()
    }  # fmt: skip

    agent.submit("cell-1", [Reading("Counter/Parts", i, (ts_ms + 1 + i) * 1_000_000,
                                    Quality.GOOD) for i in range(260)])  # fmt: skip
    data = wait_until(lambda: len(d := recorder.messages(MT.DDATA)) == len(AGENT_TAGS) + 260 and d)
    counted = [m.payload.metrics[0] for m in data[len(AGENT_TAGS) :]]
    assert [(m.name, m.value) for m in counted] == [("Counter/Parts", i) for i in range(260)]
    seqs = [m.payload.seq for m in recorder.messages(MT.NBIRTH, MT.DBIRTH, MT.NDATA, MT.DDATA)]
    assert len(seqs) > 256 and seqs == [i % 256 for i in range(len(seqs))]

    node = node_view(werk, "agent-cell-1")  # werk's own host followed the same session
    assert (node["online"], node["bd_seq"], node["seq_errors"]) == (True, bd_seq_of(nbirth), 0)


def test_an_unreadable_tag_of_the_agent_is_null_for_pysparkplug_and_bad_in_werk(
    werk: TestClient, werk_settings: Settings, stack: contextlib.ExitStack, tmp_path: Path
) -> None:
    port, host_id = werk_settings.mqtt_port, werk_settings.sparkplug_host_id
    recorder = Recorder(port, edge_topic("agent-cell-3"))
    stack.callback(recorder.close)
    device = MemoryDevice("cell-3", [TagSpec("Spindle/Speed", DataType.DOUBLE)])
    agent = start_agent(stack, tmp_path, port, host_id, device)
    wait_until(lambda: recorder.messages(MT.DBIRTH))
    ts_ns = now_ns()
    agent.submit("cell-3", [Reading("Spindle/Speed", 800.0, ts_ns, Quality.GOOD)])
    path = f"{ROOT}/agent-cell-3/cell-3/Spindle.Speed"
    wait_for_tag(werk, path, value=800.0, quality="good")

    # A device that cannot be read: the agent reports its tags once, null and BAD.
    agent.submit("cell-3", [Reading("Spindle/Speed", None, ts_ns + 1_000_000, Quality.BAD)])
    data = wait_until(lambda: len(d := recorder.messages(MT.DDATA)) == 2 and d)
    (lost,) = data[1].payload.metrics
    assert (lost.name, lost.datatype, lost.is_null, lost.value) == (
        "Spindle/Speed", DT.DOUBLE, True, None,
    )  # fmt: skip
    # werk's host must not go on showing the last value as good.
    wait_until(lambda: (t := read_tag(werk, path)) and t["quality"] == "bad", timeout=3)


def test_a_pysparkplug_primary_host_brings_the_agent_online_and_commands_it(
    mosquitto: int, stack: contextlib.ExitStack, tmp_path: Path
) -> None:
    recorder = Recorder(mosquitto, edge_topic("agent-cell-2"))
    stack.callback(recorder.close)
    host = SparkplugClient("interop-host")
    host.connect("127.0.0.1", port=mosquitto, keepalive=10)
    stack.callback(host.disconnect)
    wait_until(lambda: host.is_connected)
    stack.callback(publish_state, host, "ps-host", online=False)
    device = MemoryDevice("cell-2", [TagSpec("Spindle/Speed", DataType.DOUBLE, writable=True)])
    agent = start_agent(stack, tmp_path, mosquitto, "ps-host", device)
    wait_until(lambda: agent.status().connected)
    assert recorder.messages() == [] and not agent.status().online  # no primary host yet

    publish_state(host, "ps-host", online=True)
    (nbirth,) = wait_until(lambda: recorder.messages(MT.NBIRTH))
    wait_until(lambda: recorder.messages(MT.DBIRTH))
    now = ps.get_current_timestamp()
    write = ps.DCmd(now, metrics=(ps.Metric(now, "Spindle/Speed", DT.DOUBLE, 1500.0),))
    dcmd = ps.Message(topic(MT.DCMD, "agent-cell-2", "cell-2"), write, ps.QoS.AT_MOST_ONCE, False)
    host.publish(dcmd, include_dtypes=True)
    wait_until(lambda: device.values == {"Spindle/Speed": 1500.0})
    answers = wait_until(lambda: [m for d in recorder.messages(MT.DDATA)
                                  for m in d.payload.metrics])  # fmt: skip
    assert [(m.name, m.value) for m in answers] == [("Spindle/Speed", 1500.0)]

    rebirth = ps.NCmd(now, metrics=(ps.Metric(now, "Node Control/Rebirth", DT.BOOLEAN, True),))
    ncmd = ps.Message(topic(MT.NCMD, "agent-cell-2"), rebirth, ps.QoS.AT_MOST_ONCE, False)
    host.publish(ncmd, include_dtypes=True)
    births = wait_until(lambda: len(b := recorder.messages(MT.NBIRTH)) == 2 and b)
    assert bd_seq_of(births[1]) == bd_seq_of(nbirth) and births[1].payload.seq == 0
