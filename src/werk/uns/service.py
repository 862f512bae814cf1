"""Use cases of the UNS context, shared by the API, the CLI and the web UI."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from werk.core.clock import from_datetime, now_ns, to_datetime
from werk.uns import quarantine
from werk.uns.contracts import CONTRACTS, decode, dumps
from werk.uns.models import QuarantineRecord
from werk.uns.mqtt import Publisher
from werk.uns.namespace import Namespace, TagState
from werk.uns.schemas import (
    ContractRead,
    PublishRequest,
    PublishResult,
    QuarantinePage,
    QuarantineRead,
    TagPage,
    TagRead,
)
from werk.uns.topics import DataClass, parse_topic, value_topic

_PREVIEW_BYTES = 2048


def tag_read(state: TagState, *, root: str, now: int | None = None) -> TagRead:
    """The API view of a tag."""
    return TagRead(
        path=state.path,
        topic=value_topic(state.path, root),
        data_type=state.data_type,
        unit=state.unit,
        value=state.value,
        quality=state.quality.label,
        ts=to_datetime(state.ts_ns),
        ingest_ts=to_datetime(state.ingest_ns),
        message_id=format_message_id(state.msg_id),
        first_seen=to_datetime(state.first_seen_ns),
        last_seen=to_datetime(state.last_seen_ns),
        samples=state.samples,
        rate_per_s=round(state.rate(now or now_ns()), 3),
    )


def format_message_id(msg_id: int) -> str:
    """Message ids as 16 hex digits."""
    return f"{msg_id:016x}"


def tag_page(states: list[TagState], *, root: str, limit: int) -> TagPage:
    """A page of tags."""
    now = now_ns()
    return TagPage(
        items=[tag_read(s, root=root, now=now) for s in states[:limit]], total=len(states)
    )


def search_tags(*, namespace: Namespace, text: str, root: str, limit: int) -> TagPage:
    """Tags whose path contains every word of `text`."""
    return tag_page(namespace.search(text, limit=10_000), root=root, limit=limit)


def publish_value(*, publisher: Publisher, request: PublishRequest, root: str) -> PublishResult:
    """Publish one value to the tag's value topic and wait for the broker's ack."""
    topic = value_topic(request.tag, root)
    payload: dict[str, Any] = {
        "value": request.value,
        "ts": _epoch_ms(request.ts),
        "quality": request.quality,
    }
    if request.unit is not None:
        payload["unit"] = request.unit
    body = dumps(payload)
    decoded = decode(parse_topic(topic, root), body, now_ns())
    publisher.publish(topic, body, qos=1, retain=request.retain)
    return PublishResult(
        topic=topic, message_id=format_message_id(decoded.message_id), payload=payload
    )


def _epoch_ms(moment: datetime | None) -> int:
    ns = now_ns() if moment is None else from_datetime(moment)
    return ns // 1_000_000


def quarantine_read(record: QuarantineRecord) -> QuarantineRead:
    """The API view of a quarantine record."""
    return QuarantineRead(
        id=record.id,
        received_at=to_datetime(record.received_ns),
        topic=record.topic,
        reason=record.reason,
        detail=record.detail,
        size=record.size,
        payload_preview=record.payload[:_PREVIEW_BYTES].decode("utf-8", "replace"),
    )


def quarantine_page(
    *, session: Session, reason: str | None, limit: int, before_id: int | None
) -> QuarantinePage:
    """Rejected messages, newest first, with counts per reason."""
    records, total = quarantine.list_records(
        session=session, reason=reason, limit=limit, before_id=before_id
    )
    return QuarantinePage(
        items=[quarantine_read(r) for r in records],
        total=total,
        reasons=quarantine.reason_counts(session=session),
    )


def contracts(*, root: str) -> list[ContractRead]:
    """Every payload contract with its JSON Schema."""
    node = f"{root}/<enterprise>/<site>/<area>/<line>/<cell>[/<asset>...]"
    pattern = {
        DataClass.VALUE: f"{node}/_value/<tag>",
        DataClass.BATCH: f"{node}/_batch",
        DataClass.COMMAND: f"{node}/_cmd/<tag>",
    }
    return [
        ContractRead(
            name=c.name,
            data_class=str(c.data_class),
            version=c.version,
            topic_pattern=pattern[c.data_class],
            json_schema=c.json_schema(),
        )
        for c in CONTRACTS
    ]
