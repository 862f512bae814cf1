"""The `werk` command against a running werk and real brokers."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from tests.conftest import LiveServer, make_settings, wait_until
from typer.testing import CliRunner

from werk.cli.main import app

NODE = "acme/berlin/machining/line-1/cell-1/cnc-1"


@pytest.fixture
def env(live_server: LiveServer) -> dict[str, str]:
    s = live_server.settings
    return {
        "WERK_HTTP_PORT": str(s.http_port),
        "WERK_API_KEY": live_server.key,
        "WERK_MQTT5_PORT": str(s.mqtt5_port),
        "WERK_MQTT_PORT": str(s.mqtt_port),
    }


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "werk.cli.main", *args],
        env={**env, "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_publish_browse_history(env: dict[str, str], live_server: LiveServer) -> None:
    published = _run(env, "uns", "publish", f"{NODE}/temp", "48.5", "--unit", "degC")
    assert published.returncode == 0, published.stderr
    assert f"uns/v1/{NODE}/_value/temp" in published.stdout
    wait_until(lambda: len(live_server.runtime.namespace) == 1)

    browse = _run(env, "uns", "browse")
    assert browse.returncode == 0, browse.stderr
    assert "cnc-1" in browse.stdout and "temp = 48.5 degC" in browse.stdout
    search = _run(env, "uns", "browse", "--search", "cnc temp")
    assert "1 tags matching" in search.stdout

    history = _run(env, "history", f"{NODE}/temp", "--last", "10m")
    assert history.returncode == 0, history.stderr
    assert "48.5" in history.stdout and "1 raw points" in history.stdout
    buckets = _run(env, "history", f"{NODE}/temp", "--bucket", "1m")
    assert "buckets of 60 s" in buckets.stdout


def test_tail_prints_decoded_samples(env: dict[str, str]) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "werk.cli.main",
            "uns",
            "tail",
            "acme/#",
            "-n",
            "1",
            "--timeout",
            "20",
        ],
        env={**env, "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()  # printed once tail has subscribed
    assert first.startswith("tailing"), first
    _run(env, "uns", "publish", f"{NODE}/speed", "1500", "--unit", "rpm")
    out, _ = process.communicate(timeout=30)
    assert f"{NODE}/speed = 1500 rpm good" in out


def test_errors_are_one_line(env: dict[str, str]) -> None:
    bad = _run(env, "uns", "publish", "acme/too/short", "1")
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0 and "ISA-95" in bad.stderr
    down = _run({**env, "WERK_HTTP_PORT": "1"}, "history", f"{NODE}/temp")
    assert down.returncode == 1 and "cannot reach werk" in down.stderr


def test_taken_mqtt_port_names_the_way_out(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", settings.mqtt_port))
        blocker.listen()
        result = CliRunner().invoke(
            app,
            [
                "run",
                "--mqtt-port",
                str(settings.mqtt_port),
                "--mqtt5-port",
                str(settings.mqtt5_port),
                "--port",
                str(settings.http_port),
                "--data-dir",
                str(tmp_path / "d"),
            ],
        )
    assert result.exit_code == 1
    assert "--broker" in result.output and "--mqtt-port" in result.output
    assert threading.active_count() >= 1
