"""API keys: shown once at creation, stored as a sha256 and a Mosquitto hash."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from werk.core.errors import NotFound, ValidationFailed
from werk.iam.directory_base import DirectoryBase
from werk.iam.directory_rules import check_name
from werk.iam.models import ApiKeyRecord, PrincipalRecord, utc_now
from werk.iam.mosquitto import mosquitto_hash
from werk.iam.scopes import Principal
from werk.iam.secrets import new_api_key
from werk.iam.views import ApiKeyView

__all__ = ["KeysPart"]


class KeysPart(DirectoryBase):
    """List, create and revoke API keys."""

    def list_api_keys(
        self, actor: Principal, *, principal_id: str | None = None
    ) -> list[ApiKeyView]:
        """The keys of principals the actor may see, newest first."""
        visible = self._visible_orgs(actor)
        statement = (
            select(ApiKeyRecord)
            .join(PrincipalRecord, PrincipalRecord.id == ApiKeyRecord.principal_id)
            .order_by(ApiKeyRecord.created_at.desc(), ApiKeyRecord.id)
        )
        if visible is not None:
            statement = statement.where(PrincipalRecord.org_id.in_(visible))
        if principal_id is not None:
            statement = statement.where(ApiKeyRecord.principal_id == principal_id)
        with self._session() as session:
            return [ApiKeyView.of(r) for r in session.scalars(statement)]

    def create_api_key(
        self,
        actor: Principal,
        *,
        principal_id: str,
        name: str,
        expires_at: datetime | None = None,
    ) -> tuple[ApiKeyView, str]:
        """A new key of a principal: its view, and the full key text (shown this once)."""
        check_name(name, "key name")
        _check_expiry(expires_at)
        key_id, secret, digest = new_api_key()
        broker_hash = mosquitto_hash(secret)
        with self._session() as session:
            owner = self._visible(actor, session, PrincipalRecord, principal_id, admin=True)
            self._check_dominates(actor, session, principal_id)
            record = ApiKeyRecord(
                id=key_id, principal_id=owner.id, name=name, secret_hash=digest,
                mosquitto_hash=broker_hash, created_at=utc_now(), expires_at=expires_at,
            )  # fmt: skip
            session.add(record)
            view, owner_name, org_id = ApiKeyView.of(record), owner.name, owner.org_id
        self._record(actor, "iam.api_key.create", owner_name, org_id, key_id=key_id, name=name)
        self._notify([principal_id])
        return view, secret

    def revoke_api_key(self, actor: Principal, key_id: str) -> None:
        """Revoke a key now; requests and MQTT sessions using it fail from now on."""
        with self._session() as session:
            record = session.get(ApiKeyRecord, key_id)
            if record is None:
                raise NotFound("no such API key", code="not_found")
            owner = self._visible(
                actor, session, PrincipalRecord, record.principal_id, admin=True, what="API key"
            )
            self._check_dominates(actor, session, owner.id)
            if record.revoked_at is None:
                record.revoked_at = utc_now()
            owner_id, owner_name, org_id = owner.id, owner.name, owner.org_id
        self._record(actor, "iam.api_key.revoke", owner_name, org_id, key_id=key_id)
        self._notify([owner_id])


def _check_expiry(expires_at: datetime | None) -> None:
    if expires_at is None:
        return
    if expires_at.tzinfo is None:
        raise ValidationFailed("give the expiry with a timezone", code="bad_expiry")
    if expires_at <= utc_now():
        raise ValidationFailed("the expiry lies in the past", code="bad_expiry")
