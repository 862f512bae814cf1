"""REST routes of the historian: history of a tag from a named layer."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from werk.core.access import check_path
from werk.historian import service
from werk.historian.access import LayerDep, permission
from werk.historian.schemas import Fill, HistoryQuery, HistoryRead
from werk.historian.store import HistorianStore

router = APIRouter(tags=["historian"])


def _store(request: Request) -> HistorianStore:
    return request.app.state.store  # type: ignore[no-any-return]


StoreDep = Annotated[HistorianStore, Depends(_store)]
Start = Annotated[datetime | None, Query(description="ISO 8601; default end - 1 h")]
End = Annotated[datetime | None, Query(description="ISO 8601; default now")]
Duration = Annotated[str | None, Query(max_length=16, description="such as 10s, 1m, 1h")]


@router.get("/history/{tag:path}", response_model=HistoryRead, summary="History of a tag")
def history(
    request: Request,
    layer: LayerDep,
    tag: str,
    store: StoreDep,
    start: Start = None,
    end: End = None,
    bucket: Duration = None,
    interval: Duration = None,
    fill: Annotated[Fill, Query(description="interpolation of the interval grid")] = "step",
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
    newest: Annotated[
        bool, Query(description="when more than `limit` points match, keep the newest")
    ] = False,
) -> HistoryRead:
    """Samples, min/max/avg/count/first/last per bucket, or a regular grid (interval+fill)."""
    check_path(request, permission(layer), tag)
    start_ns, end_ns = service.time_range(start, end, timedelta(hours=1))
    query = HistoryQuery(
        tag=tag,
        layer=layer,
        start_ns=start_ns,
        end_ns=end_ns,
        bucket_s=None if bucket is None else service.parse_duration(bucket),
        interval_s=None if interval is None else service.parse_duration(interval),
        fill=fill,
        limit=limit,
        newest=newest,
    )
    return service.history(store=store, query=query)
