"""Kill werk mid-stream, restart it: every acknowledged message stored exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from tests.conftest import bearer, free_port, make_settings, provision_admin_key, wait_until

pytestmark = pytest.mark.mosquitto
NODE = "acme/berlin/machining/line-1/cell-1/cnc-9"
TOTAL = 3000


def _start_werk(data_dir: Path, broker_port: int, http_port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "WERK_INGEST_CLIENT_ID": "werk-ingest-crash-test",
        "WERK_MQTT_ALLOW_ANONYMOUS": "true",  # the test's Mosquitto and publisher are anonymous
        "WERK_LOG_LEVEL": "WARNING",
    }
    command = [
        sys.executable, "-m", "werk.cli.main", "run",
        "--broker", f"mqtt://127.0.0.1:{broker_port}",
        "--port", str(http_port), "--data-dir", str(data_dir),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_until(lambda: _health(http_port) is not None, timeout=30)
    return process


def _health(http_port: int, auth: dict[str, str] | None = None) -> dict[str, object] | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{http_port}/api/v1/health", headers=auth, timeout=1)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None  # type: ignore[no-any-return]


def _publish_all(port: int) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    base = int(time.time() * 1000) - TOTAL
    infos = []
    for i in range(TOTAL):
        payload = orjson.dumps({"value": i, "ts": base + i})
        infos.append(client.publish(f"uns/v1/{NODE}/_value/seq", payload, qos=1))
        if i % 100 == 0:
            time.sleep(0.02)
    for info in infos:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def test_sigkill_mid_stream_loses_and_duplicates_nothing(
    mosquitto_persistent: int, tmp_path: Path
) -> None:
    http_port = free_port()
    auth = bearer(provision_admin_key(make_settings(tmp_path / "data")))
    werk = _start_werk(tmp_path / "data", mosquitto_persistent, http_port)
    try:
        publisher = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"from tests.integration.uns.test_crash_recovery import _publish_all; _publish_all({mosquitto_persistent})",
            ],
            cwd=Path(__file__).parents[3],
        )
        wait_until(
            lambda: (h := _health(http_port, auth)) and h["stored_samples"] > 200, timeout=30
        )  # type: ignore[operator,index]
    finally:
        werk.send_signal(signal.SIGKILL)
        werk.wait(10)
    assert publisher.wait(60) == 0
    werk = _start_werk(tmp_path / "data", mosquitto_persistent, http_port)
    try:
        after_restart = wait_until(lambda: _health(http_port, auth), timeout=10)
        url = f"http://127.0.0.1:{http_port}/api/v1/history/{NODE}/seq"
        params = {"start": "2000-01-01T00:00:00Z", "limit": 10_000, "layer": "raw"}
        points = wait_until(
            lambda: (
                len(p := httpx.get(url, params=params, headers=auth).json()["points"]) >= TOTAL
                and p
            ),
            timeout=60,
        )
        time.sleep(1.0)
        points = httpx.get(url, params=params, headers=auth).json()["points"]
    finally:
        werk.send_signal(signal.SIGTERM)
        werk.wait(30)
    ingest = after_restart["ingest"]
    assert ingest["accepted"] > 0, "the kill did not happen mid-stream; nothing was recovered"
    values = [p["value"] for p in points]
    assert len(values) == TOTAL, f"{len(values) - len(set(values))} duplicates"
    assert sorted(values) == list(range(TOTAL))
