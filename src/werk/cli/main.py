"""`werk`: run the platform, browse and publish to the UNS, query history, benchmark."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from werk.cli.auth import login_command, logout_command, whoami_command
from werk.cli.bench import bench_app
from werk.cli.data import data_app
from werk.cli.edge import edge_app
from werk.cli.errors import one_line_errors
from werk.cli.iam import iam_app
from werk.cli.quality import kpis_command, lineage_app, quality_app
from werk.cli.sources import sources_app
from werk.cli.sparkplug import commands_command, sparkplug_app, write_command
from werk.cli.uns import history_command, uns_app

app = typer.Typer(
    name="werk",
    help="werk: Unified Namespace, historian and Industry 4.0 ecosystem platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


BrokerOpt = Annotated[
    str | None,
    typer.Option("--broker", help="use a running broker, e.g. mqtt://127.0.0.1:1883"),
]
MqttPortOpt = Annotated[
    int | None, typer.Option("--mqtt-port", help="embedded broker MQTT 3.1.1 port [1883]")
]
Mqtt5PortOpt = Annotated[
    int | None, typer.Option("--mqtt5-port", help="embedded broker MQTT 5 port [1884]")
]
HostOpt = Annotated[str | None, typer.Option("--host", help="HTTP bind address [127.0.0.1]")]
PortOpt = Annotated[int | None, typer.Option("--port", help="HTTP port [8000]")]
DataDirOpt = Annotated[str | None, typer.Option("--data-dir", help="data directory [./.werk]")]


def _server_command(*, demo: bool, summary: str) -> Callable[..., None]:
    """A `werk run` / `werk demo` command: the same options, with or without the plant."""

    @one_line_errors
    def command(
        broker: BrokerOpt = None,
        mqtt_port: MqttPortOpt = None,
        mqtt5_port: Mqtt5PortOpt = None,
        host: HostOpt = None,
        port: PortOpt = None,
        data_dir: DataDirOpt = None,
    ) -> None:
        from werk.cli.server import serve

        serve(demo=demo, **_overrides(broker, mqtt_port, mqtt5_port, host, port, data_dir))

    command.__doc__ = summary
    return command


app.command("run")(
    _server_command(
        demo=False,
        summary="Run the platform: broker (embedded unless --broker), ingest, API and web UI.",
    )
)
app.command("demo")(
    _server_command(demo=True, summary="Run the platform with the simulated demo plant feeding it.")
)


def _overrides(
    broker: str | None,
    mqtt_port: int | None,
    mqtt5_port: int | None,
    host: str | None,
    port: int | None,
    data_dir: str | None,
) -> dict[str, Any]:
    given = {
        "broker_url": broker,
        "mqtt_port": mqtt_port,
        "mqtt5_port": mqtt5_port,
        "http_host": host,
        "http_port": port,
        "data_dir": data_dir,
    }
    return {k: v for k, v in given.items() if v is not None}


app.add_typer(uns_app, name="uns")
app.command("history")(history_command)
app.add_typer(bench_app, name="bench")
app.add_typer(edge_app, name="edge")
app.add_typer(sparkplug_app, name="sparkplug")
app.command("write")(one_line_errors(write_command))
app.command("commands")(one_line_errors(commands_command))
app.add_typer(quality_app, name="quality")
app.add_typer(lineage_app, name="lineage")
app.command("kpis")(kpis_command)
app.add_typer(data_app, name="data")
app.add_typer(sources_app, name="sources")
app.command("login")(login_command)
app.command("logout")(logout_command)
app.command("whoami")(whoami_command)
app.add_typer(iam_app, name="iam")


def main() -> None:
    """Entry point for `python -m werk`."""
    app()


if __name__ == "__main__":
    main()
