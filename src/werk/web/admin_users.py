"""People at `/admin/users`: create, disable, reset passwords, sign out everywhere, roles."""

from __future__ import annotations

from typing import Any, Final

from nicegui import events

from werk.iam.directory_rules import generate_password
from werk.iam.permissions import IAM_READ
from werk.iam.views import PrincipalView
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

_COLUMNS: Final = [
    column("name", "Username", sortable=True),
    column("display_name", "Name"),
    column("org", "Organisation", sortable=True),
    column("email", "Email"),
    column("login", "Signs in with"),
    column("roles", "Roles"),
    column("status", "Status"),
]
_ACTIONS: Final = (
    ROLES_ACTION,
    ("password", "Reset password", "password", "!props.row.sso"),
    ("signout", "Sign out everywhere", "logout", "true"),
)


def register(context: WebContext) -> None:
    """Register the page at `/admin/users`."""

    @guarded_page(context, "/admin/users", IAM_READ)
    async def users() -> None:
        with admin_frame("Users", "The people who sign in to werk, by organisation.") as seat:
            view = UsersView(Admin(context, seat))
            await view.refresh()


class UsersView(PrincipalsView):
    """The users the viewer sees; administrators manage them."""

    kinds = ("user",)

    def __init__(self, admin: Admin) -> None:
        if may_change(admin.seat):
            new_button("New user", "person_add", self._new, "user-new")
        handlers = {"password": self._reset_password, "signout": self._sign_out}
        super().__init__(admin, _COLUMNS, "user-table", _ACTIONS, handlers)

    def columns_of(self, principal: PrincipalView) -> dict[str, Any]:
        """Name, e-mail and how the user signs in."""
        return {
            "display_name": principal.display_name,
            "email": principal.email or "",
            "login": "single sign-on" if principal.sso else "password",
            "sso": principal.sso,
        }

    def _new(self) -> None:
        dialog, body = self._admin.form_dialog("New user", "user-dialog")
        with body:
            org = self.new_in("user-org")
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


def _show_password(admin: Admin, name: str, password: str) -> None:
    admin.show_secret(
        f"Password of {name}",
        password,
        "Give it to the user over a safe channel: werk stores only its hash and "
        "cannot show it again.",
        "new-password",
    )
