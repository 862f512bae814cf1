"""CSV and Parquet files: each new or changed file (by size and modification time) is loaded."""

from __future__ import annotations

import csv
import glob
from collections.abc import Iterator, Mapping
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.orm import Session, sessionmaker

from werk.core.clock import now_ns
from werk.core.db import session_scope
from werk.core.errors import ValidationFailed
from werk.sources import service
from werk.sources.config import FileSourceConfig
from werk.sources.connector import Batch, ColumnMap
from werk.sources.contracts import DatasetContract
from werk.sources.service import FileMark

CHUNK_ROWS: Final = 5000
_FORMATS: Final = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_READ_ERRORS: Final = (OSError, UnicodeDecodeError, csv.Error, pa.ArrowException, ValidationFailed)


class FileSource:
    """Loads the CSV or Parquet files a path or glob pattern matches."""

    def __init__(
        self, config: FileSourceConfig, contract: DatasetContract, chunk_rows: int = CHUNK_ROWS
    ) -> None:
        self._config = config
        self._contract = contract
        self._chunk_rows = chunk_rows

    @property
    def config(self) -> FileSourceConfig:
        """The source's configuration."""
        return self._config

    def describe(self) -> str:
        """The path or pattern the source reads."""
        return self._config.path

    def files(self) -> list[Path]:
        """The files the pattern matches now, sorted by path."""
        matches = glob.glob(self._config.path, recursive=True)
        return sorted(Path(m) for m in matches if Path(m).is_file())

    def batches(self, sessions: sessionmaker[Session]) -> Iterator[Batch]:
        """The rows of every file not loaded yet as it is now, file by file."""
        with session_scope(sessions) as session:
            seen = service.loaded_files(session=session, source=self._config.name)
        for path in self.files():
            try:
                stat = path.stat()
            except FileNotFoundError:  # moved away since it was listed: nothing to load
                continue
            mark = FileMark(stat.st_size, stat.st_mtime_ns)
            if seen.get(str(path)) != mark:
                yield from self._file(path, mark)

    def _file(self, path: Path, mark: FileMark) -> Iterator[Batch]:
        origin, rows = str(path), 0
        try:
            for batch in self._read(path):
                rows += len(batch.rows)
                yield batch
        except _READ_ERRORS as exc:
            message = exc.message if isinstance(exc, ValidationFailed) else f"{origin}: {exc}"
            yield Batch(origin, error=message)
            return
        yield Batch(origin, remember=partial(self._remember, str(path), mark, rows))

    def _remember(self, path: str, mark: FileMark, rows: int, session: Session) -> None:
        name = self._config.name
        service.mark_loaded(session=session, source=name, path=path, mark=mark, rows=rows,
                            at_ns=now_ns())  # fmt: skip

    def _read(self, path: Path) -> Iterator[Batch]:
        kind = self._config.format or _FORMATS.get(path.suffix.lower())
        if kind is None:
            raise ValidationFailed(
                f'{path}: unknown file type; set format = "csv" or "parquet"',
                code="bad_format",
            )
        columns = ColumnMap(self._contract, self._config.columns, self._config.extra_columns)
        if kind == "csv":
            yield from self._csv(path, columns)
        else:
            yield from self._parquet(path, columns)

    def _csv(self, path: Path, columns: ColumnMap) -> Iterator[Batch]:
        with path.open(newline="", encoding=self._config.encoding) as handle:
            reader = csv.reader(handle, delimiter=self._config.delimiter, strict=True)
            header = next(reader, None)
            if header is None:
                return
            columns.check(header, str(path))
            records = _records(reader)
            while chunk := list(islice(records, self._chunk_rows)):
                rows = [_cells(header, cells) for _, cells in chunk]
                lines = [line for line, _ in chunk]
                yield Batch(str(path), rows=rows, text=True, columns=columns, lines=lines)

    def _parquet(self, path: Path, columns: ColumnMap) -> Iterator[Batch]:
        with pq.ParquetFile(path) as parquet:
            columns.check(parquet.schema_arrow.names, str(path))
            number = 1
            for chunk in parquet.iter_batches(batch_size=self._chunk_rows):
                rows: list[Mapping[str, Any]] = chunk.to_pylist()
                yield Batch(str(path), number, rows, columns=columns)
                number += len(rows)


def _records(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """Each non-blank CSV record with the line it starts on (quoted cells may span lines)."""
    while True:
        start = reader.line_num + 1
        cells = next(reader, None)
        if cells is None:
            return
        if cells:
            yield start, cells


def _cells(header: list[str], cells: list[str]) -> dict[str, Any]:
    """A CSV row by column name; cells beyond the header keep a name no contract has."""
    row: dict[str, Any] = dict(zip(header, cells, strict=False))
    for extra, cell in enumerate(cells[len(header) :], start=len(header) + 1):
        row[f"(cell {extra} beyond the header)"] = cell
    return row
