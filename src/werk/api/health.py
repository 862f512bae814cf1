"""Health of the running platform."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from werk import __version__
from werk.core.errors import StorageUnavailable
from werk.historian.backends import describe

router = APIRouter(tags=["platform"])


class IngestHealth(BaseModel):
    """Counters of the ingest pipeline."""

    running: bool
    received: int
    accepted: int
    samples: int
    rejected: int
    duplicates: int
    overflowed: int
    replayed: int
    queue_depth: int
    write_errors: int
    last_error: str | None


class Health(BaseModel):
    """Overall health; `degraded` while storage writes fail."""

    status: Literal["ok", "degraded"]
    version: str
    broker: str
    embedded_broker: bool
    mqtt_port: int
    tags: int
    historian: str
    refiner_lag_batches: int | None = None
    stored_samples: int | None = None
    storage_error: str | None = None
    ingest: IngestHealth


@router.get("/health", response_model=Health, summary="Platform health")
def health(request: Request) -> Health:
    """Broker, ingest and storage status."""
    runtime = request.app.state.runtime
    pipeline = runtime.pipeline
    stats = pipeline.stats
    ingest = IngestHealth(
        running=pipeline.running,
        queue_depth=pipeline.queue_depth,
        received=stats.received,
        accepted=stats.accepted,
        samples=stats.samples,
        rejected=stats.rejected,
        duplicates=stats.duplicates,
        overflowed=stats.overflowed,
        replayed=stats.replayed,
        write_errors=stats.write_errors,
        last_error=stats.last_error,
    )
    stored, storage_error = _stored_samples(runtime)
    degraded = stats.last_error is not None or not pipeline.running or storage_error is not None
    return Health(
        status="degraded" if degraded else "ok",
        version=__version__,
        broker=runtime.address.url,
        embedded_broker=runtime.broker is not None,
        mqtt_port=runtime.mqtt_port,
        tags=len(runtime.namespace),
        historian=describe(runtime.settings.historian_url, runtime.settings.historian_file),
        refiner_lag_batches=_refiner_lag(runtime),
        stored_samples=stored,
        storage_error=storage_error,
        ingest=ingest,
    )


def _refiner_lag(runtime: Any) -> int | None:
    """Write batches the processed layer is behind the raw layer, None while it is not set."""
    if runtime.refiner is None:
        return None
    stats = runtime.refiner.stats()
    lag: int = max(0, stats.newest_batch - stats.mark)
    return lag


def _stored_samples(runtime: Any) -> tuple[int | None, str | None]:
    """How many samples the historian holds, or why it cannot say."""
    try:
        return runtime.store.count(), None
    except StorageUnavailable as exc:
        return None, exc.message
