"""REST routes of the data lifecycle: retention rules and runs, Parquet export of a range."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from werk.core.access import requires
from werk.core.clock import from_datetime, now_ns, to_datetime
from werk.core.errors import NotFound, StorageUnavailable, Unavailable
from werk.historian import exchange
from werk.historian.access import ADMIN_DATA, check_everywhere
from werk.historian.layers import Table
from werk.historian.lifecycle import (
    ActionKind,
    ActionOutcome,
    RetentionAction,
    RetentionReport,
    names_in_subtree,
)
from werk.historian.lifecycle_worker import PlannedAction, RetentionWorker
from werk.historian.router import StoreDep

router = APIRouter(tags=["data"])

PARQUET_MEDIA_TYPE: Final = "application/vnd.apache.parquet"
_ALL_END: Final = datetime(2200, 1, 1, tzinfo=UTC)


def _worker(request: Request) -> RetentionWorker:
    worker: RetentionWorker | None = getattr(request.app.state, "retention", None)
    if worker is None:
        raise Unavailable("retention is not running", code="retention_unavailable")
    return worker


def _whole_namespace(request: Request) -> None:
    """Retention and export reach every tag: only a caller scoped to all of them may."""
    check_everywhere(request, ADMIN_DATA)


WorkerDep = Annotated[RetentionWorker, Depends(_worker)]
_ADMIN: Final = (requires(ADMIN_DATA), Depends(_whole_namespace))


class RuleRead(BaseModel):
    """One configured retention rule."""

    table: str
    subtree: str
    keep: str
    compact_after: str | None


class ActionRead(BaseModel):
    """Delete, or compact, rows of [start, end) of some names of one table."""

    kind: ActionKind
    table: Table
    subtree: str = Field(description="filter of the rule the action comes from")
    names: list[str] | None = Field(description="None: every name of the table")
    start: datetime
    end: datetime


class PlannedRead(ActionRead):
    """An action of the next run."""

    rows_in_range: int = Field(description="rows of the table in the range, every name")


class OutcomeRead(ActionRead):
    """What one action did."""

    rows: int = Field(description="rows deleted, or rows kept by the compaction")
    seconds: float


class ReportRead(BaseModel):
    """What one retention run did."""

    started: datetime
    seconds: float
    deleted: int
    compacted: int
    error: str | None
    summary: str
    actions: list[OutcomeRead]


class RetentionRead(BaseModel):
    """Retention rules, the last run and what the next run would do."""

    rules: list[RuleRead]
    interval_s: float
    running: bool
    last_report: ReportRead | None
    next_run: list[PlannedRead]


@router.get(
    "/data/retention",
    response_model=RetentionRead,
    summary="Retention rules and runs",
    dependencies=_ADMIN,
)
def retention(worker: WorkerDep) -> RetentionRead:
    """The rules, the report of the last run and a preview of the next one."""
    last = worker.last_report
    return RetentionRead(
        rules=[RuleRead.model_validate(r.model_dump()) for r in worker.rules],
        interval_s=worker.interval_s,
        running=worker.running,
        last_report=None if last is None else _report(last),
        next_run=[_planned(p) for p in worker.preview()],
    )


@router.post(
    "/data/retention/run",
    response_model=ReportRead,
    summary="Run retention now",
    dependencies=_ADMIN,
)
def run_retention(worker: WorkerDep) -> ReportRead:
    """Delete and compact now as the rules say; 503 when the storage failed part-way."""
    report = worker.run_now()
    if report.error is not None:
        raise StorageUnavailable(report.summary(), code="retention_failed")
    return _report(report)


@router.get(
    "/data/export/{table}",
    response_class=StreamingResponse,
    summary="Export a range of a table as Parquet",
    responses={200: {"content": {PARQUET_MEDIA_TYPE: {}}}},
    dependencies=_ADMIN,
)
def export(
    table: Table,
    store: StoreDep,
    start: Annotated[datetime | None, Query(description="ISO 8601; default the oldest row")] = None,
    end: Annotated[datetime | None, Query(description="ISO 8601; default every row")] = None,
    names: Annotated[
        list[str] | None, Query(description="tag paths, KPI or dataset names (repeatable)")
    ] = None,
    subtree: Annotated[
        str | None, Query(max_length=1024, description="MQTT-style filter over names")
    ] = None,
) -> StreamingResponse:
    """A Parquet file of the rows of [start, end), streamed as it is written."""
    start_ns = 0 if start is None else from_datetime(start)
    end_ns = from_datetime(_ALL_END if end is None else end)
    selected = names
    if subtree is not None:
        found = names_in_subtree(store, table, subtree)
        selected = [n for n in found if names is None or n in names]
        if not selected:
            raise NotFound(f"the {table.value} table has no names in {subtree!r}", code="no_names")
    body = exchange.stream(store, table, start_ns, end_ns, names=selected)
    filename = f"werk-{table.value}-{now_ns() // 1_000_000_000}.parquet"
    return StreamingResponse(
        body,
        media_type=PARQUET_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _action_fields(action: RetentionAction) -> dict[str, object]:
    return {
        "kind": action.kind,
        "table": action.table,
        "subtree": action.subtree,
        "names": None if action.names is None else list(action.names),
        "start": to_datetime(action.start_ns),
        "end": to_datetime(action.end_ns),
    }


def _planned(planned: PlannedAction) -> PlannedRead:
    fields = _action_fields(planned.action) | {"rows_in_range": planned.rows_in_range}
    return PlannedRead.model_validate(fields)


def _outcome(outcome: ActionOutcome) -> OutcomeRead:
    fields = _action_fields(outcome.action) | {"rows": outcome.rows, "seconds": outcome.seconds}
    return OutcomeRead.model_validate(fields)


def _report(report: RetentionReport) -> ReportRead:
    return ReportRead(
        started=to_datetime(report.started_ns),
        seconds=report.seconds,
        deleted=report.deleted,
        compacted=report.compacted,
        error=report.error,
        summary=report.summary(),
        actions=[_outcome(o) for o in report.outcomes],
    )
