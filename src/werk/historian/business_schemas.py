"""API schemas of the business layer: rollups, KPIs and lineage."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from werk.historian.layers import Layer
from werk.historian.schemas import PointRead

KpiName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=256,
        pattern=r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$",
        description="slash-separated path, e.g. oee/acme/berlin/line-1/availability",
    ),
]


class RollupRead(BaseModel):
    """One business-layer bucket of a tag."""

    tag: str
    width_s: int
    start: datetime
    count: int
    min: float | None = Field(description="None when every sample was bad")
    max: float | None
    avg: float | None
    first: float | None
    last: float | None
    first_ts: datetime
    last_ts: datetime
    flagged: int = Field(description="aggregated samples that carry a quality-rule flag")
    bad: int = Field(description="bad-quality samples left out of the aggregates")


class LineageRefModel(BaseModel):
    """An input of a business value: samples of a tag in [start, end) of a layer."""

    model_config = ConfigDict(extra="forbid")

    layer: Layer
    tag: str = Field(min_length=1, max_length=1024)
    start: datetime
    end: datetime


class KpiWrite(BaseModel):
    """A KPI value to store, with the inputs it was computed from."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: KpiName
    ts: datetime
    value: float
    unit: str = Field(default="", max_length=32)
    source: str = Field(min_length=1, max_length=64, description="the context that computed it")
    lineage: list[LineageRefModel] = Field(default_factory=list, max_length=100)


class KpiRead(BaseModel):
    """A stored KPI value."""

    name: str
    ts: datetime
    value: float
    unit: str
    source: str
    lineage: list[LineageRefModel]


class KpiSeries(BaseModel):
    """Values of one KPI over a range."""

    name: str
    values: list[KpiRead]


class WriteResult(BaseModel):
    """How many values were stored."""

    stored: int


class RollupLineage(BaseModel):
    """A rollup and what it was computed from: narrower rollups or processed samples."""

    rollup: RollupRead
    parts: list[RollupRead] = Field(
        default_factory=list, description="the narrower rollups it merges (1 h, 1 day)"
    )
    samples: list[PointRead] = Field(
        default_factory=list, description="the processed samples it aggregates (1 min)"
    )
    messages: list[str] = Field(
        default_factory=list, description="raw message ids the samples came from"
    )
    truncated: bool = False


class InputLineage(BaseModel):
    """One input range of a KPI and the stored data it covers."""

    ref: LineageRefModel
    rollups: list[RollupRead] = Field(default_factory=list)
    samples: list[PointRead] = Field(default_factory=list)
    messages: list[str] = Field(default_factory=list)
    truncated: bool = False


class KpiLineage(BaseModel):
    """A KPI value and its inputs down to raw message ids."""

    kpi: KpiRead
    inputs: list[InputLineage]


class MessagePoint(BaseModel):
    """A raw sample one message brought."""

    tag: str
    ts: datetime
    value: bool | float | str | None
    quality: str


class MessageLineage(BaseModel):
    """The raw samples of one message: the end of every lineage."""

    message_id: str
    ingest_ts: datetime | None
    points: list[MessagePoint]
