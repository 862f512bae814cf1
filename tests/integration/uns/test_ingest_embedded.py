"""End to end on the embedded broker: plain MQTT in, REST and history out, rejects kept."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from tests.conftest import admin_client, make_settings, publish, wait_until

from werk.runtime import Runtime

NODE = "acme/berlin/machining/line-1/cell-1/cnc-1"
TOPIC = f"uns/v1/{NODE}"


def _port(client: TestClient) -> int:
    return int(client.app.state.settings.mqtt_port)  # type: ignore[attr-defined]


def _tag(client: TestClient, path: str) -> dict[str, Any] | None:
    response = client.get(f"/api/v1/tags/{path}")
    return response.json() if response.status_code == 200 else None


def _quarantine(client: TestClient) -> list[dict[str, Any]]:
    return client.get("/api/v1/quarantine").json()["items"]  # type: ignore[no-any-return]


def test_value_published_with_plain_mqtt_reaches_rest_and_history(client: TestClient) -> None:
    ts_ms = int(time.time() * 1000) - 1000
    payload = orjson.dumps({"value": 71.25, "ts": ts_ms, "unit": "degC"})
    publish(_port(client), f"{TOPIC}/_value/temp", payload)

    tag = wait_until(lambda: _tag(client, f"{NODE}/temp"))
    assert (tag["value"], tag["unit"], tag["quality"], tag["data_type"]) == (
        71.25,
        "degC",
        "good",
        "number",
    )
    assert tag["topic"] == f"{TOPIC}/_value/temp"
    history = client.get(f"/api/v1/history/{NODE}/temp?layer=raw").json()
    (point,) = history["points"]
    assert point["value"] == 71.25
    assert point["message_id"] == tag["message_id"]
    assert point["ts"] < point["ingest_ts"]
    assert point["ts"].startswith(time.strftime("%Y-%m-%dT", time.gmtime(ts_ms / 1000)))


def test_mqtt5_publishers_are_ingested_too(client: TestClient) -> None:
    port5 = int(client.app.state.settings.mqtt5_port)  # type: ignore[attr-defined]
    publish(port5, f"{TOPIC}/_value/speed", b"1200", v5=True)
    assert wait_until(lambda: _tag(client, f"{NODE}/speed"))["value"] == 1200


def test_batch_message_lands_every_tag(client: TestClient) -> None:
    values = {f"t{i}": float(i) for i in range(100)}
    publish(
        _port(client),
        f"{TOPIC}/_batch",
        orjson.dumps({"ts": int(time.time() * 1000), "values": values}),
    )
    page = wait_until(
        lambda: (
            (p := client.get("/api/v1/values", params={"filter": f"{NODE}/+"}).json())["total"]
            == 100
            and p
        )
    )
    assert {t["path"].rsplit("/", 1)[1]: t["value"] for t in page["items"]} == values
    tree = client.get("/api/v1/namespace", params={"prefix": "acme/berlin"}).json()
    assert tree["children"][0]["name"] == "machining"


def test_a_redelivered_message_is_stored_once(client: TestClient) -> None:
    payload = orjson.dumps({"value": 5, "ts": int(time.time() * 1000)})
    for _ in range(3):
        publish(_port(client), f"{TOPIC}/_value/dup", payload)
    publish(_port(client), f"{TOPIC}/_value/dup", orjson.dumps({"value": 6}))
    wait_until(lambda: (t := _tag(client, f"{NODE}/dup")) and t["samples"] == 2)
    time.sleep(0.3)
    points = client.get(f"/api/v1/history/{NODE}/dup?layer=raw").json()["points"]
    assert [p["value"] for p in points] == [5, 6]
    assert client.get("/api/v1/health").json()["ingest"]["duplicates"] == 2


@pytest.mark.parametrize(
    ("topic", "payload", "reason", "detail"),
    [
        (f"{TOPIC}/_value/temp", b'{"value": 1', "not_json", "Invalid JSON"),
        (f"{TOPIC}/_value/temp", b'{"value": [1, 2]}', "contract", "must be a finite number"),
        (f"{TOPIC}/_value/temp", b'{"value": 1, "quality": "great"}', "contract", "quality"),
        ("uns/v1/acme/berlin/_value/temp", b"1", "too_short", "ISA-95"),
        (f"{TOPIC}/temp", b"1", "no_class", "data-class"),
        (f"{TOPIC}/_value/bad tag", b"1", "bad_tag", "bad tag"),
        (f"{TOPIC}/_value/temp", b'{"value": "' + b"x" * 5000 + b'"}', "too_large", "limit"),
    ],
)
def test_rejected_messages_go_to_quarantine_with_the_reason(
    client: TestClient, topic: str, payload: bytes, reason: str, detail: str
) -> None:
    publish(_port(client), topic, payload)
    (record,) = wait_until(lambda: _quarantine(client))
    assert (record["topic"], record["reason"]) == (topic, reason)
    assert detail in record["detail"]
    raw = client.get(f"/api/v1/quarantine/{record['id']}/payload")
    assert raw.content == payload
    assert client.get("/api/v1/quarantine", params={"reason": reason}).json()["reasons"] == {
        reason: 1
    }


@pytest.fixture
def settings(tmp_path):  # type: ignore[no-untyped-def]
    return make_settings(tmp_path / "data", ingest_max_payload=4096)


def test_a_type_change_on_a_tag_is_quarantined(client: TestClient) -> None:
    publish(_port(client), f"{TOPIC}/_value/state", b'"RUNNING"')
    wait_until(lambda: _tag(client, f"{NODE}/state"))
    publish(_port(client), f"{TOPIC}/_value/state", b"42")
    (record,) = wait_until(lambda: _quarantine(client))
    assert record["reason"] == "type_changed"
    assert "is string, got number" in record["detail"]


def test_publish_endpoint_round_trips_through_the_broker(client: TestClient) -> None:
    body = {"tag": f"{NODE}/setpoint", "value": 12.5, "unit": "bar"}
    result = client.post("/api/v1/publish", json=body)
    assert result.status_code == 202
    tag = wait_until(lambda: _tag(client, f"{NODE}/setpoint"))
    assert tag["message_id"] == result.json()["message_id"]


def test_api_errors_are_problem_json(client: TestClient) -> None:
    missing = client.get(f"/api/v1/tags/{NODE}/nothing")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["code"] == "not_found"
    bad = client.post("/api/v1/publish", json={"tag": "a/b", "value": 1})
    assert bad.status_code == 422 and bad.json()["code"] == "too_short"
    invalid = client.post("/api/v1/publish", json={"tag": f"{NODE}/x", "value": [1]})
    assert invalid.status_code == 422 and invalid.json()["code"] == "invalid_request"
    assert client.get("/api/v1/values", params={"filter": "a/#/b"}).json()["code"] == "bad_filter"
    assert client.get(
        f"/api/v1/history/{NODE}/x", params={"bucket": "fast", "layer": "raw"}
    ).status_code in (
        404,
        422,
    )


def test_last_values_survive_a_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path / "data")
    with admin_client(Runtime(settings)) as client:
        publish(settings.mqtt_port, f"{TOPIC}/_value/kept", b"3.5")
        wait_until(lambda: _tag(client, f"{NODE}/kept"))
    with admin_client(Runtime(settings)) as client:
        tag = _tag(client, f"{NODE}/kept")
        assert tag is not None and tag["value"] == 3.5
        assert len(client.get(f"/api/v1/history/{NODE}/kept?layer=raw").json()["points"]) == 1


def test_quarantine_overflow_policy_keeps_every_message(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path / "data", ingest_queue_size=1, ingest_overflow="quarantine")
    with admin_client(Runtime(settings)) as client:
        c = __import__("tests.conftest", fromlist=["mqtt_client"]).mqtt_client(settings.mqtt_port)
        infos = [
            c.publish(f"{TOPIC}/_value/burst", orjson.dumps({"value": i, "id": f"b{i}"}), qos=1)
            for i in range(2000)
        ]
        for info in infos:
            info.wait_for_publish(10)
        c.disconnect()
        c.loop_stop()

        def settled() -> dict[str, Any] | None:
            ingest = client.get("/api/v1/health").json()["ingest"]
            return ingest if ingest["accepted"] + ingest["rejected"] == 2000 else None

        ingest = wait_until(settled, timeout=30)
        assert ingest["overflowed"] == ingest["rejected"]
        page = client.get(
            "/api/v1/quarantine", params={"reason": "queue_overflow", "limit": 1}
        ).json()
        assert page["total"] == ingest["overflowed"]
        stored = client.get(
            f"/api/v1/history/{NODE}/burst", params={"limit": 5000, "layer": "raw"}
        ).json()["points"]
        assert len(stored) == ingest["accepted"]
