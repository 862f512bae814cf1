"""ORM models of the UNS context: quarantine and the persisted namespace registry."""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from werk.core.db import Base


class QuarantineRecord(Base):
    """A message werk did not accept, kept whole with the reason."""

    __tablename__ = "uns_quarantine"
    __table_args__ = (Index("ix_uns_quarantine_received", "received_ns"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_ns: Mapped[int] = mapped_column(BigInteger)
    topic: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[str] = mapped_column(Text)


class TagRecord(Base):
    """A tag of the namespace registry with its last-known value."""

    __tablename__ = "uns_tags"

    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    data_type: Mapped[str] = mapped_column(String(16))
    unit: Mapped[str | None] = mapped_column(String(32))
    first_seen_ns: Mapped[int] = mapped_column(BigInteger)
    last_seen_ns: Mapped[int] = mapped_column(BigInteger)
    samples: Mapped[int] = mapped_column(BigInteger)
    interval_s: Mapped[float | None] = mapped_column(Float)
    value_json: Mapped[str] = mapped_column(Text)
    ts_ns: Mapped[int] = mapped_column(BigInteger)
    ingest_ns: Mapped[int] = mapped_column(BigInteger)
    quality: Mapped[int] = mapped_column(Integer)
    msg_id: Mapped[int] = mapped_column(BigInteger)
