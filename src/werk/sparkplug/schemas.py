"""API schemas of the Sparkplug context: edge nodes, devices and commands."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from werk.uns.schemas import StoredValue


class MetricRead(BaseModel):
    """A metric declared in a birth and the UNS tag it feeds."""

    name: str
    alias: int | None
    datatype: str
    tag: str | None = Field(description="UNS tag path; none for protocol metrics")
    unit: str | None
    writable: bool


class DeviceRead(BaseModel):
    """A device of an edge node (device null: the node's own metrics)."""

    device: str | None
    uns_path: str
    online: bool
    birth: datetime | None
    death: datetime | None
    metrics: int
    metric_list: list[MetricRead] | None = None


class NodeRead(BaseModel):
    """A Sparkplug edge node as the host application sees it."""

    group: str
    edge_node: str
    online: bool
    bd_seq: int | None
    birth: datetime | None
    death: datetime | None
    expected_seq: int | None
    messages: int
    seq_errors: int
    reordered: int
    rebirths_requested: int
    late_deaths: int
    unknown_aliases: int
    before_birth: int
    last_message: datetime | None
    buffered_samples: int | None = Field(description="samples the edge node holds for later")
    edge_metrics: dict[str, Any]
    devices: list[DeviceRead]


class HostRead(BaseModel):
    """The Sparkplug host application."""

    host_id: str
    connected: bool
    online_since: datetime | None
    nodes: int
    nodes_online: int


class CommandCreate(BaseModel):
    """A write to the machine behind a tag."""

    tag: str = Field(examples=["acme/berlin/machining/line-1/cell-1/cnc-1/speed_setpoint"])
    value: StoredValue = Field(union_mode="left_to_right")
    wait_s: float = Field(default=5.0, ge=0, le=60, description="wait this long for the result")


class CommandRead(BaseModel):
    """A write and its outcome; the audit record of it."""

    id: str
    tag: str
    metric: str
    topic: str
    value: Any
    status: Literal["pending", "done", "failed", "timeout"]
    requested: datetime
    requested_by: str
    origin: str
    completed: datetime | None
    result: Any = Field(description="the value read back from the machine")
    error: str | None


class RebirthRead(BaseModel):
    """A rebirth request that was sent."""

    group: str
    edge_node: str
    request: Literal["Node Control/Rebirth"] = "Node Control/Rebirth"
