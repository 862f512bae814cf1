"""The Sparkplug host inside a running werk, driven by an edge node over a real broker."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from tests.conftest import admin_client, make_settings, mqtt_client, wait_until
from tests.sparkplug_edge import D, E, EdgeNode, G

from werk.core.settings import Settings, SparkplugRoute
from werk.runtime import Runtime
from werk.sparkplug.codec import Metric, PropertySet
from werk.sparkplug.datatypes import COMMAND_ID, COMMAND_STATUS, DataType

PATH = "acme/berlin/machining/line-1/cell-1/cnc-1"


@pytest.fixture
def host_settings(tmp_path: Path) -> Settings:
    routes = [SparkplugRoute(group=G, edge_node=E, device=D, path=PATH)]
    return make_settings(tmp_path / "data", sparkplug_routes=routes, sparkplug_rebirth_throttle_s=0)


@pytest.fixture
def werk(host_settings: Settings) -> Iterator[TestClient]:
    with admin_client(Runtime(host_settings)) as client:
        yield client


@pytest.fixture
def edge(host_settings: Settings, werk: TestClient) -> Iterator[EdgeNode]:
    node = EdgeNode(host_settings.mqtt_port)
    yield node
    node.close()


def _tag(werk: TestClient, tag: str) -> dict[str, Any] | None:
    response = werk.get(f"/api/v1/tags/{PATH}/{tag}")
    return response.json() if response.status_code == 200 else None  # type: ignore[no-any-return]


def _device_online(werk: TestClient) -> bool:
    response = werk.get(f"/api/v1/sparkplug/nodes/{G}/{E}")
    devices = response.json().get("devices", []) if response.status_code == 200 else []
    return any(d["device"] == D and d["online"] for d in devices)


def test_state_is_online_while_werk_runs_and_offline_after(host_settings: Settings) -> None:
    seen: queue.Queue[dict[str, Any]] = queue.Queue()
    with admin_client(Runtime(host_settings)):
        watcher = mqtt_client(host_settings.mqtt_port)
        watcher.on_message = lambda _c, _u, msg: seen.put(orjson.loads(msg.payload))
        watcher.subscribe("spBv1.0/STATE/werk", qos=1)
        online = seen.get(timeout=10)
        assert online["online"] is True
        assert abs(online["timestamp"] - time.time() * 1000) < 60_000
        # werk stops its host (publishing STATE offline) before its embedded broker.
    offline = seen.get(timeout=10)
    assert offline == {"online": False, "timestamp": online["timestamp"]}
    watcher.loop_stop()


def test_sparkplug_metrics_join_the_namespace_and_historian(
    werk: TestClient, edge: EdgeNode
) -> None:
    edge.birth()
    edge.send("DDATA", (Metric(alias=1, value=1234.5, timestamp=int(time.time() * 1000)),), D)
    tag = wait_until(lambda: (t := _tag(werk, "Speed")) and t["value"] == 1234.5 and t)
    assert tag["data_type"] == "number" and tag["quality"] == "good"
    history = werk.get(f"/api/v1/history/{PATH}/Speed?layer=raw").json()
    assert [p["value"] for p in history["points"]][-2:] == [1000.0, 1234.5]
    nodes = werk.get("/api/v1/sparkplug/nodes").json()
    assert nodes[0]["online"] and nodes[0]["bd_seq"] == 0
    assert [d["device"] for d in nodes[0]["devices"]] == [None, D]


def test_a_sequence_gap_sends_a_rebirth_request_by_name(werk: TestClient, edge: EdgeNode) -> None:
    edge.birth()
    edge.send("DDATA", (Metric(alias=1, value=1.0),), D, seq=9)
    topic, payload = edge.next_command()
    assert topic == f"spBv1.0/{G}/NCMD/{E}"
    (metric,) = payload.metrics
    assert (metric.name, metric.alias, metric.value) == ("Node Control/Rebirth", None, True)
    assert metric.timestamp is not None
    node = werk.get(f"/api/v1/sparkplug/nodes/{G}/{E}").json()
    assert node["seq_errors"] == 1 and node["rebirths_requested"] == 1


def test_ndeath_makes_metrics_stale_and_a_late_one_is_ignored(
    werk: TestClient, edge: EdgeNode
) -> None:
    edge.birth(bd_seq=5)
    wait_until(lambda: _tag(werk, "Speed"))
    edge.send("NDEATH", (Metric(name="bdSeq", datatype=DataType.UINT64, value=4),))
    edge.send("DDATA", (Metric(alias=1, value=2.0),), D)  # processed after the late NDEATH
    wait_until(lambda: (t := _tag(werk, "Speed")) and t["value"] == 2.0)
    assert _tag(werk, "Speed")["quality"] == "good"  # type: ignore[index]
    edge.send("NDEATH", (Metric(name="bdSeq", datatype=DataType.UINT64, value=5),))
    stale = wait_until(lambda: (t := _tag(werk, "Speed")) and t["quality"] == "stale" and t)
    assert stale["value"] == 2.0
    node = werk.get(f"/api/v1/sparkplug/nodes/{G}/{E}").json()
    assert not node["online"] and node["late_deaths"] == 1


def test_a_write_from_the_api_reaches_the_edge_and_its_result_comes_back(
    werk: TestClient, edge: EdgeNode
) -> None:
    edge.birth()
    wait_until(lambda: _device_online(werk))

    def answer() -> None:
        topic, payload = edge.next_command()
        assert topic == f"spBv1.0/{G}/DCMD/{E}/{D}"
        (metric,) = payload.metrics
        assert (metric.name, metric.value, metric.datatype) == (
            "Setpoints/Speed",
            1500.0,
            DataType.DOUBLE,
        )
        assert metric.timestamp is not None and metric.properties is not None
        command_id = metric.properties.get(COMMAND_ID)
        assert command_id is not None
        result = PropertySet.of(**{COMMAND_ID: (DataType.STRING, command_id.value),
                                   COMMAND_STATUS: (DataType.STRING, "done")})  # fmt: skip
        edge.send("DDATA", (Metric(alias=2, value=1500.0, properties=result),), D)

    responder = threading.Thread(target=answer)
    responder.start()
    response = werk.post(
        "/api/v1/commands", json={"tag": f"{PATH}/Setpoints.Speed", "value": 1500, "wait_s": 10}
    )
    responder.join(10)
    assert response.status_code == 200, response.text
    command = response.json()
    assert (command["status"], command["result"], command["origin"][:3]) == ("done", 1500.0, "api")
    log = werk.get("/api/v1/commands").json()
    assert [c["id"] for c in log] == [command["id"]]


def test_writes_are_refused_clearly(werk: TestClient, edge: EdgeNode) -> None:
    edge.birth()
    wait_until(lambda: _tag(werk, "Speed"))
    unknown = werk.post("/api/v1/commands", json={"tag": f"{PATH}/Nope", "value": 1})
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_tag"
    wrong = werk.post("/api/v1/commands", json={"tag": f"{PATH}/Running", "value": "yes"})
    assert wrong.status_code == 422 and wrong.json()["code"] == "bad_value"


def test_a_write_on_a_uns_cmd_topic_reaches_the_edge(
    werk: TestClient, edge: EdgeNode, host_settings: Settings
) -> None:
    edge.birth()
    wait_until(lambda: _device_online(werk))
    operator = mqtt_client(host_settings.mqtt_port)
    topic = f"uns/v1/{PATH}/_cmd/Setpoints.Speed"
    operator.publish(
        topic, orjson.dumps({"value": 900.0, "by": "operator-7"}), qos=1
    ).wait_for_publish(5)
    _topic, payload = edge.next_command()
    assert payload.metrics[0].value == 900.0
    log = wait_until(lambda: werk.get("/api/v1/commands").json())
    assert log[0]["requested_by"] == "operator-7" and log[0]["origin"] == f"uns {topic}"
    operator.loop_stop()


def test_rebirth_button_sends_ncmd(werk: TestClient, edge: EdgeNode) -> None:
    edge.birth()
    wait_until(lambda: werk.get("/api/v1/sparkplug/nodes").json())
    assert werk.post(f"/api/v1/sparkplug/nodes/{G}/{E}/rebirth").status_code == 202
    topic, payload = edge.next_command()
    assert topic.endswith(f"NCMD/{E}") and payload.metrics[0].name == "Node Control/Rebirth"
    assert werk.post(f"/api/v1/sparkplug/nodes/{G}/nope/rebirth").status_code == 404


def test_the_host_answers_its_own_offline_state_with_online(host_settings: Settings) -> None:
    seen: queue.Queue[dict[str, Any]] = queue.Queue()
    with admin_client(Runtime(host_settings)):
        watcher = mqtt_client(host_settings.mqtt_port)
        watcher.on_message = lambda _c, _u, msg: seen.put(orjson.loads(msg.payload))
        watcher.subscribe("spBv1.0/STATE/werk", qos=1)
        online = seen.get(timeout=10)
        stale = orjson.dumps({"online": False, "timestamp": online["timestamp"] - 1000})
        watcher.publish("spBv1.0/STATE/werk", stale, qos=1, retain=True).wait_for_publish(5)
        assert seen.get(timeout=10)["online"] is False  # the stale message itself
        again = seen.get(timeout=10)
        assert again == {"online": True, "timestamp": online["timestamp"]}
        watcher.loop_stop()


def test_only_the_written_metric_can_report_the_result(werk: TestClient, edge: EdgeNode) -> None:
    edge.birth()
    wait_until(lambda: _device_online(werk))
    pending = werk.post(
        "/api/v1/commands", json={"tag": f"{PATH}/Setpoints.Speed", "value": 5.0, "wait_s": 0}
    ).json()
    _topic, payload = edge.next_command()
    props = payload.metrics[0].properties
    assert props is not None and props.get(COMMAND_ID) is not None
    forged = PropertySet.of(**{COMMAND_ID: (DataType.STRING, pending["id"]),
                               COMMAND_STATUS: (DataType.STRING, "done")})  # fmt: skip
    edge.send(
        "DDATA", (Metric(alias=1, value=5.0, properties=forged),), D
    )  # Speed, not the setpoint
    edge.send("DDATA", (Metric(alias=1, value=6.0),), D)
    wait_until(lambda: (t := _tag(werk, "Speed")) and t["value"] == 6.0)
    assert werk.get(f"/api/v1/commands/{pending['id']}").json()["status"] == "pending"
