"""No privilege escalation, as properties over random permission sets, scopes and layers."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import sessionmaker
from tests.conftest import make_settings

from werk.core.db import create_db_engine, upgrade_schema
from werk.core.errors import Forbidden
from werk.core.filters import filter_within, matches
from werk.iam.bootstrap import SYSTEM, ensure_builtin_roles
from werk.iam.directory_rules import grantable
from werk.iam.permissions import ALL
from werk.iam.scopes import Grant, OrgKind, Principal, PrincipalKind, Scope
from werk.iam.service import Iam

SUBTREE = "acme/partners/northwind/#"
IAM_PERMISSIONS = frozenset({"iam:read", "iam:admin"})
LEVELS = ("acme", "partners", "northwind", "contoso", "berlin")
PATHS = tuple(
    "/".join(levels) for depth in (1, 2, 3, 4) for levels in itertools.product(LEVELS, repeat=depth)
)
FILTERS = (
    "#", "acme/#", "acme/partners/#", SUBTREE, "acme/partners/northwind/berlin/#",
    "acme/partners/+/#", "acme/partners/contoso/#", "acme/+/northwind/#", "acme/berlin",
    "+/partners/northwind/acme",
)  # fmt: skip
LAYERS = ("raw", "processed", "business")

permissions = st.frozensets(st.sampled_from(ALL), min_size=1, max_size=6)
namespaces = st.lists(st.sampled_from(FILTERS), min_size=1, max_size=3, unique=True).map(tuple)
layer_sets = st.none() | st.frozensets(st.sampled_from(LAYERS), min_size=1).map(
    lambda s: tuple(sorted(s))
)


def _actor(org_id: str, held: frozenset[str], scope: Scope) -> Principal:
    return Principal(
        id=uuid.uuid4().hex, kind=PrincipalKind.USER, name="partner-admin", org_id=org_id,
        org_kind=OrgKind.PARTNER, grants=(Grant("custom", held | IAM_PERMISSIONS, scope),),
    )  # fmt: skip


def _reaches(actor: Principal, grant: Grant) -> bool:
    """Whether the actor itself may do everything `grant` allows, on every sample path."""
    for permission, path in itertools.product(grant.permissions, PATHS):
        if not grant.scope.covers_layer(permission):
            continue  # the grant itself does not give this layer
        if any(matches(f, path) for f in grant.scope.namespace) and not actor.allows(
            permission, path=path
        ):
            return False
    return True


@given(held=permissions, wanted=permissions, outer=namespaces, inner=namespaces)
def test_whatever_is_grantable_the_actor_can_do_itself(
    held: frozenset[str], wanted: frozenset[str], outer: tuple[str, ...], inner: tuple[str, ...]
) -> None:
    actor = _actor("org", held, Scope(namespace=outer))
    scope = Scope(namespace=inner)
    if grantable(actor, sorted(wanted), scope):
        assert _reaches(actor, Grant("wanted", wanted, scope))
    if wanted <= held and set(inner) <= set(outer):
        assert grantable(actor, sorted(wanted), scope)


@pytest.fixture(scope="module")
def iam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Iam]:
    directory: Path = tmp_path_factory.mktemp("escalation")
    engine = create_db_engine(f"sqlite:///{directory / 'werk.db'}")
    upgrade_schema(engine)
    built = Iam(sessionmaker(engine, expire_on_commit=False), make_settings(directory))
    ensure_builtin_roles(built)
    yield built
    engine.dispose()


@pytest.fixture(scope="module")
def northwind(iam: Iam) -> str:
    return iam.directory.create_org(SYSTEM, slug="northwind", name="Northwind").id


@settings(max_examples=40, deadline=None)
@given(
    held=permissions, wanted=permissions, namespace=namespaces,
    held_layers=layer_sets, wanted_layers=layer_sets,
)  # fmt: skip
def test_a_binding_succeeds_exactly_when_it_escalates_nothing(
    iam: Iam,
    northwind: str,
    held: frozenset[str],
    wanted: frozenset[str],
    namespace: tuple[str, ...],
    held_layers: tuple[str, ...] | None,
    wanted_layers: tuple[str, ...] | None,
) -> None:
    d = iam.directory
    actor = _actor(northwind, held, Scope(namespace=(SUBTREE,), layers=held_layers))
    role = d.create_role(SYSTEM, org_id=northwind, name=_name("role"), permissions=sorted(wanted))
    device = d.create_device(SYSTEM, org_id=northwind, name=_name("dev")).id
    expected = (
        wanted <= held | IAM_PERMISSIONS
        and all(filter_within(f, SUBTREE) for f in namespace)
        and (
            held_layers is None
            or (wanted_layers is not None and set(wanted_layers) <= set(held_layers))
        )
    )
    try:
        d.create_binding(
            actor, role_id=role.id, principal_id=device, namespace=namespace, layers=wanted_layers
        )
    except Forbidden as exc:
        assert exc.code == "privilege_escalation"
        assert not expected
        assert d.load_principal(device).grants == ()  # type: ignore[union-attr]
        return
    assert expected
    target = d.load_principal(device)
    assert target is not None
    assert all(_reaches(actor, grant) for grant in target.grants)


@settings(max_examples=30, deadline=None)
@given(held=permissions, wanted=permissions)
def test_a_role_holds_only_what_its_creator_holds(
    iam: Iam, northwind: str, held: frozenset[str], wanted: frozenset[str]
) -> None:
    actor = _actor(northwind, held, Scope(namespace=(SUBTREE,)))
    allowed = wanted <= held | IAM_PERMISSIONS
    try:
        iam.directory.create_role(
            actor, org_id=northwind, name=_name("r"), permissions=sorted(wanted)
        )
    except Forbidden as exc:
        assert exc.code == "privilege_escalation" and not allowed
        return
    assert allowed


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
