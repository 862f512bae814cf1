"""Health of the running platform.

Anyone may ask whether werk is healthy: the answer is the overall status and the state
of each component, nothing more. Addresses, versions and counters (how many tags,
samples and messages) describe the whole namespace, so they are shown only to callers
holding `uns:read` over all of it (`#`).
"""

from __future__ import annotations

from typing import Any, Final, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from werk import __version__
from werk.core.access import PUBLIC, optional_caller, requires
from werk.core.errors import StorageUnavailable
from werk.historian.access import everywhere
from werk.historian.backends import describe

router = APIRouter(tags=["platform"])

DETAIL_PERMISSION: Final = "uns:read"


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


class Components(BaseModel):
    """The state of each part of the platform."""

    ingest: Literal["ok", "failing", "stopped"]
    storage: Literal["ok", "unavailable"]


class Health(BaseModel):
    """Overall health; `degraded` while storage writes fail. Details need `uns:read` on `#`."""

    status: Literal["ok", "degraded"]
    components: Components
    version: str | None = None
    broker: str | None = None
    embedded_broker: bool | None = None
    mqtt_port: int | None = None
    tags: int | None = None
    historian: str | None = None
    refiner_lag_batches: int | None = None
    stored_samples: int | None = None
    storage_error: str | None = None
    ingest: IngestHealth | None = None


@router.get(
    "/health",
    response_model=Health,
    response_model_exclude_unset=True,
    summary="Platform health",
    dependencies=[requires(PUBLIC)],
)
def health(request: Request) -> Health:
    """Status of ingest and storage; broker, counters and versions for full readers."""
    runtime = request.app.state.runtime
    pipeline = runtime.pipeline
    stats = pipeline.stats
    stored, storage_error = _stored_samples(runtime)
    components = Components(
        ingest=_ingest_state(pipeline.running, stats.last_error),
        storage="ok" if storage_error is None else "unavailable",
    )
    status: Literal["ok", "degraded"] = (
        "ok" if components.ingest == "ok" and components.storage == "ok" else "degraded"
    )
    if not _detailed(request):
        return Health(status=status, components=components)
    return _details(Health(status=status, components=components), runtime, stored, storage_error)


def _detailed(request: Request) -> bool:
    """Whether the caller may see the figures of the whole namespace."""
    found = optional_caller(request)
    return found is not None and everywhere(request, DETAIL_PERMISSION)


def _ingest_state(running: bool, last_error: str | None) -> Literal["ok", "failing", "stopped"]:
    if not running:
        return "stopped"
    return "ok" if last_error is None else "failing"


def _details(health: Health, runtime: Any, stored: int | None, storage_error: str | None) -> Health:
    """`health` with the broker, the counters and the version filled in."""
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
    return health.model_copy(
        update={
            "version": __version__,
            "broker": runtime.address.url,
            "embedded_broker": runtime.broker is not None,
            "mqtt_port": runtime.mqtt_port,
            "tags": len(runtime.namespace),
            "historian": describe(runtime.settings.historian_url, runtime.settings.historian_file),
            "refiner_lag_batches": _refiner_lag(runtime),
            "stored_samples": stored,
            "storage_error": storage_error,
            "ingest": ingest,
        }
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
