"""The sources API over HTTP: datasets, records, pushed rows, sources and their runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from tests.integration.scoped_support import as_, grant, install, principal

from werk.api import problems
from werk.historian import HistorianStore, Layer
from werk.sources import build_sources
from werk.sources.router import router
from werk.uns.quarantine import list_records

SOURCES = """
[[datasets]]
name = "work_orders"
key = "work_order"
time = "released_at"
fields = { work_order = "string", released_at = "datetime", qty = "integer" }

[[sources]]
name = "mes-orders"
kind = "file"
dataset = "work_orders"
path = "drop/*.csv"
"""


def stock(sku: str, on_hand: object, at: str = "2026-05-01T08:00:00Z") -> dict[str, Any]:
    return {"warehouse": "WH-1", "sku": sku, "on_hand": on_hand, "counted_at": at}


@pytest.fixture
def client(
    tmp_path: Path, store: HistorianStore, sessions: sessionmaker[Session]
) -> Iterator[TestClient]:
    (tmp_path / "drop").mkdir()
    (tmp_path / "drop" / "wo.csv").write_text("work_order,released_at,qty\nWO-1,2026-05-01,4\n")
    (tmp_path / "sources.toml").write_text(SOURCES)
    runner = build_sources(
        sources_file=tmp_path / "sources.toml", store=store, sessions=sessions, tick_s=0.05,
        max_push_bytes=64 * 1024,
    )  # fmt: skip
    app = FastAPI()
    problems.install(app)
    app.include_router(router, prefix="/api/v1")
    app.state.sources = runner
    install(app)
    runner.start()
    with TestClient(app) as test_client:
        yield test_client
    runner.stop()


def push(client: TestClient, dataset: str, rows: object, **params: str) -> Any:
    return client.post(f"/api/v1/sources/{dataset}/records", json=rows, params=params)


def test_pushed_rows_are_stored_or_rejected_each_with_its_index_and_reason(
    client: TestClient, store: HistorianStore, sessions: sessionmaker[Session]
) -> None:
    rows = [stock("S-1", 5), stock("S-2", "five"), "not a row", stock("S-3", 2, "2999-01-01")]
    answer = push(client, "inventory", rows, source="wms")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["received"], body["accepted"], body["rejected"], body["stored"]) == (4, 1, 3, 1)
    assert body["samples"] == 1
    assert [(r["index"], r["reason"], r["field"]) for r in body["rejections"]] == [
        (1, "wrong_type", "on_hand"), (2, "not_an_object", None),
        (3, "time_out_of_range", "counted_at"),
    ]  # fmt: skip
    with sessions() as session:
        quarantined, total = list_records(session=session)
    assert total == 3 and {q.topic for q in quarantined} == {"sources/wms/inventory"}
    assert store.count(Layer.RAW) == 1

    again = push(client, "inventory", rows[:1], source="wms").json()
    assert (again["accepted"], again["stored"], again["samples"]) == (1, 0, 0)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [(b'{"warehouse": ', 422, "bad_body"), (b"{}", 422, "bad_body"), (b"null", 422, "bad_body")],
)
def test_a_malformed_body_is_a_problem(
    client: TestClient, body: bytes, status: int, code: str
) -> None:
    answer = client.post("/api/v1/sources/inventory/records", content=body)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == code


def test_unknown_datasets_and_oversized_bodies_are_refused(client: TestClient) -> None:
    unknown = push(client, "invoices", [])
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_dataset")
    assert "known datasets: customers, inventory" in unknown.json()["detail"]
    rows = [stock(f"S-{n}", n) for n in range(1000)]
    big = client.post("/api/v1/sources/inventory/records", content=orjson.dumps(rows))
    assert (big.status_code, big.json()["code"]) == (413, "body_too_large")
    streamed = client.post(
        "/api/v1/sources/inventory/records", content=iter([orjson.dumps(rows)])
    )  # no Content-Length: counted while reading
    assert streamed.status_code == 413


def test_datasets_list_contracts_with_record_counts(client: TestClient) -> None:
    push(client, "inventory", [stock("S-1", 5), stock("S-2", 6)])
    datasets = {d["name"]: d for d in client.get("/api/v1/datasets").json()}
    assert set(datasets) == {"customers", "inventory", "orders", "shipments", "work_orders"}
    assert (datasets["inventory"]["records"], datasets["orders"]["records"]) == (2, 0)
    inventory = client.get("/api/v1/datasets/inventory").json()
    assert inventory["key"] == ["warehouse", "sku"]
    assert inventory["fields"]["on_hand"] == {
        "type": "number", "required": True, "format": None, "description": "",
    }  # fmt: skip
    assert inventory["measures"][0]["tag"] == "erp/inventory/{warehouse}/{sku}/on_hand"
    assert client.get("/api/v1/datasets/invoices").status_code == 404


def test_records_by_time_key_and_latest(client: TestClient) -> None:
    push(client, "inventory", [stock("S-1", 5, "2026-05-01T08:00:00Z"),
                               stock("S-1", 4, "2026-05-01T09:00:00Z"),
                               stock("S-2", 9, "2026-05-01T08:30:00Z")])  # fmt: skip
    url = "/api/v1/datasets/inventory/records"
    every = client.get(url).json()["items"]
    assert [(r["key"], r["payload"]["on_hand"]) for r in every] == [
        ("WH-1|S-1", 5.0), ("WH-1|S-2", 9.0), ("WH-1|S-1", 4.0),
    ]  # fmt: skip
    assert len(every[0]["message_id"]) == 16 and every[0]["source"] == "push"
    latest = client.get(url, params={"latest": True}).json()["items"]
    assert sorted((r["key"], r["payload"]["on_hand"]) for r in latest) == [
        ("WH-1|S-1", 4.0), ("WH-1|S-2", 9.0),
    ]  # fmt: skip
    one = client.get(url, params={"key": "WH-1|S-1", "end": "2026-05-01T08:59:00Z"}).json()
    assert [r["payload"]["on_hand"] for r in one["items"]] == [5.0]
    bad = client.get(url, params={"start": "2026-05-02T00:00:00Z", "end": "2026-05-01T00:00:00Z"})
    assert (bad.status_code, bad.json()["code"]) == (422, "bad_range")


def test_sources_show_their_runs_and_run_on_request(client: TestClient) -> None:
    (listed,) = client.get("/api/v1/sources").json()
    assert (listed["name"], listed["kind"], listed["every"], listed["next_run"]) == (
        "mes-orders", "file", None, None,
    )  # fmt: skip
    assert listed["target"].endswith("drop/*.csv") and listed["last_run"] is None

    answer = client.post("/api/v1/sources/mes-orders/run", params={"wait_s": 10})
    assert answer.status_code == 200
    run = answer.json()
    assert (run["status"], run["run"]["accepted"], run["run"]["stored"]) == ("ok", 1, 1)
    detail = client.get("/api/v1/sources/mes-orders").json()
    assert [r["id"] for r in detail["runs"]] == [run["run"]["id"]]
    assert detail["last_run"]["trigger"] == "manual"
    records = client.get("/api/v1/datasets/work_orders/records").json()["items"]
    assert records[0]["payload"] == {"work_order": "WO-1", "released_at": "2026-05-01T00:00:00Z",
                                     "qty": 4}  # fmt: skip

    missing = client.post("/api/v1/sources/nope/run")
    assert (missing.status_code, missing.json()["code"]) == (404, "unknown_source")


@pytest.fixture
def scoped(client: TestClient) -> TestClient:
    """Stock of two warehouses; callers scoped to warehouse WH-1, to the ERP, to a plant."""
    install(
        client.app,  # type: ignore[arg-type]
        principal("wh1", grant("sources:read", "sources:write",
                               namespace=("erp/inventory/WH-1/#",))),
        principal("erp", grant("sources:read", "sources:write", namespace=("erp/#",))),
        principal("plant", grant("sources:read", namespace=("acme/#",))),
        principal("nobody", grant("uns:read")),
    )  # fmt: skip
    early = {**stock("S-2", 7, "2026-05-01T07:00:00Z"), "warehouse": "WH-2"}
    rows = [stock("S-1", 5), early, stock("S-3", 1)]
    pushed = client.post("/api/v1/sources/inventory/records", json=rows, headers=as_("erp"))
    assert pushed.json()["stored"] == 3
    return client


def _read(client: TestClient, who: str, path: str) -> Any:
    return client.get(f"/api/v1{path}", headers=as_(who))


def test_datasets_show_only_records_whose_tags_are_in_scope(scoped: TestClient) -> None:
    def listed(who: str) -> dict[str, int]:
        return {d["name"]: d["records"] for d in _read(scoped, who, "/datasets").json()}

    assert len(listed("admin")) == 5
    assert listed("erp") == {"inventory": 3}
    assert listed("wh1") == {"inventory": 2}
    assert listed("plant") == {}
    assert _read(scoped, "wh1", "/datasets/inventory").json()["records"] == 2
    hidden = _read(scoped, "wh1", "/datasets/customers")
    assert (hidden.status_code, hidden.json()["code"]) == (404, "unknown_dataset")
    assert hidden.json()["detail"].endswith("known datasets: inventory")
    assert _read(scoped, "plant", "/datasets/inventory").status_code == 404
    assert _read(scoped, "nobody", "/datasets").status_code == 403


def test_records_outside_the_scope_are_left_out(scoped: TestClient) -> None:
    def keys(who: str, **params: object) -> list[str]:
        url = "/api/v1/datasets/inventory/records"
        return [r["key"] for r in scoped.get(url, params=params, headers=as_(who)).json()["items"]]

    assert sorted(keys("erp")) == ["WH-1|S-1", "WH-1|S-3", "WH-2|S-2"]
    assert sorted(keys("wh1")) == ["WH-1|S-1", "WH-1|S-3"]
    assert keys("erp", limit=1) == ["WH-2|S-2"]
    assert [k[:5] for k in keys("wh1", limit=1)] == ["WH-1|"]  # asks past the hidden first row
    assert keys("wh1", key="WH-2|S-2") == []
    assert _read(scoped, "plant", "/datasets/inventory/records").status_code == 404
    assert _read(scoped, "erp", "/datasets/work_orders/records").status_code == 404


def test_pushes_and_runs_need_write_scope_over_the_whole_dataset(scoped: TestClient) -> None:
    partial = scoped.post("/api/v1/sources/inventory/records", json=[], headers=as_("wh1"))
    assert (partial.status_code, partial.json()["code"]) == (403, "out_of_scope")
    unseen = scoped.post("/api/v1/sources/work_orders/records", json=[], headers=as_("erp"))
    assert (unseen.status_code, unseen.json()["code"]) == (404, "unknown_dataset")
    reader = scoped.post("/api/v1/sources/inventory/records", json=[], headers=as_("plant"))
    assert (reader.status_code, reader.json()["code"]) == (403, "forbidden")
    assert _read(scoped, "erp", "/sources").json() == []
    assert [s["name"] for s in _read(scoped, "admin", "/sources").json()] == ["mes-orders"]
    assert _read(scoped, "erp", "/sources/mes-orders").json()["code"] == "unknown_source"
    run = scoped.post("/api/v1/sources/mes-orders/run", headers=as_("erp"))
    assert (run.status_code, run.json()["code"]) == (404, "unknown_source")
