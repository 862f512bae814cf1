"""The demo plant logs in to the gateway with the credentials it is given, one pair per device."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import free_port, make_settings, wait_until
from tests.integration.uns.test_gateway_support import FixedAuthority, Peer, Rules

from werk.core.errors import BrokerUnavailable
from werk.sim import DemoPlant
from werk.sim.demo import EDGE_NODE, GROUP, JSON_DEVICES, DemoSite
from werk.uns.broker import EmbeddedBroker, parse_broker_url
from werk.uns.gateway import GatewayEvent, MqttGateway

# Characters that must survive the broker URL the edge agent is configured with.
EDGE_KEY = "wk_0123456789ab_p@ss:w/rd%?#"
DEVICES_KEY = "wk_ba9876543210_json-devices"


CELL_3 = "acme/berlin/machining/line-2/cell-3"


def authority() -> FixedAuthority:
    edge = Rules("p-edge", publish=(f"spBv1.0/{GROUP}/+/{EDGE_NODE}/#", f"spBv1.0/{GROUP}/+/{EDGE_NODE}"),
                 subscribe=(f"spBv1.0/{GROUP}/NCMD/{EDGE_NODE}", f"spBv1.0/{GROUP}/DCMD/{EDGE_NODE}/#",
                            "spBv1.0/STATE/#"))  # fmt: skip
    json = Rules("p-json", publish=(f"uns/v1/{CELL_3}/#",))
    watcher = Rules("p-watch", subscribe=("#",))
    return FixedAuthority({EDGE_NODE: (EDGE_KEY, edge), JSON_DEVICES: (DEVICES_KEY, json),
                           "watcher": ("w", watcher)})  # fmt: skip


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[MqttGateway, int, list[GatewayEvent]]]:
    settings = make_settings(tmp_path / "data", mqtt_allow_anonymous=False)
    broker = EmbeddedBroker(settings, serve_public=False)
    broker.start()
    events: list[GatewayEvent] = []
    gw = MqttGateway(settings, authority(), broker.internal_v311_address, broker.address,
                     events.append)  # fmt: skip
    gw.start()
    yield gw, settings.mqtt_port, events
    gw.stop()
    broker.stop()


def test_broker_urls_carry_percent_encoded_credentials() -> None:
    address = parse_broker_url("mqtt://berlin-gw-1:p%40ss%3Aw%2Frd@127.0.0.1:1883")
    assert (address.username, address.password) == ("berlin-gw-1", "p@ss:w/rd")


def test_the_json_devices_need_their_credentials(
    gateway: tuple[MqttGateway, int, list[GatewayEvent]],
) -> None:
    _gw, port, _events = gateway
    with pytest.raises(BrokerUnavailable):
        DemoPlant("127.0.0.1", port, interval_s=0.2).start(timeout_s=1.0)
    with DemoPlant("127.0.0.1", port, interval_s=0.2, assets={"conveyor-1"},
                   credentials=(JSON_DEVICES, DEVICES_KEY)) as plant:  # fmt: skip
        wait_until(lambda: plant.published >= 3)


def test_the_demo_site_logs_in_per_device_and_publishes(
    gateway: tuple[MqttGateway, int, list[GatewayEvent]], tmp_path: Path
) -> None:
    gw, port, events = gateway
    watcher = Peer(port, v5=True, user="watcher", password="w")
    watcher.subscribe("#")
    site = DemoSite(
        mqtt_host="127.0.0.1", mqtt_port=port, root="uns/v1", opcua_port=free_port(),
        modbus_port=free_port(), data_dir=tmp_path / "site", primary_host=None,
        credentials={EDGE_NODE: (EDGE_NODE, EDGE_KEY), JSON_DEVICES: (JSON_DEVICES, DEVICES_KEY)},
    )  # fmt: skip
    site.start()
    try:
        topics = lambda: {t.split("/")[2] if t.startswith("spBv1.0") else t.split("/")[-2]  # noqa: E731
                          for t, _ in watcher.got()}  # fmt: skip
        wait_until(lambda: {"NBIRTH", "DDATA", "_value"} <= topics() or
                   {"NBIRTH", "DDATA", "_batch"} <= topics(), timeout=30)  # fmt: skip
    finally:
        site.stop()
        watcher.close()
    connected = {e.username for e in events if e.kind == "connect"}
    assert {EDGE_NODE, JSON_DEVICES} <= connected
    assert not [e for e in events if e.kind in ("connect_refused", "publish_denied")]
    assert gw.stats().denials == 0
