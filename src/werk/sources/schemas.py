"""API schemas of the sources context."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from werk.sources.contracts import FieldSpec, Measure


class DatasetRead(BaseModel):
    """A dataset contract and how many records the historian holds of it."""

    name: str
    version: int
    description: str
    key: list[str] = Field(description="fields whose values, joined by '|', form the key")
    time: str = Field(description="the field that gives each record its time")
    fields: dict[str, FieldSpec]
    measures: list[Measure] = Field(description="fields also stored as raw samples of tags")
    records: int


class RecordRead(BaseModel):
    """One stored record of a dataset."""

    dataset: str
    key: str
    ts: datetime = Field(description="the record's time field")
    ingest_ts: datetime = Field(description="when werk received the record")
    source: str
    message_id: str = Field(description="stable id of the row (also on its measure samples)")
    payload: dict[str, Any]


class RecordPage(BaseModel):
    """Records of a dataset in a time range, oldest first."""

    dataset: str
    start: datetime
    end: datetime
    latest: bool = Field(description="only the newest version of each key")
    items: list[RecordRead]


class RunRead(BaseModel):
    """One run of a source."""

    id: int
    source: str
    trigger: Literal["schedule", "manual"]
    status: Literal["running", "ok", "error"]
    started: datetime
    finished: datetime | None
    rows_read: int
    accepted: int
    rejected: int = Field(description="rows sent to the quarantine")
    stored: int = Field(description="records stored for the first time")
    error: str | None


class SourceRead(BaseModel):
    """A configured source with its newest run."""

    name: str
    kind: Literal["file", "sql"]
    dataset: str
    target: str = Field(description="the files or database the source reads (no password)")
    every: str | None = Field(description="run interval; null: on demand only")
    next_run: datetime | None
    running: bool
    last_run: RunRead | None


class SourceDetail(SourceRead):
    """A configured source with its recent runs, newest first."""

    runs: list[RunRead]


class RunRequested(BaseModel):
    """The state of a requested run after the wait the caller allowed."""

    source: str
    status: Literal["queued", "running", "ok", "error"]
    run: RunRead | None


class PushRejection(BaseModel):
    """A pushed row that went to the quarantine."""

    index: int = Field(description="position of the row in the pushed list, from 0")
    reason: str
    field: str | None
    detail: str


class PushResult(BaseModel):
    """What happened to pushed rows."""

    dataset: str
    source: str
    received: int
    accepted: int
    rejected: int
    stored: int = Field(description="records stored for the first time (repeats are not)")
    samples: int = Field(description="measure samples stored in the raw layer")
    rejections: list[PushRejection]
