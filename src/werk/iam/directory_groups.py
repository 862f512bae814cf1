"""Groups: sets of principals of one organisation that bindings may target."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from werk.core.errors import Conflict, Forbidden, ValidationFailed
from werk.iam.directory_base import DirectoryBase, grant_of
from werk.iam.directory_rules import check_name
from werk.iam.models import (
    BindingRecord,
    GroupMember,
    GroupRecord,
    OrgRecord,
    PrincipalRecord,
    RoleRecord,
    new_id,
)
from werk.iam.scopes import Principal
from werk.iam.views import GroupView

__all__ = ["GroupsPart"]


class GroupsPart(DirectoryBase):
    """List, create and delete groups; add and remove members."""

    def list_groups(self, actor: Principal, *, org_id: str | None = None) -> list[GroupView]:
        """The groups the actor may see, with their members."""
        visible = self._visible_orgs(actor)
        statement = select(GroupRecord).order_by(GroupRecord.name)
        if visible is not None:
            statement = statement.where(GroupRecord.org_id.in_(visible))
        if org_id is not None:
            statement = statement.where(GroupRecord.org_id == org_id)
        with self._session() as session:
            return [
                GroupView.of(r, self._members(session, r.id)) for r in session.scalars(statement)
            ]

    def get_group(self, actor: Principal, group_id: str) -> GroupView:
        """One group; NotFound outside the actor's scope."""
        with self._session() as session:
            record = self._visible(actor, session, GroupRecord, group_id)
            return GroupView.of(record, self._members(session, record.id))

    def create_group(self, actor: Principal, *, org_id: str, name: str) -> GroupView:
        """A new, empty group of an organisation."""
        check_name(name, "group name")
        with self._session() as session:
            org = self._get(session, OrgRecord, org_id)
            self._check_admin(actor, org.id, "organisation")
            taken = select(GroupRecord.id).where(
                GroupRecord.org_id == org_id, GroupRecord.name == name
            )
            if session.scalars(taken).first():
                raise Conflict(f"the group {name!r} exists already", code="name_taken")
            record = GroupRecord(id=new_id(), org_id=org_id, name=name)
            session.add(record)
            view = GroupView.of(record, ())
        self._record(actor, "iam.group.create", name, org_id, group_id=view.id)
        return view

    def add_member(self, actor: Principal, group_id: str, principal_id: str) -> GroupView:
        """Add a principal of the group's organisation; it gains the group's grants."""
        with self._session() as session:
            group = self._changeable_group(actor, session, group_id)
            member = self._visible(actor, session, PrincipalRecord, principal_id, admin=True)
            if member.org_id != group.org_id:
                raise ValidationFailed(
                    "a group holds principals of its own organisation only", code="other_org"
                )
            if principal_id not in self._members(session, group_id):
                session.add(GroupMember(group_id=group_id, principal_id=principal_id))
                session.flush()
            view = GroupView.of(group, self._members(session, group_id))
        self._record(actor, "iam.group.add_member", view.name, view.org_id, member=principal_id)
        self._notify([principal_id])
        return view

    def remove_member(self, actor: Principal, group_id: str, principal_id: str) -> GroupView:
        """Remove a principal from a group; it loses the group's grants."""
        with self._session() as session:
            group = self._changeable_group(actor, session, group_id)
            self._visible(actor, session, PrincipalRecord, principal_id, admin=True)
            session.execute(
                delete(GroupMember).where(
                    GroupMember.group_id == group_id, GroupMember.principal_id == principal_id
                )
            )
            view = GroupView.of(group, self._members(session, group_id))
        self._record(actor, "iam.group.remove_member", view.name, view.org_id, member=principal_id)
        self._notify([principal_id])
        return view

    def delete_group(self, actor: Principal, group_id: str) -> None:
        """Delete a group with its memberships and bindings."""
        with self._session() as session:
            group = self._changeable_group(actor, session, group_id)
            members = self._members(session, group_id)
            session.execute(delete(BindingRecord).where(BindingRecord.group_id == group_id))
            session.execute(delete(GroupMember).where(GroupMember.group_id == group_id))
            name, org_id = group.name, group.org_id
            session.delete(group)
        self._record(actor, "iam.group.delete", name, org_id, group_id=group_id)
        self._notify(members)

    def _changeable_group(self, actor: Principal, session: Session, group_id: str) -> GroupRecord:
        """A group whose every grant the actor could give (so changing it escalates nothing)."""
        group = self._visible(actor, session, GroupRecord, group_id, admin=True)
        rows = session.execute(
            select(BindingRecord, RoleRecord)
            .join(RoleRecord, RoleRecord.id == BindingRecord.role_id)
            .where(BindingRecord.group_id == group_id)
        ).all()
        for binding, role in rows:
            grant = grant_of(binding, role)
            if not self._may_grant(actor, grant.permissions, grant.scope, group.org_id):
                raise Forbidden(
                    "this group grants access you do not hold yourself",
                    code="privilege_escalation",
                )
        return group
