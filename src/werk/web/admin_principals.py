"""What the users and devices pages share: loading principals, roles, disabling."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from nicegui import events, ui

from werk.iam.views import BindingView, OrgView, PrincipalView
from werk.web.admin_access import RolesDialog, summary
from werk.web.admin_common import (
    Action,
    Admin,
    Handler,
    admin_table,
    may_change,
    org_names,
    org_select,
    status_cell,
)

if TYPE_CHECKING:
    from werk.iam.scopes import Principal
    from werk.iam.service import Iam

# Row actions every principal page offers, after its own.
STATUS_ACTIONS: Final[tuple[Action, ...]] = (
    ("disable", "Disable", "block", "props.row.status != 'disabled'"),
    ("enable", "Enable", "check_circle", "props.row.status == 'disabled'"),
)
ROLES_ACTION: Final[Action] = ("roles", "Roles", "badge", "true")


@dataclass(frozen=True, slots=True)
class Directory:
    """What a principals page shows: principals, organisations and who holds which role."""

    principals: list[PrincipalView]
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


def principal_status(principal: PrincipalView) -> str:
    """active, disabled or locked."""
    if principal.disabled:
        return "disabled"
    locked = principal.locked_until
    return "locked" if locked is not None and locked > datetime.now(UTC) else "active"


class PrincipalsView(ABC):
    """Principals of some kinds in a table; administrators change their roles and status."""

    kinds: tuple[str, ...] = ()

    def __init__(
        self,
        admin: Admin,
        columns: list[dict[str, Any]],
        testid: str,
        actions: tuple[Action, ...],
        handlers: Mapping[str, Handler],
    ) -> None:
        self._admin = admin
        self._orgs: list[OrgView] = []
        everything = {
            "roles": self._roles,
            "disable": lambda e: self._set_disabled(e, True),
            "enable": lambda e: self._set_disabled(e, False),
            **handlers,
        }
        self._table = admin_table(
            columns, testid, changes=may_change(admin.seat),
            actions=(*actions, *STATUS_ACTIONS), handlers=everything,
            cells={"status": status_cell()},
        )  # fmt: skip

    async def refresh(self) -> None:
        """Load the principals, their organisations and roles again."""
        kinds = self.kinds
        found = await self._admin.read(lambda iam, actor: load_directory(iam, actor, kinds))
        if found is None:
            return
        self._orgs = found.orgs
        names = org_names(found.orgs)
        self._table.rows = [
            self.row(p, names, found.bindings.get(p.id, [])) for p in found.principals
        ]

    def row(
        self, principal: PrincipalView, orgs: dict[str, str], bindings: list[BindingView]
    ) -> dict[str, Any]:
        """The table row of one principal."""
        return {
            "key": principal.name,
            "id": principal.id,
            "name": principal.name,
            "org": orgs.get(principal.org_id, ""),
            "roles": summary(bindings),
            "status": principal_status(principal),
            **self.columns_of(principal),
        }

    @abstractmethod
    def columns_of(self, principal: PrincipalView) -> dict[str, Any]:
        """The row fields only this page shows."""

    def new_in(self, testid: str) -> ui.select:
        """The organisation choice of a form for a new principal."""
        return org_select(self._orgs, self._admin.seat.principal.org_id, testid)

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
