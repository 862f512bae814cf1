"""One contract suite, every historian backend: the `store` fixture runs each test on both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.contract.support import Reopen
from tests.postgres_server import PostgresServer

from werk.historian import DuckDBStore, HistorianStore


def _postgres_store(url: str) -> HistorianStore:
    from werk.historian.postgres_store import PostgresStore  # psycopg only when used

    store: HistorianStore = PostgresStore(url)
    return store


@pytest.fixture(params=["duckdb", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistorianStore]:
    """An open, empty store of each backend."""
    backend: HistorianStore
    if request.param == "duckdb":
        backend = DuckDBStore(tmp_path / "h.duckdb")
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        backend = _postgres_store(server.new_database())
    backend.open()
    yield backend
    backend.close()


@pytest.fixture
def reopen(store: HistorianStore) -> Iterator[Reopen]:
    """A function that closes the store and opens a new one on the same data."""
    opened: list[HistorianStore] = []

    def _reopen() -> HistorianStore:
        store.close()
        again = (
            DuckDBStore(store.path)
            if isinstance(store, DuckDBStore)
            else _postgres_store(store.url)  # type: ignore[attr-defined]
        )
        again.open()
        opened.append(again)
        return again

    yield _reopen
    for again in opened:
        again.close()
