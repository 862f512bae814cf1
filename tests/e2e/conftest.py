"""A real werk with the web UI for the browser tests, fed through its API and MQTT port.

NiceGUI keeps its pages in one process-wide app, so the session gets exactly one server.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from tests.conftest import LiveServer, make_settings, publish, require, wait_until
from tests.e2e.web_support import (
    BAD_TOPIC,
    CELL,
    CHROMIUM,
    CHROMIUM_ARGS,
    SPEED,
    STATE,
    TEMP,
    TORQUE,
    Person,
    WerkApi,
    make_user,
    sign_in,
)
from tests.sparkplug_edge import D, E, G

from werk.core.settings import SparkplugRoute

WAIT_S = 20.0


@pytest.fixture(scope="session")
def werk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WerkApi]:
    """Serve one werk with the web UI over real HTTP for the whole session."""
    route = SparkplugRoute(group=G, edge_node=E, device=D, path=f"{CELL}/{D}")
    settings = make_settings(tmp_path_factory.mktemp("werk"), sparkplug_routes=[route])
    with (
        LiveServer(settings, web=True) as server,
        httpx.Client(base_url=server.url, headers=server.headers, timeout=10.0) as http,
    ):
        yield WerkApi(server.url, server.runtime.mqtt_port, http)


@pytest.fixture(scope="session")
def plant(werk_server: WerkApi) -> WerkApi:
    """Feed two assets' numbers, a text state and one malformed message into werk."""
    for speed, temp, torque in ((11990.5, 38.25, 41.0), (12000.25, 38.5, 42.5)):
        werk_server.publish(SPEED, speed, "rpm")
        werk_server.publish(TEMP, temp, "degC")
        werk_server.publish(TORQUE, torque, "Nm")
    for state in ("IDLE", "RUNNING"):
        werk_server.publish(STATE, state)
    publish(werk_server.mqtt_port, BAD_TOPIC, b'{"value": ')
    wait_until(lambda: werk_server.value_of(SPEED) == 12000.25, timeout=WAIT_S)
    wait_until(lambda: werk_server.value_of(STATE) == "RUNNING", timeout=WAIT_S)
    wait_until(lambda: werk_server.stored(TEMP) == 2, timeout=WAIT_S)
    wait_until(lambda: werk_server.stored(STATE) == 2, timeout=WAIT_S)
    wait_until(werk_server.quarantined, timeout=WAIT_S)
    return werk_server


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium driven by Playwright."""
    require("chromium (scripts/test-deps.sh installs it)", CHROMIUM.exists())
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def web_admin(werk_server: WerkApi) -> Person:
    """The administrator the browser tests sign in as."""
    return make_user(werk_server, "web-admin", org="operator", role="admin", org_scope="any")


@pytest.fixture
def page(browser: Browser, werk_server: WerkApi, web_admin: Person) -> Iterator[Page]:
    """A fresh browser tab with a desktop-sized viewport, signed in as the administrator."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    sign_in(context, werk_server.url, web_admin.name, web_admin.password)
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    yield tab
    context.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The empty-namespace check runs first among the browser tests: the others feed werk."""
    first = [i for i in items if i.nodeid.endswith("::test_empty_namespace_says_how_to_publish")]
    start = next((n for n, i in enumerate(items) if "tests/e2e/" in i.nodeid), None)
    for item in first if start is not None else ():
        items.remove(item)
        items.insert(start, item)
