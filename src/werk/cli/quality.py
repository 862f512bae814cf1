"""`werk quality ...`, `werk kpis` and `werk lineage ...`: the processed and business layers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from werk.cli.client import api_get, api_post, api_put
from werk.cli.errors import one_line_errors
from werk.cli.uns import ApiOpt, api_url
from werk.historian.rules import RuleSet
from werk.historian.service import parse_duration

quality_app = typer.Typer(help="Quality rules of the processed layer.", no_args_is_help=True)
lineage_app = typer.Typer(
    help="Where a business value came from, down to raw messages.", no_args_is_help=True
)
console = Console()


@quality_app.command("report")
@one_line_errors
def report_command(
    top: Annotated[int, typer.Option("--top", help="tags with the most violations")] = 20,
    api: ApiOpt = None,
) -> None:
    """Show the refiner's state, rule violations per tag, and tags gone silent."""
    body = api_get(api_url(api), "/quality")
    status = body["status"]
    lag = status["newest_batch"] - status["refined_through"]
    console.print(
        f"refined through batch {status['refined_through']} of {status['newest_batch']} "
        f"(lag {lag}), {status['refined_samples']} samples since {body['since']}"
        + (f"; last error: {status['last_error']}" if status["last_error"] else ""),
        highlight=False,
    )
    table = Table(title="violations per tag")
    for column in ("tag", "total", "flags"):
        table.add_column(column)
    for v in body["violations"][:top]:
        flags = ", ".join(f"{name} {count}" for name, count in v["counts"].items())
        table.add_row(v["tag"], str(v["total"]), flags)
    console.print(table)
    if body["missing"]:
        silent = Table(title="silent longer than their stale limit")
        for column in ("tag", "last sample", "silent s", "limit s"):
            silent.add_column(column)
        for m in body["missing"]:
            row = (m["tag"], m["last_ts"] or "", f"{m['silent_s']:.0f}", f"{m['stale_s']:g}")
            silent.add_row(*row)
        console.print(silent)


@quality_app.command("rules")
@one_line_errors
def rules_command(api: ApiOpt = None) -> None:
    """Show the quality rules in force, in matching order."""
    rules = api_get(api_url(api), "/quality/rules")
    table = Table(title=f"{len(rules)} quality rules (the first match applies)")
    for column in ("tags", "unit", "min", "max", "max rate", "flatline s", "stale s", "spike"):
        table.add_column(column)
    for r in rules:
        unit = " -> ".join(u for u in (r["unit"], r["canonical_unit"]) if u)
        keys = ("min", "max", "max_rate", "flatline_s", "stale_s", "spike")
        table.add_row(r["tags"], unit, *("" if r[k] is None else f"{r[k]:g}" for k in keys))
    console.print(table)


@quality_app.command("apply")
@one_line_errors
def apply_command(
    file: Annotated[Path, typer.Argument(help="TOML file of [[rules]]", exists=True)],
    api: ApiOpt = None,
) -> None:
    """Put the rules of a TOML file in force (checked here first, then by werk)."""
    rules = RuleSet.load(file)
    body = [r.model_dump(mode="json") for r in rules]
    stored = api_put(api_url(api), "/quality/rules", body)
    console.print(f"{len(stored)} quality rules in force", highlight=False)


@quality_app.command("reprocess")
@one_line_errors
def reprocess_command(
    tags: Annotated[str, typer.Option("--tags", help="MQTT-style filter over tag paths")] = "#",
    last: Annotated[str, typer.Option("--last", help="how far back, e.g. 1h, 7d")] = "1d",
    api: ApiOpt = None,
) -> None:
    """Refine stored raw samples again with the rules in force."""
    end = datetime.now(UTC)
    start = end - timedelta(seconds=parse_duration(last))
    body = {"tags": tags, "start": start.isoformat(), "end": end.isoformat()}
    done = api_post(api_url(api), "/quality/reprocess", body)
    console.print(f"refined {done['samples']} samples of {done['tags']} tags again")


@one_line_errors
def kpis_command(
    name: Annotated[str | None, typer.Argument(help="a KPI name; none lists them")] = None,
    last: Annotated[str, typer.Option("--last", help="how far back, e.g. 1d, 30d")] = "7d",
    api: ApiOpt = None,
) -> None:
    """List the KPIs of the business layer, or show the values of one."""
    if name is None:
        for kpi in api_get(api_url(api), "/kpis"):
            console.print(kpi, highlight=False)
        return
    end = datetime.now(UTC)
    start = end - timedelta(seconds=parse_duration(last))
    params = {"start": start.isoformat(), "end": end.isoformat()}
    series = api_get(api_url(api), f"/kpis/{name}", params)
    table = Table(title=f"{name}: {len(series['values'])} values")
    for column in ("time", "value", "unit", "source", "inputs"):
        table.add_column(column)
    for v in series["values"]:
        table.add_row(v["ts"], f"{v['value']:.6g}", v["unit"], v["source"], str(len(v["lineage"])))
    console.print(table)


@lineage_app.command("rollup")
@one_line_errors
def rollup_lineage_command(
    tag: Annotated[str, typer.Argument(help="tag path")],
    at: Annotated[str, typer.Option("--at", help="a time inside the bucket, ISO 8601")],
    width: Annotated[str, typer.Option("--width", help="1m, 1h or 1d")] = "1m",
    api: ApiOpt = None,
) -> None:
    """Show a rollup and what it was computed from."""
    body = api_get(api_url(api), f"/lineage/rollup/{tag}", {"start": at, "width": width})
    r = body["rollup"]
    console.print(
        f"{r['tag']} {r['width_s']} s from {r['start']}: count {r['count']}, "
        f"avg {_num(r['avg'])}, min {_num(r['min'])}, max {_num(r['max'])}, "
        f"flagged {r['flagged']}, bad {r['bad']}",
        highlight=False,
    )
    for part in body["parts"]:
        console.print(f"  {part['start']}  count {part['count']}  avg {_num(part['avg'])}")
    _print_samples(body["samples"])
    if body["messages"]:
        console.print("messages: " + " ".join(body["messages"]), highlight=False)


@lineage_app.command("kpi")
@one_line_errors
def kpi_lineage_command(
    name: Annotated[str, typer.Argument(help="KPI name")],
    at: Annotated[str, typer.Option("--at", help="timestamp of the value, ISO 8601")],
    api: ApiOpt = None,
) -> None:
    """Show a KPI value and the data behind each of its inputs."""
    body = api_get(api_url(api), f"/lineage/kpi/{name}", {"ts": at})
    kpi = body["kpi"]
    console.print(f"{kpi['name']} = {kpi['value']:.6g} {kpi['unit']} at {kpi['ts']}")
    for item in body["inputs"]:
        ref = item["ref"]
        console.print(
            f"- {ref['layer']} {ref['tag']} [{ref['start']}, {ref['end']}): "
            f"{len(item['rollups'])} rollups, {len(item['samples'])} samples, "
            f"{len(item['messages'])} messages",
            highlight=False,
        )


@lineage_app.command("message")
@one_line_errors
def message_lineage_command(
    message_id: Annotated[str, typer.Argument(help="message id (16 hex digits)")],
    api: ApiOpt = None,
) -> None:
    """Show the raw samples one message brought."""
    body = api_get(api_url(api), f"/lineage/message/{message_id}")
    console.print(f"message {body['message_id']} received {body['ingest_ts']}")
    table = Table()
    for column in ("tag", "source time", "value", "quality"):
        table.add_column(column)
    for p in body["points"]:
        table.add_row(p["tag"], p["ts"], str(p["value"]), p["quality"])
    console.print(table)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _print_samples(samples: list[dict[str, Any]]) -> None:
    if not samples:
        return
    table = Table(title=f"{len(samples)} processed samples")
    for column in ("source time", "value", "quality", "flags", "message"):
        table.add_column(column)
    for s in samples:
        table.add_row(s["ts"], str(s["value"]), s["quality"], ",".join(s["flags"]), s["message_id"])
    console.print(table)
