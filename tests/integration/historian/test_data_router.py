"""The data routes over HTTP: retention rules, runs and previews, Parquet downloads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.integration.historian.lifecycle_support import NAMES, US_PER_S, fill
from tests.integration.scoped_support import as_, grant, install, principal

from werk.api import problems
from werk.core.clock import now_ns
from werk.core.settings import RetentionRule
from werk.historian import DuckDBStore, HistorianStore
from werk.historian.data_router import PARQUET_MEDIA_TYPE, router
from werk.historian.layers import Table
from werk.historian.lifecycle_worker import RetentionWorker

DAY_US = 86400 * US_PER_S


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistorianStore]:
    backend = DuckDBStore(tmp_path / "h.duckdb")
    backend.open()
    now_us = now_ns() // 1000
    fill(backend, Table.RAW, [now_us - 10 * DAY_US, now_us - DAY_US, now_us - 120 * US_PER_S])
    yield backend
    backend.close()


@pytest.fixture
def client(store: HistorianStore) -> Iterator[TestClient]:
    rules = [RetentionRule(table="raw", subtree="acme/berlin/#", keep="7d", compact_after="1h")]
    app = FastAPI()
    problems.install(app)
    app.include_router(router, prefix="/api/v1")
    app.state.store = store
    app.state.retention = RetentionWorker(store, rules, interval_s=3600, state_file=None)
    install(app)
    with TestClient(app) as test_client:
        yield test_client


def test_retention_shows_rules_and_the_next_run(client: TestClient) -> None:
    body = client.get("/api/v1/data/retention").json()
    assert body["rules"] == [
        {"table": "raw", "subtree": "acme/berlin/#", "keep": "7d", "compact_after": "1h"}
    ]
    assert (body["interval_s"], body["running"], body["last_report"]) == (3600, False, None)
    assert [(a["kind"], a["names"], a["rows_in_range"]) for a in body["next_run"]] == [
        ("delete", [NAMES[0]], 2),
        ("compact", [NAMES[0]], 4),
    ]


def test_running_retention_reports_and_is_remembered(
    client: TestClient, store: HistorianStore
) -> None:
    response = client.post("/api/v1/data/retention/run")
    assert response.status_code == 200
    report = response.json()
    assert (report["deleted"], report["compacted"], report["error"]) == (1, 1, None)
    assert report["summary"].startswith("retention: deleted 1 rows, compacted 1 rows")
    assert store.count() == 5
    last = client.get("/api/v1/data/retention").json()["last_report"]
    assert last["deleted"] == 1


def test_export_streams_a_parquet_file(client: TestClient) -> None:
    response = client.get("/api/v1/data/export/raw", params={"subtree": "acme/munich/#"})
    assert response.status_code == 200
    assert response.headers["content-type"] == PARQUET_MEDIA_TYPE
    assert response.headers["content-disposition"].startswith('attachment; filename="werk-raw-')
    data = pq.read_table(pa.BufferReader(response.content))
    assert data.num_rows == 3
    assert set(data.column("tag").to_pylist()) == {NAMES[1]}


def test_export_of_a_range_and_names(client: TestClient) -> None:
    start = "2000-01-01T00:00:00Z"
    params: dict[str, str | list[str]] = {"start": start, "names": [NAMES[0], NAMES[1]]}
    response = client.get("/api/v1/data/export/raw", params=params)
    assert pq.read_table(pa.BufferReader(response.content)).num_rows == 6
    params["end"] = start
    empty = client.get("/api/v1/data/export/raw", params=params)
    assert empty.status_code == 422
    assert empty.json()["code"] == "bad_range"


def test_export_of_an_unknown_table_or_subtree_is_a_problem(client: TestClient) -> None:
    assert client.get("/api/v1/data/export/alarms").status_code == 422
    missing = client.get("/api/v1/data/export/kpis", params={"subtree": "oee/#"})
    assert missing.status_code == 404
    assert missing.json()["code"] == "no_names"
    bad = client.get("/api/v1/data/export/raw", params={"subtree": "a/#/b"})
    assert bad.json()["code"] == "bad_filter"


def test_without_a_worker_retention_is_unavailable(store: HistorianStore) -> None:
    app = FastAPI()
    problems.install(app)
    app.include_router(router, prefix="/api/v1")
    app.state.store = store
    install(app)
    with TestClient(app) as bare:
        response = bare.get("/api/v1/data/retention")
    assert response.status_code == 503
    assert response.json()["code"] == "retention_unavailable"


def test_retention_and_export_need_data_admin_over_the_whole_namespace(client: TestClient) -> None:
    install(
        client.app,  # type: ignore[arg-type]
        principal("berlin-admin", grant("data:admin", "history:read:*", namespace=("acme/berlin/#",))),
        principal("reader", grant("history:read:*")),
    )  # fmt: skip
    calls = [
        ("GET", "/api/v1/data/retention"),
        ("POST", "/api/v1/data/retention/run"),
        ("GET", "/api/v1/data/export/raw?subtree=acme/berlin/%23"),
    ]
    for who, status, code in [
        ("berlin-admin", 403, "scope_too_narrow"),
        ("reader", 403, "forbidden"),
        ("anonymous", 401, "unauthenticated"),
    ]:
        answers = [client.request(m, url, headers=as_(who)) for m, url in calls]
        assert [(a.status_code, a.json()["code"]) for a in answers] == [(status, code)] * 3
    assert [client.request(m, url).status_code for m, url in calls] == [200] * 3
