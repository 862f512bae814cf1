"""Machines at `/admin/devices`: devices, edge nodes and service accounts with their API keys."""

from __future__ import annotations

from typing import Any, Final

from nicegui import events, ui

from werk.iam.permissions import IAM_READ
from werk.iam.views import PrincipalView
from werk.web.admin_access import KeysDialog
from werk.web.admin_common import (
    Admin,
    admin_frame,
    column,
    may_change,
    new_button,
    submit_row,
    text_field,
)
from werk.web.admin_principals import ROLES_ACTION, PrincipalsView
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
_ACTIONS: Final = (
    ("keys", "API keys", "key", "true"),
    ROLES_ACTION,
)


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


class DevicesView(PrincipalsView):
    """Devices and service accounts the viewer sees; administrators manage them and keys."""

    kinds = _KINDS

    def __init__(self, admin: Admin) -> None:
        if may_change(admin.seat):
            with ui.row().classes("gap-2"):
                new_button("New device", "add", self._new_device, "device-new")
                ui.button("New service account", icon="add", on_click=self._new_service).props(
                    "outline no-caps color=primary data-testid=service-new"
                )
        super().__init__(admin, _COLUMNS, "device-table", _ACTIONS, {"keys": self._keys})

    def columns_of(self, principal: PrincipalView) -> dict[str, Any]:
        """The kind and the Sparkplug edge node."""
        sparkplug = principal.sparkplug
        return {
            "kind": _KIND_LABELS[principal.kind],
            "sparkplug": f"{sparkplug[0]}/{sparkplug[1]}" if sparkplug else "—",
        }

    def _new_device(self) -> None:
        dialog, body = self._admin.form_dialog("New device", "device-dialog")
        with body:
            org = self.new_in("device-org")
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
            org = self.new_in("service-org")
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
