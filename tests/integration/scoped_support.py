"""Callers with chosen grants for route tests, without tokens.

`install(app)` puts an authenticator on the app that picks the principal named by the
`X-Test-Principal` header (an administrator scoped to everything when the header is
absent, nobody for `anonymous`), so one test client can speak as several callers.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI, Request

from werk.iam.scopes import Grant, OrgKind, Principal, PrincipalKind, Scope

HEADER: Final = "X-Test-Principal"
ANONYMOUS: Final = "anonymous"


def grant(
    *permissions: str, namespace: tuple[str, ...] = ("#",), layers: tuple[str, ...] | None = None
) -> Grant:
    """A grant of `permissions` within the namespace filters and layers."""
    return Grant("test", frozenset(permissions), Scope(namespace=namespace, layers=layers))


def principal(name: str, *grants: Grant) -> Principal:
    """A user of the operator organisation holding `grants`."""
    return Principal(name, PrincipalKind.USER, name, "operator", OrgKind.OPERATOR, grants)


ADMIN: Final = principal("admin", grant("*"))


class Callers:
    """The principals a test speaks as, by name."""

    def __init__(self, *principals: Principal) -> None:
        self.known = {p.name: p for p in (ADMIN, *principals)}

    def __call__(self, request: Request) -> Principal | None:
        name = request.headers.get(HEADER, ADMIN.name)
        return None if name == ANONYMOUS else self.known[name]

    def add(self, *principals: Principal) -> None:
        """Know more principals."""
        self.known.update((p.name, p) for p in principals)


def install(app: FastAPI, *principals: Principal) -> Callers:
    """Authenticate the app's requests as the principals named by the test header."""
    callers = Callers(*principals)
    app.state.authenticator = callers
    return callers


def as_(name: str) -> dict[str, str]:
    """Headers that make a request speak as the principal `name`."""
    return {HEADER: name}
