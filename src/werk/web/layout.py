"""The frame every page shares: the header with the werk name, the navigation and the user."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final, Protocol

from nicegui import ui

from werk.iam.permissions import (
    AUDIT_READ,
    HISTORY_READ_BUSINESS,
    HISTORY_READ_PROCESSED,
    HISTORY_READ_RAW,
    IAM_READ,
    QUALITY_READ,
    QUARANTINE_READ,
    SPARKPLUG_READ,
    UNS_READ,
)
from werk.iam.scopes import Principal

# Where a guarded page keeps its viewer in the NiceGUI client's storage.
VIEWER_KEY: Final = "werk.viewer"
HISTORY_ANY: Final = (HISTORY_READ_RAW, HISTORY_READ_PROCESSED, HISTORY_READ_BUSINESS)
# Label, address, icon, and the permissions of which the viewer needs one (none: everyone).
NAV: Final[tuple[tuple[str, str, str, tuple[str, ...]], ...]] = (
    ("Namespace", "/", "account_tree", (UNS_READ,)),
    ("Layers", "/layers", "layers", HISTORY_ANY),
    ("Data quality", "/quality", "rule", (QUALITY_READ,)),
    ("Edge nodes", "/edge", "router", (SPARKPLUG_READ,)),
    ("Quarantine", "/quarantine", "report", (QUARANTINE_READ,)),
    ("Access", "/admin/users", "admin_panel_settings", (IAM_READ,)),
    ("Audit log", "/admin/audit", "policy", (AUDIT_READ,)),
    ("API docs", "/api/docs", "description", ()),
)
_BRAND: Final = "#1d3557"
_ACCENT: Final = "#e07a1f"


class Viewer(Protocol):
    """Who is looking at a page: the logged-in principal of its session."""

    @property
    def principal(self) -> Principal:
        """The principal, refreshed while the page is open."""
        ...

    @property
    def org_name(self) -> str:
        """The name of the principal's organisation."""
        ...

    @property
    def csrf(self) -> str:
        """The session's token against cross-site requests, for forms that change state."""
        ...


@contextmanager
def frame(active: str) -> Iterator[ui.column]:
    """Build the header with `active` highlighted and yield the page's main column."""
    ui.colors(primary=_BRAND, secondary=_ACCENT, accent=_ACCENT)
    ui.query("body").classes("bg-grey-2")
    _header(active, viewer())
    with ui.column().classes("w-full max-w-screen-2xl mx-auto px-6 py-5 gap-4") as main:
        yield main


def viewer() -> Viewer | None:
    """The viewer of the page being built; None on public pages."""
    found = ui.context.client.storage.get(VIEWER_KEY)
    return found if found is not None and hasattr(found, "principal") else None


def brand() -> None:
    """The werk name and logo, linking to the start page."""
    with ui.link(target="/").classes("row items-center gap-2 text-white no-underline"):
        ui.icon("hub", size="sm").classes("text-orange-4")
        ui.label("werk").classes("text-xl font-bold tracking-wide")
        ui.label("Unified Namespace").classes("text-sm opacity-70 q-ml-sm")


def _header(active: str, seen_by: Viewer | None) -> None:
    with ui.header(elevated=True).classes("items-center justify-between px-6 py-2 bg-primary"):
        brand()
        if seen_by is None:
            return
        with ui.row().classes("items-center gap-1 no-wrap"):
            with ui.row().classes("items-center gap-1").props("data-testid=nav"):
                for label, href, icon, needs in NAV:
                    if not needs or any(seen_by.principal.allows(p) for p in needs):
                        _nav_link(label, href, icon, active=label == active)
            _user_menu(seen_by)


def _nav_link(label: str, href: str, icon: str, *, active: bool) -> None:
    look = "bg-white/20" if active else "opacity-80 hover:opacity-100"
    with ui.link(target=href).classes(
        f"row items-center gap-1 px-3 py-1 rounded text-white no-underline {look}"
    ):
        ui.icon(icon, size="xs")
        ui.label(label).classes("text-sm font-medium")


def _user_menu(seen_by: Viewer) -> None:
    principal = seen_by.principal
    with (
        ui.button(icon="account_circle").props(
            "flat round color=white data-testid=user-menu-button"
        ),
        ui.menu().props('anchor="bottom right" self="top right" data-testid=user-menu'),
    ):
        with ui.column().classes("gap-0 px-4 pt-3 pb-2 min-w-56"):
            ui.label(principal.name).classes("text-base font-medium text-grey-9").props(
                "data-testid=user-name"
            )
            ui.label(seen_by.org_name).classes("text-sm text-grey-7").props("data-testid=user-org")
        ui.separator()
        logout_form(seen_by.csrf)


def logout_form(csrf: str) -> None:
    """A button that posts the logout with the session's CSRF token."""
    with ui.element("form").props('method=post action="/logout"').classes("px-2 py-2"):
        token = ui.element("input").props("type=hidden name=csrf")
        token.props["value"] = csrf
        ui.button("Log out", icon="logout").props(
            "type=submit flat no-caps color=primary data-testid=logout"
        ).classes("w-full")


def section_title(title: str, caption: str) -> None:
    """A page title with a one-line explanation below it."""
    with ui.column().classes("gap-0"):
        ui.label(title).classes("text-2xl font-semibold text-grey-9")
        ui.label(caption).classes("text-sm text-grey-7")


def empty_state(icon: str, title: str, detail: str, testid: str) -> ui.card:
    """A card that says there is nothing to show yet, and why."""
    with (
        ui.card()
        .classes("w-full items-center py-10 gap-2")
        .props(f"flat bordered data-testid={testid}") as card
    ):
        ui.icon(icon, size="xl").classes("text-grey-5")
        ui.label(title).classes("text-lg font-medium text-grey-8")
        ui.label(detail).classes("text-sm text-grey-7 text-center")
    return card
