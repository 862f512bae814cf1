"""API schemas of data quality: rule violations, missing data and the refiner's state."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class TagViolations(BaseModel):
    """How often the samples of one tag broke each quality rule."""

    tag: str
    counts: dict[str, int] = Field(description="flag name -> flagged samples")
    total: int


class MissingTag(BaseModel):
    """A tag whose newest sample is older than its rule's stale limit."""

    tag: str
    last_ts: datetime | None
    stale_s: float
    silent_s: float = Field(description="seconds since the newest sample")


class RefinerStatus(BaseModel):
    """Where the processed and business layers stand behind the raw layer."""

    running: bool
    refined_through: int = Field(description="newest raw write batch refined")
    newest_batch: int = Field(description="newest raw write batch seen")
    refined_samples: int = Field(description="samples refined since start")
    last_error: str | None


class QualityReport(BaseModel):
    """Everything the data-quality page shows but the quarantine."""

    status: RefinerStatus
    violations: list[TagViolations]
    missing: list[MissingTag]
    since: datetime = Field(description="violations are counted since this time")


class ReprocessRequest(BaseModel):
    """A range of stored raw samples to refine again with the current rules."""

    tags: str = Field(default="#", description="MQTT-style filter over tag paths")
    start: datetime
    end: datetime


class ReprocessResult(BaseModel):
    """How many samples were refined again."""

    tags: int
    samples: int
