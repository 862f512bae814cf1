"""What werk's append-only journals share: positions and an atomic checkpoint file.

The ingest spool (`werk.uns.spool`) and the edge buffer (`werk.edge.buffer`) are folders
of numbered segment files; a checkpoint file says how far their records are done with.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import BinaryIO, Final, NamedTuple

from werk.core.errors import StorageUnavailable

_LOGGER = logging.getLogger(__name__)

CHECKPOINT: Final = "checkpoint"


class Position(NamedTuple):
    """A place in a journal: segment number and byte offset in it."""

    segment: int
    offset: int


def write_checkpoint(directory: Path, position: Position) -> None:
    """Record `position` atomically (write a temporary file, then rename it)."""
    tmp = directory / f"{CHECKPOINT}.tmp"
    tmp.write_text(f"{position.segment} {position.offset}\n", "ascii")
    tmp.replace(directory / CHECKPOINT)


def read_checkpoint(directory: Path, what: str) -> Position:
    """The recorded position, or the start when there is none or it is unreadable."""
    try:
        segment, offset = (directory / CHECKPOINT).read_text("ascii").split()
        return Position(int(segment), int(offset))
    except FileNotFoundError:
        return Position(0, 0)
    except ValueError:
        _LOGGER.warning("%s checkpoint unreadable; replaying the whole %s", what, what)
        return Position(0, 0)


def append_durably(file: BinaryIO, chunk: bytes, *, fsync: bool, what: str) -> None:
    """Write `chunk`, flush it and (if asked) fsync it; StorageUnavailable on failure."""
    try:
        file.write(chunk)
        file.flush()
        if fsync:
            os.fsync(file.fileno())
    except OSError as exc:
        raise StorageUnavailable(f"cannot write the {what}: {exc}") from exc
