"""Time per request through the whole app in this process, the variants interleaved.

No sockets and no second process: each request goes through the app's middleware,
routing, dependencies and handler via httpx's ASGI transport, one variant after the
other, so whatever slows the machine down slows every variant alike and the
differences are what the credential check costs.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Final

import httpx
from fastapi import FastAPI

from werk.api import create_app
from werk.bench.auth_server import add_bench_routes, admin_credentials, bench_settings
from werk.bench.machine import free_ports
from werk.core.errors import Unavailable
from werk.runtime import Runtime

_WARM_UP: Final = 200
_TIMEOUT_S: Final = 10.0

Calls = dict[str, tuple[str, dict[str, str]]]


def measure_asgi(requests: int, variants: list[tuple[str, str, str | None]]) -> dict[str, float]:
    """Median microseconds per request of each (name, path, credential) variant, interleaved."""
    with tempfile.TemporaryDirectory(prefix="werk-bench-auth-") as tmp:
        (port,) = free_ports(1)
        runtime = Runtime(bench_settings(Path(tmp), port))
        app = create_app(runtime, web=False)
        add_bench_routes(app)
        return asyncio.run(_measure(app, runtime, requests, variants))


async def _measure(
    app: FastAPI, runtime: Runtime, n: int, variants: list[tuple[str, str, str | None]]
) -> dict[str, float]:
    async with app.router.lifespan_context(app):
        token, key = admin_credentials(runtime)
        secrets = {"token": token, "api_key": key}
        calls: Calls = {
            name: (path, {"Authorization": f"Bearer {secrets[c]}"} if c else {})
            for name, path, c in variants
        }
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://werk", timeout=_TIMEOUT_S
        ) as client:
            await _round(client, calls, _WARM_UP)
            spent = await _round(client, calls, n)
    return {name: statistics.median(times) * 1e6 for name, times in spent.items()}


async def _round(client: httpx.AsyncClient, calls: Calls, n: int) -> dict[str, list[float]]:
    spent: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(n):
        for name, (path, headers) in calls.items():
            started = time.perf_counter()
            response = await client.get(path, headers=headers)
            spent[name].append(time.perf_counter() - started)
            if response.status_code != 200:
                raise Unavailable(
                    f"the bench request {name!r} answered {response.status_code}", code="bench_auth"
                )
    return spent
