"""`werk demo` end to end: PLC servers -> edge agent -> Sparkplug -> broker -> werk.

One werk in demo mode for the module: OPC UA and Modbus machines reach the namespace and
historian through the edge agent, JSON devices directly, and writes from the API reach
the simulated PLCs and come back read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import admin_client, free_port, make_settings, wait_until

from werk.runtime import Runtime

CNC_1 = "acme/berlin/machining/line-1/cell-1/cnc-1"  # OPC UA
CNC_3 = "acme/berlin/machining/line-2/cell-1/cnc-3"  # Modbus
CONVEYOR = "acme/berlin/machining/line-2/cell-3/conveyor-1"  # JSON
GATEWAY = ("acme", "berlin-gw-1")
WAIT_S = 45.0


@pytest.fixture(scope="module")
def werk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = make_settings(
        tmp_path_factory.mktemp("demo"), demo_opcua_port=free_port(), demo_modbus_port=free_port()
    )
    with admin_client(Runtime(settings, demo=True)) as client:
        yield client


def _tag(werk: TestClient, path: str) -> dict[str, Any] | None:
    response = werk.get(f"/api/v1/tags/{path}")
    return response.json() if response.status_code == 200 else None  # type: ignore[no-any-return]


def test_every_protocol_reaches_the_namespace(werk: TestClient) -> None:
    for path in (f"{CNC_1}/spindle.speed", f"{CNC_3}/spindle.speed", f"{CONVEYOR}/power"):
        tag = wait_until(lambda p=path: _tag(werk, p), timeout=WAIT_S)
        assert tag["data_type"] == "number"
    node = werk.get("/api/v1/sparkplug/nodes/{}/{}".format(*GATEWAY)).json()
    assert node["online"]
    assert isinstance(node["buffered_samples"], int)  # the agent's Edge/Buffered Samples
    devices = {d["device"]: d for d in node["devices"]}
    assert {"cnc-1", "cnc-2", "robot-1", "press-1", "cnc-3", "robot-2", "oven-1"} <= set(devices)
    assert devices["cnc-1"]["uns_path"] == CNC_1


def test_history_grows_from_the_plcs(werk: TestClient) -> None:
    path = f"{CNC_3}/power"
    wait_until(lambda: len(werk.get(f"/api/v1/history/{path}?layer=raw").json().get("points", [])) >= 3,
               timeout=WAIT_S)  # fmt: skip


@pytest.mark.parametrize(("machine", "value"), [(CNC_1, 9000.0), (CNC_3, 8000.0)])
def test_a_setpoint_write_reaches_the_plc_and_is_read_back(
    werk: TestClient, machine: str, value: float
) -> None:
    tag = f"{machine}/speed_setpoint"
    wait_until(lambda: _tag(werk, tag), timeout=WAIT_S)
    response = werk.post("/api/v1/commands", json={"tag": tag, "value": value, "wait_s": 15})
    assert response.status_code == 200, response.text
    command = response.json()
    assert command["status"] == "done", command
    assert command["result"] == pytest.approx(value)
    wait_until(lambda: (t := _tag(werk, tag)) and t["value"] == pytest.approx(value),
               timeout=WAIT_S)  # fmt: skip


def test_an_out_of_range_setpoint_is_refused_by_the_plc(werk: TestClient) -> None:
    tag = f"{CNC_1}/speed_setpoint"
    wait_until(lambda: _tag(werk, tag), timeout=WAIT_S)
    response = werk.post("/api/v1/commands", json={"tag": tag, "value": 1e9, "wait_s": 15})
    command = response.json()
    assert command["status"] == "failed", command
    assert command["error"]


def test_a_write_to_a_measurement_is_refused_by_werk(werk: TestClient) -> None:
    tag = f"{CNC_1}/spindle.speed"
    wait_until(lambda: _tag(werk, tag), timeout=WAIT_S)
    response = werk.post("/api/v1/commands", json={"tag": tag, "value": 1.0})
    assert response.status_code == 422
    assert response.json()["code"] == "not_writable"
