"""Serve the NiceGUI pages from the API's FastAPI app without hiding the API's errors."""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI
from nicegui import app as nicegui_app
from nicegui import ui
from starlette.routing import Match, Mount
from starlette.types import Scope

from werk.core.errors import Conflict
from werk.web import (
    admin_audit,
    admin_devices,
    admin_keys,
    admin_orgs,
    admin_roles,
    admin_users,
    auth,
    edge_page,
    layers_page,
    login_page,
    namespace_page,
    quality_page,
    quarantine_page,
    tag_page,
)
from werk.web.context import WebContext

_API_ROOT: Final = "/api"


def mount(app: FastAPI) -> None:
    """Register the pages and serve them from `app` at `/`, next to the API.

    NiceGUI keeps its pages in one process-wide app: mount one FastAPI app per process.
    """
    if nicegui_app.middleware_stack is not None:
        raise Conflict(
            "the web UI already serves another app in this process; use create_app(web=False)",
            code="web_already_mounted",
        )
    context = WebContext(app)
    login_page.register(context)
    namespace_page.register(context)
    tag_page.register(context)
    quarantine_page.register(context)
    edge_page.register(context)
    layers_page.register(context)
    quality_page.register(context)
    for admin in (admin_orgs, admin_users, admin_roles, admin_devices, admin_keys, admin_audit):
        admin.register(context)
    ui.run_with(
        app,
        title="werk",
        favicon="🏭",
        storage_secret=None,
        show_welcome_message=False,
    )
    auth.install(context)
    _leave_api_paths_to_the_api(app)


class _PagesMount(Mount):
    """NiceGUI's catch-all mount at `/`, blind to paths under `/api`."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """Match every path but the API's."""
        path = str(scope.get("path", ""))
        if path == _API_ROOT or path.startswith(f"{_API_ROOT}/"):
            return Match.NONE, {}
        return super().matches(scope)


def _leave_api_paths_to_the_api(app: FastAPI) -> None:
    # Mounted at `/`, NiceGUI would answer unknown API paths and wrong methods with an
    # HTML page; without it the router's 404 and 405 become problem+json as before.
    routes = app.router.routes
    for index, route in enumerate(routes):
        if isinstance(route, Mount) and route.app is nicegui_app:
            routes[index] = _PagesMount(route.path, app=route.app, name=route.name)
