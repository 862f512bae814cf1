"""`werk sources ...`: business datasets from files, SQL databases and REST, over the API."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, cast

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from werk.cli.client import api_get, api_post
from werk.cli.errors import one_line_errors
from werk.cli.uns import ApiOpt, api_url
from werk.core.errors import ValidationFailed
from werk.historian.service import parse_duration

sources_app = typer.Typer(
    help="Business datasets (orders, inventory, ...) from files, SQL and REST.",
    no_args_is_help=True,
)
console = Console()
_POLL_S = 0.5
_WAIT_S = 5.0  # per request: below the CLI client's 10 s timeout


@sources_app.command("list")
@one_line_errors
def list_command(api: ApiOpt = None) -> None:
    """Show the datasets with their record counts, and the sources with their last run."""
    base = api_url(api)
    datasets = Table("dataset", "version", "key", "time", "fields", "records", title="datasets")
    for d in api_get(base, "/datasets"):
        cells = (d["version"], "+".join(d["key"]), d["time"], len(d["fields"]), d["records"])
        datasets.add_row(d["name"], *map(str, cells))
    console.print(datasets)
    sources = Table("source", "kind", "dataset", "every", "last run", "read", "rejected", "error")
    for s in api_get(base, "/sources"):
        sources.add_row(*_source_cells(s))
    console.print(sources if sources.row_count else "no sources configured")


def _source_cells(source: dict[str, Any]) -> list[str]:
    run = source["last_run"] or {}
    when = f"{run['started']} {run['status']}" if run else "never"
    cells = (run.get("rows_read", ""), run.get("rejected", ""), run.get("error") or "")
    return [source["name"], source["kind"], source["dataset"], source["every"] or "on demand",
            when, *map(str, cells)]  # fmt: skip


@sources_app.command("run")
@one_line_errors
def run_command(
    name: Annotated[str, typer.Argument(help="a configured source")],
    wait: Annotated[float, typer.Option("--wait", help="seconds to wait for the end")] = 300.0,
    api: ApiOpt = None,
) -> None:
    """Run a source now and show what it read, stored and rejected."""
    run = _await_run(api_url(api), name, wait)
    if run is None or run["status"] == "running":
        console.print(f"{name}: not finished after {wait:g} s; see `werk sources list`")
        return
    console.print(_run_line(run), highlight=False)
    if run["status"] == "error":
        raise typer.Exit(1)


def _await_run(base: str, name: str, wait: float) -> dict[str, Any] | None:
    """Request the run (asking again while it is queued), then poll it until it ends."""
    deadline = time.monotonic() + wait
    path = f"/sources/{name}/run?wait_s={min(wait, _WAIT_S):g}"
    requested = api_post(base, path, {})
    while requested["status"] == "queued" and time.monotonic() < deadline:
        requested = api_post(base, path, {})  # the same queued request, not a second run
    run: dict[str, Any] | None = requested["run"]
    while run is not None and run["status"] == "running" and time.monotonic() < deadline:
        time.sleep(_POLL_S)
        runs = api_get(base, f"/sources/{name}", {"limit": 20})["runs"]
        run = next((r for r in runs if r["id"] == run["id"]), None)
    return run


def _run_line(run: dict[str, Any]) -> str:
    started = datetime.fromisoformat(run["started"])
    seconds = (datetime.fromisoformat(run["finished"]) - started).total_seconds()
    line = (
        f"{run['source']}: {run['status']} in {seconds:.1f} s, read {run['rows_read']} rows, "
        f"{run['accepted']} accepted, {run['rejected']} rejected (quarantined), "
        f"{run['stored']} new records"
    )
    return line + (f"\nerror: {run['error']}" if run["error"] else "")


@sources_app.command("push")
@one_line_errors
def push_command(
    dataset: Annotated[str, typer.Argument(help="dataset, e.g. orders")],
    file: Annotated[str, typer.Argument(help="JSON file with a list of rows; - reads stdin")],
    source: Annotated[str, typer.Option("--source", help="who pushes")] = "push",
    api: ApiOpt = None,
) -> None:
    """Push the rows of a JSON file to a dataset; rejected rows are listed."""
    rows = _load_rows(file)
    result = api_post(api_url(api), f"/sources/{dataset}/records?source={source}", cast(Any, rows))
    console.print(
        f"{dataset}: {result['received']} rows, {result['accepted']} accepted "
        f"({result['stored']} new), {result['rejected']} rejected",
        highlight=False,
    )
    for r in result["rejections"]:
        console.print(f"  row {r['index']}: {r['reason']}: {escape(r['detail'])}", highlight=False)


def _load_rows(file: str) -> Any:
    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        raise ValidationFailed(f"cannot read {file}: {exc.strerror}", code="bad_file") from exc
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(f"{file} is not JSON: {exc}", code="bad_file") from None


@sources_app.command("records")
@one_line_errors
def records_command(
    dataset: Annotated[str, typer.Argument(help="dataset, e.g. orders")],
    last: Annotated[
        str | None, typer.Option("--last", help="only records of this recent span, e.g. 7d")
    ] = None,
    key: Annotated[str | None, typer.Option("--key", help="only this key")] = None,
    latest: Annotated[
        bool, typer.Option("--latest", help="only the newest version of each key")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", help="at most N records")] = 50,
    api: ApiOpt = None,
) -> None:
    """Show stored records of a dataset, oldest first."""
    base = api_url(api)
    params: dict[str, Any] = {"limit": limit, "latest": latest}
    if last:
        params["start"] = (datetime.now(UTC) - timedelta(seconds=parse_duration(last))).isoformat()
    if key:
        params["key"] = key
    contract = api_get(base, f"/datasets/{dataset}")
    page = api_get(base, f"/datasets/{dataset}/records", params)
    console.print(_records_table(contract, page))


def _records_table(contract: dict[str, Any], page: dict[str, Any]) -> Table:
    fields = [f for f in contract["fields"] if f != contract["time"]]
    title = f"{page['dataset']}: {len(page['items'])} records" + (
        " (latest)" if page["latest"] else ""
    )
    table = Table(contract["time"], *fields, "source", title=title)
    for r in page["items"]:
        values = ("" if r["payload"].get(f) is None else str(r["payload"][f]) for f in fields)
        table.add_row(str(r["payload"][contract["time"]]), *values, r["source"])
    return table
