"""IAM: organisations, principals, groups, roles, bindings, credentials and the audit log

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.String(length=32)
_TS = sa.DateTime(timezone=True)

_SQLITE_TRIGGERS = (
    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
)
_POSTGRES_TRIGGERS = (
    "CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'audit_events is append-only'; END $$",
    "CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
    "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()",
)


def upgrade() -> None:
    """Apply the change."""
    _create_directory()
    _create_credentials()
    _create_audit()


def _create_directory() -> None:
    op.create_table(
        "iam_orgs",
        sa.Column("id", _ID, nullable=False),
        sa.Column("slug", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug", name="uq_iam_orgs_slug"),
    )
    op.create_table(
        "iam_principals",
        sa.Column("id", _ID, nullable=False),
        sa.Column("org_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", _TS, nullable=True),
        sa.Column("tokens_valid_after", _TS, nullable=True),
        sa.Column("sparkplug_group", sa.String(length=256), nullable=True),
        sa.Column("sparkplug_node", sa.String(length=256), nullable=True),
        sa.Column("oidc_subject", sa.String(length=256), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["iam_orgs.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name="uq_iam_principals_name"),
        sa.UniqueConstraint("oidc_subject", name="uq_iam_principals_oidc_subject"),
        sa.UniqueConstraint(
            "sparkplug_group", "sparkplug_node", name="uq_iam_principals_sparkplug"
        ),
    )
    op.create_index("ix_iam_principals_org", "iam_principals", ["org_id"], unique=False)
    op.create_table(
        "iam_groups",
        sa.Column("id", _ID, nullable=False),
        sa.Column("org_id", _ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["iam_orgs.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_id", "name", name="uq_iam_groups_org_name"),
    )
    op.create_table(
        "iam_group_members",
        sa.Column("group_id", _ID, nullable=False),
        sa.Column("principal_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["iam_groups.id"]),
        sa.ForeignKeyConstraint(["principal_id"], ["iam_principals.id"]),
        sa.PrimaryKeyConstraint("group_id", "principal_id"),
    )
    op.create_index(
        "ix_iam_group_members_principal", "iam_group_members", ["principal_id"], unique=False
    )
    op.create_table(
        "iam_roles",
        sa.Column("id", _ID, nullable=False),
        sa.Column("org_id", _ID, nullable=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["iam_orgs.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_id", "name", name="uq_iam_roles_org_name"),
    )
    op.create_table(
        "iam_bindings",
        sa.Column("id", _ID, nullable=False),
        sa.Column("role_id", _ID, nullable=False),
        sa.Column("principal_id", _ID, nullable=True),
        sa.Column("group_id", _ID, nullable=True),
        sa.Column("namespace", sa.JSON(), nullable=False),
        sa.Column("layers", sa.JSON(), nullable=True),
        sa.Column("org_scope", sa.String(length=8), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.CheckConstraint(
            "(principal_id IS NULL) <> (group_id IS NULL)", name="ck_iam_bindings_one_target"
        ),
        sa.ForeignKeyConstraint(["group_id"], ["iam_groups.id"]),
        sa.ForeignKeyConstraint(["principal_id"], ["iam_principals.id"]),
        sa.ForeignKeyConstraint(["role_id"], ["iam_roles.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_iam_bindings_principal", "iam_bindings", ["principal_id"], unique=False)
    op.create_index("ix_iam_bindings_group", "iam_bindings", ["group_id"], unique=False)
    op.create_index("ix_iam_bindings_role", "iam_bindings", ["role_id"], unique=False)


def _create_credentials() -> None:
    op.create_table(
        "iam_api_keys",
        sa.Column("id", sa.String(length=12), nullable=False),
        sa.Column("principal_id", _ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("mosquitto_hash", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=True),
        sa.Column("last_used_at", _TS, nullable=True),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(["principal_id"], ["iam_principals.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_iam_api_keys_principal", "iam_api_keys", ["principal_id"], unique=False)
    op.create_table(
        "iam_refresh_tokens",
        sa.Column("id", _ID, nullable=False),
        sa.Column("family_id", _ID, nullable=False),
        sa.Column("principal_id", _ID, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("used_at", _TS, nullable=True),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["principal_id"], ["iam_principals.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash", name="uq_iam_refresh_tokens_hash"),
    )
    op.create_index(
        "ix_iam_refresh_tokens_family", "iam_refresh_tokens", ["family_id"], unique=False
    )
    op.create_index(
        "ix_iam_refresh_tokens_principal", "iam_refresh_tokens", ["principal_id"], unique=False
    )
    op.create_table(
        "iam_web_sessions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("principal_id", _ID, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("last_seen_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["principal_id"], ["iam_principals.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash", name="uq_iam_web_sessions_hash"),
    )
    op.create_index(
        "ix_iam_web_sessions_principal", "iam_web_sessions", ["principal_id"], unique=False
    )
    op.create_table(
        "iam_signing_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("private_pem", sa.Text(), nullable=False),
        sa.Column("public_pem", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("retired_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("kid"),
    )
    op.create_table(
        "iam_revoked_tokens",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("jti"),
    )
    op.create_index(
        "ix_iam_revoked_tokens_expires", "iam_revoked_tokens", ["expires_at"], unique=False
    )


def _create_audit() -> None:
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ts", _TS, nullable=False),
        sa.Column("actor_id", _ID, nullable=False),
        sa.Column("actor_name", sa.String(length=256), nullable=False),
        sa.Column("org_id", _ID, nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.Text(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_audit_events_ts", "audit_events", ["ts"], unique=False)
    op.create_index("ix_audit_events_org", "audit_events", ["org_id"], unique=False)
    op.create_index("ix_audit_events_action", "audit_events", ["action"], unique=False)
    dialect = op.get_bind().dialect.name
    for statement in _SQLITE_TRIGGERS if dialect == "sqlite" else ():
        op.execute(statement)
    for statement in _POSTGRES_TRIGGERS if dialect == "postgresql" else ():
        op.execute(statement)


def downgrade() -> None:
    """Revert the change."""
    op.drop_table("audit_events")  # its triggers go with it
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    for table in (
        "iam_revoked_tokens",
        "iam_signing_keys",
        "iam_web_sessions",
        "iam_refresh_tokens",
        "iam_api_keys",
        "iam_bindings",
        "iam_roles",
        "iam_group_members",
        "iam_groups",
        "iam_principals",
        "iam_orgs",
    ):
        op.drop_table(table)
