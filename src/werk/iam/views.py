"""Read-only views of IAM objects, as the API, the web pages and the CLI show them.

Views never carry a password hash, a key's secret or its hash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from werk.iam.models import (
    ApiKeyRecord,
    AuditEventRecord,
    BindingRecord,
    GroupRecord,
    OrgRecord,
    PrincipalRecord,
    RoleRecord,
)

__all__ = [
    "ApiKeyView",
    "AuditEventView",
    "AuditVerification",
    "BindingView",
    "CredentialView",
    "GroupView",
    "OrgView",
    "PrincipalView",
    "RoleView",
    "SigningKeyView",
]


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class OrgView(_View):
    """An organisation."""

    id: str
    slug: str
    name: str
    kind: Literal["operator", "partner"]
    disabled: bool
    created_at: datetime

    @classmethod
    def of(cls, record: OrgRecord) -> OrgView:
        """The view of a stored organisation."""
        return cls(
            id=record.id, slug=record.slug, name=record.name, kind=record.kind,
            disabled=record.disabled, created_at=record.created_at,
        )  # fmt: skip


class PrincipalView(_View):
    """A user, service account or device."""

    id: str
    org_id: str
    kind: Literal["user", "service", "device"]
    name: str
    display_name: str
    email: str | None
    disabled: bool
    has_password: bool
    locked_until: datetime | None
    sparkplug: tuple[str, str] | None = Field(description="(group_id, edge_node_id) of a node")
    sso: bool = Field(description="whether the user logs in through the OpenID provider")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: PrincipalRecord) -> PrincipalView:
        """The view of a stored principal."""
        group, node = record.sparkplug_group, record.sparkplug_node
        return cls(
            id=record.id, org_id=record.org_id, kind=record.kind,
            name=record.name, display_name=record.display_name, email=record.email,
            disabled=record.disabled, has_password=record.password_hash is not None,
            locked_until=record.locked_until,
            sparkplug=(group, node) if group is not None and node is not None else None,
            sso=record.oidc_subject is not None,
            created_at=record.created_at, updated_at=record.updated_at,
        )  # fmt: skip


class GroupView(_View):
    """A group and the ids of its members."""

    id: str
    org_id: str
    name: str
    members: tuple[str, ...]

    @classmethod
    def of(cls, record: GroupRecord, members: tuple[str, ...]) -> GroupView:
        """The view of a stored group with its member ids."""
        return cls(id=record.id, org_id=record.org_id, name=record.name, members=members)


class RoleView(_View):
    """A role: permission patterns under a name; built-in roles belong to no organisation."""

    id: str
    org_id: str | None
    name: str
    description: str
    permissions: tuple[str, ...]
    builtin: bool

    @classmethod
    def of(cls, record: RoleRecord) -> RoleView:
        """The view of a stored role."""
        return cls(
            id=record.id, org_id=record.org_id, name=record.name,
            description=record.description, permissions=tuple(record.permissions),
            builtin=record.builtin,
        )  # fmt: skip


class BindingView(_View):
    """A role given to a principal or a group within a scope."""

    id: str
    role_id: str
    role_name: str
    principal_id: str | None
    group_id: str | None
    org_id: str = Field(description="the organisation of the principal or group")
    namespace: tuple[str, ...]
    layers: tuple[str, ...] | None
    org_scope: Literal["own", "any"]
    created_at: datetime

    @classmethod
    def of(cls, record: BindingRecord, role_name: str, org_id: str) -> BindingView:
        """The view of a stored binding, with its role's name and its target's organisation."""
        layers = record.layers
        return cls(
            id=record.id, role_id=record.role_id, role_name=role_name,
            principal_id=record.principal_id, group_id=record.group_id, org_id=org_id,
            namespace=tuple(record.namespace),
            layers=tuple(layers) if layers is not None else None,
            org_scope=record.org_scope,
            created_at=record.created_at,
        )  # fmt: skip


class ApiKeyView(_View):
    """An API key without its secret: the id is the public part of the key."""

    id: str
    principal_id: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, record: ApiKeyRecord) -> ApiKeyView:
        """The view of a stored key."""
        return cls(
            id=record.id, principal_id=record.principal_id, name=record.name,
            created_at=record.created_at, expires_at=record.expires_at,
            last_used_at=record.last_used_at, revoked_at=record.revoked_at,
        )  # fmt: skip


class CredentialView(_View):
    """A live login of a principal: a refresh-token family or a web session."""

    id: str = Field(description="the refresh family id or the web session id")
    principal_id: str
    kind: Literal["refresh", "session"]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime
    revoked_at: datetime | None
    ip: str
    user_agent: str = ""


class SigningKeyView(_View):
    """A token signing key without its private part."""

    kid: str
    algorithm: str
    created_at: datetime
    retired_at: datetime | None
    active: bool = Field(description="whether it signs new tokens")


class AuditEventView(_View):
    """One audited event with its place in the hash chain."""

    seq: int
    ts: datetime
    actor_id: str
    actor_name: str
    org_id: str
    action: str
    target: str
    outcome: Literal["ok", "denied", "failed", "error"]
    status: int
    ip: str
    user_agent: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, record: AuditEventRecord) -> AuditEventView:
        """The view of a stored event."""
        return cls(
            seq=record.seq, ts=record.ts, actor_id=record.actor_id,
            actor_name=record.actor_name, org_id=record.org_id, action=record.action,
            target=record.target, outcome=record.outcome,
            status=record.status, ip=record.ip, user_agent=record.user_agent,
            detail=dict(record.detail), prev_hash=record.prev_hash, hash=record.hash,
        )  # fmt: skip


class AuditVerification(_View):
    """The result of walking the audit hash chain."""

    ok: bool
    checked: int = Field(description="how many events were checked")
    first_bad_seq: int | None = Field(description="the first event that breaks the chain")
    reason: str = ""
    last_hash: str = Field(description="the hash of the newest event checked")
