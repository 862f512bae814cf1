"""Organisations: the operator and its partner tenants."""

from __future__ import annotations

from sqlalchemy import select

from werk.core.errors import Conflict, Forbidden, ValidationFailed
from werk.iam.directory_base import ALL_PRINCIPALS, DirectoryBase
from werk.iam.directory_rules import check_slug, check_text
from werk.iam.models import OrgRecord, new_id, utc_now
from werk.iam.permissions import IAM_ADMIN
from werk.iam.scopes import OrgKind, Principal
from werk.iam.views import OrgView

__all__ = ["OrgsPart"]

_KINDS = frozenset({"operator", "partner"})


class OrgsPart(DirectoryBase):
    """List, read, create and change organisations."""

    def list_orgs(self, actor: Principal) -> list[OrgView]:
        """The organisations the actor may see, by slug."""
        visible = self._visible_orgs(actor)
        statement = select(OrgRecord).order_by(OrgRecord.slug)
        if visible is not None:
            statement = statement.where(OrgRecord.id.in_(visible))
        with self._session() as session:
            return [OrgView.of(r) for r in session.scalars(statement)]

    def get_org(self, actor: Principal, org_id: str) -> OrgView:
        """One organisation; NotFound outside the actor's scope."""
        with self._session() as session:
            record = self._get(session, OrgRecord, org_id)
            self._check_read(actor, record.id, "organisation")
            return OrgView.of(record)

    def create_org(
        self, actor: Principal, *, slug: str, name: str, kind: str = "partner"
    ) -> OrgView:
        """A new organisation; only the operator's organisation-wide administrators."""
        if actor.org_kind is not OrgKind.OPERATOR or not actor.org_wide(IAM_ADMIN):
            raise Forbidden(
                "only the operator's administrators create organisations", code="forbidden"
            )
        if kind not in _KINDS:
            raise ValidationFailed(f"an organisation is operator or partner, not {kind!r}")
        record = OrgRecord(
            id=new_id(), slug=check_slug(slug),
            name=check_text(name, "name", max_length=200, required=True),
            kind=kind, disabled=False, created_at=utc_now(),
        )  # fmt: skip
        with self._session() as session:
            if session.scalars(select(OrgRecord.id).where(OrgRecord.slug == slug)).first():
                raise Conflict(f"the organisation {slug!r} exists already", code="name_taken")
            session.add(record)
            view = OrgView.of(record)
        self._record(actor, "iam.org.create", slug, record.id, kind=kind)
        return view

    def update_org(
        self,
        actor: Principal,
        org_id: str,
        *,
        name: str | None = None,
        disabled: bool | None = None,
    ) -> OrgView:
        """Rename an organisation, or disable / enable every principal in it."""
        with self._session() as session:
            record = self._get(session, OrgRecord, org_id)
            self._check_admin(actor, record.id, "organisation")
            changed_state = disabled is not None and disabled != record.disabled
            if changed_state:
                self._check_may_disable(actor, record)
                record.disabled = bool(disabled)
            if name is not None:
                record.name = check_text(name, "name", max_length=200, required=True)
            view = OrgView.of(record)
        self._record(actor, "iam.org.update", view.slug, view.id, name=name, disabled=disabled)
        if changed_state:
            self._notify([ALL_PRINCIPALS])
        return view

    @staticmethod
    def _check_may_disable(actor: Principal, record: OrgRecord) -> None:
        if not actor.org_wide(IAM_ADMIN):
            raise Forbidden(
                "only the operator's administrators disable organisations", code="forbidden"
            )
        if record.id == actor.org_id:
            raise Conflict("you cannot disable your own organisation", code="own_org")
