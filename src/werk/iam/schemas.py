"""Bodies of the IAM API: what callers send, and the answers that are not plain views."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from werk.iam.scopes import Grant
from werk.iam.views import ApiKeyView, AuditEventView, OrgView, PrincipalView

Name = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9._@-]{2,64}$", description="letters, digits, . _ @ -")
]
DisplayName = Annotated[str, Field(max_length=200)]
Email = Annotated[str, Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
ObjectId = Annotated[str, Field(min_length=1, max_length=64)]
Filter = Annotated[str, Field(min_length=1, max_length=1024, description="e.g. acme/berlin/#")]
Layer = Literal["raw", "processed", "business"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrgCreate(_Body):
    """A new organisation."""

    slug: Annotated[str, Field(pattern=r"^[a-z0-9-]{2,40}$", description="e.g. northwind")]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    kind: Literal["operator", "partner"] = "partner"


class OrgUpdate(_Body):
    """Changes to an organisation; omitted fields stay."""

    name: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    disabled: bool | None = None


class UserCreate(_Body):
    """A new user; without a password werk generates one and returns it once."""

    org_id: ObjectId | None = Field(None, description="default: the caller's organisation")
    name: Name
    display_name: DisplayName = ""
    email: Email | None = None
    password: Annotated[str | None, Field(min_length=1, max_length=1024)] = None


class UserCreated(BaseModel):
    """The new user, and the generated password (shown this once)."""

    user: PrincipalView
    password: str | None = Field(description="the generated password; null when one was given")


class ServiceAccountCreate(_Body):
    """A new service account (an OAuth2 client: its name is the client_id)."""

    org_id: ObjectId | None = Field(None, description="default: the caller's organisation")
    name: Name
    display_name: DisplayName = ""


class DeviceCreate(_Body):
    """A new device; an edge node names its Sparkplug group and node."""

    org_id: ObjectId | None = Field(None, description="default: the caller's organisation")
    name: Name
    display_name: DisplayName = ""
    sparkplug_group: Annotated[str | None, Field(min_length=1, max_length=256)] = None
    sparkplug_node: Annotated[str | None, Field(min_length=1, max_length=256)] = None


class PrincipalUpdate(_Body):
    """Changes to a principal; omitted fields stay."""

    display_name: DisplayName | None = None
    email: Email | None = None


class PasswordSet(_Body):
    """A new password (at least 12 characters, not the user name)."""

    password: Annotated[str, Field(min_length=1, max_length=1024)]


class GroupCreate(_Body):
    """A new group."""

    org_id: ObjectId | None = Field(None, description="default: the caller's organisation")
    name: Name


class RoleCreate(_Body):
    """A new role of an organisation."""

    org_id: ObjectId | None = Field(None, description="default: the caller's organisation")
    name: Name
    permissions: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=64)]], Field(max_length=100)
    ]
    description: Annotated[str, Field(max_length=1000)] = ""


class RoleUpdate(_Body):
    """Changes to a role; omitted fields stay."""

    permissions: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=64)]] | None, Field(max_length=100)
    ] = None
    description: Annotated[str | None, Field(max_length=1000)] = None


class BindingCreate(_Body):
    """A role given to a principal or a group (exactly one), within a scope."""

    role_id: ObjectId
    principal_id: ObjectId | None = None
    group_id: ObjectId | None = None
    namespace: Annotated[list[Filter], Field(min_length=1, max_length=100)] = ["#"]
    layers: Annotated[list[Layer] | None, Field(max_length=3)] = None
    org_scope: Literal["own", "any"] = "own"


class ApiKeyCreate(_Body):
    """A new API key of a principal."""

    principal_id: ObjectId
    name: Name
    expires_at: datetime | None = None


class ApiKeyCreated(BaseModel):
    """The new key's record, and the key itself (shown this once)."""

    key: ApiKeyView
    secret: str = Field(description="the full key, wk_<id>_<secret>; it cannot be shown again")


class SigningKeyRotated(BaseModel):
    """The key that signs new tokens from now on."""

    kid: str


class AuditPage(BaseModel):
    """A page of audit events; the cursor of the next page, if there may be one."""

    items: list[AuditEventView]
    next_after_seq: int | None = Field(description="oldest first: pass as after_seq")
    next_before_seq: int | None = Field(description="newest first: pass as before_seq")


class LoginRequest(_Body):
    """A user's name and password."""

    username: Annotated[str, Field(min_length=1, max_length=256)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class GrantRead(BaseModel):
    """One role's permissions within its scope."""

    role: str
    permissions: list[str]
    namespace: list[str]
    layers: list[str] | None
    org: Literal["own", "any"]

    @classmethod
    def of(cls, grant: Grant) -> GrantRead:
        """The view of a principal's grant."""
        scope = grant.scope
        layers = None if scope.layers is None else list(scope.layers)
        return cls(
            role=grant.role, permissions=sorted(grant.permissions),
            namespace=list(scope.namespace), layers=layers, org=scope.org,
        )  # fmt: skip


class MeRead(BaseModel):
    """Who the caller is, and what it may do.

    The top-level identity is what the credential says; `principal` and `org` are the
    directory's records of the caller and its own organisation.
    """

    id: str
    name: str
    kind: str
    org_id: str
    org_kind: str
    auth_method: str
    credential_id: str | None
    sparkplug: tuple[str, str] | None
    principal: PrincipalView | None = Field(description="null for werk's internal callers")
    org: OrgView | None
    grants: list[GrantRead]
    permissions: list[str] = Field(description="every permission held somewhere")
    csrf_token: str | None = Field(None, description="with a cookie session: send as X-CSRF-Token")


class LoginResult(BaseModel):
    """The session just opened; the cookie carries its secret."""

    me: MeRead
    csrf_token: str
    expires_at: datetime


class TokenResponse(BaseModel):
    """An OAuth2 access token response (RFC 6749 section 5.1)."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    refresh_token: str | None = None
    scope: str


class Problem(BaseModel):
    """An error as problem+json (RFC 9457)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    code: str = Field(description="stable machine-readable code, e.g. not_found")
    params: dict[str, Any] = Field(default_factory=dict)


class OAuthError(BaseModel):
    """An OAuth2 error response (RFC 6749 section 5.2)."""

    error: str
    error_description: str


Responses = dict[int | str, dict[str, Any]]
_REFUSALS: Final = {
    401: "no valid credentials",
    403: "not allowed (or a cookie write without its CSRF token)",
    404: "no such object, or one outside the caller's organisation",
    409: "clashes with an existing object",
    429: "too many failed logins; see Retry-After",
}
OAUTH_ERRORS: Final[Responses] = {
    400: {"model": OAuthError, "description": "invalid_request, invalid_grant, ..."},
    401: {"model": OAuthError, "description": "invalid_client"},
    429: {"model": OAuthError, "description": "too_many_attempts; see Retry-After"},
}


def problems(*statuses: int) -> Responses:
    """OpenAPI `responses` documenting these problem+json refusals."""
    return {s: {"model": Problem, "description": _REFUSALS[s]} for s in statuses}
