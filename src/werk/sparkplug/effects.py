"""What the host application asks of the world outside its message logic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from werk.sparkplug.state import EdgeNodeState


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What an edge node reported about a write, and where the report came from."""

    command_id: str
    status: str
    value: object
    error: str | None
    topic: str  # the DATA topic the answer came on
    metric: str  # the metric's name as the birth declared it


class HostEffects(Protocol):
    """What the host asks of the world outside its message logic."""

    def request_rebirth(self, group: str, edge_node: str) -> None:
        """Publish an NCMD ``Node Control/Rebirth`` to the edge node."""

    def record_birth(self, node: EdgeNodeState, device: str | None, payload: bytes) -> None:
        """Keep a birth certificate so aliases survive a restart of werk."""

    def record_death(self, node: EdgeNodeState, device: str | None) -> None:
        """Note that a node or device went offline."""

    def command_result(self, result: CommandResult) -> None:
        """An edge node reported the outcome of a write."""

    def tag_type(self, tag_path: str) -> str | None:
        """The namespace's data type of a tag (number, boolean, string), if it knows it."""

    def last_value(self, tag_path: str) -> bool | int | float | str | None:
        """The last-known value of a tag, for STALE samples."""
