"""Peak memory while a phase runs: this process's RSS and a server's PSS, sampled."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Final

import psutil

_INTERVAL_S: Final = 0.5


class PeakMemory:
    """Samples memory in a thread between `__enter__` and `__exit__`; keeps the peaks.

    `process` is this process's resident set; `server` is the proportional set size
    (shared pages split among their users) of a server and its children, so shared
    buffers are counted once.
    """

    def __init__(self, server_pid: Callable[[], int | None] | None = None) -> None:
        self._own = psutil.Process()
        self._server_pid = server_pid
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.process = 0
        self.server: int | None = None

    def __enter__(self) -> PeakMemory:
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="bench-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    def _loop(self) -> None:
        while not self._stop.wait(_INTERVAL_S):
            self._sample()

    def _sample(self) -> None:
        self.process = max(self.process, self._own.memory_info().rss)
        server = self._server_pss()
        if server is not None:
            self.server = max(self.server or 0, server)

    def _server_pss(self) -> int | None:
        pid = self._server_pid() if self._server_pid is not None else None
        if pid is None:
            return None
        try:
            root = psutil.Process(pid)
            return sum(_pss(p) for p in [root, *root.children(recursive=True)])
        except psutil.Error:
            return None


def _pss(process: psutil.Process) -> int:
    try:
        return int(process.memory_full_info().pss)
    except psutil.Error:
        return 0
