"""The Sparkplug B 3.0 edge-node protocol: births, deaths and data (no I/O).

`EdgeNode` keeps what the protocol needs between messages: the devices and their tag
specs, one alias per metric (unique across the node and stable for the life of the
process), the last reading of every tag (births carry current values) and the sequence
number (0 with NBIRTH, +1 per message, 255 wraps to 0). It builds payloads; the agent
publishes them in the order it built them; `werk.edge.metrics` shapes each metric.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from werk.edge.buffer import Sample
from werk.edge.metrics import birth_metric, data_metric, fit_value, wire_datatype
from werk.edge.model import Reading, TagSpec, Value
from werk.sparkplug.codec import Metric, Payload
from werk.sparkplug.datatypes import DataType
from werk.sparkplug.topics import MessageType, SparkplugTopic
from werk.uns.contracts import Quality

__all__ = [
    "BDSEQ",
    "BUFFERED_SAMPLES",
    "BUFFER_BYTES",
    "COMMAND_ERROR",
    "COMMAND_ID",
    "COMMAND_STATUS",
    "DROPPED_SAMPLES",
    "REBIRTH",
    "SEQ_MODULO",
    "BdSeq",
    "EdgeNode",
    "RebirthThrottle",
    "connector_state_metric",
    "fit_value",
    "wire_datatype",
]

_LOGGER = logging.getLogger(__name__)

SEQ_MODULO: Final = 256
BDSEQ: Final = "bdSeq"
REBIRTH: Final = "Node Control/Rebirth"
BUFFERED_SAMPLES: Final = "Edge/Buffered Samples"
BUFFER_BYTES: Final = "Edge/Buffer Bytes"
DROPPED_SAMPLES: Final = "Edge/Dropped Samples"
COMMAND_ID: Final = "werk.command_id"
COMMAND_STATUS: Final = "werk.command_status"
COMMAND_ERROR: Final = "werk.command_error"


def connector_state_metric(device: str) -> str:
    """The node metric that carries a connector's state."""
    return f"Edge/Connectors/{device}/State"


class BdSeq:
    """The birth/death sequence number (0..255), persisted so it survives restarts."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._last = self._load()

    @property
    def last(self) -> int | None:
        """The value of the latest MQTT CONNECT, if any."""
        return self._last

    def next(self) -> int:
        """The value for the next MQTT CONNECT (not yet committed)."""
        return 0 if self._last is None else (self._last + 1) % SEQ_MODULO

    def commit(self, value: int) -> None:
        """Record that a CONNECT carried `value`."""
        tmp = self._path.with_suffix(".tmp")
        with tmp.open("w", encoding="ascii") as file:
            file.write(f"{value}\n")
            file.flush()
            os.fsync(file.fileno())
        tmp.replace(self._path)
        self._last = value

    def _load(self) -> int | None:
        try:
            value = int(self._path.read_text("ascii"))
        except FileNotFoundError:
            return None
        except ValueError:
            _LOGGER.warning("%s is unreadable; bdSeq starts again at 0", self._path)
            return None
        return value % SEQ_MODULO


class RebirthThrottle:
    """At most one rebirth per interval; a request inside the interval waits for its end."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self._interval = interval_s
        self._last: float | None = None
        self.pending = False

    def request(self) -> None:
        """Ask for a rebirth."""
        self.pending = True

    def due(self, now: float) -> bool:
        """Whether a requested rebirth may happen at monotonic time `now`."""
        return self.pending and (self._last is None or now - self._last >= self._interval)

    def done(self, now: float) -> None:
        """Note that a complete birth sequence went out at `now`."""
        self.pending = False
        self._last = now


@dataclass(slots=True)
class _Device:
    specs: dict[str, TagSpec]
    current: dict[str, Reading] = field(default_factory=dict)
    invalid: set[str] = field(default_factory=set)


class EdgeNode:
    """Protocol state of one Sparkplug edge node and the payloads it publishes."""

    def __init__(self, group: str, edge_node: str) -> None:
        self.group = group
        self.edge_node = edge_node
        self._devices: dict[str, _Device] = {}
        self._aliases: dict[tuple[str | None, str], int] = {}
        self._names: dict[int, tuple[str | None, str]] = {}
        self._node_metrics: dict[str, tuple[DataType, Value]] = {}
        self._seq = 0

    # -- identity -----------------------------------------------------------------------

    def topic(self, kind: MessageType, device: str | None = None) -> str:
        """The topic of a message of this node (or of one of its devices)."""
        return SparkplugTopic(self.group, kind, self.edge_node, device).topic

    def alias(self, device: str | None, name: str) -> int:
        """The alias of a metric (None: a node metric), assigned on first use."""
        key = (device, name)
        found = self._aliases.get(key)
        if found is None:
            found = self._aliases[key] = len(self._aliases) + 1
            self._names[found] = key
        return found

    @property
    def seq(self) -> int:
        """The sequence number of the latest message."""
        return (self._seq - 1) % SEQ_MODULO

    def _next_seq(self) -> int:
        seq, self._seq = self._seq, (self._seq + 1) % SEQ_MODULO
        return seq

    # -- devices and values ---------------------------------------------------------------

    @property
    def devices(self) -> list[str]:
        """The devices, in the order they were added."""
        return list(self._devices)

    def set_device(self, device: str, specs: Iterable[TagSpec]) -> bool:
        """Declare (or redeclare) a device's tags; True when its births would change."""
        new = {spec.name: spec for spec in specs}
        old = self._devices.get(device)
        for name in new:
            self.alias(device, name)
        if old is None:
            self._devices[device] = _Device(new)
            return True
        changed = old.specs != new
        old.specs = new
        return changed

    def remove_device(self, device: str) -> None:
        """Forget a device (its aliases stay reserved)."""
        self._devices.pop(device, None)

    def spec(self, device: str, tag: str) -> TagSpec | None:
        """The spec of a device's tag, if declared."""
        state = self._devices.get(device)
        return None if state is None else state.specs.get(tag)

    def accept(self, device: str, readings: Sequence[Reading]) -> tuple[list[Reading], list[str]]:
        """Fit readings to their tags' datatypes and keep them as current values.

        Returns the fitted readings and the names of tags the device has not declared.
        """
        state = self._devices[device]
        accepted: list[Reading] = []
        unknown: list[str] = []
        for reading in readings:
            spec = state.specs.get(reading.tag)
            if spec is None:
                unknown.append(reading.tag)
                continue
            value, quality = self._checked(state, spec, reading.value, reading.quality)
            fitted = Reading(spec.name, value, reading.ts_ns, quality)
            accepted.append(fitted)
            state.current[spec.name] = fitted
        return accepted, unknown

    def samples(self, device: str, readings: Sequence[Reading]) -> list[Sample]:
        """Accepted readings as buffer samples (with their datatypes)."""
        specs = self._devices[device].specs
        return [Sample(r.tag, specs[r.tag].datatype, r.value, r.ts_ns, r.quality) for r in readings]

    def current(self, device: str, tag: str) -> Reading | None:
        """The latest reading of a tag."""
        state = self._devices.get(device)
        return None if state is None else state.current.get(tag)

    def _checked(
        self, state: _Device, spec: TagSpec, value: Value | None, quality: Quality
    ) -> tuple[Value | None, Quality]:
        fitted = fit_value(spec.datatype, value)
        if value is None or fitted is not None:
            return fitted, quality
        if spec.name not in state.invalid:
            state.invalid.add(spec.name)
            _LOGGER.warning(
                "tag %s: %r does not fit %s; sent as BAD", spec.name, value, spec.datatype.name
            )
        return None, Quality.BAD

    def set_node_metric(self, name: str, datatype: DataType, value: Value) -> bool:
        """Set a node metric; True when its value changed."""
        self.alias(None, name)
        old = self._node_metrics.get(name)
        self._node_metrics[name] = (datatype, value)
        return old is None or old[1] != value

    def remove_node_metric(self, name: str) -> None:
        """Stop declaring a node metric (from the next NBIRTH on)."""
        self._node_metrics.pop(name, None)

    # -- births, deaths, data -----------------------------------------------------------

    def nbirth(self, bd_seq: int, now_ms: int) -> Payload:
        """The NBIRTH; the sequence starts again at 0."""
        self._seq = 0
        metrics = [
            self._birth_node_metric(BDSEQ, DataType.INT64, bd_seq, now_ms),
            self._birth_node_metric(REBIRTH, DataType.BOOLEAN, False, now_ms),
        ]
        for name, (datatype, value) in self._node_metrics.items():
            metrics.append(self._birth_node_metric(name, datatype, value, now_ms))
        return Payload(timestamp=now_ms, metrics=tuple(metrics), seq=self._next_seq())

    def dbirth(self, device: str, now_ms: int) -> Payload:
        """The DBIRTH of a device with every tag's current value."""
        state = self._devices[device]
        metrics = tuple(
            birth_metric(
                self._aliases[(device, spec.name)], spec, state.current.get(spec.name), now_ms
            )
            for spec in state.specs.values()
        )
        return Payload(timestamp=now_ms, metrics=metrics, seq=self._next_seq())

    @staticmethod
    def ndeath(bd_seq: int, now_ms: int | None) -> Payload:
        """The NDEATH (also the MQTT Will): the bdSeq metric and no sequence number."""
        metric = Metric(name=BDSEQ, timestamp=now_ms, datatype=DataType.INT64, value=bd_seq)
        return Payload(timestamp=now_ms, metrics=(metric,), seq=None)

    def ddeath(self, now_ms: int) -> Payload:
        """A DDEATH."""
        return Payload(timestamp=now_ms, metrics=(), seq=self._next_seq())

    def ndata(self, names: Iterable[str], now_ms: int) -> Payload:
        """An NDATA with the current values of the named node metrics."""
        metrics = tuple(
            data_metric(self.alias(None, name), *self._node_metrics[name], now_ms)
            for name in names
            if name in self._node_metrics
        )
        return Payload(timestamp=now_ms, metrics=metrics, seq=self._next_seq())

    def ddata(
        self, device: str, samples: Sequence[Sample], now_ms: int, *, historical: bool = False
    ) -> Payload:
        """A DDATA of declared samples (aliases only), taking the next sequence number."""
        metrics = tuple(
            data_metric(
                self._aliases[(device, s.tag)], s.datatype, s.value, s.ts_ns // 1_000_000,
                s.quality, historical=historical,
            )
            for s in samples
        )  # fmt: skip
        return Payload(timestamp=now_ms, metrics=metrics, seq=self._next_seq())

    def publishable(self, device: str, samples: Sequence[Sample]) -> tuple[list[Sample], int]:
        """The samples a device's births declare (same name and type), and how many are not."""
        state = self._devices.get(device)
        if state is None:
            return [], len(samples)
        specs = state.specs
        kept = [s for s in samples if (spec := specs.get(s.tag)) and spec.datatype == s.datatype]
        return kept, len(samples) - len(kept)

    def name_of(self, alias: int) -> tuple[str | None, str] | None:
        """(device or None for the node, metric name) of an alias."""
        return self._names.get(alias)

    def node_metric_type(self, name: str) -> DataType | None:
        """The datatype of a node metric (Node Control/Rebirth included)."""
        if name == REBIRTH:
            return DataType.BOOLEAN
        found = self._node_metrics.get(name)
        return None if found is None else found[0]

    def data(self, metrics: tuple[Metric, ...], now_ms: int) -> Payload:
        """A DATA payload of ready metrics, taking the next sequence number."""
        return Payload(timestamp=now_ms, metrics=metrics, seq=self._next_seq())

    # -- metric builders ------------------------------------------------------------------

    def _birth_node_metric(
        self, name: str, datatype: DataType, value: Value, now_ms: int
    ) -> Metric:
        return Metric(
            name=name, alias=self.alias(None, name), timestamp=now_ms, datatype=datatype,
            value=value,
        )  # fmt: skip
