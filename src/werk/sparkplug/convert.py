"""The metrics of one Sparkplug message as UNS samples, with a fast path for plain data.

A busy NDATA/DDATA carries many metrics by alias with a timestamp and a scalar value; for
those the samples are built column-wise. Anything else (properties, nulls, templates,
complex values, edge-node metrics, unknown aliases) takes the metric-by-metric path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from werk.core.clock import NS_PER_MS, NS_PER_S
from werk.sparkplug.codec import Metric, Payload, Template
from werk.sparkplug.datatypes import COMMAND_ID, DataType
from werk.sparkplug.samples import converter, ms_to_ns, quality_of, template_members, text_property
from werk.sparkplug.state import DeviceState, EdgeNodeState, MetricInfo
from werk.uns.contracts import Quality, Sample, SampleColumns

EDGE_PREFIX: Final = "Edge/"
_FUTURE_NS: Final = 24 * 3600 * NS_PER_S
_GOOD: Final = Quality.GOOD


@dataclass(slots=True)
class Converted:
    """Samples of a message, and what else it carried."""

    samples: list[Sample] = field(default_factory=list)
    columns: SampleColumns | None = None
    unknown: list[str] = field(default_factory=list)
    commands: list[tuple[Metric, str]] = field(default_factory=list)  # with metric names
    unreadable: list[tuple[str, int, Quality]] = field(default_factory=list)  # path, ts, quality
    transient: list[Sample] = field(default_factory=list)  # not to be historized
    historical: bool = False


def to_samples(
    node: EdgeNodeState,
    state: DeviceState,
    metrics: Sequence[Metric],
    default_ms: int,
    received_ns: int,
) -> Converted:
    """Turn metrics into samples (see the module docstring)."""
    columns = _plain(node, metrics, default_ms, received_ns)
    if columns is not None:
        return Converted(columns=columns)
    converted = Converted()
    for metric in metrics:
        _one(node, state, metric, default_ms, converted)
    return converted


def _plain(
    node: EdgeNodeState, metrics: Sequence[Metric], default_ms: int, received_ns: int
) -> SampleColumns | None:
    """Columns for metrics that are all plain, live and without properties."""
    if any(
        m.properties is not None or m.is_null or m.is_historical or m.is_transient for m in metrics
    ):
        return None
    aliases = [m.alias for m in metrics]
    stamps = [m.timestamp for m in metrics]
    values = [m.value for m in metrics]
    return plain_columns(node, aliases, stamps, values, default_ms, received_ns)  # type: ignore[arg-type]


def plain_columns(
    node: EdgeNodeState,
    aliases: list[int],
    stamps: list[int | None],
    values: list[bool | int | float | str],
    default_ms: int,
    received_ns: int,
) -> SampleColumns | None:
    """Columns when every alias is a plain metric and every timestamp in range, else None."""
    paths = node.plain_paths
    if not aliases or not paths.keys() >= set(aliases):
        return None
    known: list[int] = (
        [default_ms if t is None else t for t in stamps] if None in stamps else stamps  # type: ignore[assignment]
    )
    if min(known) < 0 or max(known) * NS_PER_MS > received_ns + _FUTURE_NS:
        return None
    return SampleColumns(
        list(map(paths.__getitem__, aliases)),
        [t * NS_PER_MS for t in known],
        values,
        _GOOD,
        list(map(node.plain_units.__getitem__, aliases)),
    )


def _one(
    node: EdgeNodeState, state: DeviceState, metric: Metric, default_ms: int, out: Converted
) -> None:
    info = _resolve(node, state, metric)
    if metric.properties is not None and text_property(metric.properties, COMMAND_ID):
        name = info.name if info is not None else metric.name
        out.commands.append((metric, name or ""))  # also answers about unknown metrics
        if metric.is_null and info is None:
            return
    if info is None:
        out.unknown.append(str(metric.alias if metric.name is None else metric.name))
        return
    out.historical = out.historical or metric.is_historical
    if info.tag_path is None:
        return
    ts_ms = metric.timestamp if metric.timestamp is not None else default_ms
    if metric.is_null or metric.value is None:
        quality = quality_of(metric.properties)
        if quality is not _GOOD:  # an unreadable value: keep the last one, with this quality
            out.unreadable.append((info.tag_path, ts_ms * NS_PER_MS, quality))
        return
    if info.name.startswith(EDGE_PREFIX):
        node.edge_metrics[info.name] = metric.value
    _append(out.transient if metric.is_transient else out.samples, info, metric, ts_ms)


def _resolve(node: EdgeNodeState, state: DeviceState, metric: Metric) -> MetricInfo | None:
    if metric.alias is not None:
        info = node.aliases.get(metric.alias)
        if info is not None:
            return info
    return state.metrics.get(metric.name) if metric.name is not None else None


def _append(samples: list[Sample], info: MetricInfo, metric: Metric, ts_ms: int) -> None:
    value = metric.value
    path = info.tag_path
    assert path is not None
    if isinstance(value, Template):
        for member_path, member_ms, member_value, quality in template_members(path, value, ts_ms):
            samples.append(Sample(member_path, ms_to_ns(member_ms), member_value, quality, None))
        return
    convert = converter(info.datatype)
    if convert is not None:
        value = convert(value)
    quality = quality_of(metric.properties) if metric.properties is not None else _GOOD
    samples.append(Sample(path, ts_ms * NS_PER_MS, value, quality, info.unit))  # type: ignore[arg-type]


def in_range(
    samples: list[Sample], received_ns: int, problems: list[tuple[str, str]]
) -> list[Sample]:
    """Drop samples stamped before 1970 or more than 24 h ahead, saying how many."""
    if not samples:
        return samples
    stamps = [s.ts_ns for s in samples]
    if min(stamps) >= 0 and max(stamps) <= received_ns + _FUTURE_NS:
        return samples
    kept = [s for s in samples if 0 <= s.ts_ns <= received_ns + _FUTURE_NS]
    detail = f"{len(samples) - len(kept)} metric timestamps before 1970 or more than 24 h ahead"
    problems.append(("timestamp_out_of_range", detail))
    return kept


def is_plain(info: MetricInfo) -> bool:
    """Whether a metric's values go to the UNS as they come (the column-wise path)."""
    return (
        info.tag_path is not None
        and info.datatype is not DataType.TEMPLATE
        and converter(info.datatype) is None
        and not info.name.startswith(EDGE_PREFIX)
    )


def bd_seq_of(message: Payload) -> int | None:
    """The bdSeq metric of an NBIRTH or NDEATH."""
    for metric in message.metrics:
        if metric.name == "bdSeq" and isinstance(metric.value, int):
            return metric.value
    return None


def message_id(topic: str, payload: bytes) -> int:
    """The same message delivered twice gets the same id (seq and timestamps are inside)."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(topic.encode())
    digest.update(b"\x00")
    digest.update(payload)
    return int.from_bytes(digest.digest(), "big") >> 1


def is_writable(info: MetricInfo) -> bool:
    """Whether werk may send writes to a metric (unknown counts as writable)."""
    return info.writable is not False and info.datatype is not DataType.UNKNOWN
