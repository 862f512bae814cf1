"""REST routes of the business layer: rollups, KPIs and lineage drill-down."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request

from werk.core.clock import NS_PER_S, from_datetime
from werk.core.errors import ValidationFailed
from werk.historian import business, service
from werk.historian.access import WRITE_KPIS, check_layer, check_permission
from werk.historian.business_schemas import (
    KpiLineage,
    KpiSeries,
    KpiWrite,
    MessageLineage,
    RollupLineage,
    RollupRead,
    WriteResult,
)
from werk.historian.layers import Layer
from werk.historian.router import End, Start, StoreDep

router = APIRouter(tags=["business layer"])

Width = Annotated[str, Query(max_length=8, description="rollup width: 1m, 1h or 1d")]


def _width_s(text: str) -> int:
    width = int(service.parse_duration(text))
    business.check_width(width)
    return width


@router.get("/rollups/{tag:path}", response_model=list[RollupRead], summary="Rollups of a tag")
def rollups(
    request: Request,
    tag: str,
    store: StoreDep,
    width: Width = "1m",
    start: Start = None,
    end: End = None,
) -> list[RollupRead]:
    """Business-layer rollups of one width whose bucket starts in the range."""
    check_layer(request, Layer.BUSINESS)
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


@router.get("/kpis", response_model=list[str], summary="Names of stored KPIs")
def kpi_names(request: Request, store: StoreDep) -> list[str]:
    """Every KPI with stored values."""
    check_layer(request, Layer.BUSINESS)
    return store.kpi_names()


@router.post("/kpis", response_model=WriteResult, summary="Store KPI values")
def write_kpis(
    request: Request,
    store: StoreDep,
    items: Annotated[list[KpiWrite], Body(max_length=10_000)],
) -> WriteResult:
    """Store KPI values with their lineage; a value at the same name and time replaces."""
    check_permission(request, WRITE_KPIS)
    kpis = [business.to_kpi(item) for item in items]
    return WriteResult(stored=business.record_kpis(store, kpis))


@router.get("/kpis/{name:path}", response_model=KpiSeries, summary="Values of a KPI")
def kpi_values(
    request: Request,
    name: str,
    store: StoreDep,
    start: Annotated[datetime | None, Query(description="ISO 8601; default end - 7 d")] = None,
    end: End = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> KpiSeries:
    """Values of one KPI, oldest first."""
    check_layer(request, Layer.BUSINESS)
    start_ns, end_ns = service.time_range(start, end, timedelta(days=7))
    values = store.kpis(name, start_ns, end_ns, limit)
    return KpiSeries(name=name, values=[business.kpi_read(k) for k in values])


@router.get(
    "/lineage/rollup/{tag:path}", response_model=RollupLineage, summary="Lineage of a rollup"
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
        check_layer(request, layer)
    return business.rollup_lineage(store, tag, _width_s(width), from_datetime(start))


@router.get("/lineage/kpi/{name:path}", response_model=KpiLineage, summary="Lineage of a KPI")
def kpi_lineage(
    request: Request,
    name: str,
    store: StoreDep,
    ts: Annotated[datetime, Query(description="timestamp of the KPI value")],
) -> KpiLineage:
    """A KPI value with its inputs resolved to rollups or samples and message ids."""
    check_layer(request, Layer.BUSINESS)
    kpi = business.find_kpi(store, name, from_datetime(ts))
    for ref in kpi.lineage:
        check_layer(request, ref.layer)
    return business.kpi_lineage(store, name, from_datetime(ts))


@router.get(
    "/lineage/message/{message_id}",
    response_model=MessageLineage,
    summary="Raw samples of a message",
)
def message_lineage(request: Request, message_id: str, store: StoreDep) -> MessageLineage:
    """The raw samples one message brought: where every lineage ends."""
    check_layer(request, Layer.RAW)
    return business.message_lineage(store, service.parse_message_id(message_id))
