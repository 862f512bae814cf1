"""What a caller may see and change of the datasets and sources, by namespace scope.

A dataset's place in the namespace is given by its measures: each record becomes
samples of the tags its measure templates name (``erp/inventory/{warehouse}/...``).
A record is visible when every tag path it names lies in the caller's scope. A dataset
without measures belongs to no subtree, so only a caller whose scope is the whole
namespace (`#`) sees it. A source (and its run counters) is visible only when its
whole dataset is, and pushing rows needs write scope over every path they can name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final

import orjson
from fastapi import Request

from werk.core.access import visible
from werk.core.clock import from_datetime
from werk.core.errors import NotFound
from werk.core.filters import filter_within
from werk.historian.access import everywhere, overlaps, scope_filters
from werk.historian.layers import Record, Table
from werk.historian.store import HistorianStore
from werk.sources.contracts import DatasetContract, Measure

READ_SOURCES: Final = "sources:read"
WRITE_SOURCES: Final = "sources:write"
_EVERY_NS: Final = (0, from_datetime(datetime(2200, 1, 1, tzinfo=UTC)))
_ROWS_PER_ASK: Final = 4


class Reach(Enum):
    """How much of a dataset a caller may see."""

    NONE = "none"
    SOME = "some"
    ALL = "all"


def template_filter(measure: Measure) -> str:
    """The filter of every tag path a measure can name (placeholders become `+`)."""
    return "/".join("+" if "{" in level else level for level in measure.tag.split("/"))


def reach(request: Request, permission: str, contract: DatasetContract | None) -> Reach:
    """How much of the dataset lies in the caller's scope for `permission`."""
    if everywhere(request, permission):
        return Reach.ALL
    if contract is None or not contract.measures:
        return Reach.NONE
    scope = scope_filters(request, permission)
    templates = [template_filter(m) for m in contract.measures]
    if all(any(filter_within(t, f) for f in scope) for t in templates):
        return Reach.ALL
    if all(any(overlaps(t, f) for f in scope) for t in templates):
        return Reach.SOME
    return Reach.NONE


def record_paths(contract: DatasetContract, payload: dict[str, Any]) -> list[str]:
    """The tag paths a stored record names, one per measure."""
    return [
        m.tag.format(**{name: payload.get(name, "") for name in m.placeholders})
        for m in contract.measures
    ]


def record_visible(
    request: Request, permission: str, contract: DatasetContract, payload: dict[str, Any]
) -> bool:
    """Whether every tag path of the record lies in the caller's scope."""
    return all(visible(request, permission, p) for p in record_paths(contract, payload))


def visible_records(
    request: Request, contract: DatasetContract, ask: Callable[[int], list[Record]], limit: int
) -> list[Record]:
    """The first `limit` visible records; `ask(n)` returns the first n of all records.

    Asks for more rows until `limit` visible ones are found or the records run out, so a
    page is as full as the caller's scope allows.
    """
    asked = limit
    while True:
        found = ask(asked)
        kept = [r for r in found if record_visible(request, READ_SOURCES, contract, r.payload)]
        if len(kept) >= limit or len(found) < asked:
            return kept[:limit]
        asked *= _ROWS_PER_ASK


def count_visible(request: Request, store: HistorianStore, contract: DatasetContract) -> int:
    """How many stored records of the dataset the caller may see (scans the dataset)."""
    return sum(
        record_visible(request, READ_SOURCES, contract, payload)
        for payload in _payloads(store, contract.name)
    )


def unknown_dataset(name: str, known: Iterable[str]) -> NotFound:
    """The answer for a dataset that does not exist, or that the caller may not see."""
    listed = ", ".join(sorted(known))
    return NotFound(
        f"no dataset {name!r}; known datasets: {listed}", code="unknown_dataset", dataset=name
    )


def _payloads(store: HistorianStore, dataset: str) -> Iterator[dict[str, Any]]:
    for chunk in store.scan(Table.RECORDS, *_EVERY_NS, names=[dataset]):
        for text in chunk.column("payload").to_pylist():
            payload: dict[str, Any] = orjson.loads(text)
            yield payload
