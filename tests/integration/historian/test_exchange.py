"""Parquet export and import against real stores and real files."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.integration.historian.lifecycle_support import (
    NAMES,
    US_PER_S,
    everything,
    fill,
    names_of,
    rows,
)

from werk.core.errors import ValidationFailed
from werk.historian import DuckDBStore, HistorianStore
from werk.historian.exchange import export, import_, stream
from werk.historian.layers import SCHEMAS, Table

T0_US = 1_700_000_000 * US_PER_S
STAMPS = [T0_US + i * 90 * US_PER_S for i in range(50)]


def _ns(us: int) -> int:
    return us * 1000


@pytest.fixture
def source(tmp_path: Path) -> Iterator[HistorianStore]:
    store = DuckDBStore(tmp_path / "source.duckdb")
    store.open()
    yield store
    store.close()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[HistorianStore]:
    store = DuckDBStore(tmp_path / "target.duckdb")
    store.open()
    yield store
    store.close()


@pytest.mark.parametrize("table", list(Table))
def test_a_table_moves_between_stores_unchanged(
    table: Table, source: HistorianStore, target: HistorianStore, tmp_path: Path
) -> None:
    assert fill(source, table, STAMPS) == 100
    path = tmp_path / f"{table}.parquet"
    exported = export(source, table, 0, 2**62, path, chunk_rows=30)
    assert (exported.rows, exported.table) == (100, table)
    assert pq.ParquetFile(path).metadata.num_row_groups == 4
    imported = import_(target, path)
    assert (imported.table, imported.rows, imported.added, imported.skipped) == (table, 100, 100, 0)
    assert everything(target, table).equals(everything(source, table))


def test_importing_again_skips_every_row(
    source: HistorianStore, target: HistorianStore, tmp_path: Path
) -> None:
    fill(source, Table.RAW, STAMPS)
    path = tmp_path / "raw.parquet"
    export(source, Table.RAW, 0, 2**62, path)
    import_(target, path)
    again = import_(target, path, table=Table.RAW)
    assert (again.added, again.skipped) == (0, 100)
    assert target.count() == 100


def test_a_range_and_names_narrow_the_export(source: HistorianStore, tmp_path: Path) -> None:
    fill(source, Table.RAW, STAMPS)
    path = tmp_path / "part.parquet"
    start, end = _ns(STAMPS[10]), _ns(STAMPS[20])
    report = export(source, Table.RAW, start, end, path, names=[NAMES[1]])
    data = pq.read_table(path)
    assert report.rows == data.num_rows == 10
    assert set(data.column("tag").to_pylist()) == {NAMES[1]}
    stamps = [t.timestamp() * US_PER_S for t in data.column("ts").to_pylist()]
    assert min(stamps) == STAMPS[10] and max(stamps) == STAMPS[19]
    assert data.schema.metadata[b"werk.start_ns"] == str(start).encode()


def test_progress_counts_up_to_the_rows_written(source: HistorianStore, tmp_path: Path) -> None:
    fill(source, Table.KPIS, STAMPS)
    seen: list[tuple[int, int]] = []
    export(
        source, Table.KPIS, 0, 2**62, tmp_path / "k.parquet", chunk_rows=40,
        progress=lambda done, total: seen.append((done, total)),
    )  # fmt: skip
    assert seen == [(40, 100), (80, 100), (100, 100), (100, 100)]
    imported: list[tuple[int, int]] = []
    import_(
        source, tmp_path / "k.parquet", batch_rows=64, progress=lambda d, t: imported.append((d, t))
    )
    assert imported[-1] == (100, 100)


def test_a_failed_export_leaves_no_file(source: HistorianStore, tmp_path: Path) -> None:
    fill(source, Table.RAW, STAMPS)
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"an older export")

    def interrupt(done: int, _total: int) -> None:
        if done >= 30:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export(source, Table.RAW, 0, 2**62, path, chunk_rows=30, progress=interrupt)
    assert path.read_bytes() == b"an older export"
    assert [p.name for p in tmp_path.iterdir() if "parquet" in p.name] == ["broken.parquet"]


def test_an_export_into_a_missing_directory_is_refused(
    source: HistorianStore, tmp_path: Path
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        export(source, Table.RAW, 0, 1, tmp_path / "nope" / "raw.parquet")
    assert caught.value.code == "no_directory"


def test_an_empty_range_is_refused(source: HistorianStore, tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as caught:
        export(source, Table.RAW, 5, 5, tmp_path / "raw.parquet")
    assert caught.value.code == "bad_range"


def test_an_empty_table_exports_a_valid_empty_file(
    source: HistorianStore, target: HistorianStore, tmp_path: Path
) -> None:
    path = tmp_path / "empty.parquet"
    assert export(source, Table.ROLLUPS, 0, 2**62, path).rows == 0
    assert pq.read_table(path).schema.equals(SCHEMAS[Table.ROLLUPS])
    assert import_(target, path).rows == 0


def test_the_stream_is_the_same_parquet_file(source: HistorianStore, tmp_path: Path) -> None:
    fill(source, Table.RECORDS, STAMPS)
    body = b"".join(stream(source, Table.RECORDS, 0, 2**62, chunk_rows=25))
    data = pq.read_table(pa.BufferReader(body))
    assert data.num_rows == 100
    assert data.schema.metadata[b"werk.table"] == b"records"
    assert pq.ParquetFile(pa.BufferReader(body)).metadata.num_row_groups == 4
    assert set(data.column("dataset").to_pylist()) == set(names_of(Table.RECORDS))


def test_a_raw_import_is_refined_like_written_rows(
    source: HistorianStore, target: HistorianStore, tmp_path: Path
) -> None:
    fill(source, Table.RAW, STAMPS)
    path = tmp_path / "raw.parquet"
    export(source, Table.RAW, 0, 2**62, path)
    import_(target, path, batch_rows=40)
    batch = target.raw_after(0, 1_000_000)
    assert len(batch.rows) == 100
    assert batch.through == 3  # one write batch per imported batch of rows


def test_throughput_is_measured(
    source: HistorianStore, target: HistorianStore, tmp_path: Path
) -> None:
    step = 1_000_000
    for chunk in range(4):
        first = T0_US + chunk * 50_000 * step
        fill(source, Table.RAW, [first + i * step for i in range(50_000)])
    path = tmp_path / "big.parquet"
    clock = time.perf_counter()
    exported = export(source, Table.RAW, 0, 2**62, path)
    imported = import_(target, path)
    assert exported.rows == imported.added == 400_000
    print(
        f"\nexport {exported.rows_per_s:,.0f} rows/s, import {imported.rows_per_s:,.0f} rows/s, "
        f"{exported.bytes / exported.rows:.1f} bytes/row, {time.perf_counter() - clock:.1f} s"
    )


def test_a_foreign_file_with_the_columns_imports_with_its_table_named(
    target: HistorianStore, tmp_path: Path
) -> None:
    data = rows(Table.KPIS, "oee/acme/line-9", STAMPS[:5])
    foreign = data.set_column(1, "ts", data.column("ts").cast(pa.timestamp("ns")))
    path = tmp_path / "from-elsewhere.parquet"
    pq.write_table(foreign.select(list(reversed(foreign.column_names))), path)
    report = import_(target, path, table=Table.KPIS)
    assert (report.table, report.added) == (Table.KPIS, 5)
    assert [k.ts_ns for k in target.kpis("oee/acme/line-9", 0, 2**62, 10)] == [
        _ns(s) for s in STAMPS[:5]
    ]
