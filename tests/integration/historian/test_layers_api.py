"""The layers through the API of a running werk: rules, units, late data, lineage, KPIs,
grids and per-layer permissions."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from tests.conftest import publish, wait_until
from tests.integration.scoped_support import as_, grant, install, principal

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
    install(client.app)  # type: ignore[arg-type]
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


def test_every_history_read_names_a_layer_and_needs_its_permission(oven: TestClient) -> None:
    assert oven.get(f"/api/v1/history/{TAG}").status_code == 422
    no_raw = principal(
        "no-raw", grant("history:read:processed", "history:read:business", "history:read:raw",
                        layers=("processed", "business"))
    )  # fmt: skip
    install(oven.app, no_raw)  # type: ignore[arg-type]
    refused = oven.get(f"/api/v1/history/{TAG}", params={"layer": "raw"}, headers=as_("no-raw"))
    assert refused.status_code == 403 and refused.json()["code"] == "layer_forbidden"
    business = oven.get(
        f"/api/v1/history/{TAG}", headers=as_("no-raw"),
        params={"layer": "business", "start": START, "end": END, "bucket": "1h"},
    ).json()  # fmt: skip
    assert [b["count"] for b in business["buckets"]] == [3]
    assert oven.get(f"/api/v1/lineage/message/{'0' * 16}", headers=as_("no-raw")).status_code == 403
    anonymous = oven.get(
        f"/api/v1/history/{TAG}", params={"layer": "raw"}, headers=as_("anonymous")
    )
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")


def test_changes_need_their_own_permissions(oven: TestClient) -> None:
    readers = principal(
        "reader",
        grant("history:read:raw", "history:read:processed", "history:read:business",
              "quality:read", "sources:read", "uns:read"),
    )  # fmt: skip
    install(oven.app, readers)  # type: ignore[arg-type]
    headers = as_("reader")
    assert oven.get("/api/v1/quality/rules", headers=headers).status_code == 200
    refused = [
        oven.put("/api/v1/quality/rules", json=[], headers=headers),
        oven.post("/api/v1/quality/reprocess", json={"start": START, "end": END}, headers=headers),
        oven.post("/api/v1/kpis", json=[], headers=headers),
        oven.post("/api/v1/data/retention/run", headers=headers),
        oven.post("/api/v1/sources/orders/records", json=[], headers=headers),
    ]
    assert [r.status_code for r in refused] == [403] * 5
    assert {r.json()["code"] for r in refused} == {"forbidden"}


READS = ("history:read:raw", "history:read:processed", "history:read:business", "quality:read")
MUNICH_TAG = "acme/munich/assembly/line-1/cell-1/press-1/force"
KPI = {
    "name": "energy/acme/berlin/oven-9/heat_index",
    "ts": "2026-11-12T00:01:00Z",
    "value": 0.75,
    "source": "energy",
    "lineage": [{"layer": "business", "tag": TAG, "start": START, "end": END}],
}


@pytest.fixture
def scoped(oven: TestClient) -> TestClient:
    """The oven with a KPI, callers scoped to Berlin and to Munich, and a Munich tag."""
    writes = ("history:write:business", "quality:admin")
    install(
        oven.app,  # type: ignore[arg-type]
        principal("berlin", grant(*READS, *writes, namespace=("acme/berlin/#",))),
        principal("munich", grant(*READS, *writes, namespace=("acme/munich/#",))),
    )
    assert oven.post("/api/v1/kpis", json=[KPI]).status_code == 200
    body = orjson.dumps({"value": 1.0, "ts": T0_MS})
    publish(oven.app.state.settings.mqtt_port, f"uns/v1/{MUNICH_TAG[:-6]}/_value/force", body)  # type: ignore[attr-defined]
    wait_until(lambda: oven.get(f"/api/v1/history/{MUNICH_TAG}", params={"layer": "raw",
               "start": START, "end": END}).json().get("points"))  # fmt: skip
    return oven


def _status(client: TestClient, who: str, path: str, **params: Any) -> int:
    return client.get(f"/api/v1{path}", params=params, headers=as_(who)).status_code


def test_tags_outside_the_scope_read_as_missing(scoped: TestClient) -> None:
    reads = [
        (f"/history/{TAG}", {"layer": "raw", "start": START, "end": END}),
        (f"/history/{TAG}", {"layer": "business", "start": START, "end": END, "bucket": "1h"}),
        (f"/rollups/{TAG}", {"width": "1m", "start": START, "end": END}),
        (f"/lineage/rollup/{TAG}", {"width": "1h", "start": START}),
    ]
    assert [_status(scoped, "berlin", p, **q) for p, q in reads] == [200] * 4
    assert [_status(scoped, "munich", p, **q) for p, q in reads] == [404] * 4
    message = _get(scoped, f"/lineage/rollup/{TAG}", width="1m", start=START)["messages"][0]
    assert _status(scoped, "berlin", f"/lineage/message/{message}") == 200
    hidden = scoped.get(f"/api/v1/lineage/message/{message}", headers=as_("munich"))
    unknown = scoped.get(f"/api/v1/lineage/message/{'0' * 16}", headers=as_("munich"))
    assert (hidden.status_code, unknown.status_code) == (404, 404)


def test_a_kpi_is_hidden_from_callers_who_may_not_see_its_inputs(scoped: TestClient) -> None:
    name = KPI["name"]
    as_berlin, as_munich = as_("berlin"), as_("munich")
    assert scoped.get("/api/v1/kpis", headers=as_berlin).json() == [name]
    assert scoped.get("/api/v1/kpis", headers=as_munich).json() == []
    series = f"/api/v1/kpis/{name}"
    window = {"start": START, "end": END}
    assert len(scoped.get(series, params=window, headers=as_berlin).json()["values"]) == 1
    assert scoped.get(series, params=window, headers=as_munich).json()["values"] == []
    lineage = f"/api/v1/lineage/kpi/{name}"
    assert scoped.get(lineage, params={"ts": KPI["ts"]}, headers=as_berlin).status_code == 200
    assert scoped.get(lineage, params={"ts": KPI["ts"]}, headers=as_munich).status_code == 404


def test_kpi_writes_stay_inside_the_scope(scoped: TestClient) -> None:
    own = {**KPI, "lineage": [{"layer": "raw", "tag": MUNICH_TAG, "start": START, "end": END}]}
    foreign = scoped.post("/api/v1/kpis", json=[{**own, "name": "munich/x", "lineage":
                          KPI["lineage"]}], headers=as_("munich"))  # fmt: skip
    assert (foreign.status_code, foreign.json()["code"]) == (422, "unknown_input")
    taken = scoped.post("/api/v1/kpis", json=[own], headers=as_("munich"))
    assert (taken.status_code, taken.json()["code"]) == (409, "kpi_name_taken")
    no_inputs = scoped.post("/api/v1/kpis", json=[{**own, "lineage": []}], headers=as_("munich"))
    assert (no_inputs.status_code, no_inputs.json()["code"]) == (403, "out_of_scope")
    mine = scoped.post(
        "/api/v1/kpis", json=[{**own, "name": "munich/press"}], headers=as_("munich")
    )
    assert mine.json() == {"stored": 1}
    assert scoped.get("/api/v1/kpis", headers=as_("munich")).json() == ["munich/press"]
    assert scoped.get("/api/v1/kpis", headers=as_("berlin")).json() == [KPI["name"]]
    assert len(_get(scoped, "/kpis")) == 2


def test_quality_is_reported_and_changed_within_the_scope(scoped: TestClient) -> None:
    def report(who: str) -> Any:
        return scoped.get("/api/v1/quality", headers=as_(who)).json()

    assert [v["tag"] for v in report("berlin")["violations"]] == [TAG]
    assert report("munich")["violations"] == []
    assert len(scoped.get("/api/v1/quality/rules", headers=as_("berlin")).json()) == 1
    assert scoped.get("/api/v1/quality/rules", headers=as_("munich")).json() == []
    window = {"start": START, "end": END}
    everything = scoped.post("/api/v1/quality/reprocess", json=window, headers=as_("munich"))
    assert (everything.status_code, everything.json()["code"]) == (403, "out_of_scope")
    own = {**window, "tags": "acme/munich/assembly/#"}
    assert scoped.post("/api/v1/quality/reprocess", json=own, headers=as_("munich")).json() == {
        "tags": 1,
        "samples": 1,
    }
    rules = scoped.put("/api/v1/quality/rules", json=[], headers=as_("munich"))
    assert (rules.status_code, rules.json()["code"]) == (403, "scope_too_narrow")
