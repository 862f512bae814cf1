"""Who may read which layer and which tags, through `werk.core.access`.

Every history read names its layer and needs `history:read:<layer>`; routes declare it
with `requires`, or with `LayerDep` when the layer is a query parameter. A caller's
grants are narrowed to namespace subtrees: a tag outside them reads as if it did not
exist (404), and operations that touch the whole namespace (retention, export, quality
rules) need a grant whose scope is all of it (`#`).
"""

from __future__ import annotations

from typing import Annotated, Final, Protocol, runtime_checkable

from fastapi import Depends, Query, Request

from werk.core.access import PERMISSION_ATTRIBUTE, Caller, caller, check_path
from werk.core.errors import Forbidden
from werk.core.filters import filter_within
from werk.historian.layers import Layer

READ_RAW: Final = "history:read:raw"
READ_PROCESSED: Final = "history:read:processed"
READ_BUSINESS: Final = "history:read:business"
PERMISSIONS: Final = {
    Layer.RAW: READ_RAW,
    Layer.PROCESSED: READ_PROCESSED,
    Layer.BUSINESS: READ_BUSINESS,
}
WRITE_KPIS: Final = "history:write:business"
READ_QUALITY: Final = "quality:read"
ADMIN_QUALITY: Final = "quality:admin"
ADMIN_DATA: Final = "data:admin"
LAYER_PERMISSION: Final = "history:read:{layer}"  # the route's `layer` parameter names it
EVERYWHERE: Final = "#"


@runtime_checkable
class ScopedCaller(Protocol):
    """A caller that can name the namespace filters of a permission."""

    def namespace_filters(self, permission: str) -> tuple[str, ...]:
        """The filters of every grant that gives `permission`."""
        ...


def permission(layer: Layer) -> str:
    """The permission a read of `layer` needs."""
    return PERMISSIONS[layer]


def check_layer(request: Request, layer: Layer) -> None:
    """Refuse the read when the caller may read `layer` nowhere."""
    if not caller(request).allows(permission(layer)):
        raise Forbidden(
            f"reading the {layer.value} layer needs the permission {permission(layer)!r}",
            code="layer_forbidden",
            layer=layer.value,
        )


def check_tag(request: Request, layer: Layer, tag: str) -> None:
    """Refuse a read of `tag` in `layer`: 403 without the layer, 404 outside the scope."""
    check_layer(request, layer)
    check_path(request, permission(layer), tag)


def _read_layer(
    request: Request,
    _caller: Annotated[Caller, Depends(caller)],
    layer: Annotated[
        Layer,
        Query(
            description="raw: as received; processed: unit-normalised and rule-flagged; "
            "business: rollups (needs bucket)"
        ),
    ],
) -> Layer:
    check_layer(request, layer)
    return layer


setattr(_read_layer, PERMISSION_ATTRIBUTE, LAYER_PERMISSION)
LayerDep = Annotated[Layer, Depends(_read_layer)]


def scope_filters(request: Request, permission: str) -> tuple[str, ...]:
    """The namespace filters within which the caller holds `permission` (none: nowhere)."""
    found = caller(request)
    if isinstance(found, ScopedCaller):
        return found.namespace_filters(permission)
    return (EVERYWHERE,) if found.allows(permission, path=EVERYWHERE) else ()


def everywhere(request: Request, permission: str) -> bool:
    """Whether the caller holds `permission` over the whole namespace."""
    return any(filter_within(EVERYWHERE, f) for f in scope_filters(request, permission))


def check_everywhere(request: Request, permission: str) -> None:
    """Refuse an operation on the whole namespace to a caller scoped to part of it."""
    if not everywhere(request, permission):
        raise Forbidden(
            f"this touches the whole namespace: it needs {permission!r} with the scope '#'",
            code="scope_too_narrow",
        )


def filter_in_scope(request: Request, permission: str, topic_filter: str) -> bool:
    """Whether every tag path `topic_filter` matches lies in the caller's scope."""
    return any(filter_within(topic_filter, f) for f in scope_filters(request, permission))


def overlaps(first: str, second: str) -> bool:
    """Whether some tag path matches both MQTT-style filters."""
    a, b = first.split("/"), second.split("/")
    for mine, theirs in zip(a, b, strict=False):
        if "#" in (mine, theirs):
            return True
        if mine != theirs and "+" not in (mine, theirs):
            return False
    if len(a) == len(b):
        return True
    longer = a if len(a) > len(b) else b
    return len(longer) == min(len(a), len(b)) + 1 and longer[-1] == "#"
