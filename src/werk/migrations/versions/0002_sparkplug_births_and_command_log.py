"""Sparkplug births and command log

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 14:18:51.909210
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply the change."""
    op.create_table(
        "sparkplug_births",
        sa.Column("group_id", sa.String(length=256), nullable=False),
        sa.Column("edge_node", sa.String(length=256), nullable=False),
        sa.Column("device", sa.String(length=256), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("bd_seq", sa.Integer(), nullable=True),
        sa.Column("born_ns", sa.BigInteger(), nullable=False),
        sa.Column("died_ns", sa.BigInteger(), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "edge_node", "device"),
    )
    op.create_table(
        "sparkplug_commands",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("requested_ns", sa.BigInteger(), nullable=False),
        sa.Column("requested_by", sa.String(length=256), nullable=False),
        sa.Column("origin", sa.String(length=256), nullable=False),
        sa.Column("tag_path", sa.String(length=1024), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("metric", sa.String(length=1024), nullable=False),
        sa.Column("value_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("completed_ns", sa.BigInteger(), nullable=True),
        sa.Column("result_json", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sparkplug_commands", schema=None) as batch_op:
        batch_op.create_index("ix_sparkplug_commands_requested", ["requested_ns"], unique=False)
        batch_op.create_index(batch_op.f("ix_sparkplug_commands_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_sparkplug_commands_tag_path"), ["tag_path"], unique=False
        )


def downgrade() -> None:
    """Revert the change."""
    with op.batch_alter_table("sparkplug_commands", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sparkplug_commands_tag_path"))
        batch_op.drop_index(batch_op.f("ix_sparkplug_commands_status"))
        batch_op.drop_index("ix_sparkplug_commands_requested")

    op.drop_table("sparkplug_commands")
    op.drop_table("sparkplug_births")
