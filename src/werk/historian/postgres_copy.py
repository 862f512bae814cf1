"""Arrow tables into PostgreSQL with binary COPY, encoded column-wise with numpy.

Rows whose fixed-width columns are all set and whose text columns are all NULL (numeric
samples: nearly every row) are encoded in one vectorised pass; the others row by row.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import psycopg
import pyarrow as pa
from psycopg import sql

from werk.core.errors import ValidationFailed

Kind = Literal["int2", "int4", "int8", "float8", "ts", "bool", "text", "jsonb"]
Columns = Sequence[tuple[str, Kind]]

_HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_TRAILER: Final = b"\xff\xff"
_NULL: Final = b"\xff\xff\xff\xff"
_CHUNK_ROWS: Final = 65_536
_PG_EPOCH_US: Final = 946_684_800_000_000
# numpy field type, byte size and struct format of each fixed-width kind
_FIXED: Final[dict[str, tuple[str, int, str]]] = {
    "int2": (">i2", 2, ">ih"),
    "int4": (">i4", 4, ">ii"),
    "int8": (">i8", 8, ">iq"),
    "float8": (">f8", 8, ">id"),
    "ts": (">i8", 8, ">iq"),
    "bool": ("u1", 1, ">iB"),
}


@dataclass(frozen=True, slots=True)
class _Column:
    kind: Kind
    valid: np.ndarray[Any, Any]
    values: np.ndarray[Any, Any] | None  # fixed-width kinds only, NULLs as 0
    array: pa.Array


def copy_into(
    cur: psycopg.Cursor[Any], target: sql.Composable, columns: Columns, data: pa.Table
) -> None:
    """COPY `data` (columns in the order of `columns`) into `target`."""
    names = sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(target, names)
    kinds = [kind for _, kind in columns]
    with cur.copy(statement) as copy:
        for chunk in encode(data, kinds):
            copy.write(chunk)


def encode(data: pa.Table, kinds: Sequence[Kind]) -> Iterator[bytes]:
    """The binary COPY stream of a table, in chunks."""
    yield _HEADER
    for batch in data.to_batches(max_chunksize=_CHUNK_ROWS):
        yield _encode_batch(batch, kinds)
    yield _TRAILER


def _encode_batch(batch: pa.RecordBatch, kinds: Sequence[Kind]) -> bytes:
    columns = [_column(batch.column(i), kind) for i, kind in enumerate(kinds)]
    fast = np.ones(batch.num_rows, dtype=bool)
    for column in columns:
        fast &= column.valid if column.values is not None else ~column.valid
    parts = [_fast_rows(columns, fast)]
    slow = np.flatnonzero(~fast)
    if slow.size:
        parts.append(_slow_rows(columns, slow))
    return b"".join(parts)


def _column(array: pa.Array, kind: Kind) -> _Column:
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    if kind not in _FIXED:
        return _Column(kind, valid, None, array)
    if kind == "ts":
        array = array.cast(pa.int64())
    elif kind == "bool":
        array = array.cast(pa.uint8())
    values = array.fill_null(0).to_numpy(zero_copy_only=False)
    if kind == "ts":
        values = values - _PG_EPOCH_US
    return _Column(kind, valid, values, array)


def _fast_rows(columns: list[_Column], rows: np.ndarray[Any, Any]) -> bytes:
    fields: list[tuple[str, str]] = [("n", ">i2")]
    for i, column in enumerate(columns):
        fields.append((f"l{i}", ">i4"))
        if column.values is not None:
            fields.append((f"v{i}", _FIXED[column.kind][0]))
    out = np.empty(int(rows.sum()), dtype=np.dtype(fields))
    out["n"] = len(columns)
    for i, column in enumerate(columns):
        if column.values is None:
            out[f"l{i}"] = -1
            continue
        out[f"l{i}"] = _FIXED[column.kind][1]
        out[f"v{i}"] = column.values[rows]
    return out.tobytes()


def _slow_rows(columns: list[_Column], rows: np.ndarray[Any, Any]) -> bytes:
    cells = [_cells(column, rows) for column in columns]
    head = struct.pack(">h", len(columns))
    return b"".join(head + b"".join(row) for row in zip(*cells, strict=True))


def _cells(column: _Column, rows: np.ndarray[Any, Any]) -> list[bytes]:
    """The encoded fields of one column for the given rows."""
    valid = column.valid[rows].tolist()
    if column.values is not None:
        fmt, size = _FIXED[column.kind][2], _FIXED[column.kind][1]
        values = column.values[rows].tolist()
        return [
            struct.pack(fmt, size, v) if ok else _NULL for v, ok in zip(values, valid, strict=True)
        ]
    texts = column.array.take(pa.array(rows)).to_pylist()
    prefix = b"\x01" if column.kind == "jsonb" else b""
    return [_text(prefix, t) if t is not None else _NULL for t in texts]


def _text(prefix: bytes, text: str) -> bytes:
    if "\x00" in text:
        raise ValidationFailed(
            f"PostgreSQL cannot store text with a NUL character: {text[:40]!r}",
            code="unstorable_text",
        )
    data = prefix + text.encode()
    return struct.pack(">i", len(data)) + data
