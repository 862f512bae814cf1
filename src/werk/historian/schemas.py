"""API schemas of the historian."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from werk.historian.layers import Layer

Fill = Literal["step", "linear"]


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """One history read: a tag, a layer, a range and what shape the answer takes."""

    tag: str
    layer: Layer
    start_ns: int
    end_ns: int
    bucket_s: float | None = None
    interval_s: float | None = None
    fill: Fill = "step"
    limit: int = 10_000
    newest: bool = False


class PointRead(BaseModel):
    """One stored sample with its lineage."""

    ts: datetime = Field(description="source timestamp")
    ingest_ts: datetime
    value: bool | float | str | None = Field(description="the stored value, typed as published")
    quality: str
    flags: list[str] = Field(
        default_factory=list, description="quality rules the sample breaks (processed layer)"
    )
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


class GridRead(BaseModel):
    """One value of a regular grid (resampled with step or linear interpolation)."""

    ts: datetime
    value: float | None


class HistoryRead(BaseModel):
    """Samples, a resampled grid or bucketed aggregates of one tag over a time range."""

    tag: str
    layer: Layer
    start: datetime
    end: datetime
    bucket_s: float | None = None
    interval_s: float | None = None
    fill: Fill | None = None
    points: list[PointRead] = Field(default_factory=list)
    buckets: list[BucketRead] = Field(default_factory=list)
    samples: list[GridRead] = Field(default_factory=list, description="the resampled grid")
    truncated: bool = Field(default=False, description="more points exist than `limit`")
