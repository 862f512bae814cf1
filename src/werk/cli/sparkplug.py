"""`werk write`, `werk commands` and `werk sparkplug ...`: machines and edge nodes, over the API."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from werk.cli.client import api_get, api_post
from werk.cli.errors import one_line_errors
from werk.cli.uns import ApiOpt, api_url, parse_scalar

sparkplug_app = typer.Typer(
    help="Sparkplug B edge nodes seen by werk's host.", no_args_is_help=True
)
console = Console()


def write_command(
    tag: Annotated[str, typer.Argument(help="tag path of a writable metric")],
    value: Annotated[str, typer.Argument(help="a number, true/false, or text")],
    wait: Annotated[float, typer.Option("--wait", help="seconds to wait for the result")] = 10.0,
    api: ApiOpt = None,
) -> None:
    """Write a value to the machine behind a tag and show the value read back."""
    body = {"tag": tag, "value": parse_scalar(value), "wait_s": wait}
    command = api_post(api_url(api), "/commands", body)
    console.print(_command_line(command), highlight=False)
    if command["status"] in ("failed", "timeout"):
        raise typer.Exit(1)


def commands_command(
    tag: Annotated[str | None, typer.Option("--tag", help="only writes to this tag")] = None,
    limit: Annotated[int, typer.Option("--limit", help="newest N")] = 20,
    api: ApiOpt = None,
) -> None:
    """Show the log of writes to machines, newest first."""
    params: dict[str, Any] = {"limit": limit} | ({"tag": tag} if tag else {})
    table = Table("requested", "tag", "value", "status", "read back", "by", "from", "error")
    for c in api_get(api_url(api), "/commands", params):
        cells = (c["requested"], c["tag"], c["value"], c["status"], c["result"])
        table.add_row(*map(str, cells), c["requested_by"], c["origin"], c["error"] or "")
    console.print(table)


@sparkplug_app.command("nodes")
@one_line_errors
def nodes(api: ApiOpt = None) -> None:
    """List the edge nodes and devices werk's host has seen."""
    table = Table("edge node", "status", "bdSeq", "devices", "messages", "seq errors", "buffered")
    for n in api_get(api_url(api), "/sparkplug/nodes"):
        devices = ", ".join(d["device"] for d in n["devices"] if d["device"])
        buffered = "-" if n["buffered_samples"] is None else str(n["buffered_samples"])
        status = "online" if n["online"] else "offline"
        counts = (n["bd_seq"], devices, n["messages"], n["seq_errors"])
        table.add_row(f"{n['group']}/{n['edge_node']}", status, *map(str, counts), buffered)
    console.print(table)


@sparkplug_app.command("rebirth")
@one_line_errors
def rebirth(
    group: Annotated[str, typer.Argument(help="Sparkplug group id")],
    edge_node: Annotated[str, typer.Argument(help="edge node id")],
    api: ApiOpt = None,
) -> None:
    """Ask an edge node to publish its births again."""
    api_post(api_url(api), f"/sparkplug/nodes/{group}/{edge_node}/rebirth", {})
    console.print(f"rebirth requested from {group}/{edge_node}")


def _command_line(command: dict[str, Any]) -> str:
    outcome = {
        "done": f"done, read back {command['result']}",
        "pending": "sent, no result yet (see `werk commands`)",
        "failed": f"failed: {command['error']}",
        "timeout": f"no result: {command['error']}",
    }[command["status"]]
    return f"{command['tag']} = {command['value']}: {outcome}"
