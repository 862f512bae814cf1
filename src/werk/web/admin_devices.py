"""Machines at `/admin/devices`: devices, edge nodes and service accounts with their API keys."""

from __future__ import annotations

from typing import Any, Final

from nicegui import events, ui

from werk.iam.permissions import IAM_READ
from werk.iam.views import BindingView, OrgView, PrincipalView
from werk.web.admin_access import KeysDialog, RolesDialog, summary
from werk.web.admin_common import (
    Admin,
    action_cell,
    admin_frame,
    column,
    may_change,
    org_names,
    org_select,
    status_cell,
    submit_row,
    table,
    text_field,
)
from werk.web.admin_users import load_directory, principal_status
from werk.web.auth import guarded_page
from werk.web.context import WebContext

_KINDS: Final = ("device", "service")
_KIND_LABELS: Final = {"device": "device", "service": "service account"}
_COLUMNS: Final = [
    column("name", "Name", sortable=True),
    column("kind", "Kind", sortable=True),
    column("org", "Organisation", sortable=True),
    column("sparkplug", "Sparkplug edge node"),
    column("roles", "Roles"),
    column("status", "Status"),
]
_ACTIONS: Final = [
    ("keys", "API keys", "key", "true"),
    ("roles", "Roles", "badge", "true"),
    ("disable", "Disable", "block", "props.row.status != 'disabled'"),
    ("enable", "Enable", "check_circle", "props.row.status == 'disabled'"),
]


def register(context: WebContext) -> None:
    """Register the page at `/admin/devices`."""

    @guarded_page(context, "/admin/devices", IAM_READ)
    async def devices() -> None:
        with admin_frame(
            "Devices & services",
            "Machines, edge nodes and integrations: each signs in with its own API key.",
        ) as seat:
            view = DevicesView(Admin(context, seat))
            await view.refresh()


class DevicesView:
    """Devices and service accounts the viewer sees; administrators manage them and keys."""

    def __init__(self, admin: Admin) -> None:
        self._admin = admin
        self._orgs: list[OrgView] = []
        changes = may_change(admin.seat)
        if changes:
            with ui.row().classes("gap-2"):
                ui.button("New device", icon="add", on_click=self._new_device).props(
                    "unelevated no-caps color=primary data-testid=device-new"
                )
                ui.button("New service account", icon="add", on_click=self._new_service).props(
                    "outline no-caps color=primary data-testid=service-new"
                )
        columns = [*_COLUMNS, column("actions", "")] if changes else _COLUMNS
        self._table = table(columns, "device-table")
        self._table.add_slot("body-cell-status", status_cell())
        if not changes:
            return
        self._table.add_slot("body-cell-actions", action_cell(_ACTIONS))
        self._table.on("keys", self._keys)
        self._table.on("roles", self._roles)
        self._table.on("disable", lambda e: self._set_disabled(e, True))
        self._table.on("enable", lambda e: self._set_disabled(e, False))

    async def refresh(self) -> None:
        """Load the devices and service accounts again."""
        found = await self._admin.read(lambda iam, actor: load_directory(iam, actor, _KINDS))
        if found is None:
            return
        self._orgs = found.orgs
        names = org_names(found.orgs)
        self._table.rows = [_row(p, names, found.bindings.get(p.id, [])) for p in found.users]

    def _new_device(self) -> None:
        dialog, body = self._admin.form_dialog("New device", "device-dialog")
        with body:
            org = org_select(self._orgs, self._admin.seat.principal.org_id, "device-org")
            name = text_field("Name (its MQTT username)", "device-name")
            display = text_field("Description (optional)", "device-display-name")
            ui.label(
                "An edge node names its Sparkplug group and edge node id; leave both empty "
                "for a plain device."
            ).classes("text-xs text-grey-7")
            with ui.row().classes("w-full no-wrap gap-2"):
                group = text_field("Sparkplug group id", "device-group")
                node = text_field("Edge node id", "device-node")

            async def create() -> None:
                g, n = group.value.strip(), node.value.strip()
                if bool(g) != bool(n):
                    ui.notify("Give both the group id and the edge node id, or neither")
                    return
                made = await self._admin.create(
                    lambda iam, actor: iam.directory.create_device(
                        actor, org_id=org.value, name=name.value.strip(),
                        display_name=display.value.strip(), sparkplug=(g, n) if g else None,
                    )
                )  # fmt: skip
                await self._created(dialog, made)

            submit_row(dialog, "Create", create, "device-submit")

    def _new_service(self) -> None:
        dialog, body = self._admin.form_dialog("New service account", "service-dialog")
        with body:
            org = org_select(self._orgs, self._admin.seat.principal.org_id, "service-org")
            name = text_field("Name (its OAuth2 client id)", "service-name")
            display = text_field("Description (optional)", "service-display-name")

            async def create() -> None:
                made = await self._admin.create(
                    lambda iam, actor: iam.directory.create_service_account(
                        actor, org_id=org.value, name=name.value.strip(),
                        display_name=display.value.strip(),
                    )
                )  # fmt: skip
                await self._created(dialog, made)

            submit_row(dialog, "Create", create, "service-submit")

    async def _created(self, dialog: ui.dialog, made: PrincipalView | None) -> None:
        if made is None:
            return
        ui.notify(f"{_KIND_LABELS[made.kind].capitalize()} {made.name} created", type="positive")
        await self.refresh()
        await KeysDialog(self._admin, {"id": made.id, "name": made.name}).load()
        dialog.delete()

    async def _keys(self, event: events.GenericEventArguments) -> None:
        await KeysDialog(self._admin, event.args).load()

    async def _roles(self, event: events.GenericEventArguments) -> None:
        await RolesDialog(self._admin, event.args, self.refresh).load()

    async def _set_disabled(self, event: events.GenericEventArguments, disabled: bool) -> None:
        principal_id, name = event.args["id"], event.args["name"]
        if await self._admin.change(
            lambda iam, actor: iam.directory.update_principal(
                actor, principal_id, disabled=disabled
            ),
            f"{name} {'disabled' if disabled else 'enabled'}",
        ):
            await self.refresh()


def _row(
    principal: PrincipalView, orgs: dict[str, str], bindings: list[BindingView]
) -> dict[str, Any]:
    sparkplug = principal.sparkplug
    return {
        "key": principal.name,
        "id": principal.id,
        "name": principal.name,
        "kind": _KIND_LABELS[principal.kind],
        "org": orgs.get(principal.org_id, ""),
        "sparkplug": f"{sparkplug[0]}/{sparkplug[1]}" if sparkplug else "—",
        "roles": summary(bindings),
        "status": principal_status(principal),
    }
