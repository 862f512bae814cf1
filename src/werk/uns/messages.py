"""What moves through ingest: messages as received, spooled chunks, counters, seen ids."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from werk.core.clock import now_ns
from werk.core.journal import Position

_MAX_SEEN: Final = 2_000_000


class Received(NamedTuple):
    """A message as received, before any decoding."""

    topic: str
    payload: bytes
    received_ns: int
    overflowed: bool = False


class Chunk(NamedTuple):
    """Messages the spool holds, up to `end`, and their size in bytes."""

    messages: list[Received]
    end: Position
    size: int


@dataclass(slots=True)
class IngestStats:
    """Counters of the pipeline since start."""

    received: int = 0
    accepted: int = 0
    samples: int = 0
    rejected: int = 0
    duplicates: int = 0
    overflowed: int = 0
    replayed: int = 0
    batches: int = 0
    write_errors: int = 0
    historical_repeats: int = 0
    last_error: str | None = None
    started_ns: int = field(default_factory=now_ns)


class SeenMessages:
    """Ids of recently stored messages, forgotten after a time window."""

    def __init__(self, window_ns: int) -> None:
        self._window_ns = window_ns
        self._ids: OrderedDict[int, int] = OrderedDict()

    def __contains__(self, msg_id: int) -> bool:
        return msg_id in self._ids

    def add(self, msg_id: int, at_ns: int) -> None:
        """Remember an id, forgetting the oldest beyond the window or the size cap."""
        self._ids[msg_id] = at_ns
        horizon = at_ns - self._window_ns
        ids = self._ids
        while ids and (len(ids) > _MAX_SEEN or next(iter(ids.values())) < horizon):
            ids.popitem(last=False)
