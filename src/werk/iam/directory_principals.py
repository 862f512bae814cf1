"""Principals: users, service accounts and devices, their passwords and revocation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from werk.core.errors import Conflict, ValidationFailed
from werk.iam.directory_base import DirectoryBase
from werk.iam.directory_rules import (
    check_email,
    check_name,
    check_password,
    check_text,
    generate_password,
)
from werk.iam.models import (
    OrgRecord,
    PrincipalRecord,
    RefreshTokenRecord,
    WebSessionRecord,
    new_id,
    utc_now,
)
from werk.iam.passwords import hash_password
from werk.iam.scopes import Principal
from werk.iam.views import PrincipalView

__all__ = ["PrincipalsPart"]

_KINDS = frozenset({"user", "service", "device"})


class PrincipalsPart(DirectoryBase):
    """List, read, create and change principals."""

    def list_principals(
        self, actor: Principal, *, kind: str | None = None, org_id: str | None = None
    ) -> list[PrincipalView]:
        """The principals the actor may see, by name; optionally of one kind or organisation."""
        visible = self._visible_orgs(actor)
        statement = select(PrincipalRecord).order_by(PrincipalRecord.name)
        if visible is not None:
            statement = statement.where(PrincipalRecord.org_id.in_(visible))
        if kind is not None:
            statement = statement.where(PrincipalRecord.kind == kind)
        if org_id is not None:
            statement = statement.where(PrincipalRecord.org_id == org_id)
        with self._session() as session:
            return [PrincipalView.of(r) for r in session.scalars(statement)]

    def get_principal(self, actor: Principal, principal_id: str) -> PrincipalView:
        """One principal; NotFound outside the actor's scope."""
        with self._session() as session:
            return PrincipalView.of(self._visible(actor, session, PrincipalRecord, principal_id))

    def create_user(
        self,
        actor: Principal,
        *,
        org_id: str,
        name: str,
        display_name: str = "",
        email: str | None = None,
        password: str | None = None,
    ) -> tuple[PrincipalView, str | None]:
        """A new user; without a password one is generated and returned this once."""
        generated: str | None = None
        if password is None:
            secret = generated = generate_password()
        else:
            secret = check_password(password, name)
        view = self._create(
            actor, org_id=org_id, kind="user", name=name, display_name=display_name,
            email=check_email(email), password_hash=hash_password(secret),
        )  # fmt: skip
        return view, generated

    def create_service_account(
        self, actor: Principal, *, org_id: str, name: str, display_name: str = ""
    ) -> PrincipalView:
        """A new service account: an OAuth2 client whose secret is one of its API keys."""
        return self._create(
            actor, org_id=org_id, kind="service", name=name, display_name=display_name
        )

    def create_device(
        self,
        actor: Principal,
        *,
        org_id: str,
        name: str,
        display_name: str = "",
        sparkplug: tuple[str, str] | None = None,
    ) -> PrincipalView:
        """A new device; an edge node names its Sparkplug (group id, edge node id)."""
        if sparkplug is not None:
            _check_sparkplug(sparkplug)
        return self._create(
            actor, org_id=org_id, kind="device", name=name, display_name=display_name,
            sparkplug_group=sparkplug[0] if sparkplug else None,
            sparkplug_node=sparkplug[1] if sparkplug else None,
        )  # fmt: skip

    def _create(
        self,
        actor: Principal,
        *,
        org_id: str,
        kind: str,
        name: str,
        display_name: str,
        **fields: Any,
    ) -> PrincipalView:
        check_name(name)
        check_text(display_name, "display name", max_length=200)
        with self._session() as session:
            org = self._get(session, OrgRecord, org_id)
            self._check_admin(actor, org.id, "organisation")
            _check_partner_group(org, fields.get("sparkplug_group"))
            self._check_free(session, name, fields)
            now = utc_now()
            record = PrincipalRecord(
                id=new_id(), org_id=org.id, kind=kind, name=name, display_name=display_name,
                disabled=False, failed_logins=0, created_at=now, updated_at=now, **fields,
            )  # fmt: skip
            session.add(record)
            view = PrincipalView.of(record)
        self._record(actor, f"iam.{_NOUN[kind]}.create", name, org_id, principal_id=view.id)
        return view

    @staticmethod
    def _check_free(session: Session, name: str, fields: dict[str, Any]) -> None:
        if session.scalars(select(PrincipalRecord.id).where(PrincipalRecord.name == name)).first():
            raise Conflict(f"the name {name!r} is taken", code="name_taken", name=name)
        group, node = fields.get("sparkplug_group"), fields.get("sparkplug_node")
        if (
            group is not None
            and session.scalars(
                select(PrincipalRecord.id).where(
                    PrincipalRecord.sparkplug_group == group, PrincipalRecord.sparkplug_node == node
                )
            ).first()
        ):
            raise Conflict(
                f"another device is the Sparkplug edge node {group}/{node}", code="node_taken"
            )

    def update_principal(
        self,
        actor: Principal,
        principal_id: str,
        *,
        display_name: str | None = None,
        email: str | None = None,
        disabled: bool | None = None,
    ) -> PrincipalView:
        """Change the display name or email, or disable / enable the principal."""
        with self._session() as session:
            record = self._changeable(actor, session, principal_id)
            if disabled is not None and disabled and record.id == actor.id:
                raise Conflict("you cannot disable yourself", code="own_principal")
            changed = disabled is not None and disabled != record.disabled
            if display_name is not None:
                record.display_name = check_text(display_name, "display name", max_length=200)
            if email is not None:
                record.email = check_email(email) if email else None
            if disabled is not None:
                record.disabled = disabled
            record.updated_at = utc_now()
            view = PrincipalView.of(record)
        action = "update" if not changed else ("disable" if disabled else "enable")
        self._record(actor, f"iam.{_NOUN[view.kind]}.{action}", view.name, view.org_id)
        if changed:
            self._notify([view.id])
        return view

    def set_password(self, actor: Principal, principal_id: str, password: str) -> None:
        """Set a user's password (at least 12 characters, not containing the name)."""
        with self._session() as session:
            record = self._changeable(actor, session, principal_id)
            if record.kind != "user":
                raise ValidationFailed("only users have passwords", code="not_a_user")
            record.password_hash = hash_password(check_password(password, record.name))
            record.failed_logins, record.locked_until = 0, None
            _end_sessions(session, record, utc_now())  # whoever knew the old one is out
            name, org_id = record.name, record.org_id
        self._record(actor, "iam.user.password", name, org_id, principal_id=principal_id)
        self._notify([principal_id])

    def revoke_all(self, actor: Principal, principal_id: str) -> None:
        """End every token, refresh family and web session of the principal now."""
        with self._session() as session:
            record = self._changeable(actor, session, principal_id)
            _end_sessions(session, record, utc_now())
            name, org_id = record.name, record.org_id
        self._record(actor, "iam.principal.revoke_all", name, org_id, principal_id=principal_id)
        self._notify([principal_id])

    def _changeable(self, actor: Principal, session: Session, principal_id: str) -> PrincipalRecord:
        record = self._visible(actor, session, PrincipalRecord, principal_id, admin=True)
        self._check_dominates(actor, session, principal_id)
        return record


_NOUN = {"user": "user", "service": "service_account", "device": "device"}


def _end_sessions(session: Session, record: PrincipalRecord, now: datetime) -> None:
    """Make every access token, refresh family and web session of `record` invalid."""
    record.tokens_valid_after = now
    record.updated_at = now
    for model in (RefreshTokenRecord, WebSessionRecord):
        session.execute(
            update(model)
            .where(model.principal_id == record.id, model.revoked_at.is_(None))
            .values(revoked_at=now)
        )


def _check_sparkplug(sparkplug: tuple[str, str]) -> None:
    for part in sparkplug:
        if not part or len(part) > 256 or any(c in part for c in "/+#"):
            raise ValidationFailed(
                f"a Sparkplug group or edge node id must not be empty or hold / + #: {part!r}",
                code="bad_sparkplug_id",
            )


def _check_partner_group(org: OrgRecord, group: str | None) -> None:
    """Keep a partner's edge nodes in a Sparkplug group of its own: the org's slug."""
    if group is not None and org.kind == "partner" and group != org.slug:
        raise ValidationFailed(
            f"a partner's edge nodes use its slug {org.slug!r} as Sparkplug group id",
            code="sparkplug_group",
        )
