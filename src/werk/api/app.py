"""The FastAPI application: REST API under /api/v1, OpenAPI, and the web UI at /."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from werk import __version__
from werk.api import health, permissions, problems
from werk.historian.business_router import router as business_router
from werk.historian.data_router import router as data_router
from werk.historian.quality_router import router as quality_router
from werk.historian.router import router as historian_router
from werk.iam import http as iam_http
from werk.iam.admin_router import router as iam_admin_router
from werk.iam.oidc_router import router as oidc_router
from werk.iam.router import router as auth_router
from werk.runtime import Runtime
from werk.sources.router import router as sources_router
from werk.sparkplug.router import router as sparkplug_router
from werk.uns.router import router as uns_router

API_PREFIX = "/api/v1"


def create_app(
    runtime: Runtime, *, web: bool = True, on_ready: Callable[[], None] | None = None
) -> FastAPI:
    """Build the app around `runtime`, which the app's lifespan starts and stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owns_runtime = not runtime.started
        await run_in_threadpool(runtime.start)
        state = app.state
        state.runtime, state.settings, state.namespace = (
            runtime,
            runtime.settings,
            runtime.namespace,
        )
        state.store, state.sessions, state.publisher = (
            runtime.store,
            runtime.sessions,
            runtime.publisher,
        )
        state.retention, state.quality = runtime.retention, runtime.quality
        state.sources, state.iam = runtime.sources, runtime.iam
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            if owns_runtime:
                await run_in_threadpool(runtime.stop)

    app = FastAPI(
        title="werk",
        version=__version__,
        summary="Unified Namespace, historian and Industry 4.0 ecosystem API",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    problems.install(app)
    iam_http.install(app)
    app.include_router(health.router, prefix=API_PREFIX)
    app.include_router(auth_router, prefix=API_PREFIX)
    app.include_router(oidc_router, prefix=API_PREFIX)
    app.include_router(iam_admin_router, prefix=API_PREFIX)
    app.include_router(uns_router, prefix=API_PREFIX)
    app.include_router(historian_router, prefix=API_PREFIX)
    app.include_router(business_router, prefix=API_PREFIX)
    app.include_router(data_router, prefix=API_PREFIX)
    app.include_router(quality_router, prefix=API_PREFIX)
    app.include_router(sources_router, prefix=API_PREFIX)
    app.include_router(sparkplug_router, prefix=API_PREFIX)
    if web:
        from werk.web import mount

        mount(app)
    permissions.declare(app)
    return app
