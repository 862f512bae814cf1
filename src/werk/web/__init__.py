"""The web UI: NiceGUI pages served from the same FastAPI app as the API."""

from __future__ import annotations

from fastapi import FastAPI
from nicegui import ui

from werk.web import namespace_page, quarantine_page, tag_page
from werk.web.context import WebContext

__all__ = ["mount"]


def mount(app: FastAPI) -> None:
    """Register the pages and serve them from `app` at `/`, next to the API.

    NiceGUI keeps its pages in one process-wide app: mount one FastAPI app per process.
    """
    context = WebContext(app)
    namespace_page.register(context)
    tag_page.register(context)
    quarantine_page.register(context)
    ui.run_with(
        app,
        title="werk",
        favicon="🏭",
        storage_secret=None,
        show_welcome_message=False,
    )
