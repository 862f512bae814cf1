"""First run and demo data: the built-in roles, the first administrator, demo tenants.

Passwords are generated, returned once for the caller to show, and stored only hashed.
Running any of this again creates nothing that exists already.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from sqlalchemy import select, update

from werk.core.db import session_scope
from werk.core.errors import Conflict, NotFound, ValidationFailed
from werk.iam.directory_rules import generate_password
from werk.iam.models import ApiKeyRecord, OrgRecord, PrincipalRecord, RoleRecord, new_id, utc_now
from werk.iam.permissions import BUILTIN_ROLES
from werk.iam.scopes import Grant, OrgKind, Principal, PrincipalKind, Scope
from werk.iam.service import Iam

__all__ = [
    "ADMIN_NAME",
    "OPERATOR_SLUG",
    "PLANT_KEY_NAME",
    "SYSTEM",
    "DemoCredential",
    "DemoDevice",
    "FirstRun",
    "demo_devices",
    "ensure_admin",
    "ensure_builtin_roles",
    "seed_demo",
]

OPERATOR_SLUG: Final = "operator"
ADMIN_NAME: Final = "admin"
PLANT_KEY_NAME: Final = "demo-plant"
DEMO_EDGE: Final = "demo-edge"
DEMO_CELL: Final = "demo-line-2-cell-3"
DEMO_PARTNERS: Final = (("northwind", "Northwind Traders"), ("contoso", "Contoso Ltd"))

SYSTEM: Final = Principal(
    id="system",
    kind=PrincipalKind.INTERNAL,
    name="werk",
    org_id="",
    org_kind=OrgKind.OPERATOR,
    grants=(Grant(role="admin", permissions=frozenset({"*"}), scope=Scope(org="any")),),
    auth_method="internal",
)


@dataclass(frozen=True, slots=True)
class FirstRun:
    """The administrator made on the first start, with its password (shown once)."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class DemoCredential:
    """A demo login: a user's password, or a device's API key (its MQTT password)."""

    kind: Literal["password", "api_key"]
    org: str
    name: str
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class DemoDevice:
    """A publisher of the demo plant: where it publishes, and its Sparkplug ids if a node."""

    name: str
    display_name: str
    namespace: str
    sparkplug: tuple[str, str] | None = None

    @property
    def role(self) -> str:
        """The built-in role it gets."""
        return "edge-node" if self.sparkplug is not None else "device"


def demo_devices(enterprise: str = "acme") -> tuple[DemoDevice, ...]:
    """The demo plant's publishers: the Sparkplug edge gateway and the JSON devices' cell."""
    return (
        DemoDevice(
            DEMO_EDGE, "Edge gateway berlin-gw-1 (OPC UA and Modbus machines)",
            f"{enterprise}/berlin/machining/#", (enterprise, "berlin-gw-1"),
        ),
        DemoDevice(
            DEMO_CELL, "Conveyor and packer of line 2, cell 3 (UNS JSON)",
            f"{enterprise}/berlin/machining/line-2/cell-3/#",
        ),
    )  # fmt: skip


def ensure_builtin_roles(iam: Iam) -> int:
    """Create missing built-in roles and bring changed ones up to date; count the changes."""
    changed = 0
    with session_scope(iam.sessions) as session:
        stored = {r.name: r for r in session.scalars(select(RoleRecord).where(RoleRecord.builtin))}
        for name, (description, permissions) in BUILTIN_ROLES.items():
            record = stored.get(name)
            if record is None:
                session.add(_builtin_role(name, description, permissions))
                changed += 1
            elif (record.description, record.permissions) != (description, list(permissions)):
                record.description, record.permissions = description, list(permissions)
                changed += 1
    return changed


def _builtin_role(name: str, description: str, permissions: tuple[str, ...]) -> RoleRecord:
    return RoleRecord(
        id=new_id(), org_id=None, name=name, description=description,
        permissions=list(permissions), builtin=True,
    )  # fmt: skip


def ensure_admin(iam: Iam) -> FirstRun | None:
    """On the first start: the operator organisation and user `admin` with a new password."""
    ensure_builtin_roles(iam)
    with session_scope(iam.sessions) as session:
        if session.scalars(select(PrincipalRecord.id).limit(1)).first() is not None:
            return None
    org_id = _ensure_org(iam, OPERATOR_SLUG, "Operator", "operator")
    password = generate_password()
    try:
        user, _ = iam.directory.create_user(
            SYSTEM, org_id=org_id, name=ADMIN_NAME, display_name="Administrator",
            password=password,
        )  # fmt: skip
    except Conflict:
        return None  # another process made the first administrator at the same moment
    _bind(iam, user.id, "admin", ("#",), org_scope="any")
    return FirstRun(username=ADMIN_NAME, password=password)


def seed_demo(
    iam: Iam, enterprise: str = "acme", *, devices: Sequence[DemoDevice] | None = None
) -> list[DemoCredential]:
    """Demo partner tenants with their users, and the demo plant's device principals.

    `enterprise` is the ISA-95 enterprise of the demo plant (the first level of its tag
    paths); each partner's users are scoped to `<enterprise>/partners/<slug>/#`. New
    users' passwords come back once. Device keys cannot be shown again, so each call
    revokes the previous plant keys and returns fresh ones for the simulated plant.
    """
    if not enterprise or "/" in enterprise or "+" in enterprise or "#" in enterprise:
        raise ValidationFailed(
            f"the enterprise is one namespace level, not {enterprise!r}", code="bad_enterprise"
        )
    ensure_builtin_roles(iam)
    found = [c for slug, name in DEMO_PARTNERS for c in _seed_partner(iam, enterprise, slug, name)]
    operator = _ensure_org(iam, OPERATOR_SLUG, "Operator", "operator")
    for device in demo_devices(enterprise) if devices is None else devices:
        found.append(_seed_device(iam, operator, device))
    return found


def _seed_partner(iam: Iam, enterprise: str, slug: str, name: str) -> list[DemoCredential]:
    org_id = _ensure_org(iam, slug, name, "partner")
    subtree = (f"{enterprise}/partners/{slug}/#",)
    made = []
    for user, role, display in (
        (f"{slug}-admin", "partner-admin", f"{name} administrator"),
        (f"{slug}-user", "partner-user", f"{name} user"),
    ):
        if iam.directory.find_by_name(user) is not None:
            continue
        password = generate_password()
        view, _ = iam.directory.create_user(
            SYSTEM, org_id=org_id, name=user, display_name=display, password=password
        )
        _bind(iam, view.id, role, subtree)
        made.append(DemoCredential("password", slug, user, password))
    return made


def _seed_device(iam: Iam, org_id: str, device: DemoDevice) -> DemoCredential:
    principal_id = iam.directory.find_by_name(device.name)
    if principal_id is None:
        view = iam.directory.create_device(
            SYSTEM, org_id=org_id, name=device.name, display_name=device.display_name,
            sparkplug=device.sparkplug,
        )  # fmt: skip
        principal_id = view.id
        _bind(iam, principal_id, device.role, (device.namespace,))
    _revoke_plant_keys(iam, principal_id)
    _, secret = iam.directory.create_api_key(SYSTEM, principal_id=principal_id, name=PLANT_KEY_NAME)
    return DemoCredential("api_key", OPERATOR_SLUG, device.name, secret)


def _revoke_plant_keys(iam: Iam, principal_id: str) -> None:
    with session_scope(iam.sessions) as session:
        session.execute(
            update(ApiKeyRecord)
            .where(
                ApiKeyRecord.principal_id == principal_id,
                ApiKeyRecord.name == PLANT_KEY_NAME,
                ApiKeyRecord.revoked_at.is_(None),
            )
            .values(revoked_at=utc_now())
        )


def _ensure_org(iam: Iam, slug: str, name: str, kind: str) -> str:
    with session_scope(iam.sessions) as session:
        found = session.scalars(select(OrgRecord.id).where(OrgRecord.slug == slug)).first()
    if found is not None:
        return found
    return iam.directory.create_org(SYSTEM, slug=slug, name=name, kind=kind).id


def _bind(
    iam: Iam, principal_id: str, role: str, namespace: tuple[str, ...], *, org_scope: str = "own"
) -> None:
    with session_scope(iam.sessions) as session:
        role_id = session.scalars(
            select(RoleRecord.id).where(RoleRecord.builtin, RoleRecord.name == role)
        ).one()
    iam.directory.create_binding(
        SYSTEM, role_id=role_id, principal_id=principal_id, namespace=namespace,
        org_scope=org_scope,
    )  # fmt: skip


def admin_api_key(iam: Iam, name: str) -> str:
    """A new API key of the administrator `admin` (for werk's own tools: benchmarks, tests)."""
    admin_id = iam.directory.find_by_name(ADMIN_NAME)
    admin = None if admin_id is None else iam.directory.load_principal(admin_id)
    if admin is None:
        raise NotFound("there is no enabled administrator 'admin'", code="no_admin")
    _view, key = iam.directory.create_api_key(SYSTEM, principal_id=admin.id, name=name)
    return key
