"""Where Sparkplug metrics live in the Unified Namespace: pure code, no I/O.

A route maps a Sparkplug group / edge node / device to an ISA-95 node path; a metric
name becomes a tag name below that node (``Motor/Speed`` becomes ``Motor.Speed``).
Protocol metrics (``bdSeq``, ``Node Control/...``) stay out of the namespace.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Final

from werk.core.errors import TopicError
from werk.core.settings import DEFAULT_SPARKPLUG_ROUTE, SparkplugRoute
from werk.uns.topics import Node, check_tag

NODE_DEVICE: Final = "node"
_PROTOCOL_METRICS: Final = ("bdSeq", "Node Control/", "Device Control/")
_NOT_NAME: Final = re.compile(r"[^\w.\-~]")


class UnsMapper:
    """Turns Sparkplug ids and metric names into UNS node paths and tag names."""

    def __init__(self, routes: Sequence[SparkplugRoute]) -> None:
        self._routes = (*routes, DEFAULT_SPARKPLUG_ROUTE)
        self._nodes: dict[tuple[str, str, str], Node] = {}

    def node(self, group: str, edge_node: str, device: str | None) -> Node:
        """The ISA-95 node of a device (or of the edge node itself when `device` is None)."""
        key = (group, edge_node, device or NODE_DEVICE)
        found = self._nodes.get(key)
        if found is None:
            found = self._nodes[key] = self._route(*key)
        return found

    def _route(self, group: str, edge_node: str, device: str) -> Node:
        for route in self._routes:
            if _matches(route, group, edge_node, device):
                path = route.path.format(group=group, edge_node=edge_node, device=device)
                segments = [_segment(s) for s in path.split("/")]
                return Node.from_segments(segments)
        raise TopicError(f"no Sparkplug route for {group}/{edge_node}/{device}")  # unreachable

    @staticmethod
    def tag(metric_name: str) -> str | None:
        """The UNS tag name of a metric, or None for protocol metrics."""
        return _tag(metric_name)


def _matches(route: SparkplugRoute, group: str, edge_node: str, device: str) -> bool:
    return (
        fnmatchcase(group, route.group)
        and fnmatchcase(edge_node, route.edge_node)
        and fnmatchcase(device, route.device)
    )


def _segment(value: str) -> str:
    cleaned = _NOT_NAME.sub("_", value.strip())
    return cleaned if cleaned[:1].isalnum() else f"x{cleaned}"


@lru_cache(maxsize=262_144)
def _tag(metric_name: str) -> str | None:
    if metric_name.startswith(_PROTOCOL_METRICS) or not metric_name.strip():
        return None
    tag = ".".join(_segment(part) for part in metric_name.split("/") if part.strip())
    try:
        check_tag(tag)
    except TopicError:
        return None
    return tag
