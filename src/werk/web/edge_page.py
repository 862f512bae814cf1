"""Edge nodes at `/edge`: Sparkplug nodes and devices, their health, rebirth, writes."""

from __future__ import annotations

from typing import Any, Final

from nicegui import run, ui

from werk.core.errors import WerkError
from werk.iam.permissions import COMMANDS_READ, SPARKPLUG_ADMIN, SPARKPLUG_READ
from werk.sparkplug.access import node_path
from werk.sparkplug.schemas import CommandRead, NodeRead
from werk.sparkplug.views import command_read, node_read
from werk.web.auth import Seat, current_seat, guarded_page
from werk.web.context import WebContext
from werk.web.formatting import count_of, format_time
from werk.web.layout import empty_state, frame, section_title

REFRESH_S: Final = 2.0
COMMANDS_SHOWN: Final = 20


def _column(name: str, label: str, align: str = "left") -> dict[str, Any]:
    return {"name": name, "label": label, "field": name, "align": align}


_NODE_COLUMNS: Final = [
    _column("status", "Status"),
    _column("node", "Edge node"),
    _column("bd_seq", "bdSeq", "right"),
    _column("birth", "Last birth (UTC)"),
    _column("devices", "Devices", "right"),
    _column("messages", "Messages", "right"),
    _column("seq_errors", "Seq errors", "right"),
    _column("rebirths", "Rebirths asked", "right"),
    _column("buffered", "Buffered at edge", "right"),
    _column("action", ""),
]
_DEVICE_COLUMNS: Final = [
    _column("status", "Status"),
    _column("device", "Device"),
    _column("uns_path", "UNS path"),
    _column("metrics", "Metrics", "right"),
    _column("birth", "Last birth (UTC)"),
    _column("death", "Last death (UTC)"),
]
_COMMAND_COLUMNS: Final = [
    _column("requested", "Requested (UTC)"),
    _column("tag", "Tag"),
    _column("value", "Value", "right"),
    _column("status", "Status"),
    _column("result", "Read back", "right"),
    _column("origin", "From"),
    _column("error", "Error"),
]
_STATUS_CELL: Final = (
    "<q-td :props=\"props\"><q-badge :color=\"props.value == 'online' ? 'positive' : "
    '\'grey-6\'" :label="props.value" /></q-td>'
)
_REBIRTH_CELL: Final = (
    '<q-td :props="props"><q-btn dense flat no-caps icon="restart_alt" label="Rebirth" '
    ":data-testid=\"'rebirth-' + props.row.node\" "
    "@click=\"() => $parent.$emit('rebirth', props.row)\" /></q-td>"
)


def register(context: WebContext) -> None:
    """Register the page at `/edge`."""

    @guarded_page(context, "/edge", SPARKPLUG_READ)
    async def edge() -> None:
        ui.page_title("Edge nodes · werk")
        with frame("Edge nodes"):
            view = EdgeView(context, current_seat())
            await view.refresh()
            ui.timer(REFRESH_S, view.refresh)


class EdgeView:
    """Edge nodes with their devices, a rebirth button per node, and recent writes."""

    def __init__(self, context: WebContext, seat: Seat) -> None:
        self._context = context
        self._seat = seat
        section_title(
            "Edge nodes",
            "Sparkplug B edge nodes and devices as werk's host application sees them.",
        )
        self._host = ui.label().classes("text-sm text-grey-7").props("data-testid=edge-host")
        self._empty = empty_state(
            "router",
            "No edge node has been seen yet",
            "Start a werk edge agent (werk edge run --config edge.toml) or any Sparkplug B "
            "edge node against this broker.",
            "edge-empty",
        )
        self._nodes = _table(_NODE_COLUMNS, "node", "edge-nodes")
        self._nodes.add_slot("body-cell-status", _STATUS_CELL)
        if seat.principal.allows(SPARKPLUG_ADMIN):
            self._nodes.add_slot("body-cell-action", _REBIRTH_CELL)
        self._nodes.on("rebirth", self._rebirth)
        ui.label("Devices").classes("text-lg font-semibold text-grey-9 q-mt-md")
        self._devices = _table(_DEVICE_COLUMNS, "key", "edge-devices")
        self._devices.add_slot("body-cell-status", _STATUS_CELL)
        ui.label("Writes to machines").classes("text-lg font-semibold text-grey-9 q-mt-md")
        self._commands = _table(_COMMAND_COLUMNS, "id", "edge-commands")

    async def refresh(self) -> None:
        """Reload nodes, devices and the newest commands."""
        service = self._context.sparkplug
        if service is None:
            self._host.set_text("The Sparkplug host is disabled (setting sparkplug_enabled).")
            return
        loaded = await run.io_bound(self._load)
        if loaded is None:
            return
        nodes, commands = loaded
        self._host.set_text(f"Host id {service.host_id} · {count_of(len(nodes), 'edge node')}")
        self._empty.set_visibility(not nodes)
        self._nodes.rows = [_node_row(n) for n in nodes]
        self._devices.rows = [row for n in nodes for row in _device_rows(n)]
        self._commands.rows = [_command_row(c) for c in commands]

    def _load(self) -> tuple[list[NodeRead], list[CommandRead]]:
        service = self._context.sparkplug
        assert service is not None
        nodes = [n for n in map(self._within_scope, service.host.view(node_read)) if n]
        commands = [command_read(c) for c in service.commands(limit=COMMANDS_SHOWN)]
        return nodes, [c for c in commands if self._visible(COMMANDS_READ, c.tag)]

    def _visible(self, permission: str, path: str) -> bool:
        return self._seat.principal.allows(permission, path=path)

    def _within_scope(self, node: NodeRead) -> NodeRead | None:
        """The node with its devices inside the scope; None when the node is outside."""
        place = node_path(self._context.settings, node.group, node.edge_node)
        if not self._visible(SPARKPLUG_READ, place):
            return None
        devices = [d for d in node.devices if self._visible(SPARKPLUG_READ, d.uns_path)]
        return node if devices == node.devices else node.model_copy(update={"devices": devices})

    async def _rebirth(self, event: Any) -> None:
        row = event.args
        service = self._context.sparkplug
        if service is None or not self._seat.principal.allows(SPARKPLUG_ADMIN):
            return
        try:
            await run.io_bound(service.rebirth, row["group"], row["edge_node"])
        except WerkError as exc:
            ui.notify(exc.message, type="negative")
            return
        ui.notify(f"Rebirth requested from {row['node']}", type="positive")


def _table(columns: list[dict[str, Any]], key: str, testid: str) -> ui.table:
    table = ui.table(rows=[], columns=columns, row_key=key)
    table.props(f"flat bordered dense wrap-cells data-testid={testid}").classes("w-full")
    return table


def _node_row(node: NodeRead) -> dict[str, Any]:
    return {
        "node": f"{node.group}/{node.edge_node}",
        "group": node.group,
        "edge_node": node.edge_node,
        "status": "online" if node.online else "offline",
        "bd_seq": node.bd_seq,
        "birth": format_time(node.birth) if node.birth else "—",
        "devices": sum(d.device is not None for d in node.devices),
        "messages": node.messages,
        "seq_errors": node.seq_errors,
        "rebirths": node.rebirths_requested,
        "buffered": "—" if node.buffered_samples is None else node.buffered_samples,
    }


def _device_rows(node: NodeRead) -> list[dict[str, Any]]:
    return [
        {
            "key": f"{node.group}/{node.edge_node}/{d.device or ''}",
            "status": "online" if d.online else "offline",
            "device": f"{node.edge_node}/{d.device}" if d.device else f"{node.edge_node} (node)",
            "uns_path": d.uns_path,
            "metrics": d.metrics,
            "birth": format_time(d.birth) if d.birth else "—",
            "death": format_time(d.death) if d.death else "—",
        }
        for d in node.devices
    ]


def _command_row(command: CommandRead) -> dict[str, Any]:
    return {
        "id": command.id,
        "requested": format_time(command.requested),
        "tag": command.tag,
        "value": str(command.value),
        "status": command.status,
        "result": "—" if command.result is None else str(command.result),
        "origin": command.origin,
        "error": command.error or "",
    }
