"""Use cases of the business layer: KPIs other contexts write, rollups, and lineage.

Other contexts (OEE, energy, partners) store their KPIs with `record_kpis`, naming the
inputs each value came from; `kpi_lineage` and `rollup_lineage` walk from any business
value down to processed samples and the raw message ids they came from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from werk.core.clock import NS_PER_S, from_datetime, now_ns, to_datetime
from werk.core.errors import NotFound, ValidationFailed
from werk.historian.business_schemas import (
    InputLineage,
    KpiLineage,
    KpiRead,
    KpiWrite,
    LineageRefModel,
    MessageLineage,
    MessagePoint,
    RollupLineage,
    RollupRead,
)
from werk.historian.layers import ROLLUP_WIDTHS_S, Kpi, Layer, LineageRef, Rollup
from werk.historian.service import message_hex, point_read, quality_name
from werk.historian.store import HistorianStore

MAX_SAMPLES: Final = 2_000
_FUTURE_NS: Final = 24 * 3600 * NS_PER_S


def to_kpi(item: KpiWrite, *, received_ns: int | None = None) -> Kpi:
    """A validated KPI value from its API form."""
    ts_ns = from_datetime(item.ts)
    limit = (now_ns() if received_ns is None else received_ns) + _FUTURE_NS
    if not 0 <= ts_ns <= limit:
        raise ValidationFailed(
            f"KPI {item.name!r}: timestamp is before 1970 or more than 24 h in the future",
            code="timestamp_out_of_range",
        )
    if not math.isfinite(item.value):
        raise ValidationFailed(f"KPI {item.name!r}: value must be finite", code="not_finite")
    refs = tuple(_ref(item.name, r) for r in item.lineage)
    return Kpi(item.name, ts_ns, item.value, item.unit, item.source, refs)


def _ref(name: str, ref: LineageRefModel) -> LineageRef:
    start, end = from_datetime(ref.start), from_datetime(ref.end)
    if start >= end:
        raise ValidationFailed(
            f"KPI {name!r}: lineage range of {ref.tag!r} must start before it ends",
            code="bad_range",
        )
    return LineageRef(ref.layer, ref.tag, start, end)


def record_kpis(store: HistorianStore, kpis: Sequence[Kpi]) -> int:
    """Store KPI values of another context; each input tag must be known to the historian."""
    for kpi in kpis:
        for ref in kpi.lineage:
            if not store.knows(ref.tag):
                raise ValidationFailed(
                    f"KPI {kpi.name!r} names input {ref.tag!r}, which has no samples",
                    code="unknown_input",
                )
    return store.write_kpis(kpis)


def kpi_read(kpi: Kpi) -> KpiRead:
    """The API view of a KPI value."""
    return KpiRead(
        name=kpi.name,
        ts=to_datetime(kpi.ts_ns),
        value=kpi.value,
        unit=kpi.unit,
        source=kpi.source,
        lineage=[ref_read(r) for r in kpi.lineage],
    )


def ref_read(ref: LineageRef) -> LineageRefModel:
    """The API view of a lineage reference."""
    return LineageRefModel(
        layer=ref.layer, tag=ref.tag, start=to_datetime(ref.start_ns), end=to_datetime(ref.end_ns)
    )


def rollup_read(rollup: Rollup) -> RollupRead:
    """The API view of a rollup."""
    return RollupRead(
        tag=rollup.tag,
        width_s=rollup.width_s,
        start=to_datetime(rollup.start_ns),
        count=rollup.count,
        min=_finite(rollup.min),
        max=_finite(rollup.max),
        avg=_finite(rollup.avg),
        first=_finite(rollup.first),
        last=_finite(rollup.last),
        first_ts=to_datetime(rollup.first_ns),
        last_ts=to_datetime(rollup.last_ns),
        flagged=rollup.flagged,
        bad=rollup.bad,
    )


def _finite(value: float) -> float | None:
    """A number for JSON: a bucket of only bad samples has no aggregates (NaN)."""
    return value if math.isfinite(value) else None


def check_width(width_s: int) -> None:
    """Refuse a rollup width the business layer does not keep."""
    if width_s not in ROLLUP_WIDTHS_S:
        raise ValidationFailed(
            f"rollups are kept for widths {', '.join(map(str, ROLLUP_WIDTHS_S))} s, "
            f"not {width_s} s",
            code="bad_width",
        )


def find_rollup(store: HistorianStore, tag: str, width_s: int, start_ns: int) -> Rollup:
    """The rollup of `tag` whose bucket contains `start_ns`."""
    check_width(width_s)
    width_ns = width_s * NS_PER_S
    bucket = start_ns - start_ns % width_ns
    found = store.rollups(tag, width_s, bucket, bucket + 1)
    if not found:
        raise NotFound(
            f"no {width_s} s rollup of {tag!r} starts at {to_datetime(bucket).isoformat()}",
            tag=tag,
        )
    return found[0]


def rollup_lineage(store: HistorianStore, tag: str, width_s: int, start_ns: int) -> RollupLineage:
    """A rollup with the narrower rollups or the processed samples it came from."""
    rollup = find_rollup(store, tag, width_s, start_ns)
    end_ns = rollup.start_ns + width_s * NS_PER_S
    result = RollupLineage(rollup=rollup_read(rollup))
    narrower = _narrower(width_s)
    if narrower is not None:
        parts = store.rollups(tag, narrower, rollup.start_ns, end_ns)
        result.parts = [rollup_read(p) for p in parts]
        return result
    _add_samples(store, tag, rollup.start_ns, end_ns, result)
    return result


def _narrower(width_s: int) -> int | None:
    index = ROLLUP_WIDTHS_S.index(width_s)
    return ROLLUP_WIDTHS_S[index - 1] if index else None


def _add_samples(
    store: HistorianStore, tag: str, start_ns: int, end_ns: int, into: RollupLineage | InputLineage
) -> None:
    points = store.points(tag, start_ns, end_ns, MAX_SAMPLES + 1, layer=Layer.PROCESSED)
    into.truncated = len(points) > MAX_SAMPLES
    into.samples = [point_read(p) for p in points[:MAX_SAMPLES]]
    into.messages = list(dict.fromkeys(message_hex(p.msg_id) for p in points[:MAX_SAMPLES]))


def find_kpi(store: HistorianStore, name: str, ts_ns: int) -> Kpi:
    """The stored value of KPI `name` at `ts_ns` (microsecond precision)."""
    ts_us = ts_ns - ts_ns % 1000
    found = store.kpis(name, ts_us, ts_us + 1000, 1)
    if not found:
        raise NotFound(f"KPI {name!r} has no value at {to_datetime(ts_ns).isoformat()}", kpi=name)
    return found[0]


def kpi_lineage(store: HistorianStore, name: str, ts_ns: int) -> KpiLineage:
    """A KPI value with each of its inputs resolved to rollups or processed samples."""
    kpi = find_kpi(store, name, ts_ns)
    return KpiLineage(kpi=kpi_read(kpi), inputs=[_input(store, ref) for ref in kpi.lineage])


def _input(store: HistorianStore, ref: LineageRef) -> InputLineage:
    result = InputLineage(ref=ref_read(ref))
    if ref.layer is Layer.BUSINESS:
        width = _widest_fitting(ref.end_ns - ref.start_ns)
        rollups = store.rollups(ref.tag, width, ref.start_ns, ref.end_ns)
        result.truncated = len(rollups) > MAX_SAMPLES
        result.rollups = [rollup_read(r) for r in rollups[:MAX_SAMPLES]]
        return result
    if ref.layer is Layer.PROCESSED:
        _add_samples(store, ref.tag, ref.start_ns, ref.end_ns, result)
        return result
    points = store.points(ref.tag, ref.start_ns, ref.end_ns, MAX_SAMPLES + 1)
    result.truncated = len(points) > MAX_SAMPLES
    result.samples = [point_read(p) for p in points[:MAX_SAMPLES]]
    result.messages = list(dict.fromkeys(message_hex(p.msg_id) for p in points[:MAX_SAMPLES]))
    return result


def _widest_fitting(span_ns: int) -> int:
    """The widest rollup width that still splits the span into at least two buckets."""
    fitting = [w for w in ROLLUP_WIDTHS_S if span_ns >= 2 * w * NS_PER_S]
    return fitting[-1] if fitting else ROLLUP_WIDTHS_S[0]


def message_lineage(store: HistorianStore, msg_id: int) -> MessageLineage:
    """The raw samples one message brought."""
    found = store.message_points(msg_id)
    if not found:
        raise NotFound(f"no stored samples came from message {message_hex(msg_id)}")
    points = [
        MessagePoint(
            tag=t.tag,
            ts=to_datetime(t.point.ts_ns),
            value=t.point.value,
            quality=quality_name(t.point.quality),
        )
        for t in found
    ]
    return MessageLineage(
        message_id=message_hex(msg_id),
        ingest_ts=to_datetime(found[0].point.ingest_ns),
        points=points,
    )
