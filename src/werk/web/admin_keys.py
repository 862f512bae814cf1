"""Keys and tokens at `/admin/keys`: API keys, refresh-token families and web sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from nicegui import events, ui

from werk.iam.permissions import IAM_READ
from werk.iam.scopes import Principal
from werk.iam.views import ApiKeyView, CredentialView
from werk.web.admin_access import key_row
from werk.web.admin_common import Admin, admin_frame, admin_table, column, may_change, when
from werk.web.auth import guarded_page
from werk.web.context import WebContext

if TYPE_CHECKING:
    from werk.iam.service import Iam

# Devices sign in with API keys only; these kinds also hold sessions and refresh tokens.
_SIGNING_IN: Final = ("user", "service")
_KEY_COLUMNS: Final = [
    column("owner", "Owner", sortable=True),
    column("name", "Name"),
    column("id", "Key id"),
    column("status", "Status"),
    column("created", "Created (UTC)"),
    column("last_used", "Last used (UTC)"),
    column("expires", "Expires (UTC)"),
]
_SIGN_IN_COLUMNS: Final = [
    column("owner", "Who", sortable=True),
    column("kind", "Kind"),
    column("created", "Signed in (UTC)", sortable=True),
    column("last_used", "Last used (UTC)"),
    column("expires", "Expires (UTC)"),
    column("ip", "From"),
    column("agent", "Browser or client"),
]
_KINDS: Final = {"session": "web session", "refresh": "refresh tokens"}


@dataclass(frozen=True, slots=True)
class Credentials:
    """Every API key and live sign-in the viewer sees, with the owners' names."""

    keys: list[ApiKeyView]
    sign_ins: list[CredentialView]
    owners: dict[str, str]


def load_credentials(iam: Iam, actor: Principal) -> Credentials:
    """Keys of every visible principal, and live sign-ins of its users and services."""
    principals = iam.directory.list_principals(actor)
    now = datetime.now(UTC)
    sign_ins = [
        credential
        for p in principals
        if p.kind in _SIGNING_IN
        for credential in iam.authn.list_credentials(actor, p.id)
        if credential.revoked_at is None and credential.expires_at > now
    ]
    owners = {p.id: p.name for p in principals}
    return Credentials(iam.directory.list_api_keys(actor), sign_ins, owners)


def register(context: WebContext) -> None:
    """Register the page at `/admin/keys`."""

    @guarded_page(context, "/admin/keys", IAM_READ)
    async def keys() -> None:
        with admin_frame(
            "Keys & tokens",
            "Every API key, and every live sign-in: revoking one ends it on its next request.",
        ) as seat:
            view = KeysView(Admin(context, seat))
            await view.refresh()


class KeysView:
    """API keys and live sign-ins; administrators revoke them."""

    def __init__(self, admin: Admin) -> None:
        self._admin = admin
        changes = may_change(admin.seat)
        ui.label("API keys").classes("text-lg font-semibold text-grey-9")
        self._keys = admin_table(
            _KEY_COLUMNS, "apikey-table", changes=changes,
            actions=[("revoke", "Revoke", "block", "props.row.status == 'active'")],
            handlers={"revoke": self._revoke_key},
        )  # fmt: skip
        ui.label("Live sign-ins").classes("text-lg font-semibold text-grey-9 q-mt-md")
        self._sign_ins = admin_table(
            _SIGN_IN_COLUMNS, "signin-table", changes=changes,
            actions=[("end", "Revoke", "logout", "true")], handlers={"end": self._end_sign_in},
        )  # fmt: skip

    async def refresh(self) -> None:
        """Load keys and sign-ins again."""
        found = await self._admin.read(load_credentials)
        if found is None:
            return
        owners = found.owners
        self._keys.rows = [key_row(k, owners.get(k.principal_id, "")) for k in found.keys]
        self._sign_ins.rows = [_sign_in_row(c, owners) for c in found.sign_ins]

    async def _revoke_key(self, event: events.GenericEventArguments) -> None:
        key_id: str = event.args["id"]
        if await self._admin.change(
            lambda iam, actor: iam.directory.revoke_api_key(actor, key_id),
            f"Key {key_id} of {event.args['owner']} revoked",
        ):
            await self.refresh()

    async def _end_sign_in(self, event: events.GenericEventArguments) -> None:
        credential_id: str = event.args["id"]
        if await self._admin.change(
            lambda iam, actor: iam.authn.revoke_credential(actor, credential_id),
            f"The {event.args['kind']} of {event.args['owner']} is revoked",
        ):
            await self.refresh()


def _sign_in_row(credential: CredentialView, owners: dict[str, str]) -> dict[str, Any]:
    return {
        "key": credential.id,
        "id": credential.id,
        "owner": owners.get(credential.principal_id, ""),
        "kind": _KINDS[credential.kind],
        "created": when(credential.created_at),
        "last_used": when(credential.last_used_at),
        "expires": when(credential.expires_at),
        "ip": credential.ip,
        "agent": credential.user_agent,
    }
