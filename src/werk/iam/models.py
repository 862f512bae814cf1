"""ORM models of identity and access: organisations, principals, roles, credentials, audit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from werk.core.db import Base

__all__ = [
    "ApiKeyRecord",
    "AuditEventRecord",
    "BindingRecord",
    "ChangeRecord",
    "GroupMember",
    "GroupRecord",
    "OrgRecord",
    "PrincipalRecord",
    "RefreshTokenRecord",
    "RevokedTokenRecord",
    "RoleRecord",
    "SigningKeyRecord",
    "UtcDateTime",
    "WebSessionRecord",
    "new_id",
    "utc_now",
]


def new_id() -> str:
    """A fresh object id (32 hex digits)."""
    return uuid4().hex


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive times; store UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("a naive datetime cannot be stored: give it a timezone")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Read a stored time as aware UTC."""
        if value is None:
            return None
        found: datetime = value
        return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)


_ID = 32  # uuid4().hex


class OrgRecord(Base):
    """An organisation: the operator running werk, or a partner tenant."""

    __tablename__ = "iam_orgs"
    __table_args__ = (UniqueConstraint("slug", name="uq_iam_orgs_slug"),)

    id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    slug: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # operator | partner
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PrincipalRecord(Base):
    """A user, service account or device; its name is unique over every kind."""

    __tablename__ = "iam_principals"
    __table_args__ = (
        UniqueConstraint("name", name="uq_iam_principals_name"),
        UniqueConstraint("oidc_subject", name="uq_iam_principals_oidc_subject"),
        UniqueConstraint("sparkplug_group", "sparkplug_node", name="uq_iam_principals_sparkplug"),
        Index("ix_iam_principals_org", "org_id"),
    )

    id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(_ID), ForeignKey("iam_orgs.id"))
    kind: Mapped[str] = mapped_column(String(16))  # user | service | device
    name: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(320))
    password_hash: Mapped[str | None] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    tokens_valid_after: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sparkplug_group: Mapped[str | None] = mapped_column(String(256))
    sparkplug_node: Mapped[str | None] = mapped_column(String(256))
    oidc_subject: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class GroupRecord(Base):
    """A named set of principals of one organisation; bindings may target it."""

    __tablename__ = "iam_groups"
    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_iam_groups_org_name"),)

    id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(_ID), ForeignKey("iam_orgs.id"))
    name: Mapped[str] = mapped_column(String(64))


class GroupMember(Base):
    """A principal's membership of a group."""

    __tablename__ = "iam_group_members"
    __table_args__ = (Index("ix_iam_group_members_principal", "principal_id"),)

    group_id: Mapped[str] = mapped_column(
        String(_ID), ForeignKey("iam_groups.id"), primary_key=True
    )
    principal_id: Mapped[str] = mapped_column(
        String(_ID), ForeignKey("iam_principals.id"), primary_key=True
    )


class RoleRecord(Base):
    """A named set of permission patterns; built-in roles have no organisation."""

    __tablename__ = "iam_roles"
    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_iam_roles_org_name"),)

    id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    org_id: Mapped[str | None] = mapped_column(String(_ID), ForeignKey("iam_orgs.id"))
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    permissions: Mapped[list[str]] = mapped_column(JSON)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)


class BindingRecord(Base):
    """A role given to one principal or one group, within a scope."""

    __tablename__ = "iam_bindings"
    __table_args__ = (
        CheckConstraint(
            "(principal_id IS NULL) <> (group_id IS NULL)", name="ck_iam_bindings_one_target"
        ),
        Index("ix_iam_bindings_principal", "principal_id"),
        Index("ix_iam_bindings_group", "group_id"),
        Index("ix_iam_bindings_role", "role_id"),
    )

    id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    role_id: Mapped[str] = mapped_column(String(_ID), ForeignKey("iam_roles.id"))
    principal_id: Mapped[str | None] = mapped_column(String(_ID), ForeignKey("iam_principals.id"))
    group_id: Mapped[str | None] = mapped_column(String(_ID), ForeignKey("iam_groups.id"))
    namespace: Mapped[list[str]] = mapped_column(JSON)
    layers: Mapped[list[str] | None] = mapped_column(JSON)
    org_scope: Mapped[str] = mapped_column(String(8), default="own")  # own | any
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ApiKeyRecord(Base):
    """An API key: the public id, the sha256 of its secret and its Mosquitto hash."""

    __tablename__ = "iam_api_keys"
    __table_args__ = (Index("ix_iam_api_keys_principal", "principal_id"),)

    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    principal_id: Mapped[str] = mapped_column(String(_ID), ForeignKey("iam_principals.id"))
    name: Mapped[str] = mapped_column(String(64))
    secret_hash: Mapped[str] = mapped_column(String(64))
    mosquitto_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class RefreshTokenRecord(Base):
    """One refresh token of a rotating family, stored hashed."""

    __tablename__ = "iam_refresh_tokens"
    __table_args__ = (
        UniqueConstraint("token_hash", name="uq_iam_refresh_tokens_hash"),
        Index("ix_iam_refresh_tokens_family", "family_id"),
        Index("ix_iam_refresh_tokens_principal", "principal_id"),
    )

    id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(_ID))
    principal_id: Mapped[str] = mapped_column(String(_ID), ForeignKey("iam_principals.id"))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ip: Mapped[str] = mapped_column(String(64), default="")


class WebSessionRecord(Base):
    """A browser session: the cookie's hash and its CSRF token."""

    __tablename__ = "iam_web_sessions"
    __table_args__ = (
        UniqueConstraint("token_hash", name="uq_iam_web_sessions_hash"),
        Index("ix_iam_web_sessions_principal", "principal_id"),
    )

    id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    principal_id: Mapped[str] = mapped_column(String(_ID), ForeignKey("iam_principals.id"))
    token_hash: Mapped[str] = mapped_column(String(64))
    csrf_token: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(Text, default="")


class SigningKeyRecord(Base):
    """A key that signs access tokens; retired keys still verify for a while."""

    __tablename__ = "iam_signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    private_pem: Mapped[str] = mapped_column(Text)
    public_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class RevokedTokenRecord(Base):
    """An access token revoked before it expired."""

    __tablename__ = "iam_revoked_tokens"
    __table_args__ = (Index("ix_iam_revoked_tokens_expires", "expires_at"),)

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ChangeRecord(Base):
    """A change other werk processes must apply to what they hold in memory.

    `kind` is `principal` (subject: a principal id, or `*` for every one), `token` (subject:
    a revoked access token's jti, kept until `expires_at`), `session` (subject: the principal
    whose web session ended) or `keys` (the signing keys changed).
    """

    __tablename__ = "iam_changes"
    __table_args__ = (Index("ix_iam_changes_at", "at"), {"sqlite_autoincrement": True})

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    origin: Mapped[str] = mapped_column(String(_ID))
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AuditEventRecord(Base):
    """One audited event, chained to the one before by its hash; never updated or deleted."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_ts", "ts"),
        Index("ix_audit_events_org", "org_id"),
        Index("ix_audit_events_action", "action"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UtcDateTime)
    actor_id: Mapped[str] = mapped_column(String(_ID), default="")
    actor_name: Mapped[str] = mapped_column(String(256), default="")
    org_id: Mapped[str] = mapped_column(String(_ID), default="")
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(Text, default="")
    outcome: Mapped[str] = mapped_column(String(16))  # ok | denied | failed | error
    status: Mapped[int] = mapped_column(Integer, default=0)
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
