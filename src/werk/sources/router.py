"""REST routes of the sources: datasets and their records, sources and runs, pushed rows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from werk.core.clock import NS_PER_S, from_datetime, now_ns, to_datetime
from werk.core.errors import NotFound, ValidationFailed
from werk.historian.access import WRITE_SOURCES, check_layer, check_permission
from werk.historian.layers import Layer, Record
from werk.historian.service import message_hex
from werk.sources.config import PUSH_SOURCE, SOURCE_PATTERN
from werk.sources.contracts import NAME_PATTERN, DatasetContract
from werk.sources.landing import Landed
from werk.sources.models import SourceRun
from werk.sources.runner import RunRequest, SourceRunner
from werk.sources.schemas import (
    DatasetRead,
    PushRejection,
    PushResult,
    RecordPage,
    RecordRead,
    RunRead,
    RunRequested,
    SourceDetail,
    SourceRead,
)
from werk.sources.service import get_run, last_runs, runs

router = APIRouter(tags=["sources"])

_DAY_NS: Final = 86_400 * NS_PER_S


class BodyTooLarge(ValidationFailed):
    """A pushed body is larger than the limit."""

    status = 413
    default_code = "body_too_large"


def _runner(request: Request) -> SourceRunner:
    return request.app.state.sources  # type: ignore[no-any-return]


RunnerDep = Annotated[SourceRunner, Depends(_runner)]
DatasetName = Annotated[str, Path(pattern=NAME_PATTERN, description="dataset, e.g. orders")]
SourceName = Annotated[str, Path(pattern=SOURCE_PATTERN, description="configured source")]


@router.get("/datasets", response_model=list[DatasetRead], summary="Datasets")
def datasets(runner: RunnerDep) -> list[DatasetRead]:
    """Every dataset contract with its number of stored records."""
    counts = runner.store.datasets()
    return [_dataset(c, counts.get(c.name, 0)) for c in runner.catalog.all()]


@router.get("/datasets/{dataset}", response_model=DatasetRead, summary="One dataset")
def dataset(dataset: DatasetName, runner: RunnerDep) -> DatasetRead:
    """The contract of one dataset with its number of stored records."""
    contract = runner.catalog.get(dataset)
    return _dataset(contract, runner.store.datasets().get(dataset, 0))


@router.get("/datasets/{dataset}/records", response_model=RecordPage, summary="Records")
def records(
    request: Request,
    dataset: DatasetName,
    runner: RunnerDep,
    start: Annotated[datetime | None, Query(description="ISO 8601; default 1970")] = None,
    end: Annotated[datetime | None, Query(description="ISO 8601; default 1 day from now")] = None,
    key: Annotated[str | None, Query(max_length=1024, description="only this key")] = None,
    latest: Annotated[bool, Query(description="only the newest version of each key")] = False,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> RecordPage:
    """Records of a dataset with start <= time < end, oldest first."""
    check_layer(request, Layer.RAW)
    if dataset not in runner.catalog and dataset not in runner.store.datasets():
        runner.catalog.get(dataset)  # raises NotFound naming the known datasets
    start_ns = 0 if start is None else from_datetime(start)
    end_ns = now_ns() + _DAY_NS + 1 if end is None else from_datetime(end)
    if start_ns >= end_ns:
        raise ValidationFailed("start must be before end", code="bad_range")
    found = runner.store.records(dataset, start_ns, end_ns, limit, key=key, latest=latest)
    return RecordPage(
        dataset=dataset,
        start=to_datetime(start_ns),
        end=to_datetime(end_ns),
        latest=latest,
        items=[_record(r) for r in found],
    )


@router.get("/sources", response_model=list[SourceRead], summary="Sources")
def sources(runner: RunnerDep) -> list[SourceRead]:
    """Every configured source with its newest run."""
    with runner.sessions() as session:
        last = last_runs(session=session)
        return [_source(runner, c.config.name, last.get(c.config.name)) for c in runner.connectors]


@router.get("/sources/{name}", response_model=SourceDetail, summary="One source")
def source(
    name: SourceName, runner: RunnerDep, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> SourceDetail:
    """One configured source with its recent runs, newest first."""
    runner.connector(name)
    with runner.sessions() as session:
        recent = runs(session=session, source=name, limit=limit)
        read = _source(runner, name, recent[0] if recent else None)
        return SourceDetail(**read.model_dump(), runs=[_run(r) for r in recent])


@router.post("/sources/{name}/run", response_model=RunRequested, summary="Run a source now")
def run(
    http: Request,
    name: SourceName,
    runner: RunnerDep,
    wait_s: Annotated[float, Query(ge=0, le=60, description="seconds to wait for the end")] = 5.0,
) -> RunRequested:
    """Queue a run of the source and wait up to `wait_s` seconds for it to end."""
    check_permission(http, WRITE_SOURCES)
    request = runner.run_now(name, wait_s)
    return _requested(runner, request)


@router.post("/sources/{dataset}/records", response_model=PushResult, summary="Push records")
async def push(
    request: Request,
    dataset: DatasetName,
    runner: RunnerDep,
    source: Annotated[
        str, Query(pattern=SOURCE_PATTERN, description="who pushes; default 'push'")
    ] = PUSH_SOURCE,
) -> PushResult:
    """Validate a JSON list of rows; valid rows are stored, the others quarantined."""
    check_permission(request, WRITE_SOURCES)
    runner.catalog.get(dataset)
    rows = _rows(await _body(request, runner.max_push_bytes))
    landed = await run_in_threadpool(runner.push, dataset, rows, source)
    return _pushed(dataset, source, landed)


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"the body is larger than {limit} bytes; push fewer rows at once")


def _rows(body: bytes) -> list[object]:
    try:
        rows = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(f"the body is not JSON: {exc}", code="bad_body") from None
    if not isinstance(rows, list):
        kind = "null" if rows is None else type(rows).__name__
        raise ValidationFailed(f"the body must be a JSON list of rows, got {kind}", code="bad_body")
    return rows


def _dataset(contract: DatasetContract, count: int) -> DatasetRead:
    data = contract.model_dump(include={"name", "version", "description", "time"})
    return DatasetRead(
        **data,
        key=list(contract.key),
        fields=contract.fields,
        measures=list(contract.measures),
        records=count,
    )


def _record(record: Record) -> RecordRead:
    return RecordRead(
        dataset=record.dataset,
        key=record.key,
        ts=to_datetime(record.ts_ns),
        ingest_ts=to_datetime(record.ingest_ns),
        source=record.source,
        message_id=message_hex(record.msg_id),
        payload=record.payload,
    )


def _run(run: SourceRun) -> RunRead:
    status = "running" if run.finished_ns is None else "error" if run.error else "ok"
    return RunRead(
        id=run.id,
        source=run.source,
        trigger=run.trigger,
        status=status,
        started=to_datetime(run.started_ns),
        finished=None if run.finished_ns is None else to_datetime(run.finished_ns),
        rows_read=run.rows_read,
        accepted=run.accepted,
        rejected=run.rejected,
        stored=run.stored,
        error=run.error,
    )


def _source(runner: SourceRunner, name: str, last: SourceRun | None) -> SourceRead:
    connector = runner.connector(name)
    config = connector.config
    due = runner.next_due_ns(name)
    return SourceRead(
        name=name,
        kind=config.kind,
        dataset=config.dataset,
        target=connector.describe(),
        every=config.every,
        next_run=None if due is None else to_datetime(max(due, now_ns())),
        running=runner.running == name,
        last_run=None if last is None else _run(last),
    )


def _requested(runner: SourceRunner, request: RunRequest) -> RunRequested:
    if request.run_id is None:
        return RunRequested(source=request.name, status="queued", run=None)
    with runner.sessions() as session:
        found = get_run(session=session, run_id=request.run_id)
        if found is None:
            raise NotFound(f"run {request.run_id} is no longer kept", code="unknown_run")
        read = _run(found)
    return RunRequested(source=request.name, status=read.status, run=read)


def _pushed(dataset: str, source: str, landed: Landed) -> PushResult:
    return PushResult(
        dataset=dataset,
        source=source,
        received=landed.read,
        accepted=landed.accepted,
        rejected=landed.rejected,
        stored=landed.stored,
        samples=landed.samples,
        rejections=[
            PushRejection(index=i, reason=r.reason, field=r.field, detail=r.detail)
            for i, r in landed.rejections
        ],
    )
