"""What the browser tests share: the fed tags, the live server handle and small helpers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import Page

CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMIUM_ARGS: Final = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS: Final = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
WAIT_S: Final = 20.0

CELL: Final = "acme/berlin/machining/line-1/cell-1"
SPEED: Final = f"{CELL}/cnc-1/spindle.speed"
TEMP: Final = f"{CELL}/cnc-1/motor.temp"
STATE: Final = f"{CELL}/cnc-1/state"
TORQUE: Final = "acme/berlin/machining/line-1/cell-2/robot-1/joint.torque"
BAD_TOPIC: Final = f"uns/v1/{CELL}/cnc-1/_value/temp"


@dataclass(frozen=True, slots=True)
class WerkServer:
    """A running werk: its web address, its MQTT port and an HTTP client on its API."""

    url: str
    mqtt_port: int
    http: httpx.Client

    def publish(self, tag: str, value: float | str, unit: str | None = None) -> None:
        """Publish one value through the REST API."""
        body: dict[str, Any] = {"tag": tag, "value": value}
        if unit is not None:
            body["unit"] = unit
        self.http.post("/api/v1/publish", json=body).raise_for_status()

    def value_of(self, tag: str) -> Any:
        """The tag's last-known value, or None while werk has not seen it."""
        response = self.http.get(f"/api/v1/tags/{tag}")
        return response.json()["value"] if response.status_code == 200 else None

    def stored(self, tag: str) -> int:
        """How many samples of the tag the historian holds."""
        response = self.http.get(f"/api/v1/history/{tag}")
        return len(response.json()["points"]) if response.status_code == 200 else 0


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(done: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    """Poll `done` until it holds; fail the test with `what` when it never does."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.1)


def publish_raw(port: int, topic: str, payload: bytes) -> None:
    """Publish bytes with a plain MQTT 3.1.1 client, as a device would."""
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(timeout=10.0)
    finally:
        client.disconnect()
        client.loop_stop()



def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot to artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
