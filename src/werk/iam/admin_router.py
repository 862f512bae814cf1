"""Administration of identity and access: organisations, principals, groups, roles,
bindings and API keys (credentials, signing keys and the audit log: `werk.iam.router`).

Handlers are thin: the directory checks object-level access (another organisation's object
is reported as missing), privilege escalation, and audits each change.
"""

from __future__ import annotations

from typing import Final, Literal

from fastapi import APIRouter, Response, status

from werk.iam.router import (
    ADMIN,
    ADMIN_PROBLEMS,
    NO_CONTENT,
    NO_STORE,
    READ,
    IamDep,
    Id,
    IdFilter,
    PrincipalDep,
    security_router,
)
from werk.iam.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    BindingCreate,
    DeviceCreate,
    GroupCreate,
    OrgCreate,
    OrgUpdate,
    PasswordSet,
    PrincipalUpdate,
    RoleCreate,
    RoleUpdate,
    ServiceAccountCreate,
    UserCreate,
    UserCreated,
)
from werk.iam.scopes import Principal
from werk.iam.service import Iam
from werk.iam.views import ApiKeyView, BindingView, GroupView, OrgView, PrincipalView, RoleView

router = APIRouter(prefix="/iam", tags=["iam"], responses=ADMIN_PROBLEMS)

CREATED: Final = status.HTTP_201_CREATED
Kind = Literal["user", "service", "device"]


@router.get("/orgs", response_model=list[OrgView], summary="Organisations", dependencies=READ)
def list_orgs(service: IamDep, actor: PrincipalDep) -> list[OrgView]:
    """The organisations the caller may see."""
    return service.directory.list_orgs(actor)


@router.post(
    "/orgs", response_model=OrgView, status_code=CREATED, summary="New organisation",
    dependencies=ADMIN,
)  # fmt: skip
def create_org(body: OrgCreate, service: IamDep, actor: PrincipalDep) -> OrgView:
    """Create a partner (or operator) organisation; operator admins only."""
    return service.directory.create_org(actor, slug=body.slug, name=body.name, kind=body.kind)


@router.get("/orgs/{org_id}", response_model=OrgView, summary="One organisation", dependencies=READ)
def get_org(org_id: Id, service: IamDep, actor: PrincipalDep) -> OrgView:
    """One organisation."""
    return service.directory.get_org(actor, org_id)


@router.patch(
    "/orgs/{org_id}", response_model=OrgView, summary="Change an organisation", dependencies=ADMIN
)
def update_org(org_id: Id, body: OrgUpdate, service: IamDep, actor: PrincipalDep) -> OrgView:
    """Rename, disable or enable an organisation."""
    return service.directory.update_org(actor, org_id, name=body.name, disabled=body.disabled)


@router.get(
    "/principals", response_model=list[PrincipalView], summary="Principals", dependencies=READ
)
def list_principals(
    service: IamDep, actor: PrincipalDep, kind: Kind | None = None, org_id: IdFilter = None
) -> list[PrincipalView]:
    """Users, service accounts and devices the caller may see."""
    return service.directory.list_principals(actor, kind=kind, org_id=org_id)


@router.get(
    "/principals/{principal_id}", response_model=PrincipalView, summary="One principal",
    dependencies=READ,
)  # fmt: skip
def get_principal(principal_id: Id, service: IamDep, actor: PrincipalDep) -> PrincipalView:
    """One user, service account or device."""
    return service.directory.get_principal(actor, principal_id)


@router.patch(
    "/principals/{principal_id}", response_model=PrincipalView, summary="Change a principal",
    dependencies=ADMIN,
)  # fmt: skip
def update_principal(
    principal_id: Id, body: PrincipalUpdate, service: IamDep, actor: PrincipalDep
) -> PrincipalView:
    """Change a principal's display name or e-mail."""
    return service.directory.update_principal(
        actor, principal_id, display_name=body.display_name, email=body.email
    )


@router.post(
    "/principals/{principal_id}/disable", response_model=PrincipalView,
    summary="Disable a principal", dependencies=ADMIN,
)  # fmt: skip
def disable(principal_id: Id, service: IamDep, actor: PrincipalDep) -> PrincipalView:
    """Disable a principal: its tokens, keys and sessions stop working at once."""
    return service.directory.update_principal(actor, principal_id, disabled=True)


@router.post(
    "/principals/{principal_id}/enable", response_model=PrincipalView,
    summary="Enable a principal", dependencies=ADMIN,
)  # fmt: skip
def enable(principal_id: Id, service: IamDep, actor: PrincipalDep) -> PrincipalView:
    """Enable a disabled principal again."""
    return service.directory.update_principal(actor, principal_id, disabled=False)


@router.post(
    "/principals/{principal_id}/revoke-all", status_code=NO_CONTENT,
    summary="Revoke every token and session", dependencies=ADMIN,
)  # fmt: skip
def revoke_all(principal_id: Id, service: IamDep, actor: PrincipalDep) -> Response:
    """Revoke the principal's access tokens, refresh tokens and web sessions."""
    service.directory.revoke_all(actor, principal_id)
    return Response(status_code=NO_CONTENT)


@router.put(
    "/principals/{principal_id}/password", status_code=NO_CONTENT, summary="Set a password",
    dependencies=ADMIN,
)  # fmt: skip
def set_password(
    principal_id: Id, body: PasswordSet, service: IamDep, actor: PrincipalDep
) -> Response:
    """Set a user's password (at least 12 characters, not the user name)."""
    service.directory.set_password(actor, principal_id, body.password)
    return Response(status_code=NO_CONTENT)


def _principals(
    service: Iam, actor: Principal, kind: Kind, org_id: str | None
) -> list[PrincipalView]:
    return service.directory.list_principals(actor, kind=kind, org_id=org_id)


@router.get("/users", response_model=list[PrincipalView], summary="Users", dependencies=READ)
def list_users(
    service: IamDep, actor: PrincipalDep, org_id: IdFilter = None
) -> list[PrincipalView]:
    """The users the caller may see."""
    return _principals(service, actor, "user", org_id)


@router.post(
    "/users", response_model=UserCreated, status_code=CREATED, summary="New user",
    dependencies=ADMIN,
)  # fmt: skip
def create_user(
    body: UserCreate, service: IamDep, actor: PrincipalDep, response: Response
) -> UserCreated:
    """Create a user; a generated password is returned this once."""
    user, password = service.directory.create_user(
        actor, org_id=body.org_id or actor.org_id, name=body.name,
        display_name=body.display_name, email=body.email, password=body.password,
    )  # fmt: skip
    response.headers.update(NO_STORE)
    return UserCreated(user=user, password=password)


@router.get(
    "/service-accounts", response_model=list[PrincipalView], summary="Service accounts",
    dependencies=READ,
)  # fmt: skip
def list_service_accounts(
    service: IamDep, actor: PrincipalDep, org_id: IdFilter = None
) -> list[PrincipalView]:
    """The service accounts the caller may see."""
    return _principals(service, actor, "service", org_id)


@router.post(
    "/service-accounts", response_model=PrincipalView, status_code=CREATED,
    summary="New service account", dependencies=ADMIN,
)  # fmt: skip
def create_service_account(
    body: ServiceAccountCreate, service: IamDep, actor: PrincipalDep
) -> PrincipalView:
    """Create a service account; give it an API key to use as its client secret."""
    return service.directory.create_service_account(
        actor, org_id=body.org_id or actor.org_id, name=body.name, display_name=body.display_name
    )


@router.get("/devices", response_model=list[PrincipalView], summary="Devices", dependencies=READ)
def list_devices(
    service: IamDep, actor: PrincipalDep, org_id: IdFilter = None
) -> list[PrincipalView]:
    """The devices and edge nodes the caller may see."""
    return _principals(service, actor, "device", org_id)


@router.post(
    "/devices", response_model=PrincipalView, status_code=CREATED, summary="New device",
    dependencies=ADMIN,
)  # fmt: skip
def create_device(body: DeviceCreate, service: IamDep, actor: PrincipalDep) -> PrincipalView:
    """Create a device; an edge node names its Sparkplug group and node."""
    sparkplug = None
    if body.sparkplug_group is not None or body.sparkplug_node is not None:
        sparkplug = (body.sparkplug_group or "", body.sparkplug_node or "")
    return service.directory.create_device(
        actor, org_id=body.org_id or actor.org_id, name=body.name,
        display_name=body.display_name, sparkplug=sparkplug,
    )  # fmt: skip


@router.get("/groups", response_model=list[GroupView], summary="Groups", dependencies=READ)
def list_groups(service: IamDep, actor: PrincipalDep, org_id: IdFilter = None) -> list[GroupView]:
    """The groups the caller may see, with their members."""
    return service.directory.list_groups(actor, org_id=org_id)


@router.get("/groups/{group_id}", response_model=GroupView, summary="One group", dependencies=READ)
def get_group(group_id: Id, service: IamDep, actor: PrincipalDep) -> GroupView:
    """One group with its members."""
    return service.directory.get_group(actor, group_id)


@router.post(
    "/groups", response_model=GroupView, status_code=CREATED, summary="New group",
    dependencies=ADMIN,
)  # fmt: skip
def create_group(body: GroupCreate, service: IamDep, actor: PrincipalDep) -> GroupView:
    """Create a group."""
    return service.directory.create_group(actor, org_id=body.org_id or actor.org_id, name=body.name)


@router.delete(
    "/groups/{group_id}", status_code=NO_CONTENT, summary="Delete a group", dependencies=ADMIN
)
def delete_group(group_id: Id, service: IamDep, actor: PrincipalDep) -> Response:
    """Delete a group with its memberships and bindings."""
    service.directory.delete_group(actor, group_id)
    return Response(status_code=NO_CONTENT)


@router.put(
    "/groups/{group_id}/members/{principal_id}", status_code=NO_CONTENT,
    summary="Add a member", dependencies=ADMIN,
)  # fmt: skip
def add_member(group_id: Id, principal_id: Id, service: IamDep, actor: PrincipalDep) -> Response:
    """Add a principal of the group's organisation to the group."""
    service.directory.add_member(actor, group_id, principal_id)
    return Response(status_code=NO_CONTENT)


@router.delete(
    "/groups/{group_id}/members/{principal_id}", status_code=NO_CONTENT,
    summary="Remove a member", dependencies=ADMIN,
)  # fmt: skip
def remove_member(group_id: Id, principal_id: Id, service: IamDep, actor: PrincipalDep) -> Response:
    """Remove a principal from the group."""
    service.directory.remove_member(actor, group_id, principal_id)
    return Response(status_code=NO_CONTENT)


@router.get("/roles", response_model=list[RoleView], summary="Roles", dependencies=READ)
def list_roles(service: IamDep, actor: PrincipalDep) -> list[RoleView]:
    """Built-in roles and the roles of the organisations the caller may see."""
    return service.directory.list_roles(actor)


@router.get("/roles/{role_id}", response_model=RoleView, summary="One role", dependencies=READ)
def get_role(role_id: Id, service: IamDep, actor: PrincipalDep) -> RoleView:
    """One role."""
    return service.directory.get_role(actor, role_id)


@router.post(
    "/roles", response_model=RoleView, status_code=CREATED, summary="New role", dependencies=ADMIN
)
def create_role(body: RoleCreate, service: IamDep, actor: PrincipalDep) -> RoleView:
    """Create a role of an organisation from permissions the caller holds itself."""
    return service.directory.create_role(
        actor, org_id=body.org_id or actor.org_id, name=body.name,
        permissions=body.permissions, description=body.description,
    )  # fmt: skip


@router.patch(
    "/roles/{role_id}", response_model=RoleView, summary="Change a role", dependencies=ADMIN
)
def update_role(role_id: Id, body: RoleUpdate, service: IamDep, actor: PrincipalDep) -> RoleView:
    """Change a role's permissions or description (built-in roles stay as they are)."""
    return service.directory.update_role(
        actor, role_id, permissions=body.permissions, description=body.description
    )


@router.delete(
    "/roles/{role_id}", status_code=NO_CONTENT, summary="Delete a role", dependencies=ADMIN
)
def delete_role(role_id: Id, service: IamDep, actor: PrincipalDep) -> Response:
    """Delete a role of an organisation that no binding uses."""
    service.directory.delete_role(actor, role_id)
    return Response(status_code=NO_CONTENT)


@router.get("/bindings", response_model=list[BindingView], summary="Bindings", dependencies=READ)
def list_bindings(
    service: IamDep,
    actor: PrincipalDep,
    principal_id: IdFilter = None,
    group_id: IdFilter = None,
) -> list[BindingView]:
    """Role bindings, optionally of one principal or one group."""
    return service.directory.list_bindings(actor, principal_id=principal_id, group_id=group_id)


@router.post(
    "/bindings", response_model=BindingView, status_code=CREATED, summary="Give a role",
    dependencies=ADMIN,
)  # fmt: skip
def create_binding(body: BindingCreate, service: IamDep, actor: PrincipalDep) -> BindingView:
    """Give a role to a principal or a group within a scope; no privilege escalation."""
    return service.directory.create_binding(
        actor, role_id=body.role_id, principal_id=body.principal_id, group_id=body.group_id,
        namespace=tuple(body.namespace), org_scope=body.org_scope,
        layers=None if body.layers is None else tuple(body.layers),
    )  # fmt: skip


@router.delete(
    "/bindings/{binding_id}", status_code=NO_CONTENT, summary="Take a role back",
    dependencies=ADMIN,
)  # fmt: skip
def delete_binding(binding_id: Id, service: IamDep, actor: PrincipalDep) -> Response:
    """Delete a role binding."""
    service.directory.delete_binding(actor, binding_id)
    return Response(status_code=NO_CONTENT)


@router.get("/api-keys", response_model=list[ApiKeyView], summary="API keys", dependencies=READ)
def list_api_keys(
    service: IamDep, actor: PrincipalDep, principal_id: IdFilter = None
) -> list[ApiKeyView]:
    """API keys (never their secrets), optionally of one principal."""
    return service.directory.list_api_keys(actor, principal_id=principal_id)


@router.post(
    "/api-keys", response_model=ApiKeyCreated, status_code=CREATED, summary="New API key",
    dependencies=ADMIN,
)  # fmt: skip
def create_api_key(
    body: ApiKeyCreate, service: IamDep, actor: PrincipalDep, response: Response
) -> ApiKeyCreated:
    """Create an API key; the key is returned this once."""
    view, secret = service.directory.create_api_key(
        actor, principal_id=body.principal_id, name=body.name, expires_at=body.expires_at
    )
    response.headers.update(NO_STORE)
    return ApiKeyCreated(key=view, secret=secret)


@router.delete(
    "/api-keys/{key_id}", status_code=NO_CONTENT, summary="Revoke an API key", dependencies=ADMIN
)
def revoke_api_key(key_id: Id, service: IamDep, actor: PrincipalDep) -> Response:
    """Revoke an API key: it fails on its next use."""
    service.directory.revoke_api_key(actor, key_id)
    return Response(status_code=NO_CONTENT)


router.include_router(security_router)
