"""Parquet files the importer refuses, and the metadata it reads, before any row is loaded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from werk.core.errors import NotFound, ValidationFailed
from werk.historian import DuckDBStore, HistorianStore
from werk.historian.exchange import (
    META_TABLE,
    META_VERSION,
    file_schema,
    file_table,
    import_,
    open_parquet,
)
from werk.historian.layers import SCHEMAS, Table

_T0_US = 1_700_000_000_000_000


@pytest.fixture
def store() -> Iterator[HistorianStore]:
    backend = DuckDBStore(None)
    backend.open()
    yield backend
    backend.close()


def _kpis(rows: int = 2, *, name: str | None = "oee") -> pa.Table:
    return pa.table(
        {
            "name": [name] * rows,
            "ts": pa.array([_T0_US + i for i in range(rows)], pa.timestamp("us", tz="UTC")),
            "value": [0.5] * rows,
            "unit": ["1"] * rows,
            "source": ["test"] * rows,
            "lineage": ["[]"] * rows,
        },
        schema=SCHEMAS[Table.KPIS],
    )


def _refused(store: HistorianStore, path: Path, table: Table | None = None) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        import_(store, path, table=table)
    return caught.value


@pytest.mark.parametrize("table", list(Table))
def test_metadata_names_the_table_and_schema_version(table: Table, tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    schema = file_schema(table, 1_000, 2_000, ["a/b"])
    pq.write_table(schema.empty_table(), path)
    meta = pq.ParquetFile(path).schema_arrow.metadata
    assert meta[META_TABLE] == table.value.encode()
    assert meta[META_VERSION] == b"1"
    assert meta[b"werk.names"] == b'["a/b"]'
    assert file_table(open_parquet(path), path) is table


def test_a_file_that_is_not_parquet_is_refused(store: HistorianStore, tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("tag,ts,value\nacme/t,2024-01-01,1\n")
    error = _refused(store, path)
    assert error.code == "not_parquet"
    assert str(error).startswith(f"{path} is not a Parquet file")


def test_an_empty_file_is_not_parquet(store: HistorianStore, tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    path.write_bytes(b"")
    assert _refused(store, path).code == "not_parquet"


def test_a_missing_file_is_not_found(store: HistorianStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound) as caught:
        import_(store, tmp_path / "nope.parquet")
    assert caught.value.code == "file_not_found"


def test_a_foreign_file_needs_its_table_named(store: HistorianStore, tmp_path: Path) -> None:
    path = tmp_path / "foreign.parquet"
    pq.write_table(_kpis(), path)
    error = _refused(store, path)
    assert error.code == "unknown_table"
    assert "not written by werk" in str(error)


def test_the_named_table_must_agree_with_the_file(store: HistorianStore, tmp_path: Path) -> None:
    path = tmp_path / "kpis.parquet"
    pq.write_table(_kpis().replace_schema_metadata(file_schema(Table.KPIS, 0, 1).metadata), path)
    error = _refused(store, path, Table.RAW)
    assert error.code == "table_mismatch"
    assert str(error) == f"{path} holds the kpis table, not raw"


def test_a_newer_schema_version_is_refused(store: HistorianStore, tmp_path: Path) -> None:
    path = tmp_path / "future.parquet"
    meta = {META_TABLE: b"kpis", META_VERSION: b"2"}
    pq.write_table(_kpis().replace_schema_metadata(meta), path)
    error = _refused(store, path)
    assert error.code == "schema_version"
    assert "schema version 2; this werk reads up to 1" in str(error)


def test_an_unknown_table_in_the_metadata_is_refused(store: HistorianStore, tmp_path: Path) -> None:
    path = tmp_path / "odd.parquet"
    pq.write_table(_kpis().replace_schema_metadata({META_TABLE: b"alarms"}), path)
    assert _refused(store, path).code == "bad_table_metadata"


def test_missing_and_unknown_columns_are_named(store: HistorianStore, tmp_path: Path) -> None:
    path = tmp_path / "cols.parquet"
    data = _kpis().drop_columns(["unit", "lineage"]).append_column("shift", pa.array(["a", "b"]))
    pq.write_table(data, path)
    error = _refused(store, path, Table.KPIS)
    assert error.code == "schema_mismatch"
    assert str(error).endswith("lacks unit, lineage; has unknown shift")


def test_a_column_of_an_impossible_type_is_refused(store: HistorianStore, tmp_path: Path) -> None:
    path = tmp_path / "types.parquet"
    data = _kpis().set_column(2, "value", pa.array([[1.0], [2.0]]))
    pq.write_table(data, path)
    error = _refused(store, path, Table.KPIS)
    assert error.code == "schema_mismatch"
    assert "column value is list<element: double>, the table needs double" in str(error)


def test_values_that_do_not_fit_are_refused(store: HistorianStore, tmp_path: Path) -> None:
    path = tmp_path / "values.parquet"
    data = _kpis().set_column(2, "value", pa.array(["0.5", "high"]))
    pq.write_table(data, path)
    error = _refused(store, path, Table.KPIS)
    assert error.code == "bad_value"
    assert "rows from 0 do not fit" in str(error)


def test_an_empty_key_is_refused(store: HistorianStore, tmp_path: Path) -> None:
    path = tmp_path / "nulls.parquet"
    pq.write_table(_kpis(name=None), path)
    error = _refused(store, path, Table.KPIS)
    assert error.code == "null_key"
    assert "column name (part of the kpis key) is empty in rows 0..1" in str(error)
    assert store.kpi_names() == []


def test_an_import_with_impossible_timestamps_is_refused(tmp_path: Path) -> None:
    before_1970 = {
        "tag": ["a/b"], "ts": [-5_000_000], "ingest_ts": [1_000], "value": [1.0],
        "text": [None], "boolean": [False], "quality": [0], "msg_id": [1],
    }  # fmt: skip
    path = tmp_path / "old.parquet"
    pq.write_table(pa.Table.from_pydict(before_1970, schema=SCHEMAS[Table.RAW]), path)
    store = DuckDBStore(tmp_path / "h.duckdb")
    store.open()
    try:
        with pytest.raises(ValidationFailed) as caught:
            import_(store, path, table=Table.RAW)
        assert caught.value.code == "timestamp_out_of_range"
        assert store.count() == 0
    finally:
        store.close()
