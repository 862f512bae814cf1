"""API schemas of the historian."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class PointRead(BaseModel):
    """One raw sample with its lineage."""

    ts: datetime = Field(description="source timestamp")
    ingest_ts: datetime
    value: bool | float | str | None = Field(description="the stored value, typed as published")
    quality: str
    message_id: str


class BucketRead(BaseModel):
    """Aggregates of one time bucket (numeric samples)."""

    start: datetime
    count: int
    min: float | None
    max: float | None
    avg: float | None
    first: float | None
    last: float | None


class HistoryRead(BaseModel):
    """Raw samples or bucketed aggregates of one tag over a time range."""

    tag: str
    layer: str = "raw"
    start: datetime
    end: datetime
    bucket_s: float | None = None
    points: list[PointRead] = Field(default_factory=list)
    buckets: list[BucketRead] = Field(default_factory=list)
    truncated: bool = Field(default=False, description="more points exist than `limit`")
