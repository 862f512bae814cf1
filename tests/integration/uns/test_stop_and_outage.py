"""Stopping and storage outages: nothing lost, nothing stored twice, no hang."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from tests.conftest import admin_client, make_settings, mqtt_client, publish, wait_until

from werk.runtime import Runtime

NODE = "acme/berlin/machining/line-1/cell-1/cnc-7"
TOPIC = f"uns/v1/{NODE}/_value"


def _points(client: TestClient, tag: str) -> list[object]:
    params = {"start": "2000-01-01T00:00:00Z", "limit": 100_000, "layer": "raw"}
    return client.get(f"/api/v1/history/{NODE}/{tag}", params=params).json().get("points", [])


def test_storage_outage_then_stop_then_restart_loses_nothing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", ingest_client_id="werk-ingest-outage")
    runtime = Runtime(settings)
    with admin_client(runtime) as client:
        publish(settings.mqtt_port, f"{TOPIC}/t", b'{"value": 0, "id": "m0"}')
        wait_until(lambda: len(_points(client, "t")) == 1)
        assert runtime.store is not None
        runtime.store.close()  # the historian goes away under the running pipeline
        for i in range(1, 51):
            publish(settings.mqtt_port, f"{TOPIC}/t", orjson.dumps({"value": i, "id": f"m{i}"}))
        health = wait_until(
            lambda: (h := client.get("/api/v1/health").json())["status"] == "degraded" and h
        )
        assert health["ingest"]["write_errors"] > 0
        assert client.get(f"/api/v1/history/{NODE}/t?layer=raw").status_code == 503
        started = time.monotonic()
    assert time.monotonic() - started < 30, "stop must not hang while storage is down"
    with admin_client(Runtime(settings)) as client:
        points = wait_until(lambda: len(p := _points(client, "t")) >= 51 and p, timeout=20)
        assert sorted(p["value"] for p in points) == list(range(51))  # type: ignore[index]
        assert client.get("/api/v1/health").json()["ingest"]["replayed"] == 50


@pytest.mark.mosquitto
def test_a_stop_mid_stream_stores_every_message_once(
    mosquitto_persistent: int, tmp_path: Path
) -> None:
    settings = make_settings(
        tmp_path / "data",
        broker_url=f"mqtt://127.0.0.1:{mosquitto_persistent}",
        ingest_client_id="werk-ingest-stop",
    )
    total = 2000
    with admin_client(Runtime(settings)) as client:
        sender = mqtt_client(mosquitto_persistent)
        # No ts and no id: a message delivered twice would be stored twice.
        infos = [sender.publish(f"{TOPIC}/n", str(i).encode(), qos=1) for i in range(total)]
        wait_until(lambda: len(_points(client, "n")) > 100, timeout=20)
    for info in infos:
        info.wait_for_publish(10)
    sender.disconnect()
    sender.loop_stop()
    with admin_client(Runtime(settings)) as client:
        points = wait_until(lambda: len(p := _points(client, "n")) >= total and p, timeout=30)
        time.sleep(1.0)
        points = _points(client, "n")
    assert sorted(p["value"] for p in points) == list(range(total))  # type: ignore[index]


def test_tags_the_registry_lost_are_recovered_from_the_historian(tmp_path: Path) -> None:
    from werk.core.clock import now_ns
    from werk.historian import DuckDBStore, RawColumns

    settings = make_settings(tmp_path / "data")
    store = DuckDBStore(settings.historian_file)
    store.open()
    rows = RawColumns()
    rows.append(f"{NODE}/lost", now_ns(), now_ns(), True, 0, 77)
    store.write(rows)
    store.close()
    with admin_client(Runtime(settings)) as client:
        tag = client.get(f"/api/v1/tags/{NODE}/lost").json()
        assert (tag["value"], tag["data_type"], tag["message_id"]) == (
            True,
            "boolean",
            f"{77:016x}",
        )
