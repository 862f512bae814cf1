"""Host state and command records as API schemas."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import orjson

from werk.core.clock import to_datetime
from werk.sparkplug.convert import is_writable
from werk.sparkplug.models import CommandRecord
from werk.sparkplug.schemas import CommandRead, DeviceRead, MetricRead, NodeRead
from werk.sparkplug.state import DeviceState, EdgeNodeState, MetricInfo

BUFFER_METRIC = "Edge/Buffered Samples"


def node_read(node: EdgeNodeState, *, with_metrics: bool = False) -> NodeRead:
    """One edge node, optionally with every metric of every device."""
    buffered = node.edge_metrics.get(BUFFER_METRIC)
    stats = node.stats
    return NodeRead(
        group=node.group, edge_node=node.edge_node, online=node.online, bd_seq=node.bd_seq,
        birth=_time(node.birth_ns), death=_time(node.death_ns), expected_seq=node.seq.expected,
        messages=stats.messages, seq_errors=stats.seq_errors, reordered=stats.reordered,
        rebirths_requested=stats.rebirths_requested, late_deaths=stats.late_deaths,
        unknown_aliases=stats.unknown_aliases, before_birth=stats.before_birth,
        last_message=_time(stats.last_message_ns),
        buffered_samples=buffered if isinstance(buffered, int) else None,
        edge_metrics={k: v for k, v in node.edge_metrics.items() if _plain(v)},
        devices=[_device(d, with_metrics) for d in _sorted(node.devices.values())],
    )  # fmt: skip


def command_read(record: CommandRecord) -> CommandRead:
    """One command of the log."""
    return CommandRead(
        id=record.id, tag=record.tag_path, metric=record.metric, topic=record.topic,
        value=orjson.loads(record.value_json), status=record.status,
        requested=to_datetime(record.requested_ns), requested_by=record.requested_by,
        origin=record.origin, completed=_time(record.completed_ns),
        result=None if record.result_json is None else orjson.loads(record.result_json),
        error=record.error,
    )  # fmt: skip


def _device(state: DeviceState, with_metrics: bool) -> DeviceRead:
    metrics = [_metric(m) for m in state.metrics.values()] if with_metrics else None
    return DeviceRead(
        device=state.device, uns_path=state.node.path, online=state.online,
        birth=_time(state.birth_ns), death=_time(state.death_ns), metrics=len(state.metrics),
        metric_list=metrics,
    )  # fmt: skip


def _metric(info: MetricInfo) -> MetricRead:
    return MetricRead(
        name=info.name, alias=info.alias, datatype=info.datatype.name, tag=info.tag_path,
        unit=info.unit, writable=is_writable(info) and info.tag_path is not None,
    )  # fmt: skip


def _sorted(devices: Iterable[DeviceState]) -> list[DeviceState]:
    return sorted(devices, key=lambda d: d.device or "")


def _plain(value: object) -> bool:
    return isinstance(value, bool | int | float | str)


def _time(ns: int | None) -> datetime | None:
    return None if ns is None else to_datetime(ns)
