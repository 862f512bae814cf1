"""Organisations at `/admin/orgs`: the operator and its partner tenants."""

from __future__ import annotations

from typing import Any, Final

from nicegui import events, ui

from werk.iam.permissions import IAM_READ
from werk.iam.views import OrgView
from werk.web.admin_common import (
    Admin,
    admin_frame,
    admin_table,
    column,
    may_change,
    new_button,
    status_cell,
    submit_row,
    when,
)
from werk.web.auth import guarded_page
from werk.web.context import WebContext

_COLUMNS: Final = [
    column("name", "Name", sortable=True),
    column("slug", "Slug"),
    column("kind", "Kind"),
    column("status", "Status"),
    column("created", "Created (UTC)"),
]
_ACTIONS: Final = (
    ("disable", "Disable", "block", "props.row.status == 'active'"),
    ("enable", "Enable", "check_circle", "props.row.status != 'active'"),
)


def register(context: WebContext) -> None:
    """Register the page at `/admin/orgs`."""

    @guarded_page(context, "/admin/orgs", IAM_READ)
    async def organisations() -> None:
        with admin_frame(
            "Organisations", "The operator running werk, and each partner as a tenant of its own."
        ) as seat:
            view = OrgsView(Admin(context, seat))
            await view.refresh()


class OrgsView:
    """The organisations the viewer sees; operator administrators add partners."""

    def __init__(self, admin: Admin) -> None:
        self._admin = admin
        changes = may_change(admin.seat)
        if changes:
            new_button("New organisation", "add", self._new, "org-new")
        handlers = {
            "disable": lambda e: self._set_disabled(e, True),
            "enable": lambda e: self._set_disabled(e, False),
        }
        self._table = admin_table(
            _COLUMNS, "org-table", changes=changes, actions=_ACTIONS, handlers=handlers,
            cells={"status": status_cell()},
        )  # fmt: skip

    async def refresh(self) -> None:
        """Load the organisations again."""
        orgs = await self._admin.read(lambda iam, actor: iam.directory.list_orgs(actor))
        if orgs is not None:
            self._table.rows = [_row(org) for org in orgs]

    def _new(self) -> None:
        dialog, body = self._admin.form_dialog("New organisation", "org-dialog")
        with body:
            name = ui.input("Name").props("outlined dense data-testid=org-name").classes("w-full")
            slug = ui.input("Slug (a-z, 0-9, -)").props("outlined dense data-testid=org-slug")
            slug.classes("w-full")
            kind = ui.select({"partner": "Partner", "operator": "Operator"}, value="partner")
            kind.props("outlined dense").classes("w-full")

            async def create() -> None:
                made = await self._admin.create(
                    lambda iam, actor: iam.directory.create_org(
                        actor, slug=slug.value.strip(), name=name.value.strip(), kind=kind.value
                    )
                )
                if made is not None:
                    ui.notify(f"Organisation {made.name} created", type="positive")
                    await self.refresh()
                    dialog.delete()

            submit_row(dialog, "Create", create, "org-submit")

    async def _set_disabled(self, event: events.GenericEventArguments, disabled: bool) -> None:
        org_id: str = event.args["id"]
        verb = "disabled" if disabled else "enabled"
        if await self._admin.change(
            lambda iam, actor: iam.directory.update_org(actor, org_id, disabled=disabled),
            f"Organisation {event.args['name']} {verb}",
        ):
            await self.refresh()


def _row(org: OrgView) -> dict[str, Any]:
    return {
        "key": org.slug,
        "id": org.id,
        "name": org.name,
        "slug": org.slug,
        "kind": org.kind,
        "status": "disabled" if org.disabled else "active",
        "created": when(org.created_at),
    }
