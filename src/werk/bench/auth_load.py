"""A lean HTTP/1.1 load generator: keep-alive connections on asyncio streams.

It spends far less CPU per request than a full client library, so the server, not the
generator, is what limits the measured rate.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Final

from werk.core.errors import Unavailable

_HEAD_LIMIT: Final = 64 * 1024
_IO_TIMEOUT_S: Final = 10.0


@dataclass(slots=True)
class LoadResult:
    """What one load phase achieved."""

    requests: int = 0
    failures: int = 0
    seconds: float = 0.0
    server_cpu_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        """Successful requests per second."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_request(self) -> float:
        """Server CPU time (user + system) per successful request, in microseconds."""
        return self.server_cpu_s / self.requests * 1e6 if self.requests else 0.0

    def percentile_ms(self, q: float) -> float:
        """Latency percentile `q` (0..1) in milliseconds."""
        if not self.latencies_s:
            return 0.0
        ordered = sorted(self.latencies_s)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def merge(self, other: LoadResult) -> None:
        """Add another phase's counts (same variant, another round)."""
        self.requests += other.requests
        self.failures += other.failures
        self.seconds += other.seconds
        self.server_cpu_s += other.server_cpu_s
        self.latencies_s.extend(other.latencies_s)


def request_bytes(host: str, port: int, path: str, authorization: str | None) -> bytes:
    """One GET request, ready to send again and again on a keep-alive connection."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Accept: application/json"]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def run_load(
    host: str, port: int, request: bytes, *, connections: int, seconds: float
) -> LoadResult:
    """Send `request` over `connections` keep-alive connections for `seconds`."""
    return asyncio.run(_run(host, port, request, connections, seconds))


async def _run(
    host: str, port: int, request: bytes, connections: int, seconds: float
) -> LoadResult:
    result = LoadResult()
    started = time.perf_counter()
    deadline = started + seconds
    workers = [
        asyncio.create_task(_worker(host, port, request, deadline, result))
        for _ in range(connections)
    ]
    try:
        await asyncio.gather(*workers)
    finally:
        for worker in workers:
            worker.cancel()
    result.seconds = time.perf_counter() - started
    return result


async def _worker(host: str, port: int, request: bytes, deadline: float, out: LoadResult) -> None:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, limit=_HEAD_LIMIT), _IO_TIMEOUT_S
    )
    try:
        while (sent := time.perf_counter()) < deadline:
            writer.write(request)
            status = await asyncio.wait_for(_read_response(reader), _IO_TIMEOUT_S)
            out.latencies_s.append(time.perf_counter() - sent)
            if status == 200:
                out.requests += 1
            else:
                out.failures += 1
    finally:
        writer.close()


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length is None:
        raise Unavailable("the server answered without Content-Length", code="bench_http")
    await reader.readexactly(length)
    return status
