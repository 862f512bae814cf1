"""Shared fixtures: free ports, real brokers (embedded rumqttd, Mosquitto), a running werk."""

from __future__ import annotations

import logging
import os
import random
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import paho.mqtt.client as paho
import pytest
import uvicorn
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.orm import sessionmaker
from tests.postgres_server import PostgresServer, postgres_binaries

from werk.api import create_app
from werk.core.db import create_db_engine, upgrade_schema
from werk.core.settings import Settings
from werk.iam.bootstrap import admin_api_key, ensure_admin
from werk.iam.service import Iam
from werk.runtime import Runtime

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Property tests run against real brokers and databases on shared machines: a slow example
# is no failure. Same cases on every CI run (no example database, derandomised).
hypothesis.settings.register_profile(
    "werk",
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
    derandomize=IN_CI,
    database=None if IN_CI else hypothesis.settings.default.database,
)
hypothesis.settings.load_profile("werk")


def require(what: str, available: bool) -> None:
    """Skip locally when a service is missing; in CI a missing service is a failure."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is not installed")
    pytest.skip(f"{what} is not installed")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo the logging set-up of CLI commands run in-process, after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


# Ports handed to tests lie below the kernel's ephemeral range (32768 and up on Linux),
# which is where werk's own internal broker ports and every client socket come from: a
# port chosen here and bound a moment later can then not have been taken meanwhile by a
# port-0 bind of a runtime started in between. Each run starts at a random point, so
# two test runs on one machine rarely meet; a port is never handed out twice in a run.
_TEST_PORTS = range(20000, 32768)
_next_port = random.randrange(len(_TEST_PORTS))
_port_lock = threading.Lock()


def free_port() -> int:
    """A TCP port nobody listens on right now, and not handed out before in this run."""
    global _next_port
    with _port_lock:
        for _ in _TEST_PORTS:
            port = _TEST_PORTS[_next_port % len(_TEST_PORTS)]
            _next_port += 1
            with socket.socket() as sock:
                try:
                    sock.bind(("", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free TCP port below the ephemeral range")


def wait_until(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout} s")


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings on free ports in a temporary data directory.

    MQTT clients without credentials are let in, so tests of ingest, Sparkplug and the
    edge publish with plain clients; the IAM tests turn `mqtt_allow_anonymous` off.
    """
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "mqtt_port": free_port(),
        "mqtt5_port": free_port(),
        "http_port": free_port(),
        "registry_flush_s": 0.2,
        "ingest_linger_ms": 5,
        "mqtt_allow_anonymous": True,
    }
    values.update(overrides)
    return Settings(**values)


def provision_admin_key(settings: Settings) -> str:
    """Create werk's first administrator in the data directory; return an API key of it.

    Works before werk starts (and for werk in a subprocess): the started werk finds the
    administrator there and creates no other.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_db_engine(settings.relational_url)
    try:
        upgrade_schema(engine)
        iam = Iam(sessionmaker(engine, expire_on_commit=False), settings)
        ensure_admin(iam)
        return admin_api_key(iam, "tests")
    finally:
        engine.dispose()


def bearer(key: str) -> dict[str, str]:
    """The Authorization header carrying `key`."""
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Fresh settings for one test."""
    return make_settings(tmp_path / "data")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A started werk (embedded broker, ingest, API) behind a test client, as the admin."""
    key = provision_admin_key(settings)
    with TestClient(create_app(Runtime(settings), web=False), headers=bearer(key)) as test_client:
        yield test_client


def mqtt_client(port: int, *, v5: bool = False) -> paho.Client:
    """A plain paho client connected to 127.0.0.1:port."""
    protocol = paho.MQTTv5 if v5 else paho.MQTTv311
    c = paho.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    return c


def publish(port: int, topic: str, payload: bytes, *, v5: bool = False) -> None:
    """Publish at QoS 1 with a plain paho client and wait for the broker's ack."""
    c = mqtt_client(port, v5=v5)
    try:
        c.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        c.disconnect()
        c.loop_stop()


def _run_mosquitto(directory: Path, *, persistent: bool) -> Iterator[int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    require("mosquitto", Path(binary).exists())
    port = free_port()
    conf = directory / "mosquitto.conf"
    persistence = f"persistence true\npersistence_location {directory}/\n" if persistent else ""
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n{persistence}"
        "max_packet_size 5242880\nmax_inflight_messages 1000\nmax_queued_messages 100000\n"
    )
    log = (directory / "mosquitto.log").open("wb")
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=log)
    try:
        wait_until(lambda: _listening(port), timeout=10)
        yield port
    finally:
        process.terminate()
        process.wait(10)
        log.close()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real Mosquitto broker on a free port; yields the port."""
    yield from _run_mosquitto(tmp_path_factory.mktemp("mosquitto"), persistent=False)


@pytest.fixture
def mosquitto_persistent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A Mosquitto broker of one test's own, keeping sessions of disconnected clients."""
    yield from _run_mosquitto(tmp_path_factory.mktemp("mosquitto"), persistent=True)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server of the test session (run as the postgres user)."""
    require("PostgreSQL server binaries", postgres_binaries() is not None)
    with PostgresServer(tmp_path_factory.mktemp("postgres")) as server:
        yield server


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class LiveServer:
    """werk served by uvicorn in a thread, for tests that need real HTTP."""

    def __init__(self, settings: Settings, *, web: bool = False, demo: bool = False) -> None:
        self.settings = settings
        self.key = provision_admin_key(settings)
        self.headers = bearer(self.key)
        self.runtime = Runtime(settings, demo=demo)
        app = create_app(self.runtime, web=web)
        config = uvicorn.Config(app, host="127.0.0.1", port=settings.http_port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{settings.http_port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_until(self._healthy, timeout=30)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    """A running werk with real HTTP."""
    with LiveServer(settings) as server:
        yield server


def admin_client(runtime: Runtime) -> TestClient:
    """A test client of werk (without web pages) that calls the API as the administrator."""
    key = provision_admin_key(runtime.settings)
    return TestClient(create_app(runtime, web=False), headers=bearer(key))
