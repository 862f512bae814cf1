"""Every web page in a real headless Chromium against a real werk fed with real messages."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from tests.e2e.web_support import (
    BAD_TOPIC,
    CELL,
    SPEED,
    STATE,
    TEMP,
    TORQUE,
    WerkApi,
    screenshot,
)

pytestmark = pytest.mark.browser

expect.set_options(timeout=10_000)


def test_empty_namespace_says_how_to_publish(werk_server: WerkApi, page: Page) -> None:
    # Runs first in this module, before the `plant` fixture feeds the session's werk.
    assert werk_server.http.get("/api/v1/health").json()["tags"] == 0
    page.goto(f"{werk_server.url}/")
    expect(page.get_by_test_id("namespace-empty")).to_contain_text(
        "No tags yet — publish to uns/v1/... or run `werk demo`"
    )
    expect(page.get_by_test_id("tag-table")).to_be_hidden()
    screenshot(page, "namespace-empty")


def test_namespace_shows_the_tree_and_live_values(plant: WerkApi, page: Page) -> None:
    page.goto(f"{plant.url}/")
    tree = page.get_by_test_id("namespace-tree")
    for name in ("acme", "berlin", "machining", "cell-1", "cnc-1", "robot-1", "spindle.speed"):
        expect(tree).to_contain_text(name)
    table = page.get_by_test_id("tag-table")
    expect(table.locator("tbody tr")).to_have_count(4)
    speed = table.locator("tbody tr", has_text="spindle.speed")
    expect(speed).to_contain_text("12000.25")
    expect(speed).to_contain_text("rpm")
    expect(speed).to_contain_text("good")
    expect(table.locator("tbody tr", has_text="joint.torque")).to_contain_text("42.5")
    expect(table.locator("tbody tr", has_text="state")).to_contain_text("RUNNING")
    expect(page.get_by_test_id("tag-count")).to_have_text("4 tags")
    expect(page.get_by_test_id("namespace-empty")).to_be_hidden()
    screenshot(page, "namespace")

    plant.publish(TORQUE, 44.125, "Nm")

    expect(table.locator("tbody tr", has_text="joint.torque")).to_contain_text("44.125")


def test_search_narrows_the_table(plant: WerkApi, page: Page) -> None:
    page.goto(f"{plant.url}/")
    table = page.get_by_test_id("tag-table")
    expect(table.locator("tbody tr")).to_have_count(4)
    page.get_by_test_id("tag-search").fill("robot torque")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("joint.torque")
    expect(page.get_by_test_id("tag-count")).to_have_text("1 tag")
    screenshot(page, "namespace-search")


def test_selecting_a_level_shows_its_subtree(plant: WerkApi, page: Page) -> None:
    page.goto(f"{plant.url}/")
    page.get_by_test_id("namespace-tree").get_by_text("cell-2", exact=True).click()
    table = page.get_by_test_id("tag-table")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("joint.torque")


def test_tag_page_shows_the_value_and_trend_and_follows_new_values(
    plant: WerkApi, page: Page
) -> None:
    page.goto(f"{plant.url}/")
    page.get_by_test_id("tag-table").locator("tbody tr", has_text="motor.temp").click()
    expect(page).to_have_url(re.compile(f"/tag/{re.escape(TEMP)}$"))
    expect(page.get_by_test_id("breadcrumb")).to_contain_text("cnc-1")
    expect(page.get_by_test_id("tag-value")).to_have_text("38.5")
    expect(page.get_by_test_id("tag-unit")).to_have_text("degC")
    expect(page.get_by_test_id("tag-quality")).to_have_text("good")
    expect(page.get_by_test_id("tag-topic")).to_have_text(f"uns/v1/{CELL}/cnc-1/_value/motor.temp")
    expect(page.get_by_test_id("tag-trend").locator("canvas")).to_be_visible()
    expect(page.get_by_test_id("trend-caption")).to_contain_text("2 samples from the historian")

    plant.publish(TEMP, 41.75, "degC")

    expect(page.get_by_test_id("tag-value")).to_have_text("41.75", timeout=5_000)
    screenshot(page, "tag")


def test_text_tag_shows_its_recent_changes(plant: WerkApi, page: Page) -> None:
    page.goto(f"{plant.url}/tag/{STATE}")
    expect(page.get_by_test_id("tag-value")).to_have_text("RUNNING")
    changes = page.get_by_test_id("tag-changes").locator("tbody tr")
    expect(changes).to_have_count(2)
    expect(changes.first).to_contain_text("RUNNING")
    expect(changes.last).to_contain_text("IDLE")
    expect(page.get_by_test_id("tag-trend")).to_have_count(0)
    screenshot(page, "tag-state")


def test_unknown_tag_says_not_found(plant: WerkApi, page: Page) -> None:
    response = page.goto(f"{plant.url}/tag/acme/berlin/nowhere/line-9/cell-9/ghost")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_test_id("tag-not-found")).to_contain_text("Tag not found")
    screenshot(page, "tag-not-found")


def test_quarantine_shows_the_malformed_message(plant: WerkApi, page: Page) -> None:
    page.goto(f"{plant.url}/quarantine")
    expect(page.get_by_test_id("reason-not_json")).to_contain_text("not_json · 1")
    table = page.get_by_test_id("quarantine-table")
    record = table.locator("tbody tr", has_text=BAD_TOPIC)
    expect(record).to_contain_text("not_json")
    expect(record).to_contain_text('{"value":')
    expect(record).to_contain_text("10 B")

    page.get_by_test_id("reason-not_json").click()

    expect(page.get_by_test_id("quarantine-count")).to_have_text("1 record with reason not_json")
    screenshot(page, "quarantine")


def test_every_page_links_to_the_others(plant: WerkApi, page: Page) -> None:
    page.goto(f"{plant.url}/quarantine")
    page.get_by_test_id("nav").get_by_text("Namespace").click()
    expect(page.get_by_test_id("namespace-tree")).to_contain_text(SPEED.split("/")[0])
    page.get_by_test_id("nav").get_by_text("API docs").click()
    expect(page).to_have_url(re.compile("/api/docs$"))


def test_the_pages_leave_unknown_api_paths_to_the_api(plant: WerkApi) -> None:
    missing = plant.http.get("/api/v1/no-such-thing")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    wrong_method = plant.http.delete("/api/v1/health")
    assert wrong_method.status_code == 405
