"""`werk bench ...`: benchmarks that print figures (not pass/fail tests)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console

from werk.bench.historian import Backend
from werk.cli.errors import one_line_errors

bench_app = typer.Typer(help="Benchmarks that print measured figures.", no_args_is_help=True)
console = Console()


@bench_app.command("ingest")
@one_line_errors
def ingest(
    messages: Annotated[
        int | None,
        typer.Option("--messages", min=1, help="single-tag messages [200000; quick 5000]"),
    ] = None,
    batch_messages: Annotated[
        int | None,
        typer.Option("--batch-messages", min=1, help="100-tag batch messages [20000; quick 200]"),
    ] = None,
    latency_seconds: Annotated[
        float | None,
        typer.Option(
            "--latency-seconds", min=0.5, help="length of the latency phase [10; quick 3]"
        ),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="a small smoke run")] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="also write the figures as JSON to this file")
    ] = None,
) -> None:
    """Measure ingest: broker ceiling, single-tag and batched throughput, latency, memory."""
    from werk.bench import QUICK, IngestBenchConfig, render, run_ingest_bench
    from werk.core.logging import configure_logging

    configure_logging("WARNING")
    base = QUICK if quick else IngestBenchConfig()
    given = {
        "messages": messages,
        "batch_messages": batch_messages,
        "latency_seconds": latency_seconds,
    }
    overrides: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    config = dataclasses.replace(base, **overrides)
    report = run_ingest_bench(config, console)
    render(report, console)
    if json_path is not None:
        json_path.write_bytes(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2))
        console.print(f"figures written to {json_path}")


@bench_app.command("sparkplug")
@one_line_errors
def sparkplug(
    quick: Annotated[bool, typer.Option("--quick", help="a small smoke run")] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="also write the figures as JSON to this file")
    ] = None,
) -> None:
    """Measure the Sparkplug host, the edge buffer and the OPC UA and Modbus connectors."""
    from werk.bench.sparkplug import (
        SPARKPLUG_QUICK,
        SparkplugBenchConfig,
        render_sparkplug,
        run_sparkplug_bench,
    )
    from werk.core.logging import configure_logging

    configure_logging("WARNING")
    config = SPARKPLUG_QUICK if quick else SparkplugBenchConfig()
    report = run_sparkplug_bench(config, console)
    render_sparkplug(report, console)
    if json_path is not None:
        json_path.write_bytes(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2))
        console.print(f"figures written to {json_path}")


@bench_app.command("historian")
@one_line_errors
def historian(
    duckdb_points: Annotated[
        int, typer.Option("--duckdb-points", min=1000, help="points written to DuckDB")
    ] = 100_000_000,
    postgres_points: Annotated[
        int, typer.Option("--postgres-points", min=1000, help="points written to PostgreSQL")
    ] = 20_000_000,
    postgres_url: Annotated[
        str | None,
        typer.Option("--postgres-url", help="an empty database instead of a throwaway server"),
    ] = None,
    backend: Annotated[
        list[Backend] | None, typer.Option("--backend", help="repeat to choose [both]")
    ] = None,
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="repetitions of each query")] = 30,
    refine_days: Annotated[
        int, typer.Option("--refine-days", min=0, help="refine the last N days; 0 refines all")
    ] = 7,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="also write the figures as JSON to this file")
    ] = None,
) -> None:
    """Measure the historian backends side by side: writes, refinement, queries, bytes/point."""
    from werk.bench.historian import HistorianBenchOptions, run_historian_bench
    from werk.bench.historian_report import render_historian
    from werk.core.logging import configure_logging

    configure_logging("WARNING")
    options = HistorianBenchOptions(
        duckdb_points=duckdb_points,
        postgres_points=postgres_points,
        postgres_url=postgres_url,
        backends=tuple(backend) if backend else tuple(Backend),
        repeat=repeat,
        refine_days=refine_days or None,
    )
    result = run_historian_bench(options, console)
    render_historian(result, console)
    if json_path is not None:
        json_path.write_bytes(orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2))
        console.print(f"figures written to {json_path}")


@bench_app.command("auth")
@one_line_errors
def auth(
    quick: Annotated[bool, typer.Option("--quick", help="a small smoke run")] = False,
    seconds: Annotated[
        float | None, typer.Option("--seconds", min=0.5, help="length of each load phase [3]")
    ] = None,
    rounds: Annotated[
        int | None, typer.Option("--rounds", min=1, help="rounds over the variants [6]")
    ] = None,
    connections: Annotated[
        int | None, typer.Option("--connections", min=1, help="keep-alive connections [16]")
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="also write the figures as JSON to this file")
    ] = None,
) -> None:
    """Measure token verification cost and authorised-request overhead (requests/s)."""
    from werk.bench.auth import AUTH_QUICK, AuthBenchConfig, render_auth, run_auth_bench
    from werk.core.logging import configure_logging

    configure_logging("WARNING")
    given = {"seconds": seconds, "rounds": rounds, "connections": connections}
    overrides: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    config = dataclasses.replace(AUTH_QUICK if quick else AuthBenchConfig(), **overrides)
    report = run_auth_bench(config, console)
    render_auth(report, console)
    if json_path is not None:
        json_path.write_bytes(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2))
        console.print(f"figures written to {json_path}")
