"""`werk bench ingest --quick` runs every phase end to end and reports positive figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.integration.iam.acl_matrix import Probe
from typer.testing import CliRunner

from werk.bench.gateway import BenchGateway
from werk.bench.workload import NODE
from werk.cli.main import app
from werk.core.settings import Settings

MESSAGES = 300
BATCH_MESSAGES = 20
BATCH_TAGS = 100


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    """Run the quick benchmark once with tiny loads: its output and its JSON figures."""
    json_path = tmp_path_factory.mktemp("bench") / "figures.json"
    args = [
        "bench", "ingest", "--quick", "--messages", str(MESSAGES),
        "--batch-messages", str(BATCH_MESSAGES), "--latency-seconds", "1",
        "--json", str(json_path),
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output, orjson.loads(json_path.read_bytes())


def test_prints_every_table(quick_run: tuple[str, dict[str, Any]]) -> None:
    output, _ = quick_run
    for title in ("Machine", "Ingest throughput", "Latency", "Memory and storage", "Targets"):
        assert title in output
    assert "through the MQTT gateway" in output


@pytest.mark.parametrize(
    ("phase", "points"),
    [
        ("ceiling", MESSAGES),
        ("gateway", MESSAGES),
        ("single", MESSAGES),
        ("batch", BATCH_MESSAGES * BATCH_TAGS),
    ],
)
def test_each_phase_completes_with_positive_rates(
    quick_run: tuple[str, dict[str, Any]], phase: str, points: int
) -> None:
    figures = quick_run[1]["phases"][phase]
    assert figures["complete"], figures
    assert figures["messages"] == figures["target"]
    assert figures["points"] == points
    assert figures["msgs_per_s"] > 0
    assert figures["points_per_s"] > 0
    assert figures["cpu_percent"]["werk"] > 0
    assert figures["werk_cpu_us_per_message"] > 0


def test_reports_latency_samples(quick_run: tuple[str, dict[str, Any]]) -> None:
    latency = quick_run[1]["latency"]
    assert latency["probes"] > 0
    assert 0 < latency["samples"] <= latency["probes"]
    assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]


def test_reports_memory_storage_and_targets(quick_run: tuple[str, dict[str, Any]]) -> None:
    figures = quick_run[1]
    assert figures["memory"]["werk_rss_peak"] > 0
    assert figures["memory"]["broker_rss_peak"] > 0
    storage = figures["storage"]
    assert storage["stored_rows"] == storage["pipeline_samples"] > 0
    assert [t["target"] for t in figures["targets"]] == [
        "single-tag >= 50% of ceiling",
        "batched >= 300,000 points/s",
    ]
    phases = figures["phases"]
    assert phases["single"]["ratio_to_ceiling"] > 0
    assert phases["gateway"]["ratio_to_ceiling"] > 0
    assert phases["ceiling"]["batches"] is None
    assert phases["single"]["batches"] > 0
    assert phases["batch"]["batches"] > 0


def test_the_gateway_phase_logs_in_as_a_device_with_its_own_rights(
    tmp_path: Path,
) -> None:
    """A wrong key is refused by the gateway: the phase really authenticates."""
    settings = Settings(data_dir=tmp_path, mqtt_host="127.0.0.1")
    gateway = BenchGateway(settings, tmp_path / "gateway")
    try:
        login = gateway.start()
        key = login.password or ""
        assert login.username == "bench-publisher" and key.startswith("wk_")
        good = Probe(login.port, login.username, key)
        bad = Probe(login.port, login.username, key[:-1] + "x")
        try:
            assert good.connect() == 0
            assert good.publish(f"uns/v1/{NODE}/m-0/_value/t0") < 0x80
            assert good.publish("uns/v1/acme/elsewhere/area/line/cell/m/_value/t") == 0x87
            assert bad.connect() == 0x86  # bad user name or password
        finally:
            good.close()
            bad.close()
    finally:
        gateway.stop()
