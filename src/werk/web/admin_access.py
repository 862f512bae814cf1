"""Dialogs the user and device pages share: a principal's roles, and its API keys."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

from nicegui import events, ui

from werk.historian.layers import Layer
from werk.iam.views import ApiKeyView, BindingView, RoleView
from werk.web.admin_common import (
    Admin,
    admin_table,
    close_row,
    column,
    when,
)

Refresh = Callable[[], Awaitable[None]]
_BINDING_COLUMNS: Final = [
    column("role", "Role"),
    column("namespace", "Namespace"),
    column("layers", "Layers"),
    column("org_scope", "Organisations"),
]
_KEY_COLUMNS: Final = [
    column("name", "Name"),
    column("id", "Key id"),
    column("status", "Status"),
    column("created", "Created (UTC)"),
    column("last_used", "Last used (UTC)"),
    column("expires", "Expires (UTC)"),
]
_ORG_SCOPES: Final = {"own": "Its own organisation", "any": "Every organisation"}


def summary(bindings: list[BindingView]) -> str:
    """Roles as `role (scope)`, comma-separated."""
    return ", ".join(f"{b.role_name} ({' '.join(b.namespace)})" for b in bindings) or "—"


class RolesDialog:
    """The roles of one principal: take one back, or give one within a scope."""

    def __init__(self, admin: Admin, principal: dict[str, Any], changed: Refresh) -> None:
        self._admin = admin
        self._id: str = principal["id"]
        self._changed = changed
        title = f"Roles of {principal['name']}"
        dialog, body = self._admin.form_dialog(title, "roles-dialog", wide=True)
        with body:
            self._table = admin_table(
                _BINDING_COLUMNS, "binding-table", changes=True,
                actions=[("unbind", "Take back", "remove", "true")],
                handlers={"unbind": self._unbind},
            )  # fmt: skip
            self._form = ui.column().classes("w-full gap-2")
            close_row(dialog)

    async def load(self) -> None:
        """Show the bindings and the roles that can be given."""
        found = await self._admin.read(
            lambda iam, actor: (
                iam.directory.list_bindings(actor, principal_id=self._id),
                iam.directory.list_roles(actor),
            )
        )
        if found is None:
            return
        bindings, roles = found
        self._table.rows = [_binding_row(b) for b in bindings]
        self._form.clear()
        with self._form:
            self._give_form(roles)

    def _give_form(self, roles: list[RoleView]) -> None:
        ui.label("Give a role").classes("text-sm font-medium text-grey-8")
        role = ui.select({r.id: r.name for r in roles}, label="Role").props(
            "outlined dense data-testid=bind-role"
        )
        role.classes("w-full")
        namespace = ui.input("Namespace filters (space-separated)", value="#").props(
            "outlined dense data-testid=bind-namespace"
        )
        namespace.classes("w-full")
        layers = (
            ui.select(
                [layer.value for layer in Layer], multiple=True, label="Layers (none: every layer)"
            )
            .props("outlined dense use-chips")
            .classes("w-full")
        )
        org_scope = ui.select(_ORG_SCOPES, value="own", label="Objects of").props("outlined dense")
        org_scope.classes("w-full")

        async def give() -> None:
            if not role.value:
                ui.notify("Pick a role", type="warning")
                return
            filters = tuple(namespace.value.split()) or ("#",)
            chosen = tuple(layers.value) if layers.value else None
            if await self._admin.change(
                lambda iam, actor: iam.directory.create_binding(
                    actor, role_id=role.value, principal_id=self._id, namespace=filters,
                    layers=chosen, org_scope=org_scope.value,
                ),
                "Role given",
            ):  # fmt: skip
                await self._after_change()

        ui.button("Give role", icon="add", on_click=give).props(
            "unelevated no-caps color=primary data-testid=bind-submit"
        )

    async def _unbind(self, event: events.GenericEventArguments) -> None:
        binding_id: str = event.args["id"]
        if await self._admin.change(
            lambda iam, actor: iam.directory.delete_binding(actor, binding_id), "Role taken back"
        ):
            await self._after_change()

    async def _after_change(self) -> None:
        await self.load()
        await self._changed()


def _binding_row(binding: BindingView) -> dict[str, Any]:
    return {
        "key": binding.id,
        "id": binding.id,
        "role": binding.role_name,
        "namespace": " ".join(binding.namespace),
        "layers": ", ".join(binding.layers) if binding.layers is not None else "all",
        "org_scope": _ORG_SCOPES[binding.org_scope],
    }


class KeysDialog:
    """The API keys of one principal: create one (shown once) or revoke one."""

    def __init__(self, admin: Admin, principal: dict[str, Any]) -> None:
        self._admin = admin
        self._id: str = principal["id"]
        self._name: str = principal["name"]
        title = f"API keys of {self._name}"
        dialog, body = self._admin.form_dialog(title, "keys-dialog", wide=True)
        with body:
            self._table = admin_table(
                _KEY_COLUMNS, "key-table", changes=True,
                actions=[("revoke", "Revoke", "block", "props.row.status == 'active'")],
                handlers={"revoke": self._revoke},
            )  # fmt: skip
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                self._key_name = ui.input("Name of a new key", value="default").props(
                    "outlined dense data-testid=key-name"
                )
                self._key_name.classes("grow")
                ui.button("Create key", icon="add", on_click=self._create).props(
                    "unelevated no-caps color=primary data-testid=key-create"
                )
            close_row(dialog)

    async def load(self) -> None:
        """Show the principal's keys."""
        keys = await self._admin.read(
            lambda iam, actor: iam.directory.list_api_keys(actor, principal_id=self._id)
        )
        if keys is not None:
            self._table.rows = [key_row(k) for k in keys]

    async def _create(self) -> None:
        name = self._key_name.value.strip() or "default"
        made = await self._admin.create(
            lambda iam, actor: iam.directory.create_api_key(actor, principal_id=self._id, name=name)
        )
        if made is None:
            return
        self._admin.show_secret(
            f"API key of {self._name}",
            made[1],
            "Copy the key now: werk stores only its hash and cannot show it again.",
            "new-key",
        )
        await self.load()

    async def _revoke(self, event: events.GenericEventArguments) -> None:
        key_id: str = event.args["id"]
        if await self._admin.change(
            lambda iam, actor: iam.directory.revoke_api_key(actor, key_id), "Key revoked"
        ):
            await self.load()


def key_row(key: ApiKeyView, owner: str = "") -> dict[str, Any]:
    """A table row of an API key."""
    return {
        "key": key.id,
        "id": key.id,
        "name": key.name,
        "owner": owner,
        "status": key_status(key),
        "created": when(key.created_at),
        "last_used": when(key.last_used_at),
        "expires": when(key.expires_at),
    }


def key_status(key: ApiKeyView) -> str:
    """active, revoked or expired."""
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= datetime.now(UTC):
        return "expired"
    return "active"
