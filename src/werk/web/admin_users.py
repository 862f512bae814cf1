"""People at `/admin/users`: create, disable, reset passwords, sign out everywhere, roles."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from nicegui import events, ui

from werk.iam.directory_rules import generate_password
from werk.iam.permissions import IAM_READ
from werk.iam.scopes import Principal
from werk.iam.views import BindingView, OrgView, PrincipalView
from werk.web.admin_access import RolesDialog, summary
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
from werk.web.auth import guarded_page
from werk.web.context import WebContext

if TYPE_CHECKING:
    from werk.iam.service import Iam

_COLUMNS: Final = [
    column("name", "Username", sortable=True),
    column("display_name", "Name"),
    column("org", "Organisation", sortable=True),
    column("email", "Email"),
    column("login", "Signs in with"),
    column("roles", "Roles"),
    column("status", "Status"),
]
_ACTIONS: Final = [
    ("roles", "Roles", "badge", "true"),
    ("password", "Reset password", "password", "!props.row.sso"),
    ("signout", "Sign out everywhere", "logout", "true"),
    ("disable", "Disable", "block", "props.row.status != 'disabled'"),
    ("enable", "Enable", "check_circle", "props.row.status == 'disabled'"),
]


@dataclass(frozen=True, slots=True)
class Directory:
    """What the users page shows: users, organisations and who holds which role."""

    users: list[PrincipalView]
    orgs: list[OrgView]
    bindings: dict[str, list[BindingView]]


def load_directory(iam: Iam, actor: Principal, kinds: tuple[str, ...]) -> Directory:
    """The principals of `kinds` the actor sees, with organisations and roles."""
    found = [p for kind in kinds for p in iam.directory.list_principals(actor, kind=kind)]
    bindings: dict[str, list[BindingView]] = defaultdict(list)
    for binding in iam.directory.list_bindings(actor):
        if binding.principal_id is not None:
            bindings[binding.principal_id].append(binding)
    return Directory(found, iam.directory.list_orgs(actor), dict(bindings))


def register(context: WebContext) -> None:
    """Register the page at `/admin/users`."""

    @guarded_page(context, "/admin/users", IAM_READ)
    async def users() -> None:
        with admin_frame("Users", "The people who sign in to werk, by organisation.") as seat:
            view = UsersView(Admin(context, seat))
            await view.refresh()


class UsersView:
    """The users the viewer sees; administrators manage them."""

    def __init__(self, admin: Admin) -> None:
        self._admin = admin
        self._orgs: list[OrgView] = []
        changes = may_change(admin.seat)
        if changes:
            ui.button("New user", icon="person_add", on_click=self._new).props(
                "unelevated no-caps color=primary data-testid=user-new"
            )
        columns = [*_COLUMNS, column("actions", "")] if changes else _COLUMNS
        self._table = table(columns, "user-table")
        self._table.add_slot("body-cell-status", status_cell())
        if not changes:
            return
        self._table.add_slot("body-cell-actions", action_cell(_ACTIONS))
        self._table.on("roles", self._roles)
        self._table.on("password", self._reset_password)
        self._table.on("signout", self._sign_out)
        self._table.on("disable", lambda e: self._set_disabled(e, True))
        self._table.on("enable", lambda e: self._set_disabled(e, False))

    async def refresh(self) -> None:
        """Load the users, their organisations and roles again."""
        found = await self._admin.read(lambda iam, actor: load_directory(iam, actor, ("user",)))
        if found is None:
            return
        self._orgs = found.orgs
        names = org_names(found.orgs)
        self._table.rows = [
            _row(user, names, found.bindings.get(user.id, [])) for user in found.users
        ]

    def _new(self) -> None:
        dialog, body = self._admin.form_dialog("New user", "user-dialog")
        with body:
            org = org_select(self._orgs, self._admin.seat.principal.org_id, "user-org")
            name = text_field("Username", "user-name")
            display = text_field("Name", "user-display-name")
            email = text_field("Email (optional)", "user-email")

            async def create() -> None:
                made = await self._admin.create(
                    lambda iam, actor: iam.directory.create_user(
                        actor, org_id=org.value, name=name.value.strip(),
                        display_name=display.value.strip(), email=email.value.strip() or None,
                    )
                )  # fmt: skip
                if made is None:
                    return
                user, password = made
                await self.refresh()
                if password is not None:
                    _show_password(self._admin, user.name, password)
                dialog.delete()

            submit_row(dialog, "Create", create, "user-submit")

    async def _roles(self, event: events.GenericEventArguments) -> None:
        await RolesDialog(self._admin, event.args, self.refresh).load()

    def _reset_password(self, event: events.GenericEventArguments) -> None:
        user_id, name = event.args["id"], event.args["name"]

        async def reset() -> None:
            password = generate_password()
            if await self._admin.change(
                lambda iam, actor: iam.directory.set_password(actor, user_id, password),
                f"New password set for {name}",
            ):
                _show_password(self._admin, name, password)

        self._admin.confirm(
            f"Reset the password of {name}?",
            "werk generates a new password and shows it once; the old one stops working.",
            reset,
            "confirm-password",
        )

    def _sign_out(self, event: events.GenericEventArguments) -> None:
        user_id, name = event.args["id"], event.args["name"]

        async def sign_out() -> None:
            await self._admin.change(
                lambda iam, actor: iam.directory.revoke_all(actor, user_id),
                f"{name} is signed out everywhere",
            )

        self._admin.confirm(
            f"Sign {name} out everywhere?",
            "Every web session, access token and refresh token of the user ends now.",
            sign_out,
            "confirm-signout",
        )

    async def _set_disabled(self, event: events.GenericEventArguments, disabled: bool) -> None:
        user_id, name = event.args["id"], event.args["name"]
        if await self._admin.change(
            lambda iam, actor: iam.directory.update_principal(actor, user_id, disabled=disabled),
            f"{name} {'disabled' if disabled else 'enabled'}",
        ):
            await self.refresh()


def _show_password(admin: Admin, name: str, password: str) -> None:
    admin.show_secret(
        f"Password of {name}",
        password,
        "Give it to the user over a safe channel: werk stores only its hash and "
        "cannot show it again.",
        "new-password",
    )


def principal_status(principal: PrincipalView) -> str:
    """active, disabled or locked."""
    if principal.disabled:
        return "disabled"
    locked = principal.locked_until
    return "locked" if locked is not None and locked > datetime.now(UTC) else "active"


def _row(user: PrincipalView, orgs: dict[str, str], bindings: list[BindingView]) -> dict[str, Any]:
    return {
        "key": user.name,
        "id": user.id,
        "name": user.name,
        "display_name": user.display_name,
        "org": orgs.get(user.org_id, ""),
        "email": user.email or "",
        "login": "single sign-on" if user.sso else "password",
        "sso": user.sso,
        "roles": summary(bindings),
        "status": principal_status(user),
    }
