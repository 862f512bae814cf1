"""What the host knows of each edge node and device: pure state, no I/O."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from werk.sparkplug.datatypes import DataType
from werk.uns.contracts import Decoded
from werk.uns.topics import Node

SEQ_MODULO: Final = 256
RECENT_MESSAGES: Final = 64  # per device, for the values of a death in the same batch


class SeqOutcome(StrEnum):
    """How a message's sequence number relates to the ones before it."""

    IN_ORDER = "in_order"
    REORDERED = "reordered"  # a late message that fills a gap within the reorder timeout
    GAP = "gap"  # messages are missing and the reorder timeout is zero
    GAP_PENDING = "gap_pending"  # messages are missing; wait for the reorder timeout
    OUT_OF_ORDER = "out_of_order"  # a repeated or stale sequence number


class SeqTracker:
    """Sequence numbers 0-255 of one edge node's messages, with a reorder window."""

    def __init__(self, reorder_timeout_ns: int) -> None:
        self._timeout_ns = reorder_timeout_ns
        self.expected: int | None = None
        self._missing: dict[int, int] = {}

    def reset(self, birth_seq: int | None) -> None:
        """Start again after a birth."""
        self.expected = None if birth_seq is None else (birth_seq + 1) % SEQ_MODULO
        self._missing.clear()

    def observe(self, seq: int, now_ns: int) -> SeqOutcome:
        """Account for a message with sequence number `seq`."""
        if self.expected is None or seq == self.expected:
            self.expected = (seq + 1) % SEQ_MODULO
            return SeqOutcome.IN_ORDER
        if self._missing.pop(seq, None) is not None:
            return SeqOutcome.REORDERED
        if (seq - self.expected) % SEQ_MODULO >= SEQ_MODULO // 2:
            return SeqOutcome.OUT_OF_ORDER
        deadline = now_ns + self._timeout_ns
        skipped = self.expected
        while skipped != seq:
            self._missing[skipped] = deadline
            skipped = (skipped + 1) % SEQ_MODULO
        self.expected = (seq + 1) % SEQ_MODULO
        if self._timeout_ns == 0:
            self._missing.clear()
            return SeqOutcome.GAP
        return SeqOutcome.GAP_PENDING

    def expired(self, now_ns: int) -> bool:
        """Whether a missing message outlived the reorder timeout (and forget the gap)."""
        if self._missing and min(self._missing.values()) <= now_ns:
            self._missing.clear()
            return True
        return False

    @property
    def waiting(self) -> int:
        """Sequence numbers still awaited within the reorder timeout."""
        return len(self._missing)


Converter = Callable[[Any], Any]


@dataclass(slots=True)
class MetricInfo:
    """A metric as its birth declared it, and where it goes in the namespace."""

    name: str
    alias: int | None
    datatype: DataType
    device: str | None
    tag_path: str | None
    unit: str | None = None
    writable: bool | None = None
    plain: bool = False  # a scalar UNS tag whose values are stored as they come


@dataclass(slots=True)
class DeviceState:
    """A device of an edge node (or the node's own metrics when `device` is None)."""

    device: str | None
    node: Node
    online: bool = False
    birth_ns: int | None = None
    death_ns: int | None = None
    metrics: dict[str, MetricInfo] = field(default_factory=dict)
    recent: deque[Decoded] = field(default_factory=lambda: deque(maxlen=RECENT_MESSAGES))
    newest_ns: int = 0

    def remember(self, decoded: Decoded) -> None:
        """Keep what a message emitted (references only) for a death that may follow."""
        self.recent.append(decoded)
        stamps = [s.ts_ns for s in decoded.samples]
        if decoded.columns is not None and decoded.columns.ts_ns:
            stamps.append(max(decoded.columns.ts_ns))
        if stamps:
            self.newest_ns = max(self.newest_ns, *stamps)

    def recent_values(self) -> dict[str, bool | int | float | str]:
        """The newest value of each tag among the recent messages, oldest first."""
        values: dict[str, bool | int | float | str] = {}
        for decoded in self.recent:
            values.update((s.tag_path, s.value) for s in decoded.samples)
            if decoded.columns is not None:
                values.update(zip(decoded.columns.tags, decoded.columns.values, strict=True))
        return values


@dataclass(slots=True)
class NodeStats:
    """Counters of one edge node since the host started."""

    messages: int = 0
    seq_errors: int = 0
    reordered: int = 0
    rebirths_requested: int = 0
    late_deaths: int = 0
    unknown_aliases: int = 0
    before_birth: int = 0
    last_message_ns: int | None = None


@dataclass(slots=True)
class EdgeNodeState:
    """One edge node: lifecycle, bdSeq, sequence tracking, aliases and devices."""

    group: str
    edge_node: str
    seq: SeqTracker
    online: bool = False
    bd_seq: int | None = None
    birth_ns: int | None = None
    death_ns: int | None = None
    last_rebirth_request_ns: int | None = None
    aliases: dict[int, MetricInfo] = field(default_factory=dict)
    alias_types: dict[int, DataType] = field(default_factory=dict)
    plain_paths: dict[int, str] = field(default_factory=dict)  # alias -> tag path
    plain_units: dict[int, str | None] = field(default_factory=dict)
    devices: dict[str | None, DeviceState] = field(default_factory=dict)
    edge_metrics: dict[str, Any] = field(default_factory=dict)
    stats: NodeStats = field(default_factory=NodeStats)

    @property
    def key(self) -> tuple[str, str]:
        """Group and edge node id."""
        return (self.group, self.edge_node)

    def lookup(self, device: str | None) -> Callable[[str | None, int | None], DataType | None]:
        """Datatype lookup for the codec: by alias across the node, else by name in `device`."""
        aliases = self.aliases
        state = self.devices.get(device)
        names = state.metrics if state is not None else {}

        def datatype_of(name: str | None, alias: int | None) -> DataType | None:
            info = aliases.get(alias) if alias is not None else None
            if info is None and name is not None:
                info = names.get(name)
            return None if info is None else info.datatype

        return datatype_of

    def declare(self, info: MetricInfo) -> None:
        """Register a metric's alias from a birth."""
        if info.alias is None:
            return
        self.aliases[info.alias] = info
        self.alias_types[info.alias] = info.datatype
        if info.plain and info.tag_path is not None:
            self.plain_paths[info.alias] = info.tag_path
            self.plain_units[info.alias] = info.unit
        else:
            self.plain_paths.pop(info.alias, None)
            self.plain_units.pop(info.alias, None)

    def forget_aliases(self) -> None:
        """Drop every alias (a new NBIRTH follows)."""
        self.aliases.clear()
        self.alias_types.clear()
        self.plain_paths.clear()
        self.plain_units.clear()

    def forget_device_aliases(self, device: str | None) -> None:
        """Drop the aliases a device declared (before it is born again)."""
        state = self.devices.get(device)
        if state is None:
            return
        for info in state.metrics.values():
            if info.alias is not None and self.aliases.get(info.alias) is info:
                del self.aliases[info.alias]
                del self.alias_types[info.alias]
                self.plain_paths.pop(info.alias, None)
                self.plain_units.pop(info.alias, None)
