"""Alembic environment: runs on the connection werk hands over in `config.attributes`."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

import werk.iam.models  # registers the IAM and audit tables on Base.metadata
import werk.sources.models  # registers the sources tables on Base.metadata
import werk.sparkplug.models  # registers the Sparkplug tables on Base.metadata
import werk.uns.models  # noqa: F401  # registers the UNS tables on Base.metadata
from werk.core.db import Base

connection: Connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
