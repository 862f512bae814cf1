"""API schemas of the UNS context."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from werk.uns.contracts import QualityName, Scalar

# Read side: any integer a source sent (Sparkplug UInt64 reaches 2**64 - 1) stays exact.
StoredValue = StrictBool | StrictInt | StrictFloat | StrictStr


class TagRead(BaseModel):
    """A tag of the namespace with its last-known value."""

    path: str
    topic: str
    data_type: Literal["number", "boolean", "string"]
    unit: str | None
    value: StoredValue = Field(union_mode="left_to_right")
    quality: QualityName
    ts: datetime = Field(description="source timestamp of the last-known value")
    ingest_ts: datetime = Field(description="when werk received the last-known value")
    message_id: str = Field(description="id of the message that carried the last-known value")
    first_seen: datetime
    last_seen: datetime
    samples: int = Field(description="samples received since the tag was first seen")
    rate_per_s: float = Field(description="recent sample rate")


class TagPage(BaseModel):
    """A list of tags."""

    items: list[TagRead]
    total: int


class TreeRead(BaseModel):
    """A level of the namespace tree."""

    name: str
    path: str
    children: list[TreeRead]
    tags: list[str]


class PublishRequest(BaseModel):
    """A value to publish to the UNS under a tag path."""

    tag: str = Field(examples=["acme/berlin/machining/line-1/cell-1/cnc-1/spindle.setpoint"])
    value: Scalar
    unit: str | None = Field(default=None, max_length=32)
    quality: QualityName = "good"
    ts: datetime | None = Field(default=None, description="source timestamp; default now")
    retain: bool = False


class PublishResult(BaseModel):
    """Where a published value went."""

    topic: str
    message_id: str
    payload: dict[str, Any]


class QuarantineRead(BaseModel):
    """A rejected message and why."""

    id: int
    received_at: datetime
    topic: str
    reason: str
    detail: str
    size: int
    payload_preview: str = Field(description="the payload as UTF-8 text, first 2048 bytes")


class QuarantinePage(BaseModel):
    """Rejected messages, newest first."""

    items: list[QuarantineRead]
    total: int
    reasons: dict[str, int]


class ContractRead(BaseModel):
    """A payload contract and its JSON Schema."""

    name: str
    data_class: str
    version: int
    topic_pattern: str
    json_schema: dict[str, Any]
