"""Real parts for the sources tests: a DuckDB historian and a SQLite relational store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from werk.core.db import create_db_engine, upgrade_schema
from werk.historian import DuckDBStore, HistorianStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistorianStore]:
    """An open DuckDB historian in a file."""
    backend = DuckDBStore(tmp_path / "historian.duckdb")
    backend.open()
    yield backend
    backend.close()


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Sessions of a migrated SQLite relational store."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'werk.db'}")
    upgrade_schema(engine)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()
