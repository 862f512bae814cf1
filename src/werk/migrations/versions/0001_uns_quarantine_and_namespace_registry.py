"""UNS quarantine and namespace registry

Revision ID: 0001
Revises:
Create Date: 2026-11-21 13:34:04.273813
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply the change."""
    op.create_table(
        "uns_quarantine",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("received_ns", sa.BigInteger(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("uns_quarantine", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_uns_quarantine_reason"), ["reason"], unique=False)
        batch_op.create_index("ix_uns_quarantine_received", ["received_ns"], unique=False)

    op.create_table(
        "uns_tags",
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("data_type", sa.String(length=16), nullable=False),
        sa.Column("unit", sa.String(length=32), nullable=True),
        sa.Column("first_seen_ns", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_ns", sa.BigInteger(), nullable=False),
        sa.Column("samples", sa.BigInteger(), nullable=False),
        sa.Column("interval_s", sa.Float(), nullable=True),
        sa.Column("value_json", sa.Text(), nullable=False),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("ingest_ns", sa.BigInteger(), nullable=False),
        sa.Column("quality", sa.Integer(), nullable=False),
        sa.Column("msg_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("path"),
    )


def downgrade() -> None:
    """Revert the change."""
    op.drop_table("uns_tags")
    with op.batch_alter_table("uns_quarantine", schema=None) as batch_op:
        batch_op.drop_index("ix_uns_quarantine_received")
        batch_op.drop_index(batch_op.f("ix_uns_quarantine_reason"))

    op.drop_table("uns_quarantine")
