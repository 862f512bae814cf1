"""Grants and their scopes: what a principal may do, and where.

A role gives permissions; a binding gives a role to a principal (or a group) within a
scope: namespace subtrees (MQTT-style filters over tag paths), data layers, and either
the objects of the principal's own organisation or those of every organisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Literal

from werk.core.filters import filter_within, matches

__all__ = [
    "Grant",
    "OrgKind",
    "Principal",
    "PrincipalKind",
    "Scope",
    "filter_within",
    "permission_matches",
]

_LAYER_PREFIX: Final = "history:read:"
OrgScope = Literal["own", "any"]


class PrincipalKind(StrEnum):
    """What kind of party a principal is."""

    USER = "user"
    SERVICE = "service"
    DEVICE = "device"
    INTERNAL = "internal"


class OrgKind(StrEnum):
    """The operator runs werk; each partner is a tenant of its own."""

    OPERATOR = "operator"
    PARTNER = "partner"


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a grant applies."""

    namespace: tuple[str, ...] = ("#",)
    layers: tuple[str, ...] | None = None
    org: OrgScope = "own"

    def covers_path(self, path: str) -> bool:
        """Whether the tag or subtree at `path` lies inside the namespace filters."""
        return any(matches(f, path) for f in self.namespace)

    def covers_layer(self, permission: str) -> bool:
        """Whether a layer read (`history:read:<layer>`) lies inside the layers."""
        if self.layers is None or not permission.startswith(_LAYER_PREFIX):
            return True
        return permission.removeprefix(_LAYER_PREFIX) in self.layers


@dataclass(frozen=True, slots=True)
class Grant:
    """A role's permissions within one scope."""

    role: str
    permissions: frozenset[str]
    scope: Scope = field(default_factory=Scope)

    def gives(self, permission: str, *, explicit: bool = False) -> bool:
        """Whether one of the role's permission patterns covers `permission`.

        `explicit` leaves out the catch-all `*`, for rights that must be granted by name
        (an administrator of the API is not a broker superuser by that alone).
        """
        return any(
            permission_matches(p, permission) for p in self.permissions if p != "*" or not explicit
        )


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user, service account, device or werk itself."""

    id: str
    kind: PrincipalKind
    name: str
    org_id: str
    org_kind: OrgKind
    grants: tuple[Grant, ...]
    credential_id: str | None = None
    auth_method: str = "token"
    sparkplug: tuple[str, str] | None = None

    def allows(
        self, permission: str, *, path: str | None = None, org_id: str | None = None
    ) -> bool:
        """Whether some grant gives `permission` (at `path`, for objects of `org_id`)."""
        return any(self._grant_allows(g, permission, path, org_id) for g in self.grants)

    def _grant_allows(
        self, grant: Grant, permission: str, path: str | None, org_id: str | None
    ) -> bool:
        if not grant.gives(permission) or not grant.scope.covers_layer(permission):
            return False
        if path is not None and not grant.scope.covers_path(path):
            return False
        return org_id is None or grant.scope.org == "any" or org_id == self.org_id

    def namespace_filters(self, permission: str, *, explicit: bool = False) -> tuple[str, ...]:
        """The namespace filters of every grant that gives `permission` (see `Grant.gives`)."""
        found: dict[str, None] = {}
        for grant in self.grants:
            if grant.gives(permission, explicit=explicit) and grant.scope.covers_layer(permission):
                found.update(dict.fromkeys(grant.scope.namespace))
        return tuple(found)

    def org_wide(self, permission: str) -> bool:
        """Whether `permission` reaches the objects of every organisation."""
        return any(g.gives(permission) and g.scope.org == "any" for g in self.grants)

    def with_credential(self, credential_id: str | None, auth_method: str) -> Principal:
        """The same principal, authenticated by another credential."""
        return Principal(
            self.id, self.kind, self.name, self.org_id, self.org_kind, self.grants,
            credential_id, auth_method, self.sparkplug,
        )  # fmt: skip


def permission_matches(pattern: str, needed: str) -> bool:
    """Whether the role's `pattern` (exact, `area:*`, or `*`) covers `needed`."""
    if pattern == needed or pattern == "*":
        return True
    return pattern.endswith(":*") and needed.startswith(pattern[:-1])
