"""ORM models of the sources context: loaded files, SQL watermarks and the run log."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from werk.core.db import Base


class LoadedFile(Base):
    """A file a source has loaded, as it was then (a change of size or time loads it again)."""

    __tablename__ = "sources_files"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(String(2048), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    loaded_ns: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(BigInteger)


class Watermark(Base):
    """The highest cursor value a SQL source has loaded."""

    __tablename__ = "sources_watermarks"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    value_json: Mapped[str] = mapped_column(Text)  # {"type": ..., "value": ...}
    updated_ns: Mapped[int] = mapped_column(BigInteger)


class SourceRun(Base):
    """One run of a source: when, what triggered it, what it read, stored and rejected."""

    __tablename__ = "sources_runs"
    __table_args__ = (Index("ix_sources_runs_source_started", "source", "started_ns"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[str] = mapped_column(String(16))  # schedule | manual
    started_ns: Mapped[int] = mapped_column(BigInteger)
    finished_ns: Mapped[int | None] = mapped_column(BigInteger)
    rows_read: Mapped[int] = mapped_column(BigInteger, default=0)
    accepted: Mapped[int] = mapped_column(BigInteger, default=0)
    rejected: Mapped[int] = mapped_column(BigInteger, default=0)
    stored: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str | None] = mapped_column(Text)
