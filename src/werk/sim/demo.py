"""The demo plant as `werk demo` runs it: the real brownfield path plus JSON devices.

Line 1 of ACME Berlin sits behind an OPC UA server and most of line 2 behind a Modbus TCP
server; a werk edge agent reads both and publishes Sparkplug B to the broker, where werk's
host application picks it up: PLC -> edge -> Sparkplug -> broker -> werk. The conveyor
and the packer publish UNS JSON directly, as smart devices do. Sparkplug routes put every
machine at the same ISA-95 path its JSON twin would have.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from werk.core.settings import SparkplugRoute
from werk.edge.agent import EdgeAgent
from werk.edge.config import BufferConfig, EdgeConfig, NodeConfig
from werk.edge.connectors import ModbusConfig, OpcUaConfig
from werk.sim.brownfield import BrownfieldPlant, Endpoint
from werk.sim.machines import Machine
from werk.sim.plant import DemoPlant, demo_machines
from werk.sim.registers import modbus_poll_groups, opcua_tag_configs

_LOGGER = logging.getLogger(__name__)

GROUP: Final = "acme"
EDGE_NODE: Final = "berlin-gw-1"
GATEWAY_PATH: Final = "acme/berlin/machining/edge/berlin-gw-1"
JSON_ASSETS: Final = frozenset({"conveyor-1", "packer-1"})
JSON_DEVICES: Final = "berlin-line-2-devices"  # the JSON devices' MQTT client in `DemoSite`
POLL_MS: Final = 1000


def demo_routes(seed: int = 7) -> list[SparkplugRoute]:
    """Sparkplug routes that put each brownfield machine at its ISA-95 path."""
    routes = [
        SparkplugRoute(group=GROUP, edge_node=EDGE_NODE, device=m.spec.asset, path=m.node.path)
        for m in demo_machines(seed)
        if m.spec.asset not in JSON_ASSETS
    ]
    routes.append(
        SparkplugRoute(group=GROUP, edge_node=EDGE_NODE, device="node", path=GATEWAY_PATH)
    )
    return routes


def _broker_url(host: str, port: int, credentials: tuple[str, str] | None) -> str:
    if credentials is None:
        return f"mqtt://{host}:{port}"
    user, password = (quote(part, safe="") for part in credentials)
    return f"mqtt://{user}:{password}@{host}:{port}"


def edge_config(
    machines: Sequence[Machine],
    endpoints: Sequence[Endpoint],
    *,
    broker_url: str,
    buffer_dir: Path,
    primary_host: str | None,
) -> EdgeConfig:
    """The edge agent's configuration for the machines behind `endpoints`."""
    by_asset = {m.spec.asset: m for m in machines}
    connectors: list[Any] = [_connector(by_asset[e.asset], e) for e in endpoints]
    return EdgeConfig(
        node=NodeConfig(
            group=GROUP, edge_node=EDGE_NODE, primary_host=primary_host, broker=broker_url
        ),
        buffer=BufferConfig(path=buffer_dir),
        connectors=connectors,
    )


def _connector(machine: Machine, endpoint: Endpoint) -> OpcUaConfig | ModbusConfig:
    if endpoint.transport == "opcua":
        return OpcUaConfig.model_validate(
            {
                "kind": "opcua",
                "name": endpoint.asset,
                "endpoint": endpoint.url,
                "tags": opcua_tag_configs(machine),
            }
        )
    return ModbusConfig.model_validate(
        {
            "kind": "modbus",
            "name": endpoint.asset,
            "host": endpoint.host,
            "port": endpoint.port,
            "unit_id": endpoint.unit_id,
            "byte_order": "big",
            "word_order": "big",
            "groups": modbus_poll_groups(machine.spec.kind, interval_ms=POLL_MS),
        }
    )


class DemoSite:
    """The whole demo: brownfield servers, the edge agent reading them, JSON devices."""

    def __init__(
        self,
        *,
        mqtt_host: str,
        mqtt_port: int,
        root: str,
        opcua_port: int,
        modbus_port: int,
        data_dir: Path,
        primary_host: str | None,
        seed: int = 7,
        credentials: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        """Build the site; `credentials` maps `EDGE_NODE` and `JSON_DEVICES` to MQTT logins.

        Either client connects without credentials when it has no (user, password) pair.
        """
        credentials = credentials or {}
        machines = [m for m in demo_machines(seed) if m.spec.asset not in JSON_ASSETS]
        self.brownfield = BrownfieldPlant(
            machines, host=mqtt_host, opcua_port=opcua_port, modbus_port=modbus_port
        )
        self.agent = EdgeAgent(
            edge_config(
                machines,
                self.brownfield.endpoints,
                broker_url=_broker_url(mqtt_host, mqtt_port, credentials.get(EDGE_NODE)),
                buffer_dir=data_dir / "edge",
                primary_host=primary_host,
            )
        )
        self.json_devices = DemoPlant(
            mqtt_host, mqtt_port, root=root, seed=seed, assets=JSON_ASSETS,
            credentials=credentials.get(JSON_DEVICES),
        )  # fmt: skip

    @property
    def endpoints(self) -> list[Endpoint]:
        """Where each brownfield machine is served."""
        return self.brownfield.endpoints

    def start(self) -> None:
        """Start the servers, then the edge agent, then the JSON devices."""
        self.brownfield.start_in_thread()
        try:
            self.agent.start_in_thread()
            self.json_devices.start()
        except BaseException:
            self.stop()
            raise
        _LOGGER.info(
            "demo plant running: %d machines over OPC UA and Modbus, %d over JSON",
            len(self.endpoints),
            len(JSON_ASSETS),
        )

    def stop(self) -> None:
        """Stop in reverse order; keep going if one part fails to stop."""
        for step in (self.json_devices.stop, self.agent.stop_thread, self.brownfield.stop):
            try:
                step()
            except Exception:
                _LOGGER.exception("error while stopping the demo plant")
