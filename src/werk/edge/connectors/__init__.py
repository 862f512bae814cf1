"""Edge connectors: each one is a Sparkplug device fed from one industrial protocol."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from werk.edge.connectors.base import (
    Connector,
    ConnectorConfigBase,
    ConnectorHealth,
    ConnectorState,
    Sink,
)
from werk.edge.connectors.modbus import ModbusConfig, ModbusConnector, ModbusTag, PollGroup
from werk.edge.connectors.opcua import BrowseRule, OpcUaConfig, OpcUaConnector, OpcUaTag

ConnectorConfig = Annotated[OpcUaConfig | ModbusConfig, Field(discriminator="kind")]

__all__ = [
    "BrowseRule",
    "Connector",
    "ConnectorConfig",
    "ConnectorConfigBase",
    "ConnectorHealth",
    "ConnectorState",
    "ModbusConfig",
    "ModbusConnector",
    "ModbusTag",
    "OpcUaConfig",
    "OpcUaConnector",
    "OpcUaTag",
    "PollGroup",
    "Sink",
    "build_connector",
]


def build_connector(config: OpcUaConfig | ModbusConfig) -> Connector[Any]:
    """The connector for a validated connector config."""
    if isinstance(config, OpcUaConfig):
        return OpcUaConnector(config)
    return ModbusConnector(config)
