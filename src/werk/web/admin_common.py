"""What the access administration pages share: their tabs, tables, dialogs and actions.

Every change runs as the page's logged-in principal through `iam.directory` / `iam.authn`,
so the directory's tenant and escalation checks apply; a refused change shows its reason.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

from nicegui import events, ui
from starlette.concurrency import run_in_threadpool

from werk.core.errors import WerkError
from werk.iam.permissions import AUDIT_READ, IAM_ADMIN, IAM_READ
from werk.iam.scopes import Principal
from werk.iam.views import OrgView
from werk.web.auth import Seat, current_seat, iam_of
from werk.web.context import WebContext
from werk.web.formatting import format_time
from werk.web.layout import frame, section_title

if TYPE_CHECKING:
    from werk.iam.service import Iam

T = TypeVar("T")

# Label, address, icon and the permission each administration page needs.
ADMIN_PAGES: Final = (
    ("Organisations", "/admin/orgs", "corporate_fare", IAM_READ),
    ("Users", "/admin/users", "group", IAM_READ),
    ("Roles", "/admin/roles", "badge", IAM_READ),
    ("Devices & services", "/admin/devices", "memory", IAM_READ),
    ("Keys & tokens", "/admin/keys", "key", IAM_READ),
    ("Audit log", "/admin/audit", "policy", AUDIT_READ),
)
_NAV_OF: Final = {"Audit log": "Audit log"}


@contextmanager
def admin_frame(active: str, caption: str) -> Iterator[Seat]:
    """The page frame with the administration tabs; yields the viewer's seat."""
    seat = current_seat()
    ui.page_title(f"{active} · werk")
    with frame(_NAV_OF.get(active, "Access")):
        _tabs(seat.principal, active)
        section_title(active, caption)
        yield seat


def _tabs(principal: Principal, active: str) -> None:
    with ui.row().classes("items-center gap-1").props("data-testid=admin-tabs"):
        for label, href, icon, needs in ADMIN_PAGES:
            if not principal.allows(needs):
                continue
            look = "bg-primary text-white" if label == active else "text-grey-8 hover:bg-grey-3"
            with ui.link(target=href).classes(
                f"row items-center gap-1 px-3 py-1 rounded no-underline {look}"
            ):
                ui.icon(icon, size="xs")
                ui.label(label).classes("text-sm font-medium")


def may_change(seat: Seat) -> bool:
    """Whether the viewer may change anything at all (the directory checks each object)."""
    return seat.principal.allows(IAM_ADMIN)


class Admin:
    """Calls into IAM as the viewer, off the event loop, with refusals shown to the user."""

    def __init__(self, context: WebContext, seat: Seat) -> None:
        self.context = context
        self.seat = seat
        # Dialogs live here: the element that opened one may be gone when the next opens.
        self.anchor = ui.element("div")

    @property
    def iam(self) -> Iam:
        """The running identity and access service."""
        return iam_of(self.context)

    async def read(self, load: Callable[[Iam, Principal], T]) -> T | None:
        """Load something as the viewer; None (and the reason) when IAM refuses."""
        return (await self._attempt(load))[1]

    async def create(self, make: Callable[[Iam, Principal], T]) -> T | None:
        """Create something as the viewer; None (and the reason) when IAM refuses."""
        return (await self._attempt(make))[1]

    async def change(self, apply: Callable[[Iam, Principal], object], done: str) -> bool:
        """Make a change as the viewer and say so; False (and the reason) when refused."""
        ok, _ = await self._attempt(apply)
        if ok:
            ui.notify(done, type="positive")
        return ok

    def form_dialog(
        self, title: str, testid: str, *, wide: bool = False
    ) -> tuple[ui.dialog, ui.column]:
        """An open dialog with a title; callers fill the returned column."""
        with self.anchor:
            return form_dialog(title, testid, wide=wide)

    def confirm(self, question: str, detail: str, on_yes: Callable[[], Any], testid: str) -> None:
        """Ask before a change that cannot be undone."""
        with self.anchor:
            confirm(question, detail, on_yes, testid)

    def show_secret(self, title: str, secret: str, note: str, testid: str) -> None:
        """Show a secret once, with a copy button; closing the dialog forgets it."""
        with self.anchor:
            show_secret(title, secret, note, testid)

    async def _attempt(self, call: Callable[[Iam, Principal], T]) -> tuple[bool, T | None]:
        iam, actor = self.iam, self.seat.principal
        try:
            return True, await run_in_threadpool(call, iam, actor)
        except WerkError as exc:
            ui.notify(exc.message, type="negative", multi_line=True)
            return False, None


def column(name: str, label: str, align: str = "left", *, sortable: bool = False) -> dict[str, Any]:
    """A table column showing the row field `name`."""
    return {"name": name, "label": label, "field": name, "align": align, "sortable": sortable}


def table(columns: list[dict[str, Any]], testid: str) -> ui.table:
    """A flat table in the look of the other pages; rows name themselves by `key`."""
    found = ui.table(rows=[], columns=columns, row_key="key", pagination=50)
    found.props(f"flat bordered dense wrap-cells data-testid={testid}").classes("w-full")
    return found


Handler = Callable[[events.GenericEventArguments], Any]
Action = tuple[str, str, str, str]


def admin_table(
    columns: list[dict[str, Any]],
    testid: str,
    *,
    changes: bool,
    actions: Sequence[Action] = (),
    handlers: Mapping[str, Handler] | None = None,
    cells: Mapping[str, str] | None = None,
) -> ui.table:
    """A page's table; with `changes`, a cell of row `actions` whose events go to `handlers`."""
    shown = [*columns, column("actions", "")] if changes and actions else columns
    found = table(shown, testid)
    for name, template in (cells or {}).items():
        found.add_slot(f"body-cell-{name}", template)
    if changes and actions:
        found.add_slot("body-cell-actions", action_cell(actions))
        for event, handler in (handlers or {}).items():
            found.on(event, handler)
    return found


def new_button(label: str, icon: str, on_click: Callable[[], Any], testid: str) -> ui.button:
    """The button that opens a page's form for a new object."""
    return ui.button(label, icon=icon, on_click=on_click).props(
        f"unelevated no-caps color=primary data-testid={testid}"
    )


def action_cell(actions: Sequence[Action]) -> str:
    """A cell of row buttons: (event, label, icon, Vue condition on `props.row`)."""
    buttons = "".join(
        f'<q-btn v-if="{condition}" dense flat no-caps size="sm" icon="{icon}" label="{label}" '
        f":data-testid=\"'{event}-' + props.row.key\" "
        f"@click=\"() => $parent.$emit('{event}', props.row)\" />"
        for event, label, icon, condition in actions
    )
    return f'<q-td :props="props"><div class="row no-wrap gap-1">{buttons}</div></q-td>'


def status_cell() -> str:
    """A cell showing `props.row.status` as a coloured badge."""
    return (
        "<q-td :props=\"props\"><q-badge :color=\"props.value == 'active' ? 'positive' : "
        "props.value == 'locked' ? 'warning' : 'grey-6'\" :label=\"props.value\" "
        ":data-testid=\"'status-' + props.row.key\" /></q-td>"
    )


def when(moment: datetime | None) -> str:
    """A time in UTC, or a dash."""
    return format_time(moment) if moment is not None else "—"


def org_names(orgs: list[OrgView]) -> dict[str, str]:
    """Organisation names by id."""
    return {org.id: org.name for org in orgs}


def show_secret(title: str, secret: str, note: str, testid: str) -> None:
    """Show a secret once, with a copy button; closing the dialog forgets it."""
    with ui.dialog().props("persistent") as dialog, ui.card().classes("w-[36rem] gap-3"):
        ui.label(title).classes("text-lg font-semibold text-grey-9")
        ui.label(note).classes("text-sm text-grey-8")
        with ui.row().classes("w-full items-center no-wrap gap-2"):
            ui.label(secret).classes(
                "grow font-mono text-sm break-all bg-grey-2 q-pa-sm rounded-borders"
            ).props(f"data-testid={testid}")
            ui.button(icon="content_copy", on_click=lambda: _copy(secret)).props(
                "flat round data-testid=copy-secret"
            ).tooltip("Copy")
        with ui.row().classes("w-full justify-end"):
            ui.button("I have stored it", on_click=dialog.delete).props(
                "unelevated no-caps color=primary data-testid=secret-done"
            )
    dialog.open()


def _copy(secret: str) -> None:
    ui.clipboard.write(secret)
    ui.notify("Copied to the clipboard")


def confirm(question: str, detail: str, on_yes: Callable[[], Any], testid: str) -> None:
    """Ask before a change that cannot be undone."""

    async def yes() -> None:
        result = on_yes()
        if inspect.isawaitable(result):
            await result
        dialog.delete()

    with ui.dialog() as dialog, ui.card().classes("w-[28rem] gap-3"):
        ui.label(question).classes("text-lg font-semibold text-grey-9")
        ui.label(detail).classes("text-sm text-grey-8")
        with ui.row().classes("w-full justify-end gap-2"):
            ui.button("Cancel", on_click=dialog.delete).props("flat no-caps")
            ui.button("Yes", on_click=yes).props(
                f"unelevated no-caps color=negative data-testid={testid}"
            )
    dialog.open()


def form_dialog(title: str, testid: str, *, wide: bool = False) -> tuple[ui.dialog, ui.column]:
    """An open dialog with a title; callers fill the returned column."""
    width = "w-[56rem] max-w-[90vw]" if wide else "w-[32rem]"
    with ui.dialog() as dialog, ui.card().classes(f"{width} gap-3").props(f"data-testid={testid}"):
        ui.label(title).classes("text-lg font-semibold text-grey-9")
        body = ui.column().classes("w-full gap-2")
    dialog.open()
    return dialog, body


def close_row(dialog: ui.dialog) -> None:
    """A close button at the bottom of a dialog."""
    with ui.row().classes("w-full justify-end"):
        ui.button("Close", on_click=dialog.delete).props("flat no-caps data-testid=dialog-close")


def submit_row(dialog: ui.dialog, label: str, on_submit: Callable[[], Any], testid: str) -> None:
    """Cancel and submit buttons at the bottom of a form dialog."""
    with ui.row().classes("w-full justify-end gap-2"):
        ui.button("Cancel", on_click=dialog.delete).props("flat no-caps")
        ui.button(label, on_click=on_submit).props(
            f"unelevated no-caps color=primary data-testid={testid}"
        )


def text_field(label: str, testid: str) -> ui.input:
    """A one-line text input of a form dialog."""
    return ui.input(label).props(f"outlined dense data-testid={testid}").classes("w-full")


def org_select(orgs: list[OrgView], own: str, testid: str) -> ui.select:
    """A choice of the organisations the viewer sees, its own first."""
    options = {org.id: org.name for org in sorted(orgs, key=lambda o: (o.id != own, o.name))}
    return (
        ui.select(options, label="Organisation", value=own if own in options else None)
        .props(f"outlined dense data-testid={testid}")
        .classes("w-full")
    )
