"""ORM models of the Sparkplug context: birth certificates and the command log."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from werk.core.db import Base


class BirthRecord(Base):
    """The latest NBIRTH or DBIRTH of a node or device, kept to restore alias maps."""

    __tablename__ = "sparkplug_births"

    group_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    edge_node: Mapped[str] = mapped_column(String(256), primary_key=True)
    device: Mapped[str] = mapped_column(String(256), primary_key=True)  # "" for the node
    topic: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    bd_seq: Mapped[int | None] = mapped_column(Integer)
    born_ns: Mapped[int] = mapped_column(BigInteger)
    died_ns: Mapped[int | None] = mapped_column(BigInteger)
    online: Mapped[bool] = mapped_column(Boolean)


class CommandRecord(Base):
    """A write to a machine: who asked, what, when, from where, and how it ended."""

    __tablename__ = "sparkplug_commands"
    __table_args__ = (Index("ix_sparkplug_commands_requested", "requested_ns"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    requested_ns: Mapped[int] = mapped_column(BigInteger)
    requested_by: Mapped[str] = mapped_column(String(256))
    origin: Mapped[str] = mapped_column(String(256))  # "api 10.0.0.7", "uns <topic>"
    tag_path: Mapped[str] = mapped_column(String(1024), index=True)
    topic: Mapped[str] = mapped_column(Text)
    metric: Mapped[str] = mapped_column(String(1024))
    value_json: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending/done/failed/timeout
    completed_ns: Mapped[int | None] = mapped_column(BigInteger)
    result_json: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
