"""A real werk server for the browser tests, fed through its own API and MQTT port.

NiceGUI keeps its pages in one process-wide app, so the session gets exactly one server.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import paho.mqtt.client as paho
import pytest
import uvicorn
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import Browser, Page, sync_playwright

from werk.api import create_app
from werk.core.settings import Settings
from werk.runtime import Runtime

@pytest.fixture(scope="session")
def werk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WerkServer]:
    """Start one werk with the web UI in a thread, for the whole session."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("werk"),
        mqtt_port=free_port(),
        mqtt5_port=free_port(),
        http_port=free_port(),
        registry_flush_s=0.2,
        ingest_linger_ms=5,
    )
    app = create_app(Runtime(settings, demo=False))
    config = uvicorn.Config(app, host="127.0.0.1", port=settings.http_port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="werk-uvicorn", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{settings.http_port}"
    with httpx.Client(base_url=url, timeout=10.0) as http:
        wait_until(lambda: _healthy(http), "werk to answer /api/v1/health")
        yield WerkServer(url, settings.mqtt_port, http)
    server.should_exit = True
    thread.join(timeout=20)


def _healthy(http: httpx.Client) -> bool:
    try:
        return http.get("/api/v1/health").status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="session")
def plant(werk_server: WerkServer) -> WerkServer:
    """Feed two assets' numbers, a text state and one malformed message into werk."""
    for speed, temp, torque in ((11990.5, 38.25, 41.0), (12000.25, 38.5, 42.5)):
        werk_server.publish(SPEED, speed, "rpm")
        werk_server.publish(TEMP, temp, "degC")
        werk_server.publish(TORQUE, torque, "Nm")
    for state in ("IDLE", "RUNNING"):
        werk_server.publish(STATE, state)
    publish_raw(werk_server.mqtt_port, BAD_TOPIC, b'{"value": ')
    wait_until(lambda: werk_server.value_of(SPEED) == 12000.25, "the last spindle speed")
    wait_until(lambda: werk_server.value_of(STATE) == "RUNNING", "the last machine state")
    wait_until(lambda: werk_server.stored(SPEED) == 2, "the historian to store the speeds")
    wait_until(lambda: _quarantined(werk_server), "the malformed message in quarantine")
    return werk_server


def _quarantined(server: WerkServer) -> bool:
    return server.http.get("/api/v1/quarantine").json()["total"] > 0


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium driven by Playwright."""
    if not CHROMIUM.exists():
        missing = "Chromium is not installed (scripts/test-deps.sh installs it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(missing)
        pytest.skip(missing)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser tab with a desktop-sized viewport."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    yield tab
    context.close()


