"""`werk bench ingest --quick` runs every phase end to end and reports positive figures."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from werk.cli.main import app

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


@pytest.mark.parametrize(
    ("phase", "points"),
    [("ceiling", MESSAGES), ("single", MESSAGES), ("batch", BATCH_MESSAGES * BATCH_TAGS)],
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
    assert phases["ceiling"]["batches"] is None
    assert phases["single"]["batches"] > 0
    assert phases["batch"]["batches"] > 0
