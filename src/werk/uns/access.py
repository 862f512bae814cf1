"""What a caller may see of the namespace and of the quarantine, by scope.

Tags outside the caller's namespace scope are left out of every list and read as if
they did not exist. A quarantined message is visible when its topic names a place in
the scope (a tag, or the node of a batch); a message whose topic names no place (a
malformed topic, a source or Sparkplug topic) belongs to no subtree, so only a caller
whose scope is the whole namespace (`#`) sees it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from werk.core.access import visible
from werk.core.errors import NotFound, TopicError
from werk.historian.access import everywhere
from werk.uns.models import QuarantineRecord
from werk.uns.namespace import TreeNode
from werk.uns.topics import parse_topic

UNS_READ: Final = "uns:read"
UNS_PUBLISH: Final = "uns:publish"
QUARANTINE_READ: Final = "quarantine:read"
_SCAN_ROWS: Final = 10_000

Keep = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class QuarantineSlice:
    """A page of the quarantine records a caller may see, with counts of those only."""

    records: list[QuarantineRecord]
    total: int
    reasons: dict[str, int]


def tag_filter(request: Request, permission: str) -> Keep | None:
    """A test of tag paths for the caller's scope; None when the scope is everything."""
    if everywhere(request, permission):
        return None
    return lambda path: visible(request, permission, path)


def prune(node: TreeNode, keep: Keep) -> TreeNode:
    """The tree with only the tags `keep` accepts, and no level left empty."""
    children = {name: prune(child, keep) for name, child in node.children.items()}
    return TreeNode(
        node.name,
        node.path,
        {name: c for name, c in children.items() if c.children or c.tags},
        [tag for tag in node.tags if keep(tag)],
    )


def place(topic: str, root: str) -> str | None:
    """The tag path (or a batch's node path) a topic names; None when it names none."""
    try:
        parsed = parse_topic(topic, root)
    except TopicError:
        return None
    return parsed.node.path if parsed.tag is None else parsed.tag_path


def quarantine_filter(request: Request, root: str) -> Keep | None:
    """A test of quarantined topics for the caller's scope; None when it sees them all."""
    if everywhere(request, QUARANTINE_READ):
        return None

    @cache
    def keep(topic: str) -> bool:
        path = place(topic, root)
        return path is not None and visible(request, QUARANTINE_READ, path)

    return keep


def check_record(record: QuarantineRecord, keep: Keep | None) -> QuarantineRecord:
    """The record, or NotFound when the caller may not see it (as if it did not exist)."""
    if keep is not None and not keep(record.topic):
        raise NotFound(f"quarantine record {record.id} does not exist", record_id=record.id)
    return record


def quarantine_slice(
    *, session: Session, keep: Keep, reason: str | None, limit: int, before_id: int | None
) -> QuarantineSlice:
    """Newest visible records first, the total of those matching `reason`, counts by reason.

    Reads the id, topic and reason of every record: scoped callers pay a scan of the
    quarantine so that counts never include records they may not see.
    """
    rows = _visible_rows(session, keep)
    matching = [i for i, r in rows if reason is None or r == reason]
    page = [i for i in matching if before_id is None or i < before_id][:limit]
    return QuarantineSlice(
        records=_records(session, page),
        total=len(matching),
        reasons=dict(Counter(r for _, r in rows)),
    )


def _visible_rows(session: Session, keep: Keep) -> list[tuple[int, str]]:
    query = select(QuarantineRecord.id, QuarantineRecord.topic, QuarantineRecord.reason)
    result = session.execute(
        query.order_by(QuarantineRecord.id.desc()).execution_options(yield_per=_SCAN_ROWS)
    )
    return [(i, r) for i, topic, r in result if keep(topic)]


def _records(session: Session, ids: Sequence[int]) -> list[QuarantineRecord]:
    if not ids:
        return []
    query = select(QuarantineRecord).where(QuarantineRecord.id.in_(ids))
    return list(session.scalars(query.order_by(QuarantineRecord.id.desc())).all())
