"""The directory: organisations, principals, groups, roles, bindings and API keys.

Every method that changes or reads on behalf of someone takes the acting `Principal`
first, checks `iam:read` / `iam:admin` against the object's organisation, audits what
it changed (`iam.<object>.<verb>`) and tells listeners which principal changed.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from werk.iam.directory_base import ALL_PRINCIPALS, Listener
from werk.iam.directory_bindings import BindingsPart
from werk.iam.directory_groups import GroupsPart
from werk.iam.directory_keys import KeysPart
from werk.iam.directory_orgs import OrgsPart
from werk.iam.directory_principals import PrincipalsPart
from werk.iam.directory_roles import RolesPart
from werk.iam.models import OrgRecord, PrincipalRecord
from werk.iam.scopes import OrgKind, Principal, PrincipalKind

__all__ = ["ALL_PRINCIPALS", "Directory", "Listener"]


class Directory(OrgsPart, PrincipalsPart, GroupsPart, RolesPart, BindingsPart, KeysPart):
    """Who exists, what they may do where, and the keys they hold."""

    def load_principal(self, principal_id: str) -> Principal | None:
        """The principal with its grants; None when missing, disabled or its org disabled."""
        with self._session() as session:
            found = session.execute(
                select(PrincipalRecord, OrgRecord)
                .join(OrgRecord, OrgRecord.id == PrincipalRecord.org_id)
                .where(PrincipalRecord.id == principal_id)
            ).first()
            if found is None or found[0].disabled or found[1].disabled:
                return None
            return self._principal_of(session, found[0], found[1])

    def enabled_principals(self) -> list[Principal]:
        """Every principal that may act now (enabled, in an enabled organisation)."""
        with self._session() as session:
            rows = session.execute(
                select(PrincipalRecord, OrgRecord)
                .join(OrgRecord, OrgRecord.id == PrincipalRecord.org_id)
                .where(PrincipalRecord.disabled.is_(False), OrgRecord.disabled.is_(False))
                .order_by(PrincipalRecord.name)
            ).all()
            return [self._principal_of(session, record, org) for record, org in rows]

    def find_by_name(self, name: str) -> str | None:
        """The id of the principal called `name` (any kind), None if there is none."""
        with self._session() as session:
            return session.scalars(
                select(PrincipalRecord.id).where(PrincipalRecord.name == name)
            ).first()

    def _principal_of(self, session: Session, record: PrincipalRecord, org: OrgRecord) -> Principal:
        group, node = record.sparkplug_group, record.sparkplug_node
        return Principal(
            id=record.id,
            kind=PrincipalKind(record.kind),
            name=record.name,
            org_id=org.id,
            org_kind=OrgKind(org.kind),
            grants=self._grants(session, record.id),
            sparkplug=(group, node) if group is not None and node is not None else None,
        )
