"""The one interface every connector has: batches of rows, and what to remember after each."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from werk.core.errors import ValidationFailed
from werk.sources.config import FileSourceConfig, SqlSourceConfig
from werk.sources.contracts import DatasetContract


@dataclass(slots=True)
class Batch:
    """Rows read from one origin (a file, a query), stored together.

    `remember` runs in the same transaction as the batch's quarantine entries, once its
    rows are stored, so a source resumes after the batch next time. A batch with an
    `error` carries no rows: its origin could not be read and is tried again next run.
    """

    origin: str
    first_row: int = 1
    rows: Sequence[object] = field(default_factory=list)
    text: bool = False
    columns: ColumnMap | None = None
    remember: Callable[[Session], None] | None = None
    error: str | None = None
    lines: Sequence[int] | None = None  # for text files: the line each row starts on

    def where(self, index: int) -> str:
        """Where row `index` of the batch came from, for people."""
        place = f"line {self.lines[index]}" if self.lines else f"row {self.first_row + index}"
        return f"{self.origin} {place}" if self.origin else place


class Connector(Protocol):
    """Reads one source's new rows, batch by batch."""

    @property
    def config(self) -> FileSourceConfig | SqlSourceConfig:
        """The source's configuration."""

    def describe(self) -> str:
        """Where the source reads from, without credentials."""

    def batches(self, sessions: sessionmaker[Session]) -> Iterator[Batch]:
        """The rows not loaded yet, in batches; reads the source's state from `sessions`."""


class ColumnMap:
    """Source columns renamed to contract fields; unknown columns refused or ignored."""

    def __init__(
        self,
        contract: DatasetContract,
        columns: Mapping[str, str],
        extra: str = "error",
        *,
        ignored: Collection[str | None] = (),
    ) -> None:
        self._contract = contract
        self._columns = dict(columns)
        self._extra = extra
        self._ignored = frozenset(i for i in ignored if i is not None)
        self._keep: dict[str, str] = {}
        self._headers: frozenset[str] = frozenset()

    def check(self, headers: Sequence[str], origin: str) -> None:
        """Fix the mapping for these headers; refuse unknown, doubled or missing columns."""
        keep = {h: self._columns.get(h, h) for h in headers}
        fields = self._contract.fields
        unknown = [h for h, f in keep.items() if f not in fields and h not in self._ignored]
        if unknown and self._extra == "error":
            raise ValidationFailed(
                f"{origin}: columns {', '.join(map(repr, unknown))} are not fields of "
                f"{self._contract.name!r}; map them with `columns` or set extra_columns = "
                '"ignore"',
                code="bad_columns",
            )
        keep = {h: f for h, f in keep.items() if f in self._contract.fields}
        targets = [*keep.values(), *(h for h in headers if headers.count(h) > 1)]
        doubled = sorted({f for f in targets if targets.count(f) > 1})
        if doubled:
            raise ValidationFailed(
                f"{origin}: more than one column for {', '.join(doubled)}", code="bad_columns"
            )
        missing = sorted(self._contract.required - set(targets))
        if missing:
            raise ValidationFailed(
                f"{origin}: no column for the required fields {', '.join(missing)}",
                code="bad_columns",
            )
        self._keep, self._headers = keep, frozenset(headers)

    def apply(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The row with contract field names, without ignored columns.

        Keys that are no column of the header (cells beyond it) stay, so the row is refused.
        """
        mapped = {field: row.get(header) for header, field in self._keep.items()}
        mapped.update((k, v) for k, v in row.items() if k not in self._headers)
        return mapped
