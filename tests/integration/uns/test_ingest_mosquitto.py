"""werk against an external Mosquitto broker: shared subscription, ingest, REST."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from tests.conftest import admin_client, make_settings, publish, wait_until

from werk.runtime import Runtime

pytestmark = pytest.mark.mosquitto
NODE = "acme/berlin/machining/line-2/cell-1/press-1"


def test_values_from_mosquitto_reach_rest_and_history(mosquitto: int, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", broker_url=f"mqtt://127.0.0.1:{mosquitto}")
    with admin_client(Runtime(settings)) as client:
        health = client.get("/api/v1/health").json()
        assert health["embedded_broker"] is False
        assert health["broker"] == f"mqtt://127.0.0.1:{mosquitto}"
        ts = int(time.time() * 1000)
        publish(
            mosquitto,
            f"uns/v1/{NODE}/_value/force",
            orjson.dumps({"value": 812.0, "ts": ts, "unit": "kN"}),
        )
        publish(
            mosquitto,
            f"uns/v1/{NODE}/_batch",
            orjson.dumps({"ts": ts, "values": {"a": 1, "b": True}}),
        )
        publish(mosquitto, f"uns/v1/{NODE}/_value/force", b"{oops")
        tag = wait_until(
            lambda: (r := client.get(f"/api/v1/tags/{NODE}/force")).status_code == 200 and r.json()
        )
        assert tag["value"] == 812.0 and tag["unit"] == "kN"
        assert wait_until(
            lambda: (
                client.get("/api/v1/values", params={"filter": f"{NODE}/#"}).json()["total"] == 3
            )
        )
        history = client.get(
            f"/api/v1/history/{NODE}/force", params={"bucket": "1m", "layer": "raw"}
        ).json()
        assert history["buckets"][0]["max"] == 812.0
        (record,) = wait_until(lambda: client.get("/api/v1/quarantine").json()["items"])
        assert record["reason"] == "not_json"


def test_an_unreachable_external_broker_is_one_clear_error(tmp_path: Path) -> None:
    from tests.conftest import free_port

    from werk.core.errors import BrokerUnavailable

    settings = make_settings(tmp_path / "data", broker_url=f"mqtt://127.0.0.1:{free_port()}")
    runtime = Runtime(settings)
    with pytest.raises(BrokerUnavailable, match="cannot reach the MQTT broker"):
        runtime.start()
