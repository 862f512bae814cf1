"""The Sparkplug B host application's message logic: births, deaths, data, sequence.

`SparkplugHost` is a UNS translator: the historian writer hands it every spooled
``spBv1.0/...`` message in arrival order and stores the samples it returns. It keeps
per edge node the bdSeq, the sequence number, the alias map of each birth and the
devices; it asks for a rebirth (through `HostEffects`) on a sequence gap, an unknown
alias or data before a birth, at most once per throttle interval; on a death it marks
every metric of the node or device STALE at the host's clock. MQTT itself (STATE,
subscriptions, publishing commands) lives in `werk.sparkplug.client`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Final, TypeVar

from werk.core.clock import NS_PER_MS, NS_PER_S, now_ns
from werk.core.errors import NotFound, PayloadError, Unavailable
from werk.core.settings import Settings
from werk.sparkplug.codec import Metric, Payload, data_columns, decode
from werk.sparkplug.convert import (
    Converted,
    bd_seq_of,
    in_range,
    is_plain,
    message_id,
    plain_columns,
    to_samples,
)
from werk.sparkplug.datatypes import COMMAND_ERROR, COMMAND_ID, COMMAND_STATUS
from werk.sparkplug.effects import CommandResult, HostEffects
from werk.sparkplug.mapping import UnsMapper
from werk.sparkplug.samples import (
    bool_property,
    text_property,
    uns_type,
)
from werk.sparkplug.state import (
    DeviceState,
    EdgeNodeState,
    MetricInfo,
    SeqOutcome,
    SeqTracker,
)
from werk.sparkplug.topics import (
    NAMESPACE,
    MessageType,
    SparkplugTopic,
    StateTopic,
    parse_topic,
)
from werk.uns.contracts import Decoded, Quality, Sample
from werk.uns.translate import Translation

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")

UNIT_PROPERTY: Final = "engUnit"
WRITABLE_PROPERTY: Final = "Writable"
_FUTURE_NS: Final = 24 * 3600 * NS_PER_S


class SparkplugHost:
    """Translate Sparkplug B messages into UNS samples, keeping per-node state."""

    topic_prefix = f"{NAMESPACE}/"

    def __init__(self, settings: Settings, effects: HostEffects) -> None:
        self._settings = settings
        self._effects = effects
        self._mapper = UnsMapper(settings.sparkplug_routes)
        self._nodes: dict[tuple[str, str], EdgeNodeState] = {}
        self._timeout_ns = settings.sparkplug_reorder_timeout_ms * 1_000_000
        self._throttle_ns = int(settings.sparkplug_rebirth_throttle_s * NS_PER_S)
        self._lock = threading.Lock()
        self._restoring = False

    def nodes(self) -> list[EdgeNodeState]:
        """Every edge node seen, sorted by group and id."""
        with self._lock:
            return [self._nodes[k] for k in sorted(self._nodes)]

    def view(self, read: Callable[[EdgeNodeState], _T]) -> list[_T]:
        """`read` applied to every node while no message changes them."""
        with self._lock:
            return [read(self._nodes[k]) for k in sorted(self._nodes)]

    def view_one(self, group: str, edge_node: str, read: Callable[[EdgeNodeState], _T]) -> _T:
        """`read` applied to one node while no message changes it; NotFound if unseen."""
        with self._lock:
            node = self._nodes.get((group, edge_node))
            if node is None:
                raise NotFound(f"no Sparkplug edge node {group}/{edge_node}", code="unknown_node")
            return read(node)

    def node(self, group: str, edge_node: str) -> EdgeNodeState | None:
        """One edge node, if seen."""
        return self._nodes.get((group, edge_node))

    def find_metric(self, tag_path: str) -> tuple[EdgeNodeState, MetricInfo] | None:
        """The node and metric behind a UNS tag path, if a Sparkplug birth declared it."""
        with self._lock:
            for node in self._nodes.values():
                for device in node.devices.values():
                    for info in device.metrics.values():
                        if info.tag_path == tag_path:
                            return node, info
        return None

    def restore(self, births: Iterable[tuple[str, bytes]]) -> None:
        """Rebuild alias maps from stored births (topic, payload), oldest first."""
        self._restoring = True
        try:
            for topic, payload in births:
                try:
                    self.translate(topic, payload, now_ns())
                except PayloadError as exc:
                    _LOGGER.warning("ignoring a stored birth on %s: %s", topic, exc)
        finally:
            self._restoring = False
        for node in self._nodes.values():
            node.seq.reset(None)  # accept whatever sequence number comes next

    def translate(self, topic: str, payload: bytes, received_ns: int) -> Translation:
        """Handle one Sparkplug message (see the module docstring)."""
        parsed = parse_topic(topic)
        if isinstance(parsed, StateTopic) or parsed.message_type.is_command:
            return Translation(None)
        limit = self._settings.sparkplug_max_payload
        if len(payload) > limit:
            raise PayloadError(
                f"Sparkplug payload is {len(payload)} bytes; the limit is {limit}",
                code="too_large",
            )
        with self._lock:
            return self._dispatch(parsed, topic, payload, received_ns)

    def tick(self, now: int) -> None:
        """Ask for a rebirth where a sequence gap outlived the reorder timeout."""
        with self._lock:
            expired = [n for n in self._nodes.values() if n.online and n.seq.expired(now)]
        for node in expired:
            node.stats.seq_errors += 1
            self._rebirth(node, now, "messages missing after the reorder timeout")

    def rebirth(self, group: str, edge_node: str) -> None:
        """Ask an edge node to publish its births again (ignoring the throttle)."""
        node = self._node(group, edge_node)
        node.last_rebirth_request_ns = None
        self._rebirth(node, now_ns(), "requested by a user")

    def _dispatch(
        self, topic: SparkplugTopic, raw_topic: str, payload: bytes, received_ns: int
    ) -> Translation:
        node = self._node(topic.group, topic.edge_node)
        node.stats.messages += 1
        node.stats.last_message_ns = received_ns
        kind = topic.message_type
        if kind is MessageType.NBIRTH:
            return self._node_birth(node, raw_topic, payload, received_ns)
        if kind is MessageType.NDEATH:
            return self._node_death(node, raw_topic, payload, received_ns)
        if not node.online:
            return self._before_birth(node, kind, received_ns)
        if kind.is_data:
            fast = self._plain_data(node, topic.device, raw_topic, payload, received_ns)
            if fast is not None:
                return fast
        message = decode(payload, node.lookup(topic.device))
        self._check_seq(node, message, received_ns)
        if kind is MessageType.DBIRTH:
            return self._device_birth(node, topic.device, raw_topic, payload, message, received_ns)
        if kind is MessageType.DDEATH:
            return self._device_death(node, topic.device, raw_topic, payload, received_ns)
        return self._data(node, topic.device, raw_topic, payload, message, received_ns)

    def _node(self, group: str, edge_node: str) -> EdgeNodeState:
        key = (group, edge_node)
        node = self._nodes.get(key)
        if node is None:
            node = self._nodes[key] = EdgeNodeState(group, edge_node, SeqTracker(self._timeout_ns))
        return node

    # -- births and deaths -------------------------------------------------------------

    def _node_birth(
        self, node: EdgeNodeState, topic: str, payload: bytes, received_ns: int
    ) -> Translation:
        message = decode(payload)
        bd_seq = bd_seq_of(message)
        if bd_seq is None:
            raise PayloadError("NBIRTH has no bdSeq metric", code="sparkplug_no_bdseq")
        node.forget_aliases()
        node.devices.clear()
        node.online, node.bd_seq, node.birth_ns = True, bd_seq, received_ns
        node.seq.reset(message.seq)
        state = self._device_state(node, None, received_ns)
        problems = self._declare(node, state, message.metrics)
        if not self._restoring:
            self._effects.record_birth(node, None, payload)
            _LOGGER.info("edge node %s/%s is online (bdSeq %d)", *node.key, bd_seq)
        return self._samples(node, state, topic, payload, message, received_ns, problems)

    def _device_birth(
        self,
        node: EdgeNodeState,
        device: str | None,
        topic: str,
        payload: bytes,
        message: Payload,
        received_ns: int,
    ) -> Translation:
        node.forget_device_aliases(device)
        state = self._device_state(node, device, received_ns)
        state.metrics.clear()
        problems = self._declare(node, state, message.metrics)
        if not self._restoring:
            self._effects.record_birth(node, device, payload)
        return self._samples(node, state, topic, payload, message, received_ns, problems)

    def _device_state(self, node: EdgeNodeState, device: str | None, at_ns: int) -> DeviceState:
        uns_node = self._mapper.node(node.group, node.edge_node, device)
        state = node.devices.get(device)
        if state is None or state.node != uns_node:
            state = node.devices[device] = DeviceState(device, uns_node)
        state.online, state.birth_ns, state.death_ns = True, at_ns, None
        return state

    def _declare(
        self, node: EdgeNodeState, state: DeviceState, metrics: Iterable[Metric]
    ) -> list[tuple[str, str]]:
        """Register the metrics of a birth; report those that cannot be used."""
        problems: list[tuple[str, str]] = []
        base = state.node.path
        for metric in metrics:
            if metric.name is None or metric.datatype is None:
                problems.append(
                    ("sparkplug_birth", f"a birth metric lacks a name or datatype: {metric.alias}")
                )
                continue
            tag = UnsMapper.tag(metric.name)
            path = None if tag is None else self._typed_path(f"{base}/{tag}", metric, problems)
            info = MetricInfo(
                metric.name, metric.alias, metric.datatype, state.device, path,
                text_property(metric.properties, UNIT_PROPERTY),
                bool_property(metric.properties, WRITABLE_PROPERTY),
            )  # fmt: skip
            info.plain = is_plain(info)
            state.metrics[metric.name] = info
            node.declare(info)
        return problems

    def _typed_path(self, path: str, metric: Metric, problems: list[tuple[str, str]]) -> str | None:
        """The tag path, or None when the namespace knows the tag with another type."""
        known = self._effects.tag_type(path)
        declared = uns_type(metric.datatype) if metric.datatype is not None else None
        if known is None or declared is None or known == declared:
            return path
        problems.append(("type_changed", f"{metric.name!r} is now {declared}; tag {path!r} is "
                                         f"{known}, so its values are not stored"))  # fmt: skip
        return None

    def _node_death(
        self, node: EdgeNodeState, topic: str, payload: bytes, received_ns: int
    ) -> Translation:
        bd_seq = bd_seq_of(decode(payload))
        if not node.online or bd_seq is None or bd_seq != node.bd_seq:
            node.stats.late_deaths += 1
            _LOGGER.info("ignoring NDEATH of %s/%s with bdSeq %s (current %s)",
                         *node.key, bd_seq, node.bd_seq)  # fmt: skip
            return Translation(None)
        node.online, node.death_ns = False, received_ns
        devices = list(node.devices.values())
        for state in devices:
            state.online, state.death_ns = False, received_ns
        if not self._restoring:
            self._effects.record_death(node, None)
            _LOGGER.info("edge node %s/%s is offline", *node.key)
        return self._stale(devices, topic, payload, received_ns)

    def _device_death(
        self, node: EdgeNodeState, device: str | None, topic: str, payload: bytes, received_ns: int
    ) -> Translation:
        state = node.devices.get(device)
        if state is None or not state.online:
            return Translation(None)
        state.online, state.death_ns = False, received_ns
        if not self._restoring:
            self._effects.record_death(node, device)
        return self._stale([state], topic, payload, received_ns)

    def _stale(
        self, devices: list[DeviceState], topic: str, payload: bytes, received_ns: int
    ) -> Translation:
        """A STALE sample of every metric with a last-known value.

        The value is the newest the host emitted (which the namespace may not have yet
        when data and death share a writer batch), else the namespace's. The sample is
        stamped at the host's clock, or just after the newest data if the edge node's
        clock runs ahead, so that it becomes the last-known value.
        """
        samples = []
        for state in devices:
            emitted = state.recent_values()
            stamp = max(received_ns, state.newest_ns + 1)
            for info in state.metrics.values():
                path = info.tag_path
                if path is None:
                    continue
                value = emitted.get(path, self._effects.last_value(path))
                if value is not None:
                    samples.append(Sample(path, stamp, value, Quality.STALE, None))
        return Translation(Decoded(message_id(topic, payload), samples))

    def _before_birth(
        self, node: EdgeNodeState, kind: MessageType, received_ns: int
    ) -> Translation:
        node.stats.before_birth += 1
        self._rebirth(node, received_ns, f"{kind} before a birth")
        raise PayloadError(
            f"{kind} from {node.group}/{node.edge_node} before its NBIRTH; a rebirth is requested",
            code="sparkplug_no_birth",
        )

    # -- sequence and rebirth ----------------------------------------------------------

    def _check_seq(self, node: EdgeNodeState, message: Payload, received_ns: int) -> None:
        if message.seq is None:
            raise PayloadError("message has no seq", code="sparkplug_no_seq")
        self._check_seq_number(node, message.seq, received_ns)

    def _check_seq_number(self, node: EdgeNodeState, seq: int, received_ns: int) -> None:
        outcome = node.seq.observe(seq, received_ns)
        if outcome is SeqOutcome.REORDERED:
            node.stats.reordered += 1
        elif outcome in (SeqOutcome.GAP, SeqOutcome.OUT_OF_ORDER):
            node.stats.seq_errors += 1
            self._rebirth(node, received_ns, f"sequence {outcome.value} at seq {seq}")

    def _rebirth(self, node: EdgeNodeState, at_ns: int, why: str) -> None:
        last = node.last_rebirth_request_ns
        if self._restoring or (last is not None and at_ns - last < self._throttle_ns):
            return
        try:
            self._effects.request_rebirth(node.group, node.edge_node)
        except Unavailable as exc:  # the next message or tick asks again
            _LOGGER.warning("cannot ask %s/%s for a rebirth (%s): %s", *node.key, why, exc)
            return
        node.last_rebirth_request_ns = at_ns
        node.stats.rebirths_requested += 1
        _LOGGER.info("asked %s/%s for a rebirth: %s", *node.key, why)

    # -- data ----------------------------------------------------------------------------

    def _data(
        self,
        node: EdgeNodeState,
        device: str | None,
        topic: str,
        payload: bytes,
        message: Payload,
        received_ns: int,
    ) -> Translation:
        state = node.devices.get(device)
        if state is None or not state.online:
            node.stats.before_birth += 1
            self._rebirth(node, received_ns, f"data from device {device} before its DBIRTH")
            raise PayloadError(
                f"DDATA from {node.group}/{node.edge_node}/{device} before its DBIRTH; "
                "a rebirth is requested",
                code="sparkplug_no_birth",
            )
        return self._samples(node, state, topic, payload, message, received_ns, [])

    def _plain_data(
        self,
        node: EdgeNodeState,
        device: str | None,
        topic: str,
        payload: bytes,
        received_ns: int,
    ) -> Translation | None:
        """Data of plain metrics only, column-wise; None when the general path must decide."""
        state = node.devices.get(device)
        if state is None or not state.online:
            return None
        data = data_columns(payload, node.alias_types)
        if data is None or data.seq is None:
            return None
        default_ms = data.timestamp if data.timestamp is not None else received_ns // NS_PER_MS
        columns = plain_columns(node, data.aliases, data.timestamps, data.values, default_ms,
                                received_ns)  # fmt: skip
        if columns is None:
            return None
        self._check_seq_number(node, data.seq, received_ns)
        decoded = Decoded(message_id(topic, payload), [], columns)
        state.remember(decoded)
        return Translation(decoded)

    def _samples(
        self,
        node: EdgeNodeState,
        state: DeviceState,
        topic: str,
        payload: bytes,
        message: Payload,
        received_ns: int,
        problems: list[tuple[str, str]],
    ) -> Translation:
        default_ms = (
            message.timestamp if message.timestamp is not None else received_ns // NS_PER_MS
        )
        converted = to_samples(node, state, message.metrics, default_ms, received_ns)
        for metric, name in converted.commands:
            self._command_result(metric, name, topic)
        if converted.unknown:
            unknown = ", ".join(converted.unknown[:20])
            node.stats.unknown_aliases += len(converted.unknown)
            self._rebirth(node, received_ns, f"unknown metrics {unknown}")
            problems.append(("sparkplug_unknown_alias", f"metrics not in the birth: {unknown}"))
        samples = in_range(converted.samples + self._unreadable(converted), received_ns, problems)
        decoded = Decoded(message_id(topic, payload), samples, converted.columns)
        state.remember(decoded)
        transient = tuple(in_range(converted.transient, received_ns, problems))
        return Translation(decoded, tuple(problems), converted.historical, transient)

    def _unreadable(self, converted: Converted) -> list[Sample]:
        """Samples that keep each unreadable tag's last value, with the quality reported."""
        samples = []
        for path, ts_ns, quality in converted.unreadable:
            value = self._effects.last_value(path)
            if value is not None:
                samples.append(Sample(path, ts_ns, value, quality, None))
        return samples

    def _command_result(self, metric: Metric, name: str, topic: str) -> None:
        props = metric.properties
        command_id = text_property(props, COMMAND_ID)
        if command_id is None or self._restoring:
            return
        status = text_property(props, COMMAND_STATUS) or "done"
        error = text_property(props, COMMAND_ERROR)
        result = CommandResult(command_id, status, metric.value, error, topic, name)
        self._effects.command_result(result)
