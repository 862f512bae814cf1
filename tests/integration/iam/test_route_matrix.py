"""The 401/403 matrix over every API operation, generated from the app itself.

Operations come from the OpenAPI document (`x-permission`) and from walking the app's
routes, so a route hidden from the schema is tested too. For every operation:
no credentials -> 401 (public ones excepted); a principal without grants -> 403; a
principal holding exactly the declared permission -> neither 401 nor 403 (and, for the
requests below known to be valid, a success).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Route
from tests.conftest import make_settings
from tests.integration.iam.api_support import API, Account, Werk, fill, started_werk, unique

from werk.api import create_app
from werk.api.permissions import PERMISSION_KEY, operations
from werk.core.access import PUBLIC
from werk.iam.bootstrap import SYSTEM
from werk.iam.http import AUTHENTICATED
from werk.runtime import Runtime

LAYER = "raw"  # the value given to a `{layer}` placeholder of a permission and its query


@dataclass(frozen=True)
class Operation:
    """One method of one route, and the permission the app says it needs."""

    method: str
    path: str  # as routed, with convertors: /api/v1/tags/{path:path}
    permission: str | None
    in_schema: bool

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def needed(self) -> str | None:
        """The permission with its placeholders filled as this test fills them."""
        return None if self.permission is None else self.permission.replace("{layer}", LAYER)


def schema_path(path: str) -> str:
    """The OpenAPI spelling of a routed path (no convertors)."""
    return re.sub(r"\{([^}:]+):[^}]*\}", r"{\1}", path)


def app_operations(app: FastAPI) -> list[Operation]:
    """Every operation of the schema and every API route, with its permission."""
    documented = {
        (method.upper(), path): op.get(PERMISSION_KEY)
        for path, item in app.openapi()["paths"].items()
        for method, op in item.items()
    }
    found: dict[tuple[str, str], Operation] = {}
    for route, op in operations(app):
        for method in sorted(op.methods - {"HEAD", "OPTIONS"}):
            key = (method, schema_path(op.path))
            in_schema = key in documented and route.include_in_schema
            permission = documented.get(key) if in_schema else op.permission
            found[key] = Operation(method, op.path, permission, in_schema)
    # Plain routes under /api cannot declare a permission; only the schema and its viewer may.
    documentation = {
        app.openapi_url,
        app.docs_url,
        app.redoc_url,
        app.swagger_ui_oauth2_redirect_url,
    }
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = str(context.path or getattr(route, "path", ""))
        plain = isinstance(route, Route) and not isinstance(route, APIRoute)
        if plain and path.startswith("/api/") and path not in documentation:
            for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                found.setdefault((method, path), Operation(method, path, None, False))
    missing = set(documented) - set(found)
    assert not missing, f"documented operations without a route: {sorted(missing)}"
    return sorted(found.values(), key=lambda o: (o.path, o.method))


def _listing_app() -> FastAPI:
    settings = make_settings(Path(tempfile.gettempdir()) / "werk-route-matrix-unstarted")
    return create_app(Runtime(settings), web=False)


OPERATIONS = app_operations(_listing_app())
PROTECTED = [o for o in OPERATIONS if o.permission != PUBLIC]
GRANTED = [o for o in PROTECTED if o.permission != AUTHENTICATED]


@pytest.fixture(scope="module")
def werk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Werk]:
    """One werk for the module."""
    with started_werk(tmp_path_factory.mktemp("werk")) as started:
        yield started


@pytest.fixture(scope="module")
def nobody(werk: Werk) -> Account:
    """A principal without a single grant."""
    return werk.account(werk.operator_org, kind="service")


@pytest.fixture(scope="module")
def holders(werk: Werk) -> dict[str, Account]:
    """Principals holding exactly one permission (everywhere), made on first use."""
    return {}


def holder(werk: Werk, holders: dict[str, Account], permission: str) -> Account:
    if permission not in holders:
        role = werk.role(werk.operator_org, [permission])
        holders[permission] = werk.account(
            werk.operator_org, [(role, ("#",), "any")], kind="service"
        )
    return holders[permission]


class Objects:
    """Path parameter values: fresh objects of the operator organisation, made on demand."""

    def __init__(self, werk: Werk, *, users: bool = False) -> None:
        self.werk = werk
        self.directory = werk.iam.directory
        self._kind = "user" if users else "service"  # users only where a password is needed
        self._victim: str | None = None

    def victim(self) -> str:
        if self._victim is None:
            self._victim = self.werk.account(self.werk.operator_org, kind=self._kind).id
        return self._victim

    def value(self, name: str) -> str:
        maker: Callable[[], str] | None = getattr(self, f"_{name}", None)
        return maker() if maker is not None else STATIC.get(name, "unknown")

    def _org_id(self) -> str:
        return self.werk.org()

    def _principal_id(self) -> str:
        return self.victim()

    def _group_id(self) -> str:
        org = self.werk.operator_org
        return self.directory.create_group(SYSTEM, org_id=org, name=unique("g")).id

    def _role_id(self) -> str:
        return self.werk.role(self.werk.operator_org, ["uns:read"])

    def _binding_id(self) -> str:
        # Taking a grant away needs its permissions too: iam:admin is what the holder has.
        return self.werk.bind(self.victim(), self.werk.role(self.werk.operator_org, ["iam:admin"]))

    def _key_id(self) -> str:
        key, _ = self.directory.create_api_key(SYSTEM, principal_id=self.victim(), name="matrix")
        return key.id

    def _credential_id(self) -> str:
        principal = self.directory.load_principal(self.victim())
        assert principal is not None
        self.werk.iam.authn.issue(principal, ip="")
        return self.werk.iam.authn.list_credentials(SYSTEM, self.victim())[0].id


STATIC = {
    "path": "acme/matrix/line-1/temp",
    "tag": "acme/matrix/line-1/temp",
    "name": "oee",
    "dataset": "orders",
    "table": "raw",
    "record_id": "1",
    "message_id": "0" * 32,
    "group": "acme",
    "edge_node": "matrix-node",
    "command_id": "1",
}


def request_for(op: Operation, werk: Werk) -> tuple[str, dict[str, Any]]:
    """The URL and request arguments that make a valid call of `op` where one is known."""
    objects = Objects(werk, users=op.path.endswith("/password"))
    names = re.findall(r"\{([^}:]+)", op.path)
    url = fill(op.path, {n: objects.value(n) for n in names})
    kwargs: dict[str, Any] = {}
    if op.permission and "{layer}" in op.permission:
        kwargs["params"] = {"layer": LAYER}
    body = BODIES.get((op.method, schema_path(op.path)))
    if body is not None:
        kwargs["json"] = body(objects)
    return url, kwargs


IAM = f"{API}/iam"
Body = Callable[[Objects], Any]
BODIES: dict[tuple[str, str], Body] = {
    ("POST", f"{IAM}/orgs"): lambda o: {"slug": unique("m").lower(), "name": "matrix"},
    ("PATCH", f"{IAM}/orgs/{{org_id}}"): lambda o: {"name": "renamed"},
    ("PATCH", f"{IAM}/principals/{{principal_id}}"): lambda o: {"display_name": "renamed"},
    ("PUT", f"{IAM}/principals/{{principal_id}}/password"): lambda o: {"password": "p" * 16},
    ("POST", f"{IAM}/users"): lambda o: {"name": unique("u")},
    ("POST", f"{IAM}/service-accounts"): lambda o: {"name": unique("s")},
    ("POST", f"{IAM}/devices"): lambda o: {"name": unique("d")},
    ("POST", f"{IAM}/groups"): lambda o: {"name": unique("g")},
    ("POST", f"{IAM}/roles"): lambda o: {"name": unique("r"), "permissions": ["iam:admin"]},
    ("PATCH", f"{IAM}/roles/{{role_id}}"): lambda o: {"description": "changed"},
    ("POST", f"{IAM}/bindings"): lambda o: {
        "role_id": o.werk.role(o.werk.operator_org, ["iam:admin"]),
        "principal_id": o.victim(),
    },
    ("POST", f"{IAM}/api-keys"): lambda o: {"principal_id": o.victim(), "name": "matrix"},
    ("POST", f"{API}/publish"): lambda o: {"tag": STATIC["tag"], "value": 1.5},
    ("POST", f"{API}/commands"): lambda o: {"tag": STATIC["tag"], "value": 1, "wait_s": 0},
}
# With the objects and bodies above, a holder of the permission must succeed on every
# IAM operation; other contexts' operations may still answer 404 or 422 to these inputs.
MUST_SUCCEED = {(o.method, schema_path(o.path)) for o in OPERATIONS if o.path.startswith(IAM)}


def test_every_operation_declares_a_permission() -> None:
    undeclared = [o.id for o in OPERATIONS if o.permission is None]
    assert not undeclared, f"operations without x-permission: {undeclared}"
    assert len(OPERATIONS) > 50


def test_the_schema_names_the_permission_each_route_checks() -> None:
    declared = {
        (m, schema_path(o.path)): o.permission
        for r, o in operations(_listing_app())
        for m in o.methods
    }
    for op in OPERATIONS:
        assert op.permission == declared.get((op.method, schema_path(op.path)), op.permission), (
            op.id
        )


def placeholder_url(op: Operation) -> str:
    """The operation's path with made-up parameters (refusals come before lookups)."""
    return fill(op.path, {n: STATIC.get(n, "0" * 32) for n in re.findall(r"\{([^}:]+)", op.path)})


@pytest.mark.parametrize("op", PROTECTED, ids=lambda o: o.id)
def test_no_credentials_is_401(werk: Werk, op: Operation) -> None:
    assert op.permission is not None, f"{op.id} declares no permission"
    response = werk.client.request(op.method, placeholder_url(op))
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("op", GRANTED, ids=lambda o: o.id)
def test_a_principal_without_grants_is_403(werk: Werk, nobody: Account, op: Operation) -> None:
    assert op.permission is not None, f"{op.id} declares no permission"
    params = {"layer": LAYER} if "{layer}" in op.permission else {}
    response = werk.client.request(
        op.method, placeholder_url(op), headers=nobody.headers, params=params
    )
    assert response.status_code == 403, response.text


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda o: o.id)
def test_the_declared_permission_is_enough(
    werk: Werk, nobody: Account, holders: dict[str, Account], op: Operation
) -> None:
    needed = op.needed
    assert needed is not None, f"{op.id} declares no permission"
    if needed == PUBLIC:
        account = None
    elif needed == AUTHENTICATED:
        account = nobody
    else:
        account = holder(werk, holders, needed)
    url, kwargs = request_for(op, werk)
    headers = account.headers if account is not None else {}
    response = werk.client.request(op.method, url, headers=headers, **kwargs)
    assert response.status_code not in (401, 403), f"{op.id}: {response.text}"
    if (op.method, schema_path(op.path)) in MUST_SUCCEED:
        assert response.status_code < 400, f"{op.id}: {response.text}"
