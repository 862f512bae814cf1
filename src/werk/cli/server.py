"""Serve the platform with uvicorn and tell the user where to look."""

from __future__ import annotations

from typing import Any

import uvicorn
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from werk.api import create_app
from werk.cli.uns import api_url
from werk.core.errors import Unavailable
from werk.core.logging import configure_logging
from werk.core.settings import Settings, get_settings
from werk.iam.bootstrap import DemoCredential
from werk.runtime import Runtime
from werk.uns.broker import port_in_use

console = Console()


def serve(*, demo: bool, **overrides: Any) -> None:
    """Start the runtime, serve HTTP until Ctrl+C, then stop everything."""
    settings = get_settings().model_copy(update=overrides)
    settings = Settings.model_validate(settings.model_dump())
    configure_logging(settings.log_level)
    if port_in_use(settings.http_host, settings.http_port):
        raise Unavailable(
            f"HTTP port {settings.http_port} on {settings.http_host} is already in use; "
            "pick another with --port",
            code="port_in_use",
        )
    runtime = Runtime(settings, demo=demo)
    runtime.start()
    try:
        app = create_app(runtime, on_ready=lambda: _print_banner(runtime, demo=demo))
        uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_level="warning")
    finally:
        runtime.stop()


def _print_banner(runtime: Runtime, *, demo: bool) -> None:
    s = runtime.settings
    web = f"http://{s.http_host}:{s.http_port}"
    broker = (
        f"MQTT 3.1.1 on {s.mqtt_host}:{s.mqtt_port}, MQTT 5 on {s.mqtt_host}:{s.mqtt5_port}"
        if runtime.broker is not None
        else f"external broker {s.broker_url}"
    )
    lines = [
        f"[bold]Web UI[/bold]     {web}/",
        f"[bold]API docs[/bold]   {web}/api/docs   (OpenAPI: {web}/api/openapi.json)",
        f"[bold]MQTT[/bold]       {broker}",
        f"[bold]UNS root[/bold]   {s.uns_root}/<enterprise>/<site>/<area>/<line>/<cell>/...",
        f"[bold]Data[/bold]       {s.data_dir.resolve()}",
    ]
    lines += _access_lines(runtime, web)
    if demo:
        lines += _plant_lines(runtime)
    title = "werk demo" if demo else "werk"
    console.print(Panel("\n".join(lines), title=f"{title} is running (Ctrl+C to stop)"))


def _access_lines(runtime: Runtime, web: str) -> list[str]:
    """How to log in: the new admin's password on the first run, else how to reset it."""
    security = runtime.security
    demo = _demo_credential_lines(security.demo_credentials if security is not None else [])
    login = "werk login" if web == api_url(None) else f"werk login --api {web}"
    first = security.first_run if security is not None else None
    if first is None:
        data_dir = runtime.settings.data_dir.resolve()
        return [
            f"[bold]Log in[/bold]     {web}/login or `{login}` (the admin account exists)",
            "           lost the admin password? stop werk, then "
            f"`werk iam reset-admin --data-dir {data_dir}`",
            *demo,
        ]
    return [
        f"[bold]Admin[/bold]      user [bold]{escape(first.username)}[/bold], password "
        f"[bold]{escape(first.password)}[/bold]",
        "           shown only this once: store it now (werk keeps only a hash)",
        f"           log in at {web}/login or with `{login} --username {first.username}`",
        *demo,
    ]


def _demo_credential_lines(credentials: list[DemoCredential]) -> list[str]:
    users = [c for c in credentials if c.kind == "password"]
    if not users:
        return []
    lines = ["[bold]Partners[/bold]   demo tenants, each sees only its own subtree:"]
    lines += [
        f"           {escape(c.org)}: user {escape(c.name)}, password {escape(c.secret)}"
        for c in users
    ]
    return lines


def _plant_lines(runtime: Runtime) -> list[str]:
    s = runtime.settings
    return [
        "[bold]Demo plant[/bold] acme/berlin/machining, 9 machines at 1 Hz:",
        f"           line 1 on OPC UA  opc.tcp://{s.mqtt_host}:{s.demo_opcua_port}",
        f"           line 2 on Modbus  {s.mqtt_host}:{s.demo_modbus_port} (unit ids 1-3)",
        "           read by the werk edge agent acme/berlin-gw-1 over Sparkplug B;",
        "           conveyor-1 and packer-1 publish UNS JSON",
    ]
