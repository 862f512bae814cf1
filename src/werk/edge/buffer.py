"""The edge agent's store-and-forward buffer: append-only segment files on disk.

One record per device batch (format in `werk.edge.records`), holding tag names, never
aliases, which may differ after a restart. Replay reads from a cursor; `commit` moves the
checkpoint past what the host certainly has, and segments wholly behind it are deleted.
A torn or corrupt record (CRC mismatch, e.g. after a crash mid-write) ends its segment
with one log line; new records always go to a fresh segment. Bounds: `max_bytes` on disk
(`drop_oldest` deletes the oldest segment, `drop_newest` refuses the new batch) and
`max_age_s` (head records whose newest sample is older are dropped); every dropped
sample is counted.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO, Final, NamedTuple

from werk.core.errors import Conflict, StorageUnavailable
from werk.core.journal import Position, append_durably, read_checkpoint, write_checkpoint
from werk.edge.records import HEADER, Sample, decode_body, encode_record, intact

__all__ = ["BufferRecord", "BufferStats", "DropPolicy", "Position", "Sample", "StoreBuffer"]

_LOGGER = logging.getLogger(__name__)

_SUFFIX: Final = ".seg"


class DropPolicy(StrEnum):
    """What a full buffer gives up: the oldest data or the newest."""

    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"


class BufferRecord(NamedTuple):
    """One buffered device batch and the position right after it."""

    device: str
    samples: list[Sample]
    end: Position


@dataclass(frozen=True, slots=True)
class BufferStats:
    """What the buffer holds, and what it dropped since it was opened."""

    samples: int
    bytes: int
    segments: int
    dropped: int


@dataclass(slots=True)
class _Segment:
    size: int  # bytes on disk
    end: int  # end of the last readable record
    pending: int  # samples after the checkpoint


class _Raw(NamedTuple):
    end: Position
    newest_ns: int
    samples: int
    body: bytes


class StoreBuffer:
    """Segmented, bounded, crash-safe journal of device batches awaiting publication."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        max_age_s: float,
        drop: DropPolicy = DropPolicy.DROP_OLDEST,
        fsync: bool = True,
        segment_bytes: int | None = None,
    ) -> None:
        self._dir = directory
        self._max_bytes = max_bytes
        self._max_age_ns = int(max_age_s * 1e9)
        self._drop = drop
        self._fsync = fsync
        self._segment_bytes = segment_bytes or max(4096, min(max_bytes // 16, 16 << 20))
        self._lock = threading.Lock()
        self._segments: dict[int, _Segment] = {}
        self._checkpoint = Position(0, 0)
        self._saved: Position | None = None
        self._active = -1  # none while scanning
        self._file: BinaryIO | None = None
        self._lock_file: BinaryIO | None = None
        self._dropped = 0
        self._episodes: set[str] = set()

    @property
    def directory(self) -> Path:
        """Where the segment files live."""
        return self._dir

    @property
    def checkpoint(self) -> Position:
        """Everything before this position was committed or dropped."""
        return self._checkpoint

    def open(self) -> None:
        """Take the directory lock and scan what an earlier run left behind."""
        with self._lock:
            try:
                self._dir.mkdir(parents=True, exist_ok=True)
                self._take_lock()
                self._checkpoint = self._saved = self._read_checkpoint()
                self._scan()
                self._active = max(self._segments, default=self._checkpoint.segment) + 1
                self._open_active()
                self._normalize()
            except OSError as exc:
                raise StorageUnavailable(f"cannot open the edge buffer {self._dir}: {exc}") from exc

    def close(self) -> None:
        """Close the active segment and release the directory lock."""
        with self._lock:
            for file in (self._file, self._lock_file):
                if file is not None:
                    file.close()
            self._file = self._lock_file = None

    def append(self, device: str, samples: Sequence[Sample]) -> int:
        """Append one device batch durably; return how many samples were stored."""
        if not samples:
            return 0
        chunk = encode_record(device, samples)
        with self._lock:
            if not self._make_room(len(chunk), len(samples)):
                return 0
            self._write(chunk, len(samples))
            return len(samples)

    def read(
        self, cursor: Position | None, max_samples: int
    ) -> tuple[list[BufferRecord], Position]:
        """Records after `cursor` (or the checkpoint), about `max_samples` samples at most."""
        with self._lock:
            position = self._checkpoint if cursor is None else max(cursor, self._checkpoint)
            records: list[BufferRecord] = []
            count = 0
            for raw in self._from(position):
                records.append(BufferRecord(*decode_body(raw.body), raw.end))
                position, count = raw.end, count + raw.samples
                if count >= max_samples:
                    break
            return records, position

    def commit(self, upto: Position) -> None:
        """Forget everything before `upto`: the host has it."""
        with self._lock:
            self._advance(lambda raw: raw.end <= upto)

    def expire(self, now_ns: int) -> int:
        """Drop the head records whose newest sample is older than `max_age_s`."""
        cutoff = now_ns - self._max_age_ns
        with self._lock:
            dropped = self._advance(lambda raw: raw.newest_ns < cutoff)
            self._count_dropped(dropped, "age", "samples older than max_age_s are dropped")
            return dropped

    def stats(self) -> BufferStats:
        """Pending samples, bytes on disk, segment files, samples dropped."""
        with self._lock:
            pending = sum(s.pending for s in self._segments.values())
            return BufferStats(pending, self._total_bytes(), len(self._segments), self._dropped)

    # -- writing ------------------------------------------------------------------------

    def _make_room(self, size: int, samples: int) -> bool:
        total = self._total_bytes()
        if total + size <= self._max_bytes:
            if total <= self._max_bytes // 2:
                self._end_episodes("full")
            return True
        if self._drop is DropPolicy.DROP_NEWEST or size > self._max_bytes:
            self._count_dropped(samples, "full", "new samples are refused (drop_newest)")
            return False
        while self._total_bytes() + size > self._max_bytes:
            if min(self._segments) == self._active:
                self._roll()
            self._drop_segment(min(self._segments))
        return True

    def _write(self, chunk: bytes, samples: int) -> None:
        if self._file is None:
            raise StorageUnavailable("the edge buffer is not open", code="buffer_closed")
        append_durably(self._file, chunk, fsync=self._fsync, what="edge buffer")
        segment = self._segments[self._active]
        segment.size = segment.end = segment.size + len(chunk)
        segment.pending += samples
        if segment.size >= self._segment_bytes:
            self._roll()

    def _drop_segment(self, number: int) -> None:
        segment = self._segments.pop(number)
        self._path(number).unlink(missing_ok=True)
        self._count_dropped(segment.pending, "full", "the oldest samples are dropped")
        self._checkpoint = max(self._checkpoint, Position(number + 1, 0))
        self._normalize()

    # -- reading ------------------------------------------------------------------------

    def _records(self, number: int, start: int) -> Iterator[_Raw]:
        """The records of one segment from `start`; a bad record ends the segment."""
        segment = self._segments[number]
        with self._path(number).open("rb") as file:
            file.seek(start)
            offset = start
            while offset < segment.end:
                header = file.read(HEADER.size)
                length = HEADER.unpack(header)[0] if len(header) == HEADER.size else 0
                body = file.read(length)
                if not intact(header, body):
                    self._cut(number, offset)
                    return
                _length, _crc, newest, count = HEADER.unpack(header)
                offset += HEADER.size + length
                yield _Raw(Position(number, offset), newest, count, body)

    def _from(self, position: Position) -> Iterator[_Raw]:
        for number in sorted(n for n in self._segments if n >= position.segment):
            yield from self._records(number, position.offset if number == position.segment else 0)

    def _advance(self, passes: Callable[[_Raw], bool]) -> int:
        """Move the checkpoint over the head records that pass; return their samples."""
        samples, checkpoint = 0, self._checkpoint
        for raw in self._from(checkpoint):
            if not passes(raw):
                break
            self._segments[raw.end.segment].pending -= raw.samples
            samples, checkpoint = samples + raw.samples, raw.end
        self._checkpoint = checkpoint
        self._normalize()
        return samples

    def _scan(self) -> None:
        numbers = sorted(int(p.stem) for p in self._dir.glob(f"*{_SUFFIX}") if p.stem.isdigit())
        for number in numbers:
            if number < self._checkpoint.segment:
                self._path(number).unlink(missing_ok=True)
                continue
            size = self._path(number).stat().st_size
            self._segments[number] = segment = _Segment(size, size, 0)
            start = self._checkpoint.offset if number == self._checkpoint.segment else 0
            segment.pending = sum(raw.samples for raw in self._records(number, start))

    def _cut(self, number: int, offset: int) -> None:
        segment = self._segments[number]
        _LOGGER.warning(
            "edge buffer: torn or corrupt record in %s at byte %d; its last %d bytes are skipped",
            self._path(number), offset, segment.end - offset,
        )  # fmt: skip
        segment.end = offset
        if number == self._active:
            self._roll()

    # -- segments and checkpoint ----------------------------------------------------------

    def _roll(self) -> None:
        if self._file is not None:
            self._file.close()
        self._active = max(self._segments, default=self._active) + 1
        self._open_active()

    def _open_active(self) -> None:
        self._file = self._path(self._active).open("ab")
        self._segments[self._active] = _Segment(0, 0, 0)

    def _normalize(self) -> None:
        """Move the checkpoint off finished segments and delete those wholly behind it."""
        checkpoint = self._checkpoint
        for number in sorted(self._segments):
            segment = self._segments[number]
            finished = number == checkpoint.segment and checkpoint.offset >= segment.end
            if number >= checkpoint.segment and not finished:
                break
            if number == self._active:
                if segment.size == 0:
                    break
                self._roll()
            del self._segments[number]
            self._path(number).unlink(missing_ok=True)
            if finished:
                checkpoint = Position(min(self._segments), 0)
        if checkpoint.segment < min(self._segments):
            checkpoint = Position(min(self._segments), 0)
        self._checkpoint = checkpoint
        if checkpoint != self._saved:
            write_checkpoint(self._dir, checkpoint)
            self._saved = checkpoint
        if not any(s.pending for s in self._segments.values()):
            self._end_episodes("full", "age")

    def _read_checkpoint(self) -> Position:
        return read_checkpoint(self._dir, "edge buffer")

    def _take_lock(self) -> None:
        self._lock_file = (self._dir / "lock").open("ab")
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lock_file.close()
            self._lock_file = None
            raise Conflict(
                f"the edge buffer {self._dir} is in use by another edge agent",
                code="buffer_locked",
            ) from exc

    def _total_bytes(self) -> int:
        return sum(s.size for s in self._segments.values())

    def _path(self, number: int) -> Path:
        return self._dir / f"{number:012d}{_SUFFIX}"

    # -- drops: one log line when an episode starts and one when it ends --------------------

    def _count_dropped(self, samples: int, episode: str, what: str) -> None:
        if samples <= 0:
            return
        self._dropped += samples
        if episode not in self._episodes:
            self._episodes.add(episode)
            _LOGGER.warning(
                "edge buffer (max_bytes %d, max_age_s %d): %s",
                self._max_bytes, self._max_age_ns // 1_000_000_000, what,
            )  # fmt: skip

    def _end_episodes(self, *episodes: str) -> None:
        ended = self._episodes.intersection(episodes)
        if ended:
            self._episodes -= ended
            _LOGGER.info("edge buffer has room again; %d samples dropped so far", self._dropped)
