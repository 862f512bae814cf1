"""Quarantine: messages werk did not accept, each with the exact reason."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from werk.core.errors import NotFound
from werk.uns.models import QuarantineRecord


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message on its way to quarantine."""

    received_ns: int
    topic: str
    payload: bytes
    reason: str
    detail: str


def add_rejected(*, session: Session, rejected: list[Rejected]) -> None:
    """Stage rejected messages in the session (the caller commits)."""
    session.add_all(
        QuarantineRecord(
            received_ns=r.received_ns,
            topic=r.topic,
            payload=r.payload,
            size=len(r.payload),
            reason=r.reason,
            detail=r.detail,
        )
        for r in rejected
    )


def list_records(
    *, session: Session, reason: str | None = None, limit: int = 100, before_id: int | None = None
) -> tuple[list[QuarantineRecord], int]:
    """Newest records first, optionally of one reason; also the total matching count."""
    query = select(QuarantineRecord)
    counting = select(func.count(QuarantineRecord.id))
    if reason is not None:
        query = query.where(QuarantineRecord.reason == reason)
        counting = counting.where(QuarantineRecord.reason == reason)
    if before_id is not None:
        query = query.where(QuarantineRecord.id < before_id)
    records = session.scalars(query.order_by(QuarantineRecord.id.desc()).limit(limit)).all()
    return list(records), session.scalar(counting) or 0


def get_record(*, session: Session, record_id: int) -> QuarantineRecord:
    """One record by id."""
    record = session.get(QuarantineRecord, record_id)
    if record is None:
        raise NotFound(f"quarantine record {record_id} does not exist", record_id=record_id)
    return record


def reason_counts(*, session: Session) -> dict[str, int]:
    """How many records there are per reason."""
    rows = session.execute(
        select(QuarantineRecord.reason, func.count(QuarantineRecord.id)).group_by(
            QuarantineRecord.reason
        )
    ).all()
    return {str(reason): int(count) for reason, count in rows}
