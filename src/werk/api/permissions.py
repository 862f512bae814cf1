"""Default deny: every API operation must declare the permission it needs.

`declare` runs when the app is built: it finds each operation's `requires(...)`, writes the
permission into the OpenAPI operation as `x-permission`, and refuses to build an app with an
operation that declares none, so a new route cannot ship open by mistake.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from werk.core.access import declared_permission
from werk.core.errors import Conflict

PERMISSION_KEY: Final = "x-permission"


@dataclass(frozen=True, slots=True)
class Operation:
    """One API route and the permission it declares (None when it declares none)."""

    path: str
    methods: frozenset[str]
    permission: str | None


def operations(app: FastAPI) -> Iterator[tuple[APIRoute, Operation]]:
    """Every API route of `app` with its declared permission."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            path = str(context.path_format or route.path_format)
            found = _permission(context.dependant)
            yield route, Operation(path, frozenset(route.methods or ()), found)


def declare(app: FastAPI) -> None:
    """Put each operation's permission in the OpenAPI; refuse operations without one."""
    found = [op for _route, op in operations(app)]
    missing = [f"{'/'.join(sorted(op.methods))} {op.path}" for op in found if not op.permission]
    if missing:
        raise Conflict(
            "these API routes declare no permission: " + ", ".join(missing),
            code="route_without_permission",
        )
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _annotate(generate(), found)
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


def _annotate(schema: dict[str, Any], found: list[Operation]) -> None:
    paths: dict[str, dict[str, Any]] = schema.get("paths", {})
    for op in found:
        for method in op.methods:
            operation = paths.get(op.path, {}).get(method.lower())
            if operation is not None:
                operation[PERMISSION_KEY] = op.permission


def _permission(dependant: Dependant) -> str | None:
    for child in dependant.dependencies:
        found = declared_permission(child.call) or _permission(child)
        if found is not None:
            return found
    return None
