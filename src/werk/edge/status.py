"""What an edge agent reports about itself (`EdgeAgent.status()`, `werk edge` output)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from werk.edge.buffer import BufferStats
from werk.edge.connectors import Connector, ConnectorHealth
from werk.edge.model import Value
from werk.edge.node import BUFFER_BYTES, BUFFERED_SAMPLES, DROPPED_SAMPLES, connector_state_metric
from werk.sparkplug.datatypes import DataType


@dataclass(slots=True)
class Counters:
    """Running totals since the agent started."""

    messages: int = 0  # Sparkplug messages published
    live_samples: int = 0  # samples published as live DDATA
    replayed_samples: int = 0  # samples published from the buffer (historical)
    buffered_samples: int = 0  # samples written to the buffer
    dropped_samples: int = 0  # samples given up outside the buffer's own bounds


@dataclass(frozen=True, slots=True)
class EdgeStatus:
    """A snapshot: connection, primary host, Sparkplug sequence, buffer and connectors.

    `online` means the births are out and live data flows; `connected` only that the MQTT
    connection is up; `host_online` is the primary host's STATE (True without one).
    `dropped_samples` adds the buffer's drops (bounds) to the agent's own.
    """

    online: bool
    connected: bool
    host_online: bool
    bdseq: int | None
    seq: int
    buffered_samples: int
    buffer_bytes: int
    dropped_samples: int
    published_messages: int
    live_samples: int
    replayed_samples: int
    connectors: dict[str, ConnectorHealth] = field(default_factory=dict)


def node_metrics(
    stats: BufferStats, dropped: int, connectors: Mapping[str, Connector[Any]]
) -> list[tuple[str, DataType, Value]]:
    """The edge node's own metrics: buffer figures and each connector's state."""
    values: list[tuple[str, DataType, Value]] = [
        (BUFFERED_SAMPLES, DataType.UINT64, stats.samples),
        (BUFFER_BYTES, DataType.UINT64, stats.bytes),
        (DROPPED_SAMPLES, DataType.UINT64, stats.dropped + dropped),
    ]
    for name, connector in list(connectors.items()):
        state = str(connector.health().state)
        values.append((connector_state_metric(name), DataType.STRING, state))
    return values
