"""`werk iam groups|roles|bindings ...`: who holds which role, and within which scope."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from werk.cli.client import api_delete, api_get, api_patch, api_post, api_put
from werk.cli.errors import one_line_errors
from werk.cli.iam_common import (
    JsonOpt,
    OrgOpt,
    done,
    find,
    org_id,
    org_slugs,
    principal,
    principal_names,
    show,
)
from werk.cli.uns import ApiOpt, api_url
from werk.core.errors import ValidationFailed

groups_app = typer.Typer(
    help="Groups: give roles to many principals at once.", no_args_is_help=True
)
roles_app = typer.Typer(help="Roles: named sets of permissions.", no_args_is_help=True)
bindings_app = typer.Typer(
    help="Bindings: a role given to a principal or group, within a scope.", no_args_is_help=True
)

GroupArg = Annotated[str, typer.Argument(help="group name or id")]
RoleArg = Annotated[str, typer.Argument(help="role name or id")]
MemberArg = Annotated[str, typer.Argument(help="principal name or id")]
PermissionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--permission", "-p", help="a permission such as uns:read or history:read:*; repeat"
    ),
]
DescriptionOpt = Annotated[str | None, typer.Option("--description", help="what the role is for")]


def register(app: typer.Typer) -> None:
    """Add the groups, roles and bindings commands to `werk iam`."""
    app.add_typer(groups_app, name="groups")
    app.add_typer(roles_app, name="roles")
    app.add_typer(bindings_app, name="bindings")


def _group(base: str, ref: str, org: str | None) -> dict[str, Any]:
    return find(base, "/iam/groups", ref, keys=("name",), what="group", org_id=org_id(base, org))


def _role(base: str, ref: str, org: str | None) -> dict[str, Any]:
    return find(base, "/iam/roles", ref, keys=("name",), what="role", org_id=org_id(base, org))


@groups_app.command("list")
@one_line_errors
def groups_list(api: ApiOpt = None, json: JsonOpt = False) -> None:
    """Show the groups you may see, with their members."""
    base = api_url(api)
    rows = api_get(base, "/iam/groups")
    slugs, names = ({}, {}) if json else (org_slugs(base), principal_names(base))
    columns = [
        ("name", lambda r: r["name"]),
        ("organisation", lambda r: slugs.get(r["org_id"], r["org_id"])),
        ("members", lambda r: [names.get(m, m) for m in r["members"]]),
        ("id", lambda r: r["id"]),
    ]
    show(rows, columns, title="groups", as_json=json)


@groups_app.command("create")
@one_line_errors
def groups_create(
    name: Annotated[str, typer.Argument(help="group name, unique in its organisation")],
    org: OrgOpt = None,
    api: ApiOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create a group."""
    base = api_url(api)
    made = api_post(base, "/iam/groups", {"name": name, "org_id": org_id(base, org)})
    done(f"created group {made['name']} ({made['id']})", made, as_json=json)


@groups_app.command("delete")
@one_line_errors
def groups_delete(group: GroupArg, org: OrgOpt = None, api: ApiOpt = None) -> None:
    """Delete a group with its memberships and bindings."""
    base = api_url(api)
    found = _group(base, group, org)
    api_delete(base, f"/iam/groups/{found['id']}")
    done(f"deleted group {found['name']}", None, as_json=False)


@groups_app.command("add-member")
@one_line_errors
def groups_add(group: GroupArg, member: MemberArg, org: OrgOpt = None, api: ApiOpt = None) -> None:
    """Add a principal of the group's organisation to the group."""
    base = api_url(api)
    found, who = _group(base, group, org), principal(base, member)
    api_put(base, f"/iam/groups/{found['id']}/members/{who['id']}", {})
    done(f"added {who['name']} to group {found['name']}", None, as_json=False)


@groups_app.command("remove-member")
@one_line_errors
def groups_remove(
    group: GroupArg, member: MemberArg, org: OrgOpt = None, api: ApiOpt = None
) -> None:
    """Remove a principal from a group."""
    base = api_url(api)
    found, who = _group(base, group, org), principal(base, member)
    api_delete(base, f"/iam/groups/{found['id']}/members/{who['id']}")
    done(f"removed {who['name']} from group {found['name']}", None, as_json=False)


@roles_app.command("list")
@one_line_errors
def roles_list(api: ApiOpt = None, json: JsonOpt = False) -> None:
    """Show the built-in roles and the roles of the organisations you may see."""
    base = api_url(api)
    rows = api_get(base, "/iam/roles")
    slugs = {} if json else org_slugs(base)
    columns = [
        ("name", lambda r: r["name"]),
        (
            "organisation",
            lambda r: "built-in" if r["builtin"] else slugs.get(r["org_id"], r["org_id"]),
        ),
        ("permissions", lambda r: r["permissions"]),
        ("description", lambda r: r["description"]),
        ("id", lambda r: r["id"]),
    ]
    show(rows, columns, title="roles", as_json=json)


@roles_app.command("create")
@one_line_errors
def roles_create(
    name: Annotated[str, typer.Argument(help="role name, unique in its organisation")],
    permission: PermissionOpt = None,
    description: DescriptionOpt = None,
    org: OrgOpt = None,
    api: ApiOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create a role from permissions you hold yourself."""
    if not permission:
        raise ValidationFailed("give at least one --permission", code="no_permissions")
    base = api_url(api)
    body = {"name": name, "permissions": permission, "description": description or "",
            "org_id": org_id(base, org)}  # fmt: skip
    made = api_post(base, "/iam/roles", body)
    done(f"created role {made['name']} ({made['id']})", made, as_json=json)


@roles_app.command("update")
@one_line_errors
def roles_update(
    role: RoleArg,
    permission: PermissionOpt = None,
    description: DescriptionOpt = None,
    org: OrgOpt = None,
    api: ApiOpt = None,
    json: JsonOpt = False,
) -> None:
    """Replace a role's permissions (all --permission given) or its description."""
    base = api_url(api)
    found = _role(base, role, org)
    body: dict[str, Any] = {"permissions": permission or None, "description": description}
    changed = api_patch(
        base, f"/iam/roles/{found['id']}", {k: v for k, v in body.items() if v is not None}
    )
    done(f"updated role {changed['name']}", changed, as_json=json)


@roles_app.command("delete")
@one_line_errors
def roles_delete(role: RoleArg, org: OrgOpt = None, api: ApiOpt = None) -> None:
    """Delete a role that no binding uses."""
    base = api_url(api)
    found = _role(base, role, org)
    api_delete(base, f"/iam/roles/{found['id']}")
    done(f"deleted role {found['name']}", None, as_json=False)


@bindings_app.command("list")
@one_line_errors
def bindings_list(
    principal_ref: Annotated[
        str | None, typer.Option("--principal", help="only this principal's (name or id)")
    ] = None,
    group: Annotated[
        str | None, typer.Option("--group", help="only this group's (name or id)")
    ] = None,
    api: ApiOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show role bindings: who holds which role where."""
    base = api_url(api)
    params = _target(base, principal_ref, group) if principal_ref or group else None
    rows = api_get(base, "/iam/bindings", params)
    names = {} if json else principal_names(base)
    groups = {} if json else {g["id"]: g["name"] for g in api_get(base, "/iam/groups")}
    columns = [
        ("role", lambda r: r["role_name"]),
        ("holder", lambda r: names.get(r["principal_id"], r["principal_id"]) if r["principal_id"]
         else f"group {groups.get(r['group_id'], r['group_id'])}"),
        ("namespace", lambda r: r["namespace"]),
        ("layers", lambda r: "all" if r["layers"] is None else r["layers"]),
        ("organisations", lambda r: "all" if r["org_scope"] == "any" else "own"),
        ("id", lambda r: r["id"]),
    ]  # fmt: skip
    show(rows, columns, title="bindings", as_json=json)


def _target(base: str, principal_ref: str | None, group: str | None) -> dict[str, str]:
    if (principal_ref is None) == (group is None):
        raise ValidationFailed("give exactly one of --principal and --group", code="bad_target")
    if principal_ref is not None:
        return {"principal_id": str(principal(base, principal_ref)["id"])}
    return {"group_id": str(_group(base, str(group), None)["id"])}


@bindings_app.command("create")
@one_line_errors
def bindings_create(
    role: Annotated[str, typer.Option("--role", help="role name or id")],
    principal_ref: Annotated[
        str | None, typer.Option("--principal", help="give it to this principal (name or id)")
    ] = None,
    group: Annotated[str | None, typer.Option("--group", help="give it to this group")] = None,
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace", "-n", help="tag subtree filter such as acme/berlin/#; repeat [#]"
        ),
    ] = None,
    layer: Annotated[
        list[str] | None, typer.Option("--layer", help="raw, processed or business; repeat [all]")
    ] = None,
    any_org: Annotated[
        bool, typer.Option("--any-org", help="IAM objects of every organisation, not only its own")
    ] = False,
    role_org: Annotated[
        str | None, typer.Option("--role-org", help="organisation of the role, when names clash")
    ] = None,
    api: ApiOpt = None,
    json: JsonOpt = False,
) -> None:
    """Give a role to a principal or a group within a scope (namespace, layers, organisations)."""
    base = api_url(api)
    body: dict[str, Any] = {
        "role_id": _role(base, role, role_org)["id"], **_target(base, principal_ref, group),
        "namespace": namespace or ["#"], "layers": layer or None,
        "org_scope": "any" if any_org else "own",
    }  # fmt: skip
    made = api_post(base, "/iam/bindings", body)
    holder = principal_ref or f"group {group}"
    done(f"gave role {made['role_name']} to {holder} ({made['id']})", made, as_json=json)


@bindings_app.command("delete")
@one_line_errors
def bindings_delete(
    binding: Annotated[str, typer.Argument(help="binding id (see `werk iam bindings list`)")],
    api: ApiOpt = None,
) -> None:
    """Take a role back: delete a binding."""
    api_delete(api_url(api), f"/iam/bindings/{binding}")
    done(f"deleted binding {binding}", None, as_json=False)
