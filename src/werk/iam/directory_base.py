"""What every part of the directory shares: storage, tenant checks, grants, audit, listeners.

Tenant rule: an object of an organisation outside the actor's scope answers exactly like
one that does not exist (NotFound), so ids of other tenants cannot be probed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final, TypeVar

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from werk.core.db import session_scope
from werk.core.errors import Conflict, Forbidden, NotFound
from werk.iam.audit import AuditLog
from werk.iam.directory_rules import grantable
from werk.iam.models import (
    BindingRecord,
    GroupMember,
    GroupRecord,
    OrgRecord,
    PrincipalRecord,
    RoleRecord,
)
from werk.iam.permissions import IAM_ADMIN, IAM_READ
from werk.iam.scopes import Grant, Principal, Scope

__all__ = ["ALL_PRINCIPALS", "DirectoryBase", "Listener"]

_LOGGER = logging.getLogger(__name__)

ALL_PRINCIPALS: Final = "*"
Listener = Callable[[str], None]
_Record = TypeVar("_Record", OrgRecord, PrincipalRecord, GroupRecord, RoleRecord, BindingRecord)
_Owned = TypeVar("_Owned", PrincipalRecord, GroupRecord)
_WHAT: Final[dict[type[Any], str]] = {
    OrgRecord: "organisation",
    PrincipalRecord: "principal",
    GroupRecord: "group",
    RoleRecord: "role",
    BindingRecord: "binding",
}


class DirectoryBase:
    """Storage, checks and notifications the directory's parts build on."""

    def __init__(self, sessions: sessionmaker[Session], audit: AuditLog) -> None:
        self._sessions = sessions
        self._audit = audit
        self._listeners: list[Listener] = []
        self._listeners_lock = threading.Lock()

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(principal_id)` after each change of a principal ("*": many)."""
        with self._listeners_lock:
            self._listeners.append(listener)

    def notify(self, principal_ids: set[str] | list[str] | tuple[str, ...]) -> None:
        """Tell the listeners these principals changed (another process changed them)."""
        self._notify(principal_ids)

    def _notify(self, principal_ids: set[str] | list[str] | tuple[str, ...]) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for principal_id in dict.fromkeys(principal_ids):
            for listener in listeners:
                try:
                    listener(principal_id)
                except Exception:
                    _LOGGER.exception("a listener failed on the change of %s", principal_id)

    def _record(
        self, actor: Principal, action: str, target: str, org_id: str, **detail: Any
    ) -> None:
        self._audit.record(
            action=action, outcome="ok", actor=actor, target=target, org_id=org_id, detail=detail
        )

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """A committing session; a clash with a unique constraint becomes Conflict."""
        try:
            with session_scope(self._sessions) as session:
                yield session
        except IntegrityError as exc:
            raise Conflict(
                "this clashes with an existing object (a name already taken?)", code="conflict"
            ) from exc

    # -- tenant checks ------------------------------------------------------------------

    def _visible_orgs(self, actor: Principal) -> frozenset[str] | None:
        """The organisations whose objects the actor sees; None for every one."""
        if actor.org_wide(IAM_READ) or actor.org_wide(IAM_ADMIN):
            return None
        if actor.allows(IAM_READ) or actor.allows(IAM_ADMIN):
            return frozenset({actor.org_id})
        raise Forbidden(f"this needs the permission {IAM_READ!r}", code="forbidden")

    def _check_read(self, actor: Principal, org_id: str, what: str) -> None:
        if actor.allows(IAM_READ, org_id=org_id) or actor.allows(IAM_ADMIN, org_id=org_id):
            return
        if actor.allows(IAM_READ) or actor.allows(IAM_ADMIN):
            raise NotFound(f"no such {what}", code="not_found")
        raise Forbidden(f"this needs the permission {IAM_READ!r}", code="forbidden")

    def _check_admin(self, actor: Principal, org_id: str, what: str) -> None:
        self._check_read(actor, org_id, what)
        if not actor.allows(IAM_ADMIN, org_id=org_id):
            raise Forbidden(f"this needs the permission {IAM_ADMIN!r}", code="forbidden")

    def _check_dominates(self, actor: Principal, session: Session, principal_id: str) -> None:
        """Refuse changing a principal that holds access the actor could not grant."""
        if principal_id == actor.id:
            return
        target = session.get(PrincipalRecord, principal_id)
        org_id = None if target is None else target.org_id
        for grant in self._grants(session, principal_id):
            if not self._may_grant(actor, grant.permissions, grant.scope, org_id):
                raise Forbidden(
                    "this principal holds access you do not hold yourself",
                    code="privilege_escalation",
                )

    @staticmethod
    def _may_grant(
        actor: Principal, permissions: frozenset[str], scope: Scope, org_id: str | None = None
    ) -> bool:
        if scope.org == "any" and not actor.org_wide(IAM_ADMIN):
            return False
        return grantable(actor, sorted(permissions), scope, org_id)

    # -- loading ------------------------------------------------------------------------

    def _get(self, session: Session, model: type[_Record], object_id: str) -> _Record:
        found = session.get(model, object_id)
        if found is None:
            raise NotFound(f"no such {_WHAT[model]}", code="not_found")
        return found

    def _visible(
        self,
        actor: Principal,
        session: Session,
        model: type[_Owned],
        object_id: str,
        *,
        admin: bool = False,
        what: str | None = None,
    ) -> _Owned:
        """A principal or group the actor may see (or administer, with `admin`)."""
        what = what or _WHAT[model]
        record = session.get(model, object_id)
        if record is None:
            raise NotFound(f"no such {what}", code="not_found")
        check = self._check_admin if admin else self._check_read
        check(actor, record.org_id, what)
        return record

    def _grants(self, session: Session, principal_id: str) -> tuple[Grant, ...]:
        """The grants of a principal's own bindings and of its groups' bindings."""
        groups = select(GroupMember.group_id).where(GroupMember.principal_id == principal_id)
        rows = session.execute(
            select(BindingRecord, RoleRecord)
            .join(RoleRecord, RoleRecord.id == BindingRecord.role_id)
            .where(
                or_(BindingRecord.principal_id == principal_id, BindingRecord.group_id.in_(groups))
            )
            .order_by(BindingRecord.created_at, BindingRecord.id)
        ).all()
        return tuple(grant_of(binding, role) for binding, role in rows)

    def _members(self, session: Session, group_id: str) -> tuple[str, ...]:
        return tuple(
            session.scalars(
                select(GroupMember.principal_id)
                .where(GroupMember.group_id == group_id)
                .order_by(GroupMember.principal_id)
            )
        )

    def _bound_principals(self, session: Session, binding: BindingRecord) -> tuple[str, ...]:
        if binding.principal_id is not None:
            return (binding.principal_id,)
        return self._members(session, binding.group_id or "")


def grant_of(binding: BindingRecord, role: RoleRecord) -> Grant:
    """The grant a binding gives: its role's permissions within its scope."""
    layers = binding.layers
    scope = Scope(
        namespace=tuple(binding.namespace),
        layers=tuple(layers) if layers is not None else None,
        org="any" if binding.org_scope == "any" else "own",
    )
    return Grant(role=role.name, permissions=frozenset(role.permissions), scope=scope)
