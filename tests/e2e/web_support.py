"""What the browser tests share: the fed tags, an API handle and screenshots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
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

CELL: Final = "acme/berlin/machining/line-1/cell-1"
SPEED: Final = f"{CELL}/cnc-1/spindle.speed"
TEMP: Final = f"{CELL}/cnc-1/motor.temp"
STATE: Final = f"{CELL}/cnc-1/state"
TORQUE: Final = "acme/berlin/machining/line-1/cell-2/robot-1/joint.torque"
BAD_TOPIC: Final = f"uns/v1/{CELL}/cnc-1/_value/temp"


@dataclass(frozen=True, slots=True)
class WerkApi:
    """A running werk as its users reach it: web address, MQTT port and REST API."""

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
        response = self.http.get(f"/api/v1/history/{tag}", params={"layer": "raw"})
        return len(response.json()["points"]) if response.status_code == 200 else 0

    def quarantined(self) -> int:
        """How many messages werk rejected."""
        return int(self.http.get("/api/v1/quarantine").json()["total"])


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot to artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
