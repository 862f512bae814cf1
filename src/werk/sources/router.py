"""REST routes of the sources: datasets and their records, sources and runs, pushed rows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from werk.core.access import requires
from werk.core.clock import NS_PER_S, from_datetime, now_ns, to_datetime
from werk.core.errors import Forbidden, NotFound, ValidationFailed
from werk.historian.access import everywhere
from werk.historian.layers import Record
from werk.historian.service import message_hex
from werk.sources.access import (
    READ_SOURCES,
    WRITE_SOURCES,
    Reach,
    count_visible,
    reach,
    unknown_dataset,
    visible_records,
)
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


@router.get(
    "/datasets",
    response_model=list[DatasetRead],
    summary="Datasets",
    dependencies=[requires(READ_SOURCES)],
)
def datasets(request: Request, runner: RunnerDep) -> list[DatasetRead]:
    """Every dataset contract in the caller's scope with the records the caller may see."""
    counts = runner.store.datasets()
    found = [(c, reach(request, READ_SOURCES, c)) for c in runner.catalog.all()]
    return [_counted(request, runner, c, r, counts) for c, r in found if r is not Reach.NONE]


@router.get(
    "/datasets/{dataset}",
    response_model=DatasetRead,
    summary="One dataset",
    dependencies=[requires(READ_SOURCES)],
)
def dataset(request: Request, dataset: DatasetName, runner: RunnerDep) -> DatasetRead:
    """The contract of one dataset with the number of stored records the caller may see."""
    contract, seen = _seen(request, runner, dataset, READ_SOURCES)
    if contract is None:
        contract = runner.catalog.get(dataset)  # raises NotFound naming the known datasets
    return _counted(request, runner, contract, seen, runner.store.datasets())


@router.get(
    "/datasets/{dataset}/records",
    response_model=RecordPage,
    summary="Records",
    dependencies=[requires(READ_SOURCES)],
)
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
    """Records of a dataset in the caller's scope with start <= time < end, oldest first."""
    contract, seen = _seen(request, runner, dataset, READ_SOURCES)
    start_ns = 0 if start is None else from_datetime(start)
    end_ns = now_ns() + _DAY_NS + 1 if end is None else from_datetime(end)
    if start_ns >= end_ns:
        raise ValidationFailed("start must be before end", code="bad_range")

    def ask(count: int) -> list[Record]:
        return runner.store.records(dataset, start_ns, end_ns, count, key=key, latest=latest)

    if seen is Reach.ALL or contract is None:
        found = ask(limit)
    else:
        found = visible_records(request, contract, ask, limit)
    return RecordPage(
        dataset=dataset,
        start=to_datetime(start_ns),
        end=to_datetime(end_ns),
        latest=latest,
        items=[_record(r) for r in found],
    )


@router.get(
    "/sources",
    response_model=list[SourceRead],
    summary="Sources",
    dependencies=[requires(READ_SOURCES)],
)
def sources(request: Request, runner: RunnerDep) -> list[SourceRead]:
    """Every configured source of a dataset wholly in the caller's scope, with its newest run."""
    names = [c.config.name for c in runner.connectors]
    shown = [n for n in names if _source_reach(request, runner, n, READ_SOURCES) is Reach.ALL]
    with runner.sessions() as session:
        last = last_runs(session=session)
        return [_source(runner, name, last.get(name)) for name in shown]


@router.get(
    "/sources/{name}",
    response_model=SourceDetail,
    summary="One source",
    dependencies=[requires(READ_SOURCES)],
)
def source(
    request: Request,
    name: SourceName,
    runner: RunnerDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> SourceDetail:
    """One configured source with its recent runs, newest first."""
    if _source_reach(request, runner, name, READ_SOURCES) is not Reach.ALL:
        raise _unknown_source(name)
    with runner.sessions() as session:
        recent = runs(session=session, source=name, limit=limit)
        read = _source(runner, name, recent[0] if recent else None)
        return SourceDetail(**read.model_dump(), runs=[_run(r) for r in recent])


@router.post(
    "/sources/{name}/run",
    response_model=RunRequested,
    summary="Run a source now",
    dependencies=[requires(WRITE_SOURCES)],
)
def run(
    http: Request,
    name: SourceName,
    runner: RunnerDep,
    wait_s: Annotated[float, Query(ge=0, le=60, description="seconds to wait for the end")] = 5.0,
) -> RunRequested:
    """Queue a run of the source and wait up to `wait_s` seconds for it to end."""
    if _source_reach(http, runner, name, WRITE_SOURCES) is not Reach.ALL:
        if _source_reach(http, runner, name, READ_SOURCES) is not Reach.ALL:
            raise _unknown_source(name)
        raise _out_of_scope(f"running the source {name!r}")
    request = runner.run_now(name, wait_s)
    return _requested(runner, request)


@router.post(
    "/sources/{dataset}/records",
    response_model=PushResult,
    summary="Push records",
    dependencies=[requires(WRITE_SOURCES)],
)
async def push(
    request: Request,
    dataset: DatasetName,
    runner: RunnerDep,
    source: Annotated[
        str, Query(pattern=SOURCE_PATTERN, description="who pushes; default 'push'")
    ] = PUSH_SOURCE,
) -> PushResult:
    """Validate a JSON list of rows; valid rows are stored, the others quarantined."""
    contract, seen = _seen(request, runner, dataset, WRITE_SOURCES)
    if contract is None:
        runner.catalog.get(dataset)  # raises NotFound naming the known datasets
    if seen is not Reach.ALL:
        raise _out_of_scope(f"pushing rows to {dataset!r}")
    rows = _rows(await _body(request, runner.max_push_bytes))
    landed = await run_in_threadpool(runner.push, dataset, rows, source)
    return _pushed(dataset, source, landed)


def _seen(
    request: Request, runner: SourceRunner, name: str, permission: str
) -> tuple[DatasetContract | None, Reach]:
    """The dataset's contract and how much of it the caller reaches; NotFound for none.

    A caller scoped to part of the namespace is told only of the datasets it may see.
    """
    contract = runner.catalog.get(name) if name in runner.catalog else None
    if everywhere(request, permission):
        if contract is None and name not in runner.store.datasets():
            runner.catalog.get(name)  # raises NotFound naming the known datasets
        return contract, Reach.ALL
    seen = reach(request, permission, contract)
    if seen is Reach.NONE:
        shown = [
            c.name for c in runner.catalog.all() if reach(request, permission, c) is not Reach.NONE
        ]
        raise unknown_dataset(name, shown)
    return contract, seen


def _counted(
    request: Request,
    runner: SourceRunner,
    contract: DatasetContract,
    seen: Reach,
    counts: dict[str, int],
) -> DatasetRead:
    if seen is Reach.ALL:
        return _dataset(contract, counts.get(contract.name, 0))
    return _dataset(contract, count_visible(request, runner.store, contract))


def _source_reach(request: Request, runner: SourceRunner, name: str, permission: str) -> Reach:
    dataset = runner.connector(name).config.dataset
    contract = runner.catalog.get(dataset) if dataset in runner.catalog else None
    return reach(request, permission, contract)


def _unknown_source(name: str) -> NotFound:
    return NotFound(f"no source {name!r}", code="unknown_source", source=name)


def _out_of_scope(what: str) -> Forbidden:
    return Forbidden(
        f"{what} needs the permission over every tag path its dataset's measures name",
        code="out_of_scope",
    )


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
