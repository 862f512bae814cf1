"""`werk uns ...` and `werk history`: browse, tail and publish to the UNS, query history."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
import paho.mqtt.client as paho
import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from werk.cli.client import api_get, api_post, mqtt_login
from werk.cli.errors import one_line_errors
from werk.core.clock import now_ns
from werk.core.errors import WerkError
from werk.core.settings import get_settings
from werk.historian.service import parse_duration
from werk.uns.broker import BrokerAddress, parse_broker_url
from werk.uns.contracts import decode, dumps
from werk.uns.mqtt import Publisher, client_id, connect, disconnect, make_client, subscribe
from werk.uns.topics import check_filter, parse_topic, value_topic

uns_app = typer.Typer(
    help="Browse, watch and publish to the Unified Namespace.", no_args_is_help=True
)
console = Console()

ApiOpt = Annotated[str | None, typer.Option("--api", help="werk base URL [http://127.0.0.1:8000]")]
BrokerOpt = Annotated[
    str | None, typer.Option("--broker", help="broker URL [the embedded broker's MQTT 5 port]")
]


def api_url(api: str | None) -> str:
    """The werk base URL: the option, else the configured HTTP address."""
    s = get_settings()
    return api or f"http://{s.http_host}:{s.http_port}"


def _broker(broker: str | None, api: str | None = None) -> BrokerAddress:
    """The broker to speak to; logged in with `WERK_API_KEY` when the URL names no user."""
    s = get_settings()
    if broker is not None:
        address = parse_broker_url(broker)
    elif s.broker_url:
        address = parse_broker_url(s.broker_url)
    else:
        address = BrokerAddress(s.mqtt_host, s.mqtt5_port, mqtt5=True)
    if address.username is not None:
        return address
    login = mqtt_login(api_url(api))
    if login is None:
        return address
    return BrokerAddress(address.host, address.port, address.mqtt5, login[0], login[1])


@uns_app.command("browse")
@one_line_errors
def browse(
    prefix: Annotated[str, typer.Argument(help="subtree such as acme/berlin")] = "",
    search: Annotated[
        str | None, typer.Option("--search", "-s", help="words in the tag path")
    ] = None,
    api: ApiOpt = None,
) -> None:
    """Show the namespace tree with last-known values (or search it)."""
    _browse(prefix, search, api)


def _browse(prefix: str, search: str | None, api: str | None) -> None:
    base = api_url(api)
    if search:
        page = api_get(base, "/namespace/search", {"q": search, "limit": 200})
        console.print(_tags_table(page["items"], title=f"{page['total']} tags matching {search!r}"))
        return
    tree = api_get(base, "/namespace", {"prefix": prefix})
    values = api_get(base, "/values", {"filter": f"{prefix.strip('/')}/#" if prefix else "#"})
    by_path = {t["path"]: t for t in values["items"]}
    rendered = Tree(f"[bold]{tree['path'] or 'namespace'}[/bold]")
    _render(rendered, tree, by_path)
    console.print(rendered)


def _render(parent: Tree, node: dict[str, Any], values: dict[str, dict[str, Any]]) -> None:
    for child in node["children"]:
        _render(parent.add(f"[cyan]{child['name']}[/cyan]"), child, values)
    for path in node["tags"]:
        tag = values.get(path)
        name = path.rsplit("/", 1)[-1]
        if tag is None:
            parent.add(name)
            continue
        unit = f" {tag['unit']}" if tag["unit"] else ""
        parent.add(f"{name} = [bold]{tag['value']}[/bold]{unit} [dim]{tag['quality']}[/dim]")


def _tags_table(items: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for column in ("tag", "value", "unit", "quality", "source time"):
        table.add_column(column)
    for t in items:
        table.add_row(t["path"], str(t["value"]), t["unit"] or "", t["quality"], t["ts"])
    return table


@uns_app.command("tail")
@one_line_errors
def tail(
    topic_filter: Annotated[
        str, typer.Argument(help="MQTT filter; relative to the UNS root unless it starts with it")
    ] = "#",
    count: Annotated[
        int, typer.Option("--count", "-n", help="stop after N messages (0: never)")
    ] = 0,
    timeout: Annotated[
        float, typer.Option("--timeout", help="stop after S seconds (0: never)")
    ] = 0,
    broker: BrokerOpt = None,
    api: ApiOpt = None,
) -> None:
    """Print messages as they arrive, decoded into samples (log in with `WERK_API_KEY`)."""
    _tail(topic_filter, count, timeout, broker, api)


def _tail(
    topic_filter: str, count: int, timeout: float, broker: str | None, api: str | None
) -> None:
    root = get_settings().uns_root
    full = (
        topic_filter
        if topic_filter.startswith((root, "$", "spBv1.0"))
        else f"{root}/{topic_filter}"
    )
    check_filter(full)
    address = _broker(broker, api)
    done = threading.Event()
    seen = [0]

    def on_message(_c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        if done.is_set():
            return
        _print_message(msg.topic, bytes(msg.payload), root)
        seen[0] += 1
        if count and seen[0] >= count:
            done.set()

    client = make_client(address, client_id("tail"))
    client.on_message = on_message
    connect(client, address)
    try:
        subscribe(client, full)
    except WerkError:
        disconnect(client)
        raise
    console.print(f"[dim]tailing {full} on {address.url} (Ctrl+C to stop)[/dim]")
    try:
        done.wait(timeout or None)
    except KeyboardInterrupt:
        pass
    finally:
        disconnect(client)


def _print_message(topic: str, payload: bytes, root: str) -> None:
    stamp = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]
    try:
        decoded = decode(parse_topic(topic, root), payload, now_ns())
    except WerkError as exc:
        console.print(f"{stamp} [red]{topic}[/red] rejected: {exc.message}", highlight=False)
        return
    for s in decoded.samples:
        unit = f" {s.unit}" if s.unit else ""
        console.print(
            f"{stamp} {s.tag_path} = [bold]{s.value}[/bold]{unit} [dim]{s.quality.label}[/dim]",
            highlight=False,
        )


@uns_app.command("publish")
@one_line_errors
def publish(
    tag: Annotated[
        str, typer.Argument(help="tag path, e.g. acme/berlin/machining/line-1/cell-1/cnc-1/temp")
    ],
    value: Annotated[str, typer.Argument(help="a number, true/false, or text")],
    unit: Annotated[str | None, typer.Option("--unit", help="unit such as degC")] = None,
    quality: Annotated[str, typer.Option("--quality", help="good, uncertain or bad")] = "good",
    retain: Annotated[bool, typer.Option("--retain", help="ask the broker to retain it")] = False,
    broker: BrokerOpt = None,
    api: ApiOpt = None,
) -> None:
    """Publish one value to a tag's `_value` topic (through the API, or `--broker` directly)."""
    if broker is None:
        _publish_through_api(tag, value, unit, quality, retain, api)
    else:
        _publish(tag, value, unit, quality, retain, broker)


def _publish_through_api(
    tag: str, value: str, unit: str | None, quality: str, retain: bool, api: str | None
) -> None:
    body = {"tag": tag, "value": parse_scalar(value), "unit": unit, "quality": quality,
            "retain": retain}  # fmt: skip
    result = api_post(api_url(api), "/publish", body)
    payload = dumps(result["payload"]).decode()
    console.print(
        f"published {result['topic']} {payload} (message {result['message_id']})", highlight=False
    )


def _publish(
    tag: str, value: str, unit: str | None, quality: str, retain: bool, broker: str | None
) -> None:
    root = get_settings().uns_root
    topic = value_topic(tag, root)
    payload: dict[str, Any] = {
        "value": parse_scalar(value),
        "ts": now_ns() // 1_000_000,
        "quality": quality,
    }
    if unit:
        payload["unit"] = unit
    body = dumps(payload)
    decoded = decode(parse_topic(topic, root), body, now_ns())
    with Publisher(_broker(broker), role="cli") as publisher:
        publisher.publish(topic, body, qos=1, retain=retain)
    console.print(
        f"published {topic} {body.decode()} (message {decoded.message_id:016x})", highlight=False
    )


def parse_scalar(text: str) -> Any:
    """A command-line value as JSON scalar if it parses as one, else as text."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return value if isinstance(value, bool | int | float | str) else text


@one_line_errors
def history_command(
    tag: Annotated[str, typer.Argument(help="tag path")],
    last: Annotated[str, typer.Option("--last", help="how far back, e.g. 10m, 1h, 7d")] = "1h",
    bucket: Annotated[
        str | None, typer.Option("--bucket", help="aggregate per bucket, e.g. 1m")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="the newest N points")] = 50,
    layer: Annotated[
        str, typer.Option("--layer", help="raw, processed or business (needs --bucket)")
    ] = "raw",
    interval: Annotated[
        str | None, typer.Option("--interval", help="resample to a regular grid, e.g. 1m")
    ] = None,
    fill: Annotated[
        str, typer.Option("--fill", help="grid interpolation: step or linear")
    ] = "step",
    api: ApiOpt = None,
) -> None:
    """Show the history of a tag from one layer: points, a grid, or aggregates per bucket."""
    end = datetime.now(UTC)
    start = end - timedelta(seconds=parse_duration(last))
    params: dict[str, Any] = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "limit": limit,
        "newest": True,
        "layer": layer,
        "fill": fill,
    }
    if bucket:
        params["bucket"] = bucket
    if interval:
        params["interval"] = interval
    result = api_get(api_url(api), f"/history/{tag}", params)
    console.print(_history_table(result))


def _history_table(result: dict[str, Any]) -> Table:
    if result["interval_s"] is not None:
        table = Table(title=f"{result['tag']}: {result['layer']}, every {result['interval_s']:g} s")
        table.add_column("time")
        table.add_column(f"value ({result['fill']})", justify="right")
        for g in result["samples"]:
            table.add_row(g["ts"], _fmt(g["value"]))
        return table
    if result["bucket_s"] is None:
        table = Table(title=f"{result['tag']}: {len(result['points'])} {result['layer']} points")
        for column in ("source time", "value", "quality", "flags", "message"):
            table.add_column(column)
        for p in result["points"]:
            flags = ",".join(p["flags"])
            table.add_row(p["ts"], str(p["value"]), p["quality"], flags, p["message_id"])
        return table
    title = f"{result['tag']}: {result['layer']}, buckets of {result['bucket_s']:g} s"
    table = Table(title=title)
    for column in ("start", "count", "min", "max", "avg", "first", "last"):
        table.add_column(column, justify="right")
    for b in result["buckets"]:
        table.add_row(
            b["start"], *(_fmt(b[k]) for k in ("count", "min", "max", "avg", "first", "last"))
        )
    return table


def _fmt(value: Any) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


__all__ = ["history_command", "uns_app"]
