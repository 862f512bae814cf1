"""Per-layer access: every history read names its layer, and a gate may refuse it.

Until identity and access management is configured every caller may read every layer;
IAM installs its gate as `app.state.layer_gate`, a callable given the request and the
permission a read needs (`history:read:<layer>`), answering whether it is allowed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from fastapi import Request

from werk.core.errors import Forbidden
from werk.historian.layers import Layer

LayerGate = Callable[[Request, str], bool]

PERMISSIONS: Final = {layer: f"history:read:{layer.value}" for layer in Layer}
WRITE_KPIS: Final = "history:write:business"
ADMIN_QUALITY: Final = "quality:admin"
ADMIN_DATA: Final = "data:admin"
WRITE_SOURCES: Final = "sources:write"


def permission(layer: Layer) -> str:
    """The permission a read of `layer` needs."""
    return PERMISSIONS[layer]


def check_layer(request: Request, layer: Layer) -> None:
    """Refuse the read when the installed gate does not allow the layer."""
    if not _allowed(request, permission(layer)):
        raise Forbidden(
            f"reading the {layer.value} layer needs the permission {permission(layer)!r}",
            code="layer_forbidden",
            layer=layer.value,
        )


def check_permission(request: Request, needed: str) -> None:
    """Refuse a change (KPIs, rules, retention, pushed data) the gate does not allow."""
    if not _allowed(request, needed):
        raise Forbidden(f"this needs the permission {needed!r}", code="forbidden")


def _allowed(request: Request, needed: str) -> bool:
    gate: LayerGate | None = getattr(request.app.state, "layer_gate", None)
    return gate is None or gate(request, needed)
