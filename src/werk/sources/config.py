"""The sources file: user dataset contracts and the sources that feed datasets.

[[datasets]]            # optional: contracts beside the built-in ones
name = "work_orders"
key = ["work_order"]
time = "released_at"
fields = { work_order = "string", released_at = "datetime", qty = "number" }

[[sources]]
name = "erp-orders"
kind = "file"           # file (CSV, Parquet) or sql
dataset = "orders"
path = "exports/orders-*.csv"
every = "5m"            # leave out to run only on demand
"""

from __future__ import annotations

import codecs
import os
from pathlib import Path
from typing import Annotated, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from werk.core.errors import ValidationFailed
from werk.core.tomlfile import read_toml
from werk.historian.service import parse_duration
from werk.sources.contracts import BUILTIN_CONTRACTS, Catalog, DatasetContract

SOURCE_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,63}$"
PUSH_SOURCE: Final = "push"


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=SOURCE_PATTERN)]
    dataset: str
    every: str | None = Field(default=None, description="run interval such as 5m; None: on demand")
    columns: dict[str, str] = Field(
        default_factory=dict, description="source column -> contract field"
    )
    extra_columns: Literal["error", "ignore"] = "error"

    @field_validator("every")
    @classmethod
    def _duration(cls, every: str | None) -> str | None:
        if every is not None:
            try:
                parse_duration(every)
            except ValidationFailed as exc:
                raise ValueError(exc.message) from None
        return every

    @field_validator("name")
    @classmethod
    def _not_push(cls, name: str) -> str:
        if name == PUSH_SOURCE:
            raise ValueError(
                f"the source name {PUSH_SOURCE!r} is kept for records pushed over REST"
            )
        return name

    @property
    def every_s(self) -> float | None:
        """Seconds between scheduled runs; None when the source runs on demand only."""
        return None if self.every is None else parse_duration(self.every)


class FileSourceConfig(_Source):
    """CSV or Parquet files matched by a path or glob pattern."""

    kind: Literal["file"]
    path: str = Field(description="a file or glob pattern; relative to the sources file")
    format: Literal["csv", "parquet"] | None = Field(
        default=None, description="default from the file suffix"
    )
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","
    encoding: str = Field(default="utf-8-sig", description="text encoding (a BOM is skipped)")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str) -> str:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"unknown text encoding {encoding!r}") from None
        return encoding


class SqlSourceConfig(_Source):
    """A table or query of any database SQLAlchemy reaches."""

    kind: Literal["sql"]
    url: str | None = Field(default=None, description="SQLAlchemy URL")
    url_env: str | None = Field(default=None, description="environment variable with the URL")
    table: str | None = Field(default=None, description="table name, optionally schema.table")
    query: str | None = None
    cursor: str | None = Field(
        default=None, description="a growing column; each run reads rows above the last value"
    )
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    chunk_rows: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000

    @model_validator(mode="after")
    def _one_of_each(self) -> Self:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url and url_env")
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table and query")
        return self

    def database_url(self) -> str:
        """The SQLAlchemy URL, read from the environment when `url_env` is set."""
        if self.url is not None:
            return self.url
        assert self.url_env is not None
        value = os.environ.get(self.url_env)
        if not value:
            raise ValidationFailed(
                f"source {self.name!r}: environment variable {self.url_env} is not set",
                code="bad_config",
            )
        return value


SourceConfig = Annotated[FileSourceConfig | SqlSourceConfig, Field(discriminator="kind")]


class SourcesFile(BaseModel):
    """Everything a sources file declares."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    datasets: list[DatasetContract] = Field(default_factory=list)
    sources: list[SourceConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _unique("dataset", [d.name for d in self.datasets])
        _unique("source", [s.name for s in self.sources])
        catalog = self.catalog()
        for source in self.sources:
            contract = catalog.get(source.dataset) if source.dataset in catalog else None
            if contract is None:
                raise ValueError(f"source {source.name!r}: no dataset {source.dataset!r}")
            unknown = sorted(set(source.columns.values()) - set(contract.fields))
            if unknown:
                raise ValueError(
                    f"source {source.name!r}: columns map to {', '.join(unknown)}, "
                    f"which are not fields of {source.dataset!r}"
                )
        return self

    def catalog(self) -> Catalog:
        """Built-in contracts and the file's own; a contract of the same name replaces one."""
        by_name = {c.name: c for c in BUILTIN_CONTRACTS} | {c.name: c for c in self.datasets}
        return Catalog(list(by_name.values()))


def _unique(what: str, names: list[str]) -> None:
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise ValueError(f"{what} names must be unique; repeated: {', '.join(doubled)}")


def load_sources_file(path: Path) -> SourcesFile:
    """Read a sources file; file paths in it become relative to the file's folder."""
    data = read_toml(path)
    parsed = parse_sources(data, origin=str(path))
    sources = [_anchored(s, path.resolve().parent) for s in parsed.sources]
    return parsed.model_copy(update={"sources": sources})


def parse_sources(data: object, *, origin: str = "sources") -> SourcesFile:
    """Validate already parsed sources data."""
    try:
        return SourcesFile.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(f"{origin}: {_first_error(exc)}", code="bad_config") from None


def _anchored(source: FileSourceConfig | SqlSourceConfig, folder: Path) -> SourceConfig:
    if isinstance(source, FileSourceConfig) and not Path(source.path).is_absolute():
        return source.model_copy(update={"path": str(folder / source.path)})
    return source


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    key = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    more = exc.error_count() - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{key}: {message}{suffix}" if key else f"{message}{suffix}"
