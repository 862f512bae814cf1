"""`werk edge ...`: run a Sparkplug B edge node from an edge.toml, or check the file."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from werk.cli.errors import one_line_errors

if TYPE_CHECKING:
    from werk.edge.config import EdgeConfig
    from werk.edge.connectors import ConnectorConfig

edge_app = typer.Typer(
    help="Run a Sparkplug B edge node: connectors, MQTT, store-and-forward.",
    no_args_is_help=True,
)
console = Console()
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="the edge node's configuration [edge.toml]")
]
LogLevelOpt = Annotated[
    str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR [INFO]")
]


@edge_app.command("run")
@one_line_errors
def run(config: ConfigOpt = Path("edge.toml"), log_level: LogLevelOpt = "INFO") -> None:
    """Run the edge node until Ctrl-C or SIGTERM (then DDEATH, NDEATH, disconnect)."""
    from werk.core.errors import ValidationFailed
    from werk.core.logging import configure_logging
    from werk.edge.config import load_config

    if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValidationFailed(
            f"--log-level {log_level!r} is not one of DEBUG, INFO, WARNING, ERROR"
        )
    configure_logging(log_level)
    asyncio.run(_serve(load_config(config)))


async def _serve(config: EdgeConfig) -> None:
    from werk.edge.agent import EdgeAgent

    agent = EdgeAgent(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await agent.start()
    try:
        await stop.wait()
    finally:
        await agent.stop()


@edge_app.command("check")
@one_line_errors
def check(config: ConfigOpt = Path("edge.toml")) -> None:
    """Validate an edge.toml and list its devices and tags."""
    from werk.edge.config import load_config

    edge = load_config(config)
    node, buffer = edge.node, edge.buffer
    console.print(
        f"[bold]{node.group}/{node.edge_node}[/bold] -> {node.broker_address.url}, "
        f"primary host {node.primary_host or '(none)'}, keep-alive {node.keepalive_s} s",
        highlight=False,
    )
    console.print(
        f"buffer {buffer.path}: {buffer.max_bytes} bytes, {buffer.max_age_s} s, {buffer.drop}, "
        f"replay {buffer.replay_rate}/s, fsync {'on' if buffer.fsync else 'off'}",
        highlight=False,
    )
    console.print(_tags_table(edge.connectors))


def _tags_table(connectors: list[ConnectorConfig]) -> Table:
    from werk.edge.connectors import OpcUaConfig, build_connector

    table = Table("device", "kind", "tag", "datatype", "writable", "unit", "deadband")
    for config in connectors:
        connector = build_connector(config)
        kind = config.kind
        for spec in connector.tags():
            table.add_row(
                connector.name, kind, spec.name, spec.datatype.name,
                "yes" if spec.writable else "", spec.unit or "", f"{spec.deadband:g}",
            )  # fmt: skip
        if isinstance(config, OpcUaConfig):
            for rule in config.browse:
                table.add_row(connector.name, kind, f"(browsed below {rule.root})", "", "", "", "")
    return table
