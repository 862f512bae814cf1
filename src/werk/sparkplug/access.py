"""What a caller may see and command of the Sparkplug host, by namespace scope.

An edge node lives where its route puts it: the ISA-95 node path of its own metrics
(device ``node``). A caller sees a node when that path lies in its scope, and of the
node's devices those whose paths do. Commands are logged with their tag path; a caller
sees and sends commands only for tags in its scope.
"""

from __future__ import annotations

from typing import Final

from fastapi import Request

from werk.core.access import visible
from werk.core.errors import NotFound
from werk.core.settings import Settings
from werk.sparkplug.mapping import UnsMapper
from werk.sparkplug.schemas import NodeRead

SPARKPLUG_READ: Final = "sparkplug:read"
SPARKPLUG_ADMIN: Final = "sparkplug:admin"
COMMANDS_READ: Final = "commands:read"
COMMANDS_WRITE: Final = "commands:write"


def node_path(settings: Settings, group: str, edge_node: str) -> str:
    """The ISA-95 node path the routes give the edge node's own metrics."""
    return UnsMapper(settings.sparkplug_routes).node(group, edge_node, None).path


def node_visible(request: Request, permission: str, group: str, edge_node: str) -> bool:
    """Whether the edge node's routed path lies in the caller's scope for `permission`."""
    settings: Settings = request.app.state.runtime.settings
    return visible(request, permission, node_path(settings, group, edge_node))


def check_node(request: Request, permission: str, group: str, edge_node: str) -> None:
    """Refuse an edge node outside the caller's scope as if it had never been seen."""
    if not node_visible(request, permission, group, edge_node):
        raise NotFound(f"no Sparkplug edge node {group}/{edge_node}", code="unknown_node")


def scoped_node(request: Request, node: NodeRead) -> NodeRead:
    """The node with only the devices whose paths lie in the caller's scope."""
    devices = [d for d in node.devices if visible(request, SPARKPLUG_READ, d.uns_path)]
    return node.model_copy(update={"devices": devices})
