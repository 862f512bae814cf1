"""The ingest spool: an append-only on-disk journal between the broker and the historian.

A message is acknowledged to the broker once it is in the spool (flushed and, by
default, fsynced); the historian writer works behind it. After every durable historian
write the writer moves the checkpoint forward and whole segments behind it are deleted.
At start the records after the checkpoint are replayed; message ids make a replayed
message that did reach the historian a no-op.

Record layout (little endian): ``u32 payload length, u32 crc32, u64 received ns,
u16 topic length, u8 flags, topic bytes, payload bytes``; the CRC covers topic and
payload. A torn record at the end of the newest segment (a crash mid-write) is cut off.
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, NamedTuple

from werk.core.errors import StorageUnavailable
from werk.core.journal import Position, append_durably, read_checkpoint, write_checkpoint

_LOGGER = logging.getLogger(__name__)

_HEADER: Final = struct.Struct("<IIQHB")
FLAG_OVERFLOW: Final = 1


class SpoolRecord(NamedTuple):
    """One spooled message."""

    topic: str
    payload: bytes
    received_ns: int
    flags: int


@dataclass(frozen=True, slots=True)
class SpoolStats:
    """How much the spool holds."""

    segments: int
    bytes: int


class Spool:
    """Segmented append-only journal of received messages."""

    def __init__(self, directory: Path, *, segment_bytes: int, fsync: bool) -> None:
        self._dir = directory
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._file: BinaryIO | None = None
        self._segment = 0
        self._offset = 0
        self._checkpoint = Position(0, 0)

    def open(self) -> None:
        """Open the spool; new records go to a fresh segment after every existing one."""
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            self._checkpoint = self._read_checkpoint()
            self._segment = max(self._segments(), default=self._checkpoint.segment) + 1
            self._open_segment()
        except OSError as exc:
            raise StorageUnavailable(f"cannot open the ingest spool in {self._dir}: {exc}") from exc

    def pending(self) -> Iterator[tuple[SpoolRecord, Position]]:
        """Records after the checkpoint, oldest first, each with the position after it.

        Streams one segment at a time, so a large backlog is not held in memory at once.
        """
        for number in self._segments():
            if number < self._checkpoint.segment or number >= self._segment:
                continue
            start = self._checkpoint.offset if number == self._checkpoint.segment else 0
            yield from _read_segment(self._path(number), number, start)

    def oldest_pending_ns(self) -> int | None:
        """Receive time of the oldest record after the checkpoint, if any."""
        first = next(self.pending(), None)
        return None if first is None else first[0].received_ns

    def close(self) -> None:
        """Close the current segment."""
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def position(self) -> Position:
        """The end of what was appended so far."""
        return Position(self._segment, self._offset)

    def append(self, records: list[SpoolRecord]) -> Position:
        """Append records durably; return the position after the last one."""
        if self._file is None:
            raise StorageUnavailable("the ingest spool is not open", code="spool_closed")
        chunk = b"".join(_encode(r) for r in records)
        append_durably(self._file, chunk, fsync=self._fsync, what="ingest spool")
        self._offset += len(chunk)
        end = self.position
        if self._offset >= self._segment_bytes:
            self._roll()
        return end

    def commit(self, upto: Position) -> None:
        """Mark everything before `upto` as stored; delete segments wholly behind it."""
        write_checkpoint(self._dir, upto)
        for number in self._segments():
            if number < upto.segment:
                self._path(number).unlink(missing_ok=True)

    def stats(self) -> SpoolStats:
        """Segments and bytes on disk."""
        sizes = [self._path(n).stat().st_size for n in self._segments()]
        return SpoolStats(len(sizes), sum(sizes))

    def _roll(self) -> None:
        self.close()
        self._segment += 1
        self._open_segment()

    def _open_segment(self) -> None:
        self._offset = 0
        self._file = self._path(self._segment).open("ab")

    def _path(self, number: int) -> Path:
        return self._dir / f"{number:012d}.seg"

    def _segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self._dir.glob("*.seg") if p.stem.isdigit())

    def _read_checkpoint(self) -> Position:
        return read_checkpoint(self._dir, "spool")


def _encode(record: SpoolRecord) -> bytes:
    topic = record.topic.encode("utf-8", "surrogateescape")
    crc = zlib.crc32(record.payload, zlib.crc32(topic))
    header = _HEADER.pack(len(record.payload), crc, record.received_ns, len(topic), record.flags)
    return header + topic + record.payload


def record_size(record: SpoolRecord) -> int:
    """Bytes a record takes in the spool."""
    return _HEADER.size + len(record.topic) + len(record.payload)


def _read_segment(path: Path, number: int, start: int) -> Iterator[tuple[SpoolRecord, Position]]:
    data = path.read_bytes()
    offset = start
    while offset + _HEADER.size <= len(data):
        size, crc, received_ns, topic_len, flags = _HEADER.unpack_from(data, offset)
        body = offset + _HEADER.size
        end = body + topic_len + size
        topic, payload = data[body : body + topic_len], data[body + topic_len : end]
        if end > len(data) or zlib.crc32(payload, zlib.crc32(topic)) != crc:
            _LOGGER.warning(
                "spool segment %s is torn at byte %d; the rest is cut off", path, offset
            )
            break
        record = SpoolRecord(topic.decode("utf-8", "surrogateescape"), payload, received_ns, flags)
        offset = end
        yield record, Position(number, end)
