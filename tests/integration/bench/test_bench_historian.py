"""`werk bench historian` at tiny sizes: both backends, every figure present and sane."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from rich.console import Console
from tests.conftest import require
from tests.postgres_server import PostgresServer

from werk.bench.historian import Backend, HistorianBenchOptions, run_historian_bench
from werk.bench.historian_report import HistorianBenchResult, render_historian
from werk.bench.pgserver import ThrowawayPostgres, missing_reason

TAGS = 200
PER_TAG = 100  # one sample per tag every 7.2 h: 3 or 4 in any 24 h
REPEAT = 2
QUERIES = {
    ("last", "raw"),
    ("day_minutes", "raw"),
    ("day_minutes", "business"),
    ("month_hours", "raw"),
    ("month_hours", "business"),
}


@pytest.fixture(scope="module")
def run(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, Any]]:
    """Bench both backends once: the printed tables and the figures as JSON would hold them."""
    options = HistorianBenchOptions(
        duckdb_points=TAGS * PER_TAG, postgres_points=TAGS * PER_TAG, tags=TAGS, repeat=REPEAT,
        refine_days=None, postgres_url=postgres.new_database(),
        directory=tmp_path_factory.mktemp("bench"),
    )  # fmt: skip
    out = io.StringIO()
    result = run_historian_bench(options, Console(file=out, width=200))
    render_historian(result, Console(file=out, width=200))
    return out.getvalue(), orjson.loads(orjson.dumps(result.as_dict()))


@pytest.mark.parametrize("backend", ["duckdb", "postgresql"])
def test_writes_every_point_of_the_plant(run: tuple[str, dict[str, Any]], backend: str) -> None:
    figures = run[1]["backends"][backend]
    assert figures["error"] is None
    write = figures["write"]
    assert write["points"] == TAGS * PER_TAG
    assert write["batches"] == 1  # 100 ticks of 200 tags fit one 100,000-point batch
    assert write["period_s"] == 30 * 86_400 / PER_TAG
    assert 0 < write["end_to_end_per_s"] <= write["points_per_s"]
    refine = figures["refine"]
    assert refine["points"] == TAGS * PER_TAG
    assert refine["first_day"] == 0
    assert refine["points_per_s"] > 0


@pytest.mark.parametrize("backend", ["duckdb", "postgresql"])
@pytest.mark.parametrize("state", ["as written", "compacted"])
def test_queries_return_what_was_stored(
    run: tuple[str, dict[str, Any]], backend: str, state: str
) -> None:
    queries = run[1]["backends"][backend]["queries"][state]
    assert {(q["name"], q["layer"]) for q in queries} == QUERIES
    for q in queries:
        assert q["repetitions"] == REPEAT
        assert 0 < q["p50_ms"] <= q["p99_ms"] <= q["max_ms"]
        rows = q["rows"]
        if q["name"] == "last":
            assert rows == TAGS
        elif q["name"] == "day_minutes":
            assert rows in (3, 4), q  # one bucket per sample of the day
        else:
            assert rows == 100 * PER_TAG, q  # every sample in its own hour


@pytest.mark.parametrize("backend", ["duckdb", "postgresql"])
def test_reports_sizes_and_memory(run: tuple[str, dict[str, Any]], backend: str) -> None:
    figures = run[1]["backends"][backend]
    sizes = figures["sizes"]
    assert sizes["raw_points"] == sizes["processed_points"] == TAGS * PER_TAG
    # each sample has its own minute and hour bucket, and every tag 30 days
    assert sizes["rollup_rows"] == TAGS * (2 * PER_TAG + 30)
    assert sizes["compacted_rows"] == sizes["raw_points"] * 2 + sizes["rollup_rows"]
    per_point = sizes["bytes_per_point"]
    assert all(0 < value < 10_000 for value in per_point.values()), per_point
    assert per_point["all_layers"] > per_point["raw_written"]
    assert sizes["compact_s"] > 0
    assert figures["peak_rss"] > 2**20
    assert figures["server_peak_pss"] is None  # a given URL: the server is not ours to watch


def test_prints_the_backends_side_by_side(run: tuple[str, dict[str, Any]]) -> None:
    output, figures = run
    for title in ("Writing and refining", "Query latency", "Storage", "Targets"):
        assert title in output
    assert "DuckDB" in output
    assert "PostgreSQL" in output
    assert figures["skipped"] == {}
    assert len(figures["targets"]) == 3


def test_refines_only_the_last_days_when_asked(tmp_path: Path) -> None:
    options = HistorianBenchOptions(
        duckdb_points=500 * 300, tags=500, repeat=1, refine_days=10,
        backends=(Backend.DUCKDB,), directory=tmp_path,
    )  # fmt: skip
    result = run_historian_bench(options, Console(file=io.StringIO()))
    duck = _only(result)
    assert duck.refine is not None
    assert duck.sizes is not None
    # one tick every 2.4 h in batches of 200 ticks: ticks 200..299 are the last 10 days
    assert duck.refine.points == duck.sizes.processed_points == 500 * 100
    day = duck.query("as written", "day_minutes", "business")
    assert day is not None
    assert day.rows > 0  # a day of the refined ones
    output = _rendered(result)
    assert "the last 10 of 30" in output
    assert "rollups exist for the refined days only" in output


def test_throwaway_server_starts_serves_and_leaves_nothing() -> None:
    require("PostgreSQL server binaries", missing_reason() is None)
    with ThrowawayPostgres({"shared_buffers": "'32MB'"}) as server:
        url = server.new_database("werk_bench")
        assert server.server_pid() is not None
        with psycopg.connect(url, connect_timeout=5) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("werk_bench",)
        root = server.root
    assert root is not None
    assert not root.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)


def _only(result: HistorianBenchResult) -> Any:
    assert result.skipped == {}
    [backend] = result.backends
    assert backend.error is None
    return backend


def _rendered(result: HistorianBenchResult) -> str:
    out = io.StringIO()
    render_historian(result, Console(file=out, width=200))
    return out.getvalue()
