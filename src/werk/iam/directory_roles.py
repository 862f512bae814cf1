"""Roles: named permission sets; built-in ones are shared by all and cannot change."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from werk.core.errors import Conflict, Forbidden
from werk.iam.directory_base import ALL_PRINCIPALS, DirectoryBase, grant_of
from werk.iam.directory_rules import check_name, check_permissions, check_text
from werk.iam.models import BindingRecord, OrgRecord, RoleRecord, new_id
from werk.iam.permissions import BUILTIN_ROLES
from werk.iam.scopes import Principal, permission_matches
from werk.iam.views import RoleView

__all__ = ["RolesPart"]


class RolesPart(DirectoryBase):
    """List, create, change and delete roles."""

    def list_roles(self, actor: Principal) -> list[RoleView]:
        """The built-in roles and the roles of the organisations the actor may see."""
        visible = self._visible_orgs(actor)
        statement = select(RoleRecord).order_by(RoleRecord.builtin.desc(), RoleRecord.name)
        if visible is not None:
            statement = statement.where(
                or_(RoleRecord.org_id.is_(None), RoleRecord.org_id.in_(visible))
            )
        with self._session() as session:
            return [RoleView.of(r) for r in session.scalars(statement)]

    def get_role(self, actor: Principal, role_id: str) -> RoleView:
        """One role; NotFound outside the actor's scope."""
        with self._session() as session:
            return RoleView.of(self._visible_role(actor, session, role_id))

    def create_role(
        self,
        actor: Principal,
        *,
        org_id: str,
        name: str,
        permissions: Sequence[str],
        description: str = "",
    ) -> RoleView:
        """A new role of an organisation, made only of permissions the actor holds."""
        check_name(name, "role name")
        wanted = check_permissions(permissions)
        check_text(description, "description", max_length=1000)
        _check_held(actor, wanted)
        with self._session() as session:
            org = self._get(session, OrgRecord, org_id)
            self._check_admin(actor, org.id, "organisation")
            self._check_role_name_free(session, org_id, name)
            record = RoleRecord(
                id=new_id(), org_id=org_id, name=name, description=description,
                permissions=list(wanted), builtin=False,
            )  # fmt: skip
            session.add(record)
            view = RoleView.of(record)
        self._record(actor, "iam.role.create", name, org_id, permissions=list(wanted))
        return view

    def update_role(
        self,
        actor: Principal,
        role_id: str,
        *,
        permissions: Sequence[str] | None = None,
        description: str | None = None,
    ) -> RoleView:
        """Change a role's permissions or description; its bindings change with it."""
        wanted = check_permissions(permissions) if permissions is not None else None
        with self._session() as session:
            record = self._changeable_role(actor, session, role_id)
            if wanted is not None:
                _check_held(actor, wanted)
                self._check_bindings(actor, session, record, wanted)
                record.permissions = list(wanted)
            if description is not None:
                record.description = check_text(description, "description", max_length=1000)
            view = RoleView.of(record)
        self._record(
            actor, "iam.role.update", view.name, view.org_id or "", permissions=permissions
        )
        if wanted is not None:
            self._notify([ALL_PRINCIPALS])
        return view

    def delete_role(self, actor: Principal, role_id: str) -> None:
        """Delete a role of an organisation and every binding of it."""
        with self._session() as session:
            record = self._changeable_role(actor, session, role_id)
            self._check_bindings(actor, session, record, ())
            session.execute(delete(BindingRecord).where(BindingRecord.role_id == role_id))
            name, org_id = record.name, record.org_id or ""
            session.delete(record)
        self._record(actor, "iam.role.delete", name, org_id, role_id=role_id)
        self._notify([ALL_PRINCIPALS])

    def _visible_role(self, actor: Principal, session: Session, role_id: str) -> RoleRecord:
        record = self._get(session, RoleRecord, role_id)
        if record.org_id is None:
            self._visible_orgs(actor)  # built-in roles: anyone who reads IAM sees them
        else:
            self._check_read(actor, record.org_id, "role")
        return record

    def _changeable_role(self, actor: Principal, session: Session, role_id: str) -> RoleRecord:
        record = self._visible_role(actor, session, role_id)
        if record.builtin or record.org_id is None:
            raise Forbidden("built-in roles cannot be changed", code="builtin_role")
        self._check_admin(actor, record.org_id, "role")
        return record

    def _check_bindings(
        self, actor: Principal, session: Session, role: RoleRecord, wanted: Iterable[str]
    ) -> None:
        """Refuse when a binding of the role would gain or lose what the actor cannot grant."""
        bindings = session.scalars(select(BindingRecord).where(BindingRecord.role_id == role.id))
        permissions = frozenset((*role.permissions, *wanted))
        for binding in bindings:
            scope = grant_of(binding, role).scope
            if not self._may_grant(actor, permissions, scope, role.org_id):
                raise Forbidden(
                    "a binding of this role reaches further than your own access",
                    code="privilege_escalation",
                )

    @staticmethod
    def _check_role_name_free(session: Session, org_id: str, name: str) -> None:
        taken = select(RoleRecord.id).where(RoleRecord.org_id == org_id, RoleRecord.name == name)
        if name in BUILTIN_ROLES or session.scalars(taken).first():
            raise Conflict(f"the role {name!r} exists already", code="name_taken")


def _check_held(actor: Principal, permissions: Iterable[str]) -> None:
    for permission in permissions:
        if not any(
            permission_matches(pattern, permission)
            for grant in actor.grants
            for pattern in grant.permissions
        ):
            raise Forbidden(
                f"you cannot put {permission!r} in a role: you do not hold it",
                code="privilege_escalation",
                permission=permission,
            )
