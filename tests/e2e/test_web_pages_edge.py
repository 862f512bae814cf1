"""The edge nodes page in a real browser: nodes, devices, rebirth button, writes.

Runs after test_web_pages.py (file order), whose first test needs an empty namespace.
"""

from __future__ import annotations

import threading

import pytest
from playwright.sync_api import Page, expect
from tests.conftest import wait_until
from tests.e2e.web_support import WerkApi, screenshot
from tests.sparkplug_edge import D, E, EdgeNode, G

from werk.sparkplug.codec import Metric, PropertySet
from werk.sparkplug.datatypes import COMMAND_ID, COMMAND_STATUS, DataType

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def edge(plant: WerkApi) -> EdgeNode:
    node = EdgeNode(plant.mqtt_port)
    node.birth(bd_seq=3)
    wait_until(lambda: plant.http.get(f"/api/v1/sparkplug/nodes/{G}/{E}").status_code == 200)
    return node


def test_edge_page_shows_nodes_and_devices(plant: WerkApi, edge: EdgeNode, page: Page) -> None:
    page.goto(f"{plant.url}/edge")
    nodes = page.get_by_test_id("edge-nodes")
    row = nodes.locator("tbody tr", has_text=f"{G}/{E}")
    expect(row).to_contain_text("online")
    expect(row).to_contain_text("3")  # bdSeq
    devices = page.get_by_test_id("edge-devices")
    expect(devices.locator("tbody tr", has_text=f"{E}/{D}")).to_contain_text("online")
    screenshot(page, "edge-nodes")


def test_rebirth_button_asks_the_node_for_births(
    plant: WerkApi, edge: EdgeNode, page: Page
) -> None:
    page.goto(f"{plant.url}/edge")
    page.get_by_test_id(f"rebirth-{G}/{E}").click()
    expect(page.get_by_text(f"Rebirth requested from {G}/{E}")).to_be_visible()
    topic, payload = edge.next_command()
    assert topic == f"spBv1.0/{G}/NCMD/{E}"
    assert payload.metrics[0].name == "Node Control/Rebirth"


def test_writes_show_with_their_outcome(plant: WerkApi, edge: EdgeNode, page: Page) -> None:
    def answer() -> None:
        _topic, payload = edge.next_command()
        props = payload.metrics[0].properties
        assert props is not None
        command = props.get(COMMAND_ID)
        assert command is not None
        result = PropertySet.of(
            **{
                COMMAND_ID: (DataType.STRING, command.value),
                COMMAND_STATUS: (DataType.STRING, "done"),
            }
        )
        edge.send("DDATA", (Metric(alias=2, value=777.0, properties=result),), D)

    responder = threading.Thread(target=answer)
    responder.start()
    tag = "acme/berlin/machining/line-1/cell-1/cnc-1"
    response = plant.http.post(
        "/api/v1/commands", json={"tag": f"{tag}/Setpoints.Speed", "value": 777, "wait_s": 10}
    )
    responder.join(10)
    assert response.json()["status"] == "done"
    page.goto(f"{plant.url}/edge")
    writes = page.get_by_test_id("edge-commands")
    expect(writes.locator("tbody tr", has_text="Setpoints.Speed")).to_contain_text("done")
    screenshot(page, "edge-writes")
