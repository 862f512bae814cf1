"""The processes around the benchmark: the publisher child, and CPU and memory sampling."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Final

import orjson
import psutil

from werk.bench.workload import PublishFigures
from werk.core.errors import Unavailable

_BROKER_MARK: Final = "iotcore._serve"
_STDERR_LINES: Final = 20


class PublisherProcess:
    """``python -m werk.bench.publisher`` in a child process, started with a ready/go handshake."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self._command = [sys.executable, "-m", "werk.bench.publisher", *args]
        self._env = None if env is None else {**os.environ, **env}
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=_STDERR_LINES)
        self._proc: subprocess.Popen[str] | None = None
        self._pumps: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        """Whether the child is still running."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float) -> None:
        """Start the child and wait until it has connected and built its messages."""
        self._proc = subprocess.Popen(
            self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, bufsize=1, env=self._env,
        )  # fmt: skip
        assert self._proc.stdout is not None
        assert self._proc.stderr is not None
        self._pumps = [
            _pump(self._proc.stdout, self._lines.put, parse=True),
            _pump(self._proc.stderr, self._stderr.append, parse=False),
        ]
        if "ready" not in self._next(timeout_s):
            raise self._failure("did not get ready")

    def go(self) -> None:
        """Tell the child to start publishing."""
        assert self._proc is not None
        assert self._proc.stdin is not None
        self._proc.stdin.write("go\n")
        self._proc.stdin.flush()

    def result(self, timeout_s: float) -> PublishFigures | None:
        """The child's figures once it is done, or None if it did not finish in time."""
        document = self._next(timeout_s)
        if "figures" not in document:
            return None
        return PublishFigures(**document["figures"])

    def stop(self, timeout_s: float = 10.0) -> None:
        """Let the child exit, killing it if it does not within `timeout_s`."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout_s)
        for pump in self._pumps:
            pump.join(timeout_s)  # they end at the pipes' end of file
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    def _next(self, timeout_s: float) -> dict[str, Any]:
        """The child's next JSON line; empty if none came in time or the child exited."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                return self._lines.get(timeout=0.2)
            except queue.Empty:
                if self._proc is None or self._proc.poll() is not None:
                    return self._last_line()
        return {}

    def _last_line(self) -> dict[str, Any]:
        # The child may have printed its last line just before it exited.
        try:
            return self._lines.get(timeout=0.5)
        except queue.Empty:
            return {}

    def _failure(self, what: str) -> Unavailable:
        self.stop(timeout_s=1.0)
        detail = " | ".join(self._stderr) or "no output"
        return Unavailable(f"the benchmark publisher {what}: {detail}", code="bench_publisher")


def _pump(stream: IO[str], sink: Callable[[Any], object], *, parse: bool) -> threading.Thread:
    """Forward every line of `stream` to `sink` from a daemon thread."""

    def forward() -> None:
        for line in stream:
            if parse:
                try:
                    sink(orjson.loads(line))
                except orjson.JSONDecodeError:
                    continue
            else:
                sink(line.rstrip())

    thread = threading.Thread(target=forward, name="werk-bench-pump", daemon=True)
    thread.start()
    return thread


@dataclass(frozen=True, slots=True)
class Usage:
    """CPU seconds and peak resident memory of werk and its broker over a window."""

    werk_cpu_s: float
    broker_cpu_s: float | None
    werk_rss_peak: int
    broker_rss_peak: int | None


class ResourceMonitor:
    """Sample the resident memory of this process and the broker child; time CPU windows."""

    def __init__(self, interval_s: float = 0.1) -> None:
        self._interval_s = interval_s
        self._me = psutil.Process()
        self._broker: psutil.Process | None = None
        self._lock = threading.Lock()
        self._peaks: dict[str, int] = {}
        self._overall: dict[str, int] = {}
        self._cpu_start: tuple[float, float | None] = (0.0, None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="werk-bench-monitor", daemon=True)

    def start(self) -> None:
        """Find the broker child and start sampling."""
        self._broker = find_broker(self._me)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def watch_newest_broker(self) -> None:
        """Watch the broker child started last from the next window on."""
        brokers = find_brokers(self._me)
        self._broker = brokers[-1] if brokers else None

    def watch_broker(self, broker: psutil.Process | None) -> psutil.Process | None:
        """Watch `broker` from the next window on; return the one watched so far."""
        before, self._broker = self._broker, broker
        return before

    @property
    def broker_pid(self) -> int | None:
        """Process id of the embedded broker, when found."""
        return None if self._broker is None else self._broker.pid

    def peak(self, role: str) -> int | None:
        """Peak resident bytes of `werk` or `broker` since start."""
        with self._lock:
            return self._overall.get(role)

    def begin(self) -> None:
        """Start a window: reset window peaks and note CPU times."""
        with self._lock:
            self._peaks.clear()
        self._sample()
        self._cpu_start = (_cpu(self._me) or 0.0, _cpu(self._broker))

    def end(self) -> Usage:
        """Close the window and return what it used."""
        self._sample()
        werk0, broker0 = self._cpu_start
        broker1 = _cpu(self._broker)
        with self._lock:
            return Usage(
                werk_cpu_s=(_cpu(self._me) or 0.0) - werk0,
                broker_cpu_s=None if broker0 is None or broker1 is None else broker1 - broker0,
                werk_rss_peak=self._peaks.get("werk", 0),
                broker_rss_peak=self._peaks.get("broker"),
            )

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._sample()

    def _sample(self) -> None:
        for role, proc in (("werk", self._me), ("broker", self._broker)):
            rss = _rss(proc)
            if rss is None:
                continue
            with self._lock:
                self._peaks[role] = max(self._peaks.get(role, 0), rss)
                self._overall[role] = max(self._overall.get(role, 0), rss)


def find_broker(parent: psutil.Process) -> psutil.Process | None:
    """The embedded broker among the children of `parent` (iotcore runs it as a child)."""
    brokers = find_brokers(parent)
    return brokers[0] if brokers else None


def find_brokers(parent: psutil.Process) -> list[psutil.Process]:
    """Every embedded broker among the children of `parent`, oldest first."""
    found = []
    for child in parent.children(recursive=True):
        try:
            if _BROKER_MARK in " ".join(child.cmdline()):
                found.append((child.create_time(), child.pid, child))
        except psutil.Error:
            continue
    return [child for _, _, child in sorted(found, key=lambda f: (f[0], f[1]))]


def _rss(proc: psutil.Process | None) -> int | None:
    if proc is None:
        return None
    try:
        return int(proc.memory_info().rss)
    except psutil.Error:
        return None


def _cpu(proc: psutil.Process | None) -> float | None:
    if proc is None:
        return None
    try:
        times = proc.cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)
