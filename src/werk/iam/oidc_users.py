"""Find or create the werk user behind an OpenID Connect identity."""

from __future__ import annotations

import re
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from werk.core.db import session_scope
from werk.core.errors import Forbidden, Unavailable
from werk.core.settings import Settings
from werk.iam.models import BindingRecord, OrgRecord, PrincipalRecord, RoleRecord, new_id, utc_now
from werk.iam.oidc import OidcIdentity

_NAME_CHARS: Final = re.compile(r"[^A-Za-z0-9._@-]")


def provision(sessions: sessionmaker[Session], settings: Settings, who: OidcIdentity) -> str:
    """The id of the user with `who.subject`, created on first login; refuse disabled ones."""
    with session_scope(sessions) as session:
        found = session.scalars(
            select(PrincipalRecord).where(PrincipalRecord.oidc_subject == who.subject)
        ).first()
        if found is not None:
            if found.disabled:
                raise Forbidden("this account is disabled", code="principal_disabled")
            return found.id
        return _create(session, settings, who)


def _create(session: Session, settings: Settings, who: OidcIdentity) -> str:
    org = session.scalars(select(OrgRecord).where(OrgRecord.slug == settings.oidc_org)).first()
    role = session.scalars(
        select(RoleRecord).where(RoleRecord.name == settings.oidc_role, RoleRecord.org_id.is_(None))
    ).first()
    if org is None or role is None:
        raise Unavailable(
            f"single sign-on needs the organisation {settings.oidc_org!r} and the built-in role "
            f"{settings.oidc_role!r}",
            code="oidc_config",
        )
    now = utc_now()
    user = PrincipalRecord(
        id=new_id(), org_id=org.id, kind="user", name=_free_name(session, who.username),
        display_name=who.username, email=who.email, oidc_subject=who.subject,
        created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(user)
    session.add(
        BindingRecord(
            id=new_id(),
            role_id=role.id,
            principal_id=user.id,
            namespace=list(settings.oidc_namespace),
            layers=None,
            org_scope="own",
            created_at=now,
        )
    )
    return user.id


def _free_name(session: Session, wanted: str) -> str:
    base = _NAME_CHARS.sub("-", wanted)[:56] or "sso-user"
    base = base if len(base) >= 2 else f"{base}-user"
    taken = set(
        session.scalars(
            select(PrincipalRecord.name).where(PrincipalRecord.name.startswith(base))
        ).all()
    )
    if base not in taken:
        return base
    return next(f"{base}-{n}" for n in range(2, len(taken) + 3) if f"{base}-{n}" not in taken)
