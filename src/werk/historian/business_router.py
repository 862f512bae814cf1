"""REST routes of the business layer: rollups, KPIs and lineage drill-down."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final

import orjson
from fastapi import APIRouter, Body, Query, Request

from werk.core.access import check_path, requires, visible
from werk.core.clock import NS_PER_S, from_datetime, to_datetime
from werk.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from werk.historian import business, service
from werk.historian.access import (
    READ_BUSINESS,
    READ_RAW,
    WRITE_KPIS,
    check_tag,
    everywhere,
)
from werk.historian.business_schemas import (
    KpiLineage,
    KpiSeries,
    KpiWrite,
    MessageLineage,
    RollupLineage,
    RollupRead,
    WriteResult,
)
from werk.historian.layers import Kpi, Layer, Table
from werk.historian.router import End, Start, StoreDep
from werk.historian.store import HistorianStore

router = APIRouter(tags=["business layer"])

Width = Annotated[str, Query(max_length=8, description="rollup width: 1m, 1h or 1d")]
_EVERY_NS: Final = (0, from_datetime(datetime(2200, 1, 1, tzinfo=UTC)))


def _width_s(text: str) -> int:
    width = int(service.parse_duration(text))
    business.check_width(width)
    return width


@router.get(
    "/rollups/{tag:path}",
    response_model=list[RollupRead],
    summary="Rollups of a tag",
    dependencies=[requires(READ_BUSINESS)],
)
def rollups(
    request: Request,
    tag: str,
    store: StoreDep,
    width: Width = "1m",
    start: Start = None,
    end: End = None,
) -> list[RollupRead]:
    """Business-layer rollups of one width whose bucket starts in the range."""
    check_path(request, READ_BUSINESS, tag)
    start_ns, end_ns = service.time_range(start, end, timedelta(days=1))
    width_s = _width_s(width)
    if (end_ns - start_ns) // (width_s * NS_PER_S) > service.MAX_BUCKETS:
        raise ValidationFailed(
            f"the range holds more than {service.MAX_BUCKETS} rollups of {width}; "
            "use a wider width or a shorter range",
            code="too_many_buckets",
        )
    found = store.rollups(tag, width_s, start_ns, end_ns)
    return [business.rollup_read(r) for r in found]


@router.get(
    "/kpis",
    response_model=list[str],
    summary="Names of stored KPIs",
    dependencies=[requires(READ_BUSINESS)],
)
def kpi_names(request: Request, store: StoreDep) -> list[str]:
    """Every KPI with stored values whose inputs all lie in the caller's scope."""
    hidden = _hidden(request, store, READ_BUSINESS, None)
    return [name for name in store.kpi_names() if name not in hidden]


@router.post(
    "/kpis",
    response_model=WriteResult,
    summary="Store KPI values",
    dependencies=[requires(WRITE_KPIS)],
)
def write_kpis(
    request: Request,
    store: StoreDep,
    items: Annotated[list[KpiWrite], Body(max_length=10_000)],
) -> WriteResult:
    """Store KPI values with their lineage; a value at the same name and time replaces."""
    kpis = [business.to_kpi(item) for item in items]
    _check_writable(request, store, kpis)
    return WriteResult(stored=business.record_kpis(store, kpis))


@router.get(
    "/kpis/{name:path}",
    response_model=KpiSeries,
    summary="Values of a KPI",
    dependencies=[requires(READ_BUSINESS)],
)
def kpi_values(
    request: Request,
    name: str,
    store: StoreDep,
    start: Annotated[datetime | None, Query(description="ISO 8601; default end - 7 d")] = None,
    end: End = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> KpiSeries:
    """Values of one KPI, oldest first (none for a KPI outside the caller's scope)."""
    start_ns, end_ns = service.time_range(start, end, timedelta(days=7))
    if _hidden(request, store, READ_BUSINESS, [name]):
        return KpiSeries(name=name, values=[])
    values = store.kpis(name, start_ns, end_ns, limit)
    return KpiSeries(name=name, values=[business.kpi_read(k) for k in values])


@router.get(
    "/lineage/rollup/{tag:path}",
    response_model=RollupLineage,
    summary="Lineage of a rollup",
    dependencies=[requires(READ_BUSINESS)],
)
def rollup_lineage(
    request: Request,
    tag: str,
    store: StoreDep,
    start: Annotated[datetime, Query(description="a time inside the bucket")],
    width: Width = "1m",
) -> RollupLineage:
    """A rollup with the narrower rollups or processed samples and message ids behind it."""
    for layer in (Layer.BUSINESS, Layer.PROCESSED):
        check_tag(request, layer, tag)
    return business.rollup_lineage(store, tag, _width_s(width), from_datetime(start))


@router.get(
    "/lineage/kpi/{name:path}",
    response_model=KpiLineage,
    summary="Lineage of a KPI",
    dependencies=[requires(READ_BUSINESS)],
)
def kpi_lineage(
    request: Request,
    name: str,
    store: StoreDep,
    ts: Annotated[datetime, Query(description="timestamp of the KPI value")],
) -> KpiLineage:
    """A KPI value with its inputs resolved to rollups or samples and message ids."""
    ts_ns = from_datetime(ts)
    kpi = business.find_kpi(store, name, ts_ns)
    if _hidden(request, store, READ_BUSINESS, [name]):
        raise NotFound(f"KPI {name!r} has no value at {to_datetime(ts_ns).isoformat()}", kpi=name)
    for ref in kpi.lineage:
        check_tag(request, ref.layer, ref.tag)
    return business.kpi_lineage(store, name, ts_ns)


@router.get(
    "/lineage/message/{message_id}",
    response_model=MessageLineage,
    summary="Raw samples of a message",
    dependencies=[requires(READ_RAW)],
)
def message_lineage(request: Request, message_id: str, store: StoreDep) -> MessageLineage:
    """The raw samples one message brought (of tags in the caller's scope)."""
    msg_id = service.parse_message_id(message_id)
    lineage = business.message_lineage(store, msg_id)
    points = [p for p in lineage.points if visible(request, READ_RAW, p.tag)]
    if not points:
        raise NotFound(f"no stored samples came from message {service.message_hex(msg_id)}")
    return lineage.model_copy(update={"points": points})


def _inputs(store: HistorianStore, names: Sequence[str] | None) -> dict[str, set[str]]:
    """The input tags of every stored value of the named KPIs (every KPI for None)."""
    found: dict[str, set[str]] = {}
    for chunk in store.scan(Table.KPIS, *_EVERY_NS, names=names):
        columns = (chunk.column("name").to_pylist(), chunk.column("lineage").to_pylist())
        for name, lineage in zip(*columns, strict=True):
            refs = orjson.loads(lineage) if lineage else []
            found.setdefault(name, set()).update(ref["tag"] for ref in refs)
    return found


def _hidden(
    request: Request, store: HistorianStore, needed: str, names: Sequence[str] | None
) -> set[str]:
    """The KPIs among `names` with an input outside the caller's scope for `needed`.

    A KPI without inputs belongs to no subtree, so only a caller whose scope is the whole
    namespace sees it. Callers with that scope skip the scan of the stored lineage.
    """
    if everywhere(request, needed):
        return set()
    return {
        name
        for name, tags in _inputs(store, names).items()
        if not tags or not all(visible(request, needed, tag) for tag in tags)
    }


def _check_writable(request: Request, store: HistorianStore, kpis: list[Kpi]) -> None:
    """Refuse KPI values whose inputs, or whose stored namesake, leave the caller's scope."""
    if not kpis or everywhere(request, WRITE_KPIS):
        return
    for kpi in kpis:
        _check_inputs(request, kpi)
    taken = _hidden(request, store, WRITE_KPIS, sorted({k.name for k in kpis}))
    if taken:
        raise Conflict(
            f"the name {min(taken)!r} belongs to a KPI outside your scope", code="kpi_name_taken"
        )


def _check_inputs(request: Request, kpi: Kpi) -> None:
    """Refuse a KPI without inputs, or with one outside the scope (as if it were unknown)."""
    if not kpi.lineage:
        raise Forbidden(
            f"KPI {kpi.name!r} names no inputs; only a caller whose scope is the whole "
            "namespace may store such a KPI",
            code="out_of_scope",
        )
    for ref in kpi.lineage:
        if not visible(request, WRITE_KPIS, ref.tag):
            raise ValidationFailed(
                f"KPI {kpi.name!r} names input {ref.tag!r}, which has no samples",
                code="unknown_input",
            )
