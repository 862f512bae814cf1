"""werk on PostgreSQL: the server goes away mid-stream, the API answers 503 quickly,
nothing acknowledged is lost, and the processed and business layers catch up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from tests.conftest import admin_client, make_settings, publish, require, wait_until
from tests.postgres_server import PostgresServer, postgres_binaries

from werk.runtime import Runtime

NODE = "acme/berlin/machining/line-1/cell-1/cnc-9"
TOPIC = f"uns/v1/{NODE}/_value/temp"
TAG = f"{NODE}/temp"
T0_MS = 1_794_441_600_000


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PostgresServer]:
    """A server of this test's own, so stopping it disturbs no other test."""
    require("PostgreSQL server binaries", postgres_binaries() is not None)
    with PostgresServer(tmp_path / "pg") as own:
        yield own


def _history(client: TestClient, layer: str, **extra: Any) -> Any:
    params = {"start": "2026-01-01T00:00:00Z", "layer": layer, "limit": 10_000, **extra}
    return client.get(f"/api/v1/history/{TAG}", params=params)


def _publish(port: int, first: int, count: int) -> None:
    for i in range(first, first + count):
        body = {"value": float(i), "ts": T0_MS + i * 1000, "id": f"m{i}"}
        publish(port, TOPIC, orjson.dumps(body))


def test_postgres_outage_loses_nothing_and_answers_503_quickly(
    server: PostgresServer, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path / "data", historian_url=server.new_database())
    with admin_client(Runtime(settings)) as client:
        assert client.get("/api/v1/health").json()["historian"].startswith("postgresql ")
        _publish(settings.mqtt_port, 0, 30)
        wait_until(lambda: len(_history(client, "raw").json()["points"]) == 30, timeout=20)
        server.stop()
        _publish(settings.mqtt_port, 30, 30)
        started = time.monotonic()
        answer = _history(client, "raw")
        assert answer.status_code == 503, answer.text
        assert time.monotonic() - started < 3.0
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.headers["retry-after"] == "5"
        wait_until(lambda: client.get("/api/v1/health").json()["status"] == "degraded")
        server.start()
        points = wait_until(
            lambda: len(p := _history(client, "raw").json().get("points", [])) >= 60 and p,
            timeout=30,
        )
        assert sorted(p["value"] for p in points) == [float(i) for i in range(60)]
        processed = wait_until(
            lambda: len(p := _history(client, "processed").json()["points"]) == 60 and p,
            timeout=30,
        )
        assert all(p["flags"] == [] for p in processed)
        minutes = _history(client, "business", bucket="1m", start="2026-11-12T00:00:00Z").json()[
            "buckets"
        ]
        assert sum(b["count"] for b in minutes) == 60
        assert min(b["min"] for b in minutes) == 0.0 and max(b["max"] for b in minutes) == 59.0
