"""Migrations build the schema the ORM models describe, and nothing is left unmigrated."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import werk.iam.models  # the models migrations must match
import werk.sources.models
import werk.sparkplug.models
import werk.uns.models  # noqa: F401
from werk.core.db import Base, create_db_engine, upgrade_schema


def test_upgrade_creates_every_table_and_matches_the_models(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'werk.db'}")
    upgrade_schema(engine)
    upgrade_schema(engine)  # a second run is a no-op
    tables = set(inspect(engine).get_table_names())
    assert {
        "uns_quarantine",
        "uns_tags",
        "iam_changes",
        "audit_events",
        "alembic_version",
    } <= tables
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], f"models changed without a migration: {diff}"
    engine.dispose()
