"""Parquet export and import of any range of any table, over the store contract.

A file holds one table in the table's Arrow schema (layers.SCHEMAS), one row group per
scanned chunk, zstd-compressed, and names its table and schema version in the Parquet
key-value metadata. Moving a historian to another backend is an export from one store
and an import into the other.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from werk.core.clock import NS_PER_S, now_ns
from werk.core.errors import NotFound, Unavailable, ValidationFailed
from werk.historian.layers import SCHEMAS, Table
from werk.historian.store import HistorianStore

SCHEMA_VERSION: Final = 1
META_TABLE: Final = b"werk.table"
META_VERSION: Final = b"werk.schema_version"
META_START: Final = b"werk.start_ns"
META_END: Final = b"werk.end_ns"
META_NAMES: Final = b"werk.names"
CHUNK_ROWS: Final = 100_000
COMPRESSION: Final = "zstd"

NATURAL_KEYS: Final[dict[Table, tuple[str, ...]]] = {
    Table.RAW: ("tag", "ts", "msg_id"),
    Table.PROCESSED: ("tag", "ts"),
    Table.ROLLUPS: ("tag", "width_s", "start"),
    Table.KPIS: ("name", "ts"),
    Table.RECORDS: ("dataset", "key", "ts", "msg_id"),
}

Progress = Callable[[int, int], None]
"""Called with (rows done, rows expected) after each chunk."""


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What an export wrote."""

    table: Table
    path: Path
    rows: int
    bytes: int
    seconds: float

    @property
    def rows_per_s(self) -> float:
        """Export throughput."""
        return self.rows / self.seconds if self.seconds > 0 else float(self.rows)


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import read and added; rows already stored are skipped."""

    table: Table
    path: Path
    rows: int
    added: int
    seconds: float

    @property
    def skipped(self) -> int:
        """Rows of the file the store already held."""
        return self.rows - self.added

    @property
    def rows_per_s(self) -> float:
        """Import throughput."""
        return self.rows / self.seconds if self.seconds > 0 else float(self.rows)


# -- export ----------------------------------------------------------------------------


def export(
    store: HistorianStore,
    table: Table,
    start_ns: int,
    end_ns: int,
    path: Path,
    *,
    names: Sequence[str] | None = None,
    progress: Progress | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ExportReport:
    """Write the rows of [start, end) to a Parquet file; a failed export leaves no file."""
    check_range(start_ns, end_ns)
    _check_directory(path)
    total = store.estimate(table, start_ns, end_ns)
    temp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    clock, rows = time.perf_counter(), 0
    try:
        with pq.ParquetWriter(
            temp, file_schema(table, start_ns, end_ns, names), compression=COMPRESSION
        ) as writer:
            for chunk in store.scan(table, start_ns, end_ns, names=names, chunk_rows=chunk_rows):
                rows += _write_chunk(writer, table, chunk)
                if progress is not None:
                    progress(rows, max(total, rows))
        os.replace(temp, path)
    except OSError as exc:
        raise Unavailable(f"cannot write {path}: {exc}", code="file_write_failed") from exc
    finally:
        temp.unlink(missing_ok=True)
    if progress is not None:
        progress(rows, rows)
    return ExportReport(table, path, rows, path.stat().st_size, time.perf_counter() - clock)


def stream(
    store: HistorianStore,
    table: Table,
    start_ns: int,
    end_ns: int,
    *,
    names: Sequence[str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[bytes]:
    """The bytes of the Parquet file of [start, end), produced chunk by chunk.

    The range is checked and the first chunk read before this returns, so those errors
    come before any byte is sent.
    """
    check_range(start_ns, end_ns)
    chunks = store.scan(table, start_ns, end_ns, names=names, chunk_rows=chunk_rows)
    first = next(chunks, None)
    return _stream_chunks(file_schema(table, start_ns, end_ns, names), table, first, chunks)


def _stream_chunks(
    schema: pa.Schema, table: Table, first: pa.Table | None, rest: Iterator[pa.Table]
) -> Iterator[bytes]:
    sink = _Sink()
    with pq.ParquetWriter(sink, schema, compression=COMPRESSION) as writer:
        if first is not None:
            _write_chunk(writer, table, first)
            yield sink.drain()
        for chunk in rest:
            _write_chunk(writer, table, chunk)
            yield sink.drain()
    yield sink.drain()


class _Sink:
    """A write-only file that hands out what was written since the last drain."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._position = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self._buffer += data
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        """Nothing to flush: bytes wait in memory for the next drain."""

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def drain(self) -> bytes:
        out = bytes(self._buffer)
        self._buffer.clear()
        return out


def file_schema(
    table: Table, start_ns: int, end_ns: int, names: Sequence[str] | None = None
) -> pa.Schema:
    """The table's schema with the werk metadata an import reads back."""
    meta = {
        META_TABLE: table.value.encode(),
        META_VERSION: str(SCHEMA_VERSION).encode(),
        META_START: str(start_ns).encode(),
        META_END: str(end_ns).encode(),
    }
    if names is not None:
        meta[META_NAMES] = json.dumps(list(names)).encode()
    return SCHEMAS[table].with_metadata(meta)


def _write_chunk(writer: pq.ParquetWriter, table: Table, chunk: pa.Table) -> int:
    rows: int = chunk.num_rows
    if rows:
        writer.write_table(_as_schema(chunk, table), row_group_size=rows)
    return rows


def _as_schema(chunk: pa.Table, table: Table) -> pa.Table:
    schema = SCHEMAS[table]
    if chunk.schema.equals(schema):
        return chunk
    try:
        return chunk.select(schema.names).cast(schema)
    except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValidationFailed(
            f"the historian returned {table.value} rows not of the {table.value} schema: {exc}",
            code="scan_schema",
        ) from exc


def check_range(start_ns: int, end_ns: int) -> None:
    """Refuse an empty or reversed range."""
    if start_ns >= end_ns:
        raise ValidationFailed("start must be before end", code="bad_range")


def _check_directory(path: Path) -> None:
    if not path.parent.is_dir():
        raise ValidationFailed(
            f"cannot export to {path}: directory {path.parent} does not exist",
            code="no_directory",
        )
    if path.is_dir():
        raise ValidationFailed(f"cannot export to {path}: it is a directory", code="no_directory")


# -- import ----------------------------------------------------------------------------


_FUTURE_NS: Final = 24 * 3600 * NS_PER_S


def import_(
    store: HistorianStore,
    path: Path,
    *,
    table: Table | None = None,
    progress: Progress | None = None,
    batch_rows: int = CHUNK_ROWS,
) -> ImportReport:
    """Load a Parquet file batch by batch; rows the store already holds are skipped.

    The table comes from the file's werk metadata unless given. A failure part-way keeps
    the batches loaded so far; importing the file again skips them.
    """
    parquet = open_parquet(path)
    target = file_table(parquet, path, table)
    schema = SCHEMAS[target]
    _check_columns(parquet.schema_arrow, schema, path)
    total = parquet.metadata.num_rows
    clock, done, added = time.perf_counter(), 0, 0
    for batch in _batches(parquet, schema, path, batch_rows):
        data = _conform(batch, schema, path, done)
        _check_keys(data, target, path, done)
        _check_times(data, path, done)
        added += store.load(target, data)
        done += data.num_rows
        if progress is not None:
            progress(done, total)
    return ImportReport(target, path, done, added, time.perf_counter() - clock)


def open_parquet(path: Path) -> pq.ParquetFile:
    """Open a Parquet file, with a precise error for a missing or foreign file."""
    if not path.is_file():
        raise NotFound(f"{path} does not exist or is not a file", code="file_not_found")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValidationFailed(f"{path} is not a Parquet file: {exc}", code="not_parquet") from exc


def file_table(parquet: pq.ParquetFile, path: Path, given: Table | None = None) -> Table:
    """The table a file holds: its werk metadata, else `given`; they must agree."""
    meta = parquet.schema_arrow.metadata or {}
    stored = meta.get(META_TABLE)
    if stored is None:
        if given is None:
            raise ValidationFailed(
                f"{path} has no werk table in its metadata (not written by werk); "
                "name the table it holds",
                code="unknown_table",
            )
        return given
    found = _stored_table(stored, path)
    _check_version(meta.get(META_VERSION), path)
    if given is not None and given is not found:
        raise ValidationFailed(
            f"{path} holds the {found.value} table, not {given.value}", code="table_mismatch"
        )
    return found


def _stored_table(stored: bytes, path: Path) -> Table:
    try:
        return Table(stored.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValidationFailed(
            f"{path} names an unknown werk table {stored!r}", code="bad_table_metadata"
        ) from exc


def _check_version(stored: bytes | None, path: Path) -> None:
    try:
        version = int(stored or b"")
    except ValueError as exc:
        raise ValidationFailed(
            f"{path} has no valid werk schema version ({stored!r})", code="schema_version"
        ) from exc
    if version > SCHEMA_VERSION:
        raise ValidationFailed(
            f"{path} was written with schema version {version}; this werk reads up to "
            f"{SCHEMA_VERSION}",
            code="schema_version",
        )


def _check_columns(found: pa.Schema, schema: pa.Schema, path: Path) -> None:
    missing = [n for n in schema.names if n not in found.names]
    extra = [n for n in found.names if n not in schema.names]
    if missing or extra:
        parts = [
            f"lacks {', '.join(missing)}" if missing else "",
            f"has unknown {', '.join(extra)}" if extra else "",
        ]
        raise ValidationFailed(
            f"{path} does not have the columns of its table: {'; '.join(p for p in parts if p)}",
            code="schema_mismatch",
        )
    for field in schema:
        have = found.field(field.name).type
        if have != field.type and not _castable(have, field.type):
            raise ValidationFailed(
                f"{path}: column {field.name} is {have}, the table needs {field.type}",
                code="schema_mismatch",
            )


def _castable(source: pa.DataType, target: pa.DataType) -> bool:
    try:
        pa.array([], type=source).cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def _batches(
    parquet: pq.ParquetFile, schema: pa.Schema, path: Path, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    try:
        yield from parquet.iter_batches(batch_size=batch_rows, columns=schema.names)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValidationFailed(
            f"{path} is damaged ({exc}); rows read before the damage are imported, "
            "importing again skips them",
            code="corrupt_parquet",
        ) from exc


def _conform(batch: pa.RecordBatch, schema: pa.Schema, path: Path, offset: int) -> pa.Table:
    data = pa.Table.from_batches([batch]).select(schema.names)
    if data.schema.equals(schema):
        return data
    try:
        return data.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValidationFailed(
            f"{path}: rows from {offset} do not fit the table's types: {exc}",
            code="bad_value",
        ) from exc


def _check_times(data: pa.Table, path: Path, offset: int) -> None:
    """Refuse timestamps before 1970 or more than a day ahead, as ingest does."""
    latest_us = (now_ns() + _FUTURE_NS) // 1000
    for name in data.column_names:
        column = data.column(name)
        if not pa.types.is_timestamp(column.type) or column.null_count == len(column):
            continue
        stamps = pc.cast(column, pa.int64())
        low, high = pc.min(stamps).as_py(), pc.max(stamps).as_py()
        if low < 0 or high > latest_us:
            raise ValidationFailed(
                f"{path}: column {name} holds a timestamp before 1970 or more than 24 h "
                f"ahead in rows {offset}..{offset + data.num_rows - 1}",
                code="timestamp_out_of_range",
                column=name,
            )


def _check_keys(data: pa.Table, table: Table, path: Path, offset: int) -> None:
    for column in NATURAL_KEYS[table]:
        if data.column(column).null_count:
            raise ValidationFailed(
                f"{path}: column {column} (part of the {table.value} key) is empty in rows "
                f"{offset}..{offset + data.num_rows - 1}",
                code="null_key",
                column=column,
            )
