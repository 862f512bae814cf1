"""Authorised-request overhead: requests/s on one cheap route, with and without auth.

A werk child process (`werk.bench.auth_server`) serves the same handler twice: PUBLIC
and behind `uns:read`. The load phases alternate between the variants in rounds, so
drift of the machine hits each variant alike; every request goes through the same
middleware, routing and JSON encoding, and differs only in the credential check.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson
import psutil

from werk.bench.auth_load import LoadResult, request_bytes, run_load
from werk.bench.auth_server import GUARDED_PATH, PUBLIC_PATH
from werk.bench.machine import free_ports
from werk.core.errors import Unavailable

_START_TIMEOUT_S: Final = 90.0
_STDERR_LINES: Final = 20


@dataclass(frozen=True, slots=True)
class Variant:
    """One way of calling the route."""

    name: str
    path: str
    credential: str | None  # "token", "api_key" or None (anonymous)


VARIANTS: Final = (
    Variant("public route, no credential", PUBLIC_PATH, None),
    Variant("uns:read route, bearer access token (JWT)", GUARDED_PATH, "token"),
    Variant("uns:read route, bearer API key", GUARDED_PATH, "api_key"),
)


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """How long and how hard to drive the server."""

    seconds: float
    rounds: int
    connections: int


def measure_http(
    options: HttpOptions, progress: Callable[[str], None]
) -> list[tuple[Variant, list[LoadResult]]]:
    """Run every variant `rounds` times for `seconds` each against a fresh werk."""
    with (
        tempfile.TemporaryDirectory(prefix="werk-bench-auth-") as tmp,
        _child(Path(tmp)) as (
            ready,
            server,
        ),
    ):
        host, port = "127.0.0.1", int(ready["url"].rsplit(":", 1)[1])
        requests = {v.name: _request(host, port, v, ready) for v in VARIANTS}
        rounds: dict[str, list[LoadResult]] = {v.name: [] for v in VARIANTS}
        for v in VARIANTS:  # warm up routing, caches and the token LRU
            run_load(host, port, requests[v.name], connections=options.connections, seconds=0.5)
        for n in range(options.rounds):
            for v in VARIANTS:
                progress(f"round {n + 1}/{options.rounds}: {v.name}")
                before = _cpu_s(server)
                got = run_load(
                    host, port, requests[v.name],
                    connections=options.connections, seconds=options.seconds,
                )  # fmt: skip
                got.server_cpu_s = _cpu_s(server) - before
                rounds[v.name].append(got)
    return [(v, rounds[v.name]) for v in VARIANTS]


def _request(host: str, port: int, variant: Variant, ready: dict[str, str]) -> bytes:
    authorization = None if variant.credential is None else f"Bearer {ready[variant.credential]}"
    return request_bytes(host, port, variant.path, authorization)


def _cpu_s(process: psutil.Process) -> float:
    """CPU seconds the werk process has used so far (all its threads)."""
    times = process.cpu_times()
    return float(times.user + times.system)


@contextmanager
def _child(data_dir: Path) -> Iterator[tuple[dict[str, str], psutil.Process]]:
    (port,) = free_ports(1)
    command = [sys.executable, "-m", "werk.bench.auth_server", "--data-dir", str(data_dir),
               "--port", str(port)]  # fmt: skip
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, bufsize=1,
    )  # fmt: skip
    stderr: deque[str] = deque(maxlen=_STDERR_LINES)
    pump = threading.Thread(target=_drain, args=(process, stderr), daemon=True)
    pump.start()
    try:
        yield _ready_line(process, stderr), psutil.Process(process.pid)
    finally:
        _stop(process)
        pump.join(5)


def _drain(process: subprocess.Popen[str], sink: deque[str]) -> None:
    assert process.stderr is not None
    for line in process.stderr:
        sink.append(line.rstrip())


def _ready_line(process: subprocess.Popen[str], stderr: deque[str]) -> dict[str, Any]:
    stdout = process.stdout
    assert stdout is not None
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(_START_TIMEOUT_S)
    if not box or not box[0].strip():
        tail = " | ".join(stderr) or "no output"
        raise Unavailable(f"the bench werk did not start: {tail}", code="bench_auth")
    ready: dict[str, Any] = orjson.loads(box[0])
    return ready


def _stop(process: subprocess.Popen[str]) -> None:
    if process.stdin is not None and not process.stdin.closed:
        process.stdin.close()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
