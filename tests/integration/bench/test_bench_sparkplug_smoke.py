"""`werk bench sparkplug --quick` runs every phase end to end and reports positive figures."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from werk.bench.sparkplug import SPARKPLUG_QUICK
from werk.cli.main import app


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    """Run the quick benchmark once: its output and its JSON figures."""
    json_path = tmp_path_factory.mktemp("bench") / "figures.json"
    result = CliRunner().invoke(app, ["bench", "sparkplug", "--quick", "--json", str(json_path)])
    assert result.exit_code == 0, result.output
    return result.output, orjson.loads(json_path.read_bytes())


def test_every_host_phase_stores_every_point(quick_run: tuple[str, dict[str, Any]]) -> None:
    output, figures = quick_run
    expected = {100: SPARKPLUG_QUICK.messages_100, 1000: SPARKPLUG_QUICK.messages_1000}
    for phase in figures["host"]:
        assert phase["complete"], phase
        assert phase["points"] == expected[phase["metrics"]] * phase["metrics"]
        assert phase["points_per_s"] > 0
    assert "points/s" in output


def test_edge_and_connector_figures_are_positive(quick_run: tuple[str, dict[str, Any]]) -> None:
    figures = quick_run[1]
    assert figures["edge"]["bytes_per_sample"] > 0
    assert figures["edge"]["replay_metrics_per_s"] > 0
    assert figures["connectors"]["opcua_samples_per_s"] > 0
    assert figures["connectors"]["modbus_registers_per_s"] > 0
    assert all(rate > 0 for rate in figures["decode_points_per_s"].values())
