"""The Sparkplug routes through a caller's scope: edge nodes and commands of its own plant."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import make_settings, mqtt_client, wait_until
from tests.integration.scoped_support import as_, grant, install, principal

from werk.api import create_app
from werk.core.settings import SparkplugRoute
from werk.runtime import Runtime
from werk.sparkplug.codec import Metric, Payload, PropertySet, encode
from werk.sparkplug.datatypes import DataType

CELL = "press/line-1/cell-1"
NODES = {"gw-1": f"acme/plant1/{CELL}", "gw-2": f"acme/plant2/{CELL}"}
SETPOINT = "cnc-1/Setpoints.Speed"


@pytest.fixture
def werk(tmp_path: Path) -> Iterator[TestClient]:
    """A running werk with two edge nodes, one routed to each plant, and scoped callers."""
    remote = SparkplugRoute(edge_node="gw-1", device="remote", path=f"{NODES['gw-2']}/remote")
    routes = [remote] + [
        SparkplugRoute(group="acme", edge_node=node, path=f"{path}/{{device}}")
        for node, path in NODES.items()
    ]
    settings = make_settings(tmp_path / "data", sparkplug_routes=routes)
    with TestClient(create_app(Runtime(settings), web=False)) as client:
        rights = ("sparkplug:read", "sparkplug:admin", "commands:read", "commands:write")
        install(
            client.app,  # type: ignore[arg-type]
            principal("p1", grant(*rights, namespace=("acme/plant1/#",))),
            principal("viewer", grant("uns:read")),
        )
        edge = mqtt_client(settings.mqtt_port)
        _births(edge, "gw-1", ("cnc-1", "remote"))
        _births(edge, "gw-2", ("cnc-1",))
        wait_until(lambda: len(client.get("/api/v1/sparkplug/nodes").json()) == len(NODES))
        wait_until(lambda: all(_tag_known(client, f"{p}/{SETPOINT}") for p in NODES.values()))
        yield client
        edge.disconnect()
        edge.loop_stop()


def _births(edge: Any, node: str, devices: tuple[str, ...]) -> None:
    """NBIRTH, then a DBIRTH of each device with a writable setpoint."""
    _send(edge, f"spBv1.0/acme/NBIRTH/{node}", 0,
          Metric(name="bdSeq", datatype=DataType.UINT64, value=0))  # fmt: skip
    writable = PropertySet.of(Writable=(DataType.BOOLEAN, True))
    for seq, device in enumerate(devices, start=1):
        setpoint = Metric(name="Setpoints/Speed", alias=seq, datatype=DataType.DOUBLE,
                          value=10.0, properties=writable)  # fmt: skip
        _send(edge, f"spBv1.0/acme/DBIRTH/{node}/{device}", seq, setpoint)


def _send(edge: Any, topic: str, seq: int, *metrics: Metric) -> None:
    payload = Payload(timestamp=int(time.time() * 1000), metrics=metrics, seq=seq)
    edge.publish(topic, encode(payload), qos=1).wait_for_publish(5)


def _tag_known(client: TestClient, path: str) -> bool:
    return client.get(f"/api/v1/tags/{path}").status_code == 200


def _get(client: TestClient, who: str, path: str, **params: Any) -> Any:
    return client.get(f"/api/v1{path}", params=params, headers=as_(who))


def test_edge_nodes_outside_the_scope_are_never_seen(werk: TestClient) -> None:
    assert [n["edge_node"] for n in _get(werk, "admin", "/sparkplug/nodes").json()] == [
        "gw-1", "gw-2",
    ]  # fmt: skip
    every = {d["device"] for d in _get(werk, "admin", "/sparkplug/nodes").json()[0]["devices"]}
    assert every == {None, "cnc-1", "remote"}
    (mine,) = _get(werk, "p1", "/sparkplug/nodes").json()
    assert mine["edge_node"] == "gw-1"
    assert [d["uns_path"] for d in mine["devices"]] == [
        f"{NODES['gw-1']}/node", f"{NODES['gw-1']}/cnc-1",
    ]  # fmt: skip
    one = _get(werk, "p1", "/sparkplug/nodes/acme/gw-1").json()
    assert {d["device"] for d in one["devices"]} == {None, "cnc-1"}
    host = _get(werk, "p1", "/sparkplug/host").json()
    assert (host["nodes"], host["nodes_online"]) == (1, 1)
    assert _get(werk, "admin", "/sparkplug/host").json()["nodes"] == 2
    hidden = _get(werk, "p1", "/sparkplug/nodes/acme/gw-2")
    assert (hidden.status_code, hidden.json()["code"]) == (404, "unknown_node")
    rebirth = werk.post("/api/v1/sparkplug/nodes/acme/gw-2/rebirth", headers=as_("p1"))
    assert (rebirth.status_code, rebirth.json()["code"]) == (404, "unknown_node")
    assert (
        werk.post("/api/v1/sparkplug/nodes/acme/gw-1/rebirth", headers=as_("p1")).status_code == 202
    )
    refused = _get(werk, "viewer", "/sparkplug/nodes")
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")


def test_commands_are_sent_and_seen_only_within_the_scope(werk: TestClient) -> None:
    def write(who: str, node: str) -> Any:
        body = {"tag": f"{NODES[node]}/{SETPOINT}", "value": 12.5, "wait_s": 0}
        return werk.post("/api/v1/commands", json=body, headers=as_(who))

    foreign = write("p1", "gw-2")
    assert (foreign.status_code, foreign.json()["code"]) == (404, "not_found")
    own = write("p1", "gw-1").json()
    other = write("admin", "gw-2").json()
    assert [c["id"] for c in _get(werk, "p1", "/commands").json()] == [own["id"]]
    assert [c["id"] for c in _get(werk, "p1", "/commands", limit=1).json()] == [own["id"]]
    assert len(_get(werk, "admin", "/commands").json()) == 2
    assert _get(werk, "p1", "/commands", tag=other["tag"]).json() == []
    assert _get(werk, "p1", f"/commands/{own['id']}").status_code == 200
    hidden = _get(werk, "p1", f"/commands/{other['id']}")
    assert (hidden.status_code, hidden.json()["code"]) == (404, "unknown_command")
