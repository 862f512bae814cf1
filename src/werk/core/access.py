"""Who may call what: every route declares the permission it needs, and nothing is open.

Routes declare `dependencies=[requires(PERMISSION)]`. The app installs an authenticator
(`app.state.authenticator`) that turns a request's credentials into a `Caller`; without
one every request is refused. Object-level checks use `check_path` and `visible`, so a
caller scoped to a namespace subtree never sees or changes a tag outside it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Protocol

from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam

from werk.core.errors import Forbidden, NotFound, Unauthenticated

PUBLIC: Final = "public"
PERMISSION_ATTRIBUTE: Final = "__werk_permission__"


class Caller(Protocol):
    """An authenticated principal as routes see it."""

    @property
    def id(self) -> str:
        """Stable id of the principal."""
        ...

    @property
    def name(self) -> str:
        """Login, client id or device name."""
        ...

    @property
    def kind(self) -> str:
        """user, service, device or internal."""
        ...

    @property
    def org_id(self) -> str:
        """The organisation the principal belongs to."""
        ...

    def allows(
        self, permission: str, *, path: str | None = None, org_id: str | None = None
    ) -> bool:
        """Whether the principal holds `permission` (for `path` / objects of `org_id`)."""
        ...


Authenticator = Callable[[Request], Caller | None]


def requires(permission: str) -> DependsParam:
    """The dependency a route declares: authenticate, then check `permission`."""

    def check(request: Request) -> None:
        if permission == PUBLIC:
            return
        found = caller(request)
        if not found.allows(permission):
            raise Forbidden(f"this needs the permission {permission!r}", code="forbidden")

    setattr(check, PERMISSION_ATTRIBUTE, permission)
    declared: DependsParam = Depends(check)
    return declared


def declared_permission(dependency: Any) -> str | None:
    """The permission a `requires` dependency checks, None for any other dependency."""
    value = getattr(dependency, PERMISSION_ATTRIBUTE, None)
    return value if isinstance(value, str) else None


def caller(request: Request) -> Caller:
    """The authenticated caller of `request`; 401 when there is none."""
    cached: Caller | None = getattr(request.state, "caller", None)
    if cached is not None:
        return cached
    authenticate: Authenticator | None = getattr(request.app.state, "authenticator", None)
    found = authenticate(request) if authenticate is not None else None
    if found is None:
        raise Unauthenticated("this needs credentials: a bearer token, an API key or a login")
    request.state.caller = found
    return found


def optional_caller(request: Request) -> Caller | None:
    """The authenticated caller, None for an anonymous request (public routes)."""
    try:
        return caller(request)
    except Unauthenticated:
        return None


def visible(request: Request, permission: str, path: str) -> bool:
    """Whether the caller holds `permission` for the tag or subtree at `path`."""
    return caller(request).allows(permission, path=path)


def check_path(request: Request, permission: str, path: str) -> None:
    """Refuse a tag outside the caller's scope as if it did not exist."""
    if not visible(request, permission, path):
        raise NotFound(f"nothing at {path!r}", code="not_found", path=path)


def check_org(request: Request, permission: str, org_id: str) -> None:
    """Refuse an object of another organisation as if it did not exist."""
    if not caller(request).allows(permission, org_id=org_id):
        raise NotFound("no such object", code="not_found")
