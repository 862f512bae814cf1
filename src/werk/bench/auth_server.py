"""The werk of `werk bench auth`, in a process of its own: `python -m werk.bench.auth_server`.

It serves the real app (authenticator, audit middleware, problem handlers) plus one tiny
handler mounted twice: at `/api/v1/bench/public` with permission PUBLIC and at
`/api/v1/bench/guarded` needing `uns:read`. Both run the same code, so the difference in
requests/s between them is what authentication and authorisation cost. When ready it
prints one JSON line with its URL and two credentials of the bootstrap admin (an access
token and an API key) for the load phases, then serves until its stdin closes.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any, Final

import orjson
import uvicorn
from fastapi import FastAPI

from werk.api import create_app
from werk.bench.machine import free_ports
from werk.core.access import PUBLIC, requires
from werk.core.errors import Unavailable
from werk.core.settings import Settings
from werk.iam.permissions import UNS_READ
from werk.runtime import Runtime

PUBLIC_PATH: Final = "/api/v1/bench/public"
GUARDED_PATH: Final = "/api/v1/bench/guarded"
_START_TIMEOUT_S: Final = 60.0


def add_bench_routes(app: FastAPI) -> None:
    """Mount the same cheap handler once public and once behind `uns:read`."""

    def pong() -> dict[str, Any]:
        return {"ok": True}

    app.add_api_route(PUBLIC_PATH, pong, methods=["GET"], dependencies=[requires(PUBLIC)])
    app.add_api_route(GUARDED_PATH, pong, methods=["GET"], dependencies=[requires(UNS_READ)])


def bench_settings(data_dir: Path, http_port: int) -> Settings:
    """Settings for an idle werk on free ports (no Sparkplug host, quiet logs)."""
    mqtt, mqtt5 = free_ports(2)
    return Settings(
        data_dir=data_dir, http_port=http_port, mqtt_port=mqtt, mqtt5_port=mqtt5,
        sparkplug_enabled=False, log_level="WARNING",
    )  # fmt: skip


def admin_credentials(runtime: Runtime) -> tuple[str, str]:
    """An access token and an API key of the bootstrap admin."""
    iam = runtime.iam
    if iam is None:
        raise Unavailable("the bench werk runs without IAM", code="bench_auth")
    admin_id = iam.directory.find_by_name("admin")
    principal = iam.directory.load_principal(admin_id) if admin_id else None
    if principal is None:
        raise Unavailable("the bench werk has no admin", code="bench_auth")
    pair = iam.authn.issue(principal, ip="127.0.0.1")
    _view, key = iam.directory.create_api_key(principal, principal_id=principal.id, name="bench")
    return pair.access_token, key


def serve(data_dir: Path, http_port: int) -> None:
    """Serve until stdin closes, after announcing the credentials on stdout."""
    runtime = Runtime(bench_settings(data_dir, http_port))
    app = create_app(runtime, web=False)
    add_bench_routes(app)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=http_port, log_level="warning", access_log=False,
        log_config=None, ws="none",
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="werk-bench-auth", daemon=True)
    thread.start()
    _wait_started(server, thread)
    token, key = admin_credentials(runtime)
    url = f"http://127.0.0.1:{http_port}"
    sys.stdout.write(orjson.dumps({"url": url, "token": token, "api_key": key}).decode() + "\n")
    sys.stdout.flush()
    sys.stdin.read()
    server.should_exit = True
    thread.join(_START_TIMEOUT_S)


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise Unavailable("the bench werk did not start", code="bench_auth")
        time.sleep(0.05)


def main() -> None:
    """Entry point of the child process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    serve(args.data_dir, args.port)


if __name__ == "__main__":
    main()
