"""The werk edge agent: a Sparkplug B edge node fed by OPC UA and Modbus connectors."""

from werk.edge.agent import EdgeAgent
from werk.edge.buffer import StoreBuffer
from werk.edge.config import BufferConfig, EdgeConfig, NodeConfig, load_config
from werk.edge.status import EdgeStatus

__all__ = [
    "BufferConfig",
    "EdgeAgent",
    "EdgeConfig",
    "EdgeStatus",
    "NodeConfig",
    "StoreBuffer",
    "load_config",
]
