"""Bindings: a role given to a principal or a group within a scope."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from werk.core.errors import Conflict, NotFound, ValidationFailed
from werk.iam.directory_base import DirectoryBase, grant_of
from werk.iam.directory_rules import check_grantable, check_layers, check_namespace
from werk.iam.models import (
    BindingRecord,
    GroupRecord,
    OrgRecord,
    PrincipalRecord,
    RoleRecord,
    new_id,
    utc_now,
)
from werk.iam.scopes import Principal, Scope
from werk.iam.views import BindingView

__all__ = ["BindingsPart"]

_TARGET_ORG = func.coalesce(PrincipalRecord.org_id, GroupRecord.org_id)


class BindingsPart(DirectoryBase):
    """List, create and delete bindings."""

    def list_bindings(
        self, actor: Principal, *, principal_id: str | None = None, group_id: str | None = None
    ) -> list[BindingView]:
        """The bindings of principals and groups the actor may see."""
        visible = self._visible_orgs(actor)
        statement = _bindings_query()
        if visible is not None:
            statement = statement.where(_TARGET_ORG.in_(visible))
        if principal_id is not None:
            statement = statement.where(BindingRecord.principal_id == principal_id)
        if group_id is not None:
            statement = statement.where(BindingRecord.group_id == group_id)
        with self._session() as session:
            return [BindingView.of(b, role, org) for b, role, org in session.execute(statement)]

    def create_binding(
        self,
        actor: Principal,
        *,
        role_id: str,
        principal_id: str | None = None,
        group_id: str | None = None,
        namespace: Sequence[str] = ("#",),
        layers: Sequence[str] | None = None,
        org_scope: str = "own",
    ) -> BindingView:
        """Give a role to a principal or a group; never more than the actor holds itself."""
        if (principal_id is None) == (group_id is None):
            raise ValidationFailed(
                "a binding targets exactly one principal or one group", code="bad_target"
            )
        if org_scope not in ("own", "any"):
            raise ValidationFailed(f"org_scope is own or any, not {org_scope!r}", code="bad_scope")
        scope = Scope(
            check_namespace(namespace), check_layers(layers), "any" if org_scope == "any" else "own"
        )
        with self._session() as session:
            org, affected = self._target(actor, session, principal_id, group_id)
            role = self._role_for(actor, session, role_id, org)
            check_grantable(actor, sorted(role.permissions), scope, org.id)
            if scope.org == "any" and org.kind != "operator":
                raise ValidationFailed(
                    "only principals of the operator reach every organisation", code="bad_scope"
                )
            record = self._new_binding(session, role, principal_id, group_id, scope)
            view = BindingView.of(record, role.name, org.id)
        self._record(actor, "iam.binding.create", role.name, org.id, **_detail(view))
        self._notify(affected)
        return view

    def delete_binding(self, actor: Principal, binding_id: str) -> None:
        """Take a role away; only one the actor could have given."""
        with self._session() as session:
            binding = self._get(session, BindingRecord, binding_id)
            org, affected = self._target(
                actor, session, binding.principal_id, binding.group_id, "binding"
            )
            role = self._get(session, RoleRecord, binding.role_id)
            grant = grant_of(binding, role)
            check_grantable(actor, sorted(grant.permissions), grant.scope, org.id)
            view = BindingView.of(binding, role.name, org.id)
            session.delete(binding)
        self._record(actor, "iam.binding.delete", role.name, org.id, **_detail(view))
        self._notify(affected)

    def _target(
        self,
        actor: Principal,
        session: Session,
        principal_id: str | None,
        group_id: str | None,
        what: str | None = None,
    ) -> tuple[OrgRecord, tuple[str, ...]]:
        """The organisation of a binding's target and the principals it affects."""
        if principal_id is not None:
            principal = self._visible(
                actor, session, PrincipalRecord, principal_id, admin=True, what=what
            )
            return self._get(session, OrgRecord, principal.org_id), (principal.id,)
        group = self._visible(actor, session, GroupRecord, group_id or "", admin=True, what=what)
        return self._get(session, OrgRecord, group.org_id), self._members(session, group.id)

    def _role_for(
        self, actor: Principal, session: Session, role_id: str, org: OrgRecord
    ) -> RoleRecord:
        role = self._get(session, RoleRecord, role_id)
        if role.org_id is None:
            return role
        self._check_read(actor, role.org_id, "role")
        if role.org_id != org.id:
            raise NotFound("no such role in the target's organisation", code="not_found")
        return role

    @staticmethod
    def _new_binding(
        session: Session,
        role: RoleRecord,
        principal_id: str | None,
        group_id: str | None,
        scope: Scope,
    ) -> BindingRecord:
        layers = list(scope.layers) if scope.layers is not None else None
        same = select(BindingRecord).where(
            BindingRecord.role_id == role.id,
            BindingRecord.principal_id.is_(None)
            if principal_id is None
            else BindingRecord.principal_id == principal_id,
            BindingRecord.group_id.is_(None)
            if group_id is None
            else BindingRecord.group_id == group_id,
            BindingRecord.org_scope == scope.org,
        )
        for existing in session.scalars(same):
            if tuple(existing.namespace) == scope.namespace and existing.layers == layers:
                raise Conflict("this binding exists already", code="binding_exists")
        record = BindingRecord(
            id=new_id(), role_id=role.id, principal_id=principal_id, group_id=group_id,
            namespace=list(scope.namespace), layers=layers, org_scope=scope.org,
            created_at=utc_now(),
        )  # fmt: skip
        session.add(record)
        return record


def _bindings_query() -> Any:
    return (
        select(BindingRecord, RoleRecord.name, _TARGET_ORG)
        .join(RoleRecord, RoleRecord.id == BindingRecord.role_id)
        .outerjoin(PrincipalRecord, PrincipalRecord.id == BindingRecord.principal_id)
        .outerjoin(GroupRecord, GroupRecord.id == BindingRecord.group_id)
        .order_by(BindingRecord.created_at, BindingRecord.id)
    )


def _detail(view: BindingView) -> dict[str, Any]:
    return {
        "binding_id": view.id,
        "principal_id": view.principal_id,
        "group_id": view.group_id,
        "namespace": list(view.namespace),
        "layers": list(view.layers) if view.layers is not None else None,
        "org_scope": view.org_scope,
    }
