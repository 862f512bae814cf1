"""The werk API served by uvicorn on a thread; the app's lifespan starts and stops the runtime."""

from __future__ import annotations

import threading
import time
from typing import Final

import uvicorn

from werk.api import create_app
from werk.core.errors import Unavailable
from werk.runtime import Runtime

_POLL_S: Final = 0.05


class ApiServer:
    """`create_app(runtime, web=False)` on `host:port`, in this process."""

    def __init__(self, runtime: Runtime, host: str, port: int) -> None:
        self.base_url = f"http://{host}:{port}"
        app = create_app(runtime, web=False)
        config = uvicorn.Config(
            app, host=host, port=port, lifespan="on", ws="none", log_config=None,
            log_level="warning", access_log=False,
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="werk-bench-api", daemon=True)

    def start(self, timeout_s: float) -> None:
        """Start serving (which starts the runtime); raise Unavailable if not up in time."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop(timeout_s)
                raise Unavailable("the werk API did not start; see the log above", code="bench_api")
            time.sleep(_POLL_S)

    def stop(self, timeout_s: float) -> None:
        """Stop serving (which stops the runtime)."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)
