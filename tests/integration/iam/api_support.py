"""Helpers of the IAM API tests: a started werk, and principals made through its directory."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.conftest import bearer, make_settings

from werk.api import create_app
from werk.core.db import session_scope
from werk.iam.bootstrap import OPERATOR_SLUG, SYSTEM
from werk.iam.models import SigningKeyRecord
from werk.iam.service import Iam
from werk.runtime import Runtime

API = "/api/v1"
_COUNTER = itertools.count(1)
_RUN = uuid.uuid4().hex[:6]


def unique(prefix: str) -> str:
    """A name no other test of this process uses."""
    return f"{prefix}-{_RUN}-{next(_COUNTER)}"


@dataclass(frozen=True)
class Account:
    """A principal made for a test, with an API key (and a password for users)."""

    id: str
    name: str
    org_id: str
    key: str
    password: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        """Authorization with the account's API key."""
        return bearer(self.key)


# (built-in role name or role id, namespace filters, org scope)
Binding = tuple[str, tuple[str, ...], str]


class Werk:
    """A started werk behind a test client, and shortcuts into its IAM."""

    def __init__(self, client: TestClient, runtime: Runtime) -> None:
        self.client = client
        self.runtime = runtime
        assert runtime.iam is not None
        self.iam: Iam = runtime.iam
        self._roles = {r.name: r.id for r in self.iam.directory.list_roles(SYSTEM) if r.builtin}
        orgs = {o.slug: o.id for o in self.iam.directory.list_orgs(SYSTEM)}
        self.operator_org = orgs.get(OPERATOR_SLUG) or self.org(OPERATOR_SLUG, kind="operator")
        admin_name = unique("t-admin")
        self.admin = self.account(self.operator_org, [("admin", ("#",), "any")], name=admin_name)

    def org(self, slug: str | None = None, *, kind: str = "partner") -> str:
        """Create an organisation; its id."""
        slug = slug or unique("org").lower()
        return self.iam.directory.create_org(SYSTEM, slug=slug, name=slug, kind=kind).id

    def role(self, org_id: str, permissions: Iterable[str]) -> str:
        """Create a role of `org_id` with exactly `permissions`; its id."""
        view = self.iam.directory.create_role(
            SYSTEM, org_id=org_id, name=unique("role"), permissions=list(permissions)
        )
        return view.id

    def account(
        self,
        org_id: str,
        bindings: Iterable[Binding] = (),
        *,
        kind: str = "user",
        name: str | None = None,
        password: str | None = None,
    ) -> Account:
        """Create a principal (named `name`, else a new name) with bindings and an API key."""
        name = name or unique(kind)
        directory = self.iam.directory
        if kind == "user":
            password = password or f"pw-{uuid.uuid4().hex}"
            view, _ = directory.create_user(SYSTEM, org_id=org_id, name=name, password=password)
        elif kind == "service":
            view = directory.create_service_account(SYSTEM, org_id=org_id, name=name)
        else:
            view = directory.create_device(SYSTEM, org_id=org_id, name=name)
        for role, namespace, org_scope in bindings:
            self.bind(view.id, role, namespace, org_scope)
        _, key = directory.create_api_key(SYSTEM, principal_id=view.id, name="tests")
        return Account(view.id, name, org_id, key, password)

    def bind(
        self, principal_id: str, role: str, namespace: tuple[str, ...] = ("#",), org: str = "own"
    ) -> str:
        """Give a built-in role (by name) or a role (by id) to a principal; the binding id."""
        role_id = self._roles.get(role, role)
        view = self.iam.directory.create_binding(
            SYSTEM, role_id=role_id, principal_id=principal_id, namespace=namespace, org_scope=org
        )
        return view.id

    def token(self, account: Account) -> dict[str, Any]:
        """A password-grant token response of a user account."""
        response = self.client.post(
            f"{API}/auth/token",
            data={"grant_type": "password", "username": account.name, "password": account.password},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def signing_key(self) -> SigningKeyRecord:
        """The active signing key as stored (tests mint tokens with it)."""
        with session_scope(self.iam.sessions) as session:
            return session.scalars(
                select(SigningKeyRecord)
                .where(SigningKeyRecord.retired_at.is_(None))
                .order_by(SigningKeyRecord.created_at.desc())
            ).first()  # type: ignore[return-value]

    def audit(self, action: str, **filters: Any) -> list[dict[str, Any]]:
        """Audit events with `action`, as the admin reads them over the API."""
        response = self.client.get(
            f"{API}/iam/audit",
            params={"action": action, "limit": 1000, **filters},
            headers=self.admin.headers,
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


@contextmanager
def started_werk(data_dir: Path, **overrides: Any) -> Iterator[Werk]:
    """A werk on free ports in `data_dir`, started for the block."""
    runtime = Runtime(make_settings(data_dir, **overrides))
    with TestClient(create_app(runtime, web=False)) as client:
        yield Werk(client, runtime)


_PARAM = re.compile(r"\{([^}:]+)(:[^}]*)?\}")


def fill(path: str, values: dict[str, str]) -> str:
    """A route path with its parameters (`{name}`, `{name:path}`) replaced by `values`."""
    return _PARAM.sub(lambda m: values[m.group(1)], path)
