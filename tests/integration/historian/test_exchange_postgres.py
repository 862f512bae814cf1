"""Moving a historian from DuckDB to PostgreSQL and back through Parquet files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.historian.lifecycle_support import US_PER_S, everything, fill
from tests.postgres_server import PostgresServer

from werk.historian import DuckDBStore, HistorianStore
from werk.historian.exchange import export, import_
from werk.historian.layers import Table
from werk.historian.postgres_store import PostgresStore

STAMPS = [1_700_000_000 * US_PER_S + i * 90 * US_PER_S for i in range(120)]  # one per minute bucket


@pytest.fixture
def duck(tmp_path: Path) -> Iterator[HistorianStore]:
    store = DuckDBStore(tmp_path / "h.duckdb")
    store.open()
    yield store
    store.close()


@pytest.fixture
def pg(postgres: PostgresServer) -> Iterator[HistorianStore]:
    store = PostgresStore(postgres.new_database())
    store.open()
    yield store
    store.close()


@pytest.mark.parametrize("table", list(Table))
def test_duckdb_to_postgresql_and_back(
    table: Table, duck: HistorianStore, pg: HistorianStore, tmp_path: Path
) -> None:
    fill(duck, table, STAMPS)
    there = tmp_path / "there.parquet"
    export(duck, table, 0, 2**62, there, chunk_rows=100)
    assert import_(pg, there).added == 240
    assert everything(pg, table).equals(everything(duck, table))

    back = tmp_path / "back.parquet"
    export(pg, table, 0, 2**62, back, chunk_rows=70)
    again = import_(duck, back)
    assert (again.rows, again.added, again.skipped) == (240, 0, 240)
