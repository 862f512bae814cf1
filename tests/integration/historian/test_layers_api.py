"""The layers through the API of a running werk: rules, units, late data, lineage, KPIs,
grids and per-layer permissions."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from tests.conftest import publish, wait_until

from werk.core.settings import Settings

NODE = "acme/berlin/machining/line-2/cell-4/oven-9"
TAG = f"{NODE}/chamber.temperature"
MINUTE_MS = 60_000
T0_MS = 1_794_441_600_000  # 2026-11-12T00:00:00Z
START = "2026-11-12T00:00:00Z"
END = "2026-11-12T01:00:00Z"


def _send(settings: Settings, offset_s: float, value: float, unit: str = "degF") -> None:
    body = {"value": value, "ts": int(T0_MS + offset_s * 1000), "unit": unit}
    publish(settings.mqtt_port, f"uns/v1/{NODE}/_value/chamber.temperature", orjson.dumps(body))


def _get(client: TestClient, path: str, **params: Any) -> Any:
    answer = client.get(f"/api/v1{path}", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _history(client: TestClient, layer: str, **extra: Any) -> Any:
    return _get(client, f"/history/{TAG}", layer=layer, start=START, end=END, **extra)


@pytest.fixture
def oven(client: TestClient, settings: Settings) -> TestClient:
    """A running werk with a rule for the oven (°F in, °C stored, 0-250 °C) and data."""
    rule = {"tags": f"{NODE}/#", "unit": "degF", "canonical_unit": "degC", "min": 0, "max": 250}
    assert client.put("/api/v1/quality/rules", json=[rule]).status_code == 200
    for second, fahrenheit in ((0, 212.0), (10, 230.0), (20, 1000.0), (70, 248.0)):
        _send(settings, second, fahrenheit)
    wait_until(lambda: _processed_count(client) == 4, timeout=20)
    return client


def _processed_count(client: TestClient) -> int:
    params = {"layer": "processed", "start": START, "end": END}
    answer = client.get(f"/api/v1/history/{TAG}", params=params)
    return len(answer.json()["points"]) if answer.status_code == 200 else -1


def test_processed_values_are_converted_and_flagged_never_dropped(oven: TestClient) -> None:
    raw = _history(oven, "raw")["points"]
    processed = _history(oven, "processed")["points"]
    assert [p["value"] for p in raw] == [212.0, 230.0, 1000.0, 248.0]
    assert [round(p["value"], 6) for p in processed] == [100.0, 110.0, 537.777778, 120.0]
    assert [p["flags"] for p in processed] == [[], [], ["range"], []]
    assert [p["quality"] for p in processed] == ["good", "good", "bad", "good"]
    assert [p["message_id"] for p in processed] == [p["message_id"] for p in raw]


def test_late_data_corrects_the_rollups(oven: TestClient, settings: Settings) -> None:
    first = _get(oven, f"/rollups/{TAG}", width="1m", start=START, end=END)
    assert [(r["count"], r["bad"]) for r in first] == [(2, 1), (1, 0)]
    assert first[0]["avg"] == pytest.approx(105.0)
    _send(settings, 30, 266.0)  # 130 °C, older than the newest sample
    wait_until(
        lambda: _get(oven, f"/rollups/{TAG}", width="1m", start=START, end=END)[0]["count"] == 3
    )
    minute = _get(oven, f"/rollups/{TAG}", width="1m", start=START, end=END)[0]
    assert minute["avg"] == pytest.approx(113.333333)
    hour = _get(oven, f"/rollups/{TAG}", width="1h", start=START, end=END)
    assert [(r["count"], r["bad"]) for r in hour] == [(4, 1)]
    late = [p for p in _history(oven, "processed")["points"] if p["flags"] == ["late"]]
    assert [round(p["value"], 6) for p in late] == [130.0]


def test_lineage_goes_from_an_hour_to_the_raw_message(oven: TestClient) -> None:
    hour = _get(oven, f"/lineage/rollup/{TAG}", width="1h", start=START)
    assert [p["count"] for p in hour["parts"]] == [2, 1]
    minute = _get(oven, f"/lineage/rollup/{TAG}", width="1m", start=hour["parts"][0]["start"])
    assert [p["flags"] for p in minute["samples"]] == [[], [], ["range"]]
    message = _get(oven, f"/lineage/message/{minute['messages'][2]}")
    assert [(p["tag"], p["value"]) for p in message["points"]] == [(TAG, 1000.0)]


def test_kpis_keep_their_inputs(oven: TestClient) -> None:
    kpi = {
        "name": "energy/acme/berlin/oven-9/heat_index",
        "ts": "2026-11-12T00:01:00Z",
        "value": 0.75,
        "unit": "",
        "source": "energy",
        "lineage": [{"layer": "business", "tag": TAG, "start": START, "end": END}],
    }
    assert oven.post("/api/v1/kpis", json=[kpi]).json() == {"stored": 1}
    assert _get(oven, "/kpis") == [kpi["name"]]
    values = _get(oven, f"/kpis/{kpi['name']}", start=START, end=END)["values"]
    assert [v["value"] for v in values] == [0.75]
    lineage = _get(oven, f"/lineage/kpi/{kpi['name']}", ts=kpi["ts"])
    assert [r["count"] for r in lineage["inputs"][0]["rollups"]] == [2, 1]
    unknown = {**kpi, "lineage": [{**kpi["lineage"][0], "tag": "acme/nowhere"}]}  # type: ignore[dict-item]
    assert oven.post("/api/v1/kpis", json=[unknown]).json()["code"] == "unknown_input"
    not_finite = oven.post("/api/v1/kpis", content=b'[{"name": "a", "value": NaN}]')
    assert not_finite.status_code == 422


def test_grids_interpolate_step_or_linear(oven: TestClient) -> None:
    end = "2026-11-12T00:00:40Z"
    linear = _get(oven, f"/history/{TAG}", layer="processed", start=START, end=end,
                  interval="5s", fill="linear")["samples"]  # fmt: skip
    step = _get(oven, f"/history/{TAG}", layer="processed", start=START, end=end,
                interval="5s", fill="step")["samples"]  # fmt: skip
    assert [s["value"] for s in step][:3] == [100.0, 100.0, 110.0]
    assert [s["value"] for s in linear][:3] == [100.0, 105.0, 110.0]


def test_every_history_read_names_a_layer_and_a_gate_can_refuse_one(oven: TestClient) -> None:
    assert oven.get(f"/api/v1/history/{TAG}").status_code == 422
    oven.app.state.layer_gate = lambda _request, permission: permission != "history:read:raw"  # type: ignore[attr-defined]
    try:
        refused = oven.get(f"/api/v1/history/{TAG}", params={"layer": "raw"})
        assert refused.status_code == 403 and refused.json()["code"] == "layer_forbidden"
        business = _history(oven, "business", bucket="1h")
        assert [b["count"] for b in business["buckets"]] == [3]
        assert oven.get(f"/api/v1/lineage/message/{'0' * 16}").status_code == 403
    finally:
        del oven.app.state.layer_gate  # type: ignore[attr-defined]


def test_changes_need_their_own_permissions(oven: TestClient) -> None:
    readers_only = {"history:read:raw", "history:read:processed", "history:read:business"}
    oven.app.state.layer_gate = lambda _request, permission: permission in readers_only  # type: ignore[attr-defined]
    try:
        assert oven.get("/api/v1/quality/rules").status_code == 200
        refused = [
            oven.put("/api/v1/quality/rules", json=[]),
            oven.post("/api/v1/quality/reprocess", json={"start": START, "end": END}),
            oven.post("/api/v1/kpis", json=[]),
            oven.post("/api/v1/data/retention/run"),
            oven.post("/api/v1/sources/orders/records", json=[]),
        ]
        assert [r.status_code for r in refused] == [403] * 5
        assert {r.json()["code"] for r in refused} == {"forbidden"}
    finally:
        del oven.app.state.layer_gate  # type: ignore[attr-defined]
