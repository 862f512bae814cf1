"""Roles at `/admin/roles`: the built-in roles and each organisation's own, with permissions."""

from __future__ import annotations

from typing import Any, Final

from nicegui import events, ui

from werk.iam.permissions import ALL, IAM_READ
from werk.iam.views import OrgView, RoleView
from werk.web.admin_common import (
    Admin,
    admin_frame,
    admin_table,
    column,
    may_change,
    new_button,
    org_names,
    org_select,
    submit_row,
    text_field,
)
from werk.web.auth import guarded_page
from werk.web.context import WebContext

# Every permission, and the patterns that cover several of them.
CHOICES: Final = (*ALL, "history:read:*", "*")
_COLUMNS: Final = [
    column("name", "Role", sortable=True),
    column("owner", "Defined by"),
    column("description", "Description"),
    column("permissions", "Permissions"),
]
_ACTIONS: Final = (
    ("edit", "Change", "edit", "!props.row.builtin"),
    ("delete", "Delete", "delete", "!props.row.builtin"),
)
_PERMISSIONS_CELL: Final = (
    '<q-td :props="props"><div class="row gap-1">'
    '<q-badge v-for="p in props.row.permissions" :key="p" outline color="primary" :label="p" />'
    "</div></q-td>"
)


def register(context: WebContext) -> None:
    """Register the page at `/admin/roles`."""

    @guarded_page(context, "/admin/roles", IAM_READ)
    async def roles() -> None:
        with admin_frame(
            "Roles",
            "Roles bundle permissions; a binding gives a role within a namespace scope.",
        ) as seat:
            view = RolesView(Admin(context, seat))
            await view.refresh()


class RolesView:
    """Built-in roles and the organisations' own roles."""

    def __init__(self, admin: Admin) -> None:
        self._admin = admin
        self._orgs: list[OrgView] = []
        changes = may_change(admin.seat)
        if changes:
            new_button("New role", "add", self._new, "role-new")
        self._table = admin_table(
            _COLUMNS, "role-table", changes=changes, actions=_ACTIONS,
            handlers={"edit": self._edit, "delete": self._delete},
            cells={"permissions": _PERMISSIONS_CELL},
        )  # fmt: skip

    async def refresh(self) -> None:
        """Load the roles again."""
        found = await self._admin.read(
            lambda iam, actor: (iam.directory.list_roles(actor), iam.directory.list_orgs(actor))
        )
        if found is None:
            return
        roles, self._orgs = found
        names = org_names(self._orgs)
        self._table.rows = [_row(role, names) for role in roles]

    def _new(self) -> None:
        dialog, body = self._admin.form_dialog("New role", "role-dialog")
        with body:
            org = org_select(self._orgs, self._admin.seat.principal.org_id, "role-org")
            name = text_field("Name", "role-name")
            description = text_field("Description", "role-description")
            permissions = _permission_select([])

            async def create() -> None:
                made = await self._admin.create(
                    lambda iam, actor: iam.directory.create_role(
                        actor, org_id=org.value, name=name.value.strip(),
                        permissions=list(permissions.value or []),
                        description=description.value.strip(),
                    )
                )  # fmt: skip
                if made is not None:
                    ui.notify(f"Role {made.name} created", type="positive")
                    await self.refresh()
                    dialog.delete()

            submit_row(dialog, "Create", create, "role-submit")

    def _edit(self, event: events.GenericEventArguments) -> None:
        role: dict[str, Any] = event.args
        dialog, body = self._admin.form_dialog(f"Change the role {role['name']}", "role-dialog")
        with body:
            description = text_field("Description", "role-description")
            description.value = role["description"]
            permissions = _permission_select(list(role["permissions"]))

            async def save() -> None:
                if await self._admin.change(
                    lambda iam, actor: iam.directory.update_role(
                        actor, role["id"], permissions=list(permissions.value or []),
                        description=description.value.strip(),
                    ),
                    f"Role {role['name']} changed",
                ):  # fmt: skip
                    await self.refresh()
                    dialog.delete()

            submit_row(dialog, "Save", save, "role-submit")

    def _delete(self, event: events.GenericEventArguments) -> None:
        role_id, name = event.args["id"], event.args["name"]

        async def delete() -> None:
            if await self._admin.change(
                lambda iam, actor: iam.directory.delete_role(actor, role_id), f"Role {name} deleted"
            ):
                await self.refresh()

        self._admin.confirm(
            f"Delete the role {name}?",
            "Everyone holding it through a binding loses its permissions now.",
            delete,
            "confirm-delete-role",
        )


def _permission_select(chosen: list[str]) -> ui.select:
    return (
        ui.select(list(CHOICES), multiple=True, value=chosen, label="Permissions")
        .props("outlined dense use-chips data-testid=role-permissions")
        .classes("w-full")
    )


def _row(role: RoleView, orgs: dict[str, str]) -> dict[str, Any]:
    return {
        "key": role.name if role.builtin else f"{orgs.get(role.org_id or '', '')}/{role.name}",
        "id": role.id,
        "name": role.name,
        "owner": "werk (built-in)" if role.builtin else orgs.get(role.org_id or "", ""),
        "builtin": role.builtin,
        "description": role.description,
        "permissions": list(role.permissions),
    }
