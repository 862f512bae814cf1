"""The frame every page shares: the header with the werk name and the navigation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from nicegui import ui

NAV: Final = (
    ("Namespace", "/", "account_tree"),
    ("Layers", "/layers", "layers"),
    ("Data quality", "/quality", "rule"),
    ("Edge nodes", "/edge", "router"),
    ("Quarantine", "/quarantine", "report"),
    ("API docs", "/api/docs", "description"),
)
_BRAND: Final = "#1d3557"
_ACCENT: Final = "#e07a1f"


@contextmanager
def frame(active: str) -> Iterator[ui.column]:
    """Build the header with `active` highlighted and yield the page's main column."""
    ui.colors(primary=_BRAND, secondary=_ACCENT, accent=_ACCENT)
    ui.query("body").classes("bg-grey-2")
    _header(active)
    with ui.column().classes("w-full max-w-screen-2xl mx-auto px-6 py-5 gap-4") as main:
        yield main


def _header(active: str) -> None:
    with ui.header(elevated=True).classes("items-center justify-between px-6 py-2 bg-primary"):
        with ui.link(target="/").classes("row items-center gap-2 text-white no-underline"):
            ui.icon("hub", size="sm").classes("text-orange-4")
            ui.label("werk").classes("text-xl font-bold tracking-wide")
            ui.label("Unified Namespace").classes("text-sm opacity-70 q-ml-sm")
        with ui.row().classes("items-center gap-1").props("data-testid=nav"):
            for label, href, icon in NAV:
                _nav_link(label, href, icon, active=label == active)


def _nav_link(label: str, href: str, icon: str, *, active: bool) -> None:
    look = "bg-white/20" if active else "opacity-80 hover:opacity-100"
    with ui.link(target=href).classes(
        f"row items-center gap-1 px-3 py-1 rounded text-white no-underline {look}"
    ):
        ui.icon(icon, size="xs")
        ui.label(label).classes("text-sm font-medium")


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
