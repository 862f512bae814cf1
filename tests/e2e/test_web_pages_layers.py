"""The layer browser and the data-quality page in a real browser against a real werk.

Runs after test_web_pages.py (file order), whose first test needs an empty namespace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from tests.conftest import wait_until
from tests.e2e.web_support import CELL, WerkApi, screenshot

pytestmark = pytest.mark.browser

expect.set_options(timeout=10_000)

PRESSURE = f"{CELL}/press-1/hydraulic.pressure"
VALUES = (120.5, 131.25, 999.0, 140.0)
OUT_OF_RANGE = "999"
WAIT_S = 20.0
RULE = {
    "tags": f"{CELL}/press-1/+",
    "name": "hydraulic pressure",
    "unit": "bar",
    "min": 0.0,
    "max": 250.0,
}


@dataclass(frozen=True, slots=True)
class Fed:
    """The pressures werk stored, with the message that brought each."""

    minute: datetime
    messages: dict[float, str]

    @property
    def bad_message(self) -> str:
        """The message that brought the out-of-range pressure."""
        return self.messages[999.0]


@pytest.fixture(scope="module")
def fed(plant: WerkApi) -> Fed:
    """Put a range rule in force, then publish four pressures in one minute, one outside it."""
    plant.http.put("/api/v1/quality/rules", json=[RULE]).raise_for_status()
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    for second, value in zip((5, 10, 15, 20), VALUES, strict=True):
        ts = minute + timedelta(seconds=second)
        body = {"tag": PRESSURE, "value": value, "unit": "bar", "ts": ts.isoformat()}
        plant.http.post("/api/v1/publish", json=body).raise_for_status()
    wait_until(lambda: len(_points(plant, "processed")) == len(VALUES), timeout=WAIT_S)
    wait_until(lambda: _rollups(plant, "1m"), timeout=WAIT_S)
    messages = {p["value"]: p["message_id"] for p in _points(plant, "raw")}
    return Fed(minute, messages)


def _points(plant: WerkApi, layer: str) -> list[dict[str, Any]]:
    response = plant.http.get(f"/api/v1/history/{PRESSURE}", params={"layer": layer})
    return list(response.json()["points"]) if response.status_code == 200 else []


def _rollups(plant: WerkApi, width: str) -> list[dict[str, Any]]:
    response = plant.http.get(f"/api/v1/rollups/{PRESSURE}", params={"width": width})
    return list(response.json()) if response.status_code == 200 else []


def test_raw_layer_shows_samples_with_their_message_ids(
    fed: Fed, plant: WerkApi, page: Page
) -> None:
    page.goto(f"{plant.url}/layers")
    page.get_by_test_id("layer-tag-search").fill("press hydraulic")
    expect(page.get_by_test_id("layer-tag-count")).to_have_text("1 tag")  # the list is redrawn
    page.get_by_test_id(f"pick-{PRESSURE}").click()

    expect(page.get_by_test_id("layer-tag")).to_have_text("hydraulic.pressure")
    rows = page.get_by_test_id("layer-table").locator("tbody tr")
    expect(rows).to_have_count(len(VALUES))
    expect(rows.filter(has_text=OUT_OF_RANGE)).to_contain_text(fed.bad_message)
    expect(page.get_by_test_id("layer-caption")).to_have_text("4 raw samples")
    expect(page.get_by_test_id("layer-trend").locator("canvas")).to_be_visible()
    screenshot(page, "layers-raw")


def test_processed_layer_flags_the_value_outside_the_rule(
    fed: Fed, plant: WerkApi, page: Page
) -> None:
    page.goto(f"{plant.url}/layers/{PRESSURE}")
    page.get_by_test_id("layer-choice").get_by_text("Processed").click()

    expect(page).to_have_url(f"{plant.url}/layers/{PRESSURE}?layer=processed&last=1h")
    link = page.get_by_test_id(f"pick-{PRESSURE}")  # the tag links follow the chosen layer
    expect(link).to_have_attribute("href", f"/layers/{PRESSURE}?layer=processed&last=1h")
    expect(page.get_by_test_id("layer-caption")).to_have_text("4 processed samples, 1 flagged")
    rows = page.get_by_test_id("layer-table").locator("tbody tr")
    flagged = rows.filter(has_text=OUT_OF_RANGE)
    expect(flagged).to_contain_text("range")
    expect(flagged).to_contain_text("bad")
    expect(flagged).to_have_class(re.compile(r"\bbg-red-1\b"))
    expect(rows.filter(has_text="131.25")).to_contain_text("good")
    expect(rows.filter(has_text="range")).to_have_count(1)
    screenshot(page, "layers-processed")


def test_minute_rollup_drills_down_to_the_raw_message(fed: Fed, plant: WerkApi, page: Page) -> None:
    page.goto(f"{plant.url}/layers/{PRESSURE}?layer=business&last=1h")
    rows = page.get_by_test_id("layer-table").locator("tbody tr")
    expect(rows).to_have_count(1)
    rollup = rows.first
    for shown in ("1 min", "3", "120.5", "140", "130.583"):
        expect(rollup).to_contain_text(shown)
    rollup.click()

    panel = page.get_by_test_id("lineage-panel")
    expect(panel.get_by_test_id("lineage-summary")).to_contain_text("1 min rollup of " + PRESSURE)
    expect(panel.get_by_test_id("lineage-summary")).to_contain_text("1 bad left out")
    samples = panel.get_by_test_id("lineage-samples").locator("tbody tr")
    expect(samples).to_have_count(len(VALUES))
    expect(samples.filter(has_text=OUT_OF_RANGE)).to_contain_text("range")
    panel.get_by_test_id("lineage-samples").get_by_test_id(f"message-{fed.bad_message}").click()

    expect(panel.get_by_test_id("lineage-breadcrumb")).to_contain_text(f"message {fed.bad_message}")
    raw = panel.get_by_test_id("lineage-raw").locator("tbody tr")
    expect(raw).to_have_count(1)
    expect(raw.first).to_contain_text(PRESSURE)
    expect(raw.first).to_contain_text("999")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "layers-lineage")

    panel.get_by_test_id("lineage-crumb-0").click()

    expect(panel.get_by_test_id("lineage-samples")).to_be_visible()
    expect(panel.get_by_test_id("lineage-raw")).to_have_count(0)


def test_hour_rollup_opens_its_minute_rollups(fed: Fed, plant: WerkApi, page: Page) -> None:
    page.goto(f"{plant.url}/layers/{PRESSURE}?layer=business&last=24h")
    page.get_by_test_id("layer-table").locator("tbody tr").first.click()
    panel = page.get_by_test_id("lineage-panel")
    expect(panel.get_by_test_id("lineage-summary")).to_contain_text("1 h rollup")
    minutes = panel.get_by_test_id("lineage-rollups").locator("tbody tr")
    expect(minutes).to_have_count(1)
    expect(minutes.first).to_contain_text(fed.minute.strftime("%Y-%m-%d %H:%M"))
    minutes.first.click()

    expect(panel.get_by_test_id("lineage-summary")).to_contain_text("1 min rollup")
    expect(panel.get_by_test_id("lineage-samples").locator("tbody tr")).to_have_count(len(VALUES))
    expect(panel.get_by_test_id("lineage-breadcrumb")).to_contain_text("1 h ·")


def test_kpi_value_shows_its_input_samples(fed: Fed, plant: WerkApi, page: Page) -> None:
    end = fed.minute + timedelta(minutes=1)
    kpi = {
        "name": "oee/acme/berlin/press-1/availability",
        "ts": end.isoformat(),
        "value": 0.875,
        "source": "oee",
        "lineage": [
            {
                "layer": "processed",
                "tag": PRESSURE,
                "start": fed.minute.isoformat(),
                "end": end.isoformat(),
            }
        ],
    }
    plant.http.post("/api/v1/kpis", json=[kpi]).raise_for_status()
    page.goto(f"{plant.url}/layers")
    expect(page.get_by_test_id("layers-empty")).to_contain_text("Pick a tag")
    page.get_by_test_id(f"kpi-{kpi['name']}").click()
    values = page.get_by_test_id("kpi-values").locator("tbody tr")
    expect(values).to_have_count(1)
    expect(values.first).to_contain_text("0.875")
    values.first.click()

    panel = page.get_by_test_id("lineage-panel")
    expect(panel.get_by_test_id("lineage-summary")).to_contain_text("computed by oee")
    expect(panel.get_by_test_id("lineage-input-0")).to_contain_text(PRESSURE)
    samples = panel.get_by_test_id("lineage-samples").locator("tbody tr")
    expect(samples).to_have_count(len(VALUES))
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "layers-kpi-lineage")

    panel.get_by_test_id(f"lineage-message-{fed.bad_message}").click()

    expect(panel.get_by_test_id("lineage-raw")).to_contain_text("999")


def test_quality_page_lists_the_rule_and_the_violation(
    fed: Fed, plant: WerkApi, page: Page
) -> None:
    page.goto(f"{plant.url}/quality")
    rule = page.get_by_test_id("quality-rules").locator("tbody tr", has_text="press-1/+")
    expect(rule).to_contain_text("hydraulic pressure")
    expect(rule).to_contain_text("0 … 250")
    expect(rule).to_contain_text("bar")
    violation = page.get_by_test_id(f"violation-{PRESSURE}")
    expect(violation).to_contain_text("1")
    expect(page.get_by_test_id("quality-violations").locator("thead")).to_contain_text("range")
    expect(page.get_by_test_id("refiner-running")).to_have_text("running")
    expect(page.get_by_test_id("refiner-lag")).to_have_text("up to date")
    expect(page.get_by_test_id("quarantine-reason-not_json")).to_contain_text("not_json · 1")
    screenshot(page, "quality")

    violation.get_by_text(PRESSURE).click()

    expect(page).to_have_url(f"{plant.url}/layers/{PRESSURE}?layer=processed")
    expect(page.get_by_test_id("layer-caption")).to_have_text("4 processed samples, 1 flagged")
