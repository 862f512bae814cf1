"""REST routes of the historian."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from werk.historian import service
from werk.historian.schemas import HistoryRead
from werk.historian.store import RawStore

router = APIRouter(tags=["historian"])


def _store(request: Request) -> RawStore:
    return request.app.state.store  # type: ignore[no-any-return]


StoreDep = Annotated[RawStore, Depends(_store)]


@router.get("/history/{tag:path}", response_model=HistoryRead, summary="History of a tag")
def history(
    tag: str,
    store: StoreDep,
    start: Annotated[datetime | None, Query(description="ISO 8601; default end - 1 h")] = None,
    end: Annotated[datetime | None, Query(description="ISO 8601; default now")] = None,
    bucket: Annotated[
        str | None, Query(max_length=16, description="bucket size such as 10s, 1m, 1h")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
    layer: Annotated[str, Query(pattern="^raw$", description="data layer")] = "raw",
    newest: Annotated[
        bool, Query(description="when more than `limit` points match, keep the newest")
    ] = False,
) -> HistoryRead:
    """Raw samples of a tag, or min/max/avg/count/first/last per bucket."""
    start_ns, end_ns = service.time_range(start, end, timedelta(hours=1))
    bucket_s = None if bucket is None else service.parse_duration(bucket)
    return service.history(
        store=store,
        tag=tag,
        start_ns=start_ns,
        end_ns=end_ns,
        bucket_s=bucket_s,
        limit=limit,
        newest=newest,
    )
