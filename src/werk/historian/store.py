"""The storage contract every raw-layer backend implements."""

from __future__ import annotations

from typing import Protocol

from werk.historian.models import Bucket, Point, RawColumns, TagLast


class RawStore(Protocol):
    """Append-only raw layer: every accepted sample with its lineage."""

    def open(self) -> None:
        """Create or migrate the schema and get ready for writes."""

    def close(self) -> None:
        """Flush and release the storage."""

    def write(self, rows: RawColumns) -> int:
        """Append rows durably; return how many were written. Raise StorageUnavailable."""

    def existing(self, tags: list[str], stamps_ns: list[int]) -> set[tuple[str, int]]:
        """Those (tag, ts) pairs that already have a stored sample (microsecond precision)."""

    def points(
        self, tag: str, start_ns: int, end_ns: int, limit: int, *, newest: bool = False
    ) -> list[Point]:
        """Samples of `tag` with start <= ts < end, oldest first, at most `limit`.

        With `newest` the limit keeps the newest samples of the range instead of the oldest.
        """

    def buckets(self, tag: str, start_ns: int, end_ns: int, bucket_ns: int) -> list[Bucket]:
        """Aggregates of `tag` per bucket of `bucket_ns` nanoseconds (numeric values)."""

    def last(self, tags: list[str]) -> list[TagLast]:
        """The newest stored sample of each tag that has one."""

    def recent_message_ids(self, since_ingest_ns: int) -> set[int]:
        """Ids of messages ingested since `since_ingest_ns` (to drop redeliveries)."""

    def tag_paths(self) -> list[str]:
        """Every tag with stored samples."""

    def knows(self, tag: str) -> bool:
        """Whether any sample of `tag` was ever stored."""

    def count(self) -> int:
        """Number of stored samples."""
