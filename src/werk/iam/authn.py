"""Authentication: passwords, tokens, API keys and web sessions turned into principals.

`verify` is on the path of every request and touches no database in the common case:
signatures of repeated tokens, principals, API keys and revoked token ids are held in
memory, and `forget` (called by IAM after any change of a principal) drops what changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final, NoReturn, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from werk.core.db import session_scope
from werk.core.errors import Forbidden, NotFound, Unauthenticated
from werk.core.settings import Settings
from werk.iam.audit import AuditLog
from werk.iam.authn_cache import ApiKeyStore, PrincipalCache, RevokedTokens
from werk.iam.authn_keys import SigningKeyStore
from werk.iam.authn_login import PasswordCheck
from werk.iam.authn_refresh import Issued, RefreshRow, RefreshStore
from werk.iam.authn_sessions import SessionStore
from werk.iam.changes import Announce, Change, silent
from werk.iam.models import PrincipalRecord, new_id
from werk.iam.permissions import IAM_ADMIN, IAM_READ
from werk.iam.scopes import Principal
from werk.iam.secrets import is_api_key, parse_api_key
from werk.iam.tokens import IAT_LEEWAY_S
from werk.iam.views import CredentialView, SigningKeyView

__all__ = ["Authenticator", "PrincipalSource", "TokenPair", "WebSession"]

_NEVER: Final = float("-inf")


class PrincipalSource(Protocol):
    """Where principals come from (`werk.iam.directory.Directory`)."""

    def load_principal(self, principal_id: str) -> Principal | None:
        """The principal with its grants; None when missing or disabled."""
        ...


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What the token endpoint hands out."""

    access_token: str
    expires_in: int
    expires_at: datetime
    scope: str
    refresh_token: str | None = None
    token_type: str = "Bearer"


@dataclass(frozen=True, slots=True)
class WebSession:
    """A web session just opened: the cookie value (given out once) and its CSRF token."""

    id: str
    cookie: str
    csrf: str
    expires_at: datetime
    principal: Principal


def _scope(principal: Principal) -> str:
    return " ".join(sorted({p for g in principal.grants for p in g.permissions}))


class Authenticator:
    """Log principals in, issue and check their credentials, and revoke them."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        directory: PrincipalSource,
        audit: AuditLog,
        *,
        announce: Announce = silent,
        clock: Callable[[], float] = time.time,
    ) -> None:
        s = settings
        self._announce = announce
        self._sessions = sessions
        self._directory = directory
        self._audit = audit
        self._clock = clock
        self._ttl_s = s.access_token_ttl_s
        self._keys = SigningKeyStore(
            sessions, issuer=s.token_issuer, token_ttl_s=s.access_token_ttl_s, clock=clock
        )
        self._principals = PrincipalCache(self._load_principal, clock)
        self._api_keys = ApiKeyStore(sessions, clock)
        self._revoked = RevokedTokens(sessions, clock)
        self._refresh = RefreshStore(
            sessions, idle_s=s.refresh_token_idle_s, max_s=s.refresh_token_max_s, clock=clock
        )
        self._web = SessionStore(
            sessions, idle_s=s.session_idle_s, max_s=s.session_max_s, clock=clock
        )
        self._passwords = PasswordCheck(sessions, settings, audit, clock)

    # -- logging in and token issue ------------------------------------------------------

    def login_password(self, username: str, password: str, *, ip: str) -> Principal:
        """The user with this password; Unauthenticated, or TooManyAttempts while locked."""
        principal_id = self._passwords.check(username, password, ip)
        principal = self._principals.get(principal_id).principal
        if principal is None:
            self._audit.record(
                action="auth.login", outcome="denied", actor_name=username, target=username,
                ip=ip, detail={"reason": "disabled"},
            )  # fmt: skip
            raise Unauthenticated("this account is disabled", code="principal_disabled")
        principal = principal.with_credential(None, "password")
        self._audit.record(action="auth.login", outcome="ok", actor=principal, ip=ip)
        return principal

    def issue(self, principal: Principal, *, ip: str) -> TokenPair:
        """An access token and the first refresh token of a new family."""
        issued = self._refresh.start(principal.id, ip)
        pair = self.access_token(principal, method=principal.auth_method, family=issued.family_id)
        self._audit.record(
            action="auth.token", outcome="ok", actor=principal, ip=ip,
            detail={"grant": principal.auth_method, "family": issued.family_id},
        )  # fmt: skip
        return replace(pair, refresh_token=issued.token)

    def access_token(
        self, principal: Principal, *, method: str, family: str | None = None
    ) -> TokenPair:
        """An access token alone, unaudited: callers record why they issue it.

        `family` (claim `sid`) names the refresh-token family the token came from, so
        ending that login also ends its access tokens.
        """
        now = self._clock()
        expires = int(now) + self._ttl_s
        claims: dict[str, Any] = {
            "sub": principal.id, "org": principal.org_id, "kind": str(principal.kind),
            "jti": new_id(), "iat": now, "exp": expires, "auth": method,
        }  # fmt: skip
        if family is not None:
            claims["sid"] = family
        token = self._keys.signer().issue(claims)
        at = datetime.fromtimestamp(expires, UTC)
        return TokenPair(token, expires - int(now), at, _scope(principal))

    def client_credentials(self, client_id: str, client_secret: str, *, ip: str) -> TokenPair:
        """An access token for a principal (client_id = its name) holding the API key."""
        try:
            principal = self._client(client_id, client_secret)
        except Unauthenticated as exc:
            self._audit.record(
                action="auth.token", outcome="failed", actor_name=client_id, target=client_id,
                ip=ip, detail={"grant": "client_credentials", "reason": exc.code},
            )  # fmt: skip
            raise
        pair = self.access_token(principal, method="client_credentials")
        self._audit.record(
            action="auth.token", outcome="ok", actor=principal, ip=ip,
            detail={"grant": "client_credentials", "key": principal.credential_id},
        )  # fmt: skip
        return pair

    def _client(self, client_id: str, client_secret: str) -> Principal:
        principal = self._verify_api_key(client_secret)
        if principal.name != client_id:
            raise Unauthenticated("the client secret belongs to another client", code="bad_client")
        return principal

    def refresh(self, refresh_token: str, *, ip: str) -> TokenPair:
        """A new access token and the next refresh token; reuse revokes the whole family."""
        row = self._refresh.find(refresh_token)
        try:
            principal, issued = self._rotate(row, ip)
        except Unauthenticated as exc:
            self._audit.record(
                action="auth.refresh", outcome="failed", ip=ip,
                target=row.family_id if row else "", detail={"reason": exc.code},
            )  # fmt: skip
            raise
        pair = self.access_token(principal, method="refresh_token", family=issued.family_id)
        self._audit.record(
            action="auth.refresh", outcome="ok", actor=principal, ip=ip, target=issued.family_id
        )
        return replace(pair, refresh_token=issued.token)

    def _rotate(self, row: RefreshRow | None, ip: str) -> tuple[Principal, Issued]:
        if row is None:
            raise Unauthenticated("the refresh token is unknown", code="bad_refresh_token")
        if row.revoked_at is not None:
            raise Unauthenticated("the refresh token has been revoked", code="token_revoked")
        if row.used_at is not None:
            self._reused(row, ip)
        if row.expires_at.timestamp() <= self._clock():
            raise Unauthenticated("the refresh token has expired", code="token_expired")
        known = self._principals.get(row.principal_id)
        if known.principal is None:
            raise Unauthenticated("this account is disabled", code="principal_disabled")
        if row.created_at.timestamp() < known.valid_after:
            raise Unauthenticated("the refresh token has been revoked", code="token_revoked")
        issued = self._refresh.rotate(row, ip)
        if issued is None:
            self._reused(row, ip)
        return known.principal.with_credential(row.family_id, "refresh_token"), issued

    def _reused(self, row: RefreshRow, ip: str) -> NoReturn:
        revoked = self._end_family(row.family_id)
        self._audit.record(
            action="auth.refresh_reuse", outcome="denied", target=row.family_id, ip=ip,
            detail={"principal_id": row.principal_id, "revoked": revoked},
        )  # fmt: skip
        raise Unauthenticated(
            "this refresh token was used before: every token of its login is revoked",
            code="refresh_reused",
        )

    # -- verification ------------------------------------------------------------------

    def verify(self, credential: str) -> Principal:
        """The principal behind an access token or API key; Unauthenticated otherwise."""
        if is_api_key(credential):
            return self._verify_api_key(credential)
        claims = self._keys.verify(credential)
        jti, family = claims["jti"], claims.get("sid")
        if jti in self._revoked or (family is not None and family in self._revoked):
            raise Unauthenticated("the access token has been revoked", code="token_revoked")
        known = self._principals.get(str(claims["sub"]))
        if known.principal is None:
            raise Unauthenticated("this account is disabled", code="principal_disabled")
        if claims["iat"] < known.valid_after:
            raise Unauthenticated("the access token has been revoked", code="token_revoked")
        return known.principal.with_credential(str(jti), "token")

    def _verify_api_key(self, text: str) -> Principal:
        parsed = parse_api_key(text)
        if parsed is None:
            raise Unauthenticated("not a well-formed werk API key", code="bad_api_key")
        principal_id = self._api_keys.check(*parsed)
        principal = self._principals.get(principal_id).principal
        if principal is None:
            raise Unauthenticated("this account is disabled", code="principal_disabled")
        return principal.with_credential(parsed[0], "api_key")

    def verify_mqtt(self, username: str, password: str) -> Principal | None:
        """The principal named `username` when `password` is one of its API keys."""
        try:
            principal = self._verify_api_key(password)
        except Unauthenticated:
            return None
        return principal if principal.name == username else None

    def forget(self, principal_id: str) -> None:
        """Drop what is held in memory about a principal ("*": about every one)."""
        self._principals.forget(principal_id)
        self._api_keys.forget(principal_id)
        self._web.forget(principal_id)

    def apply(self, change: Change) -> None:
        """Apply a token, session or signing-key change another process made."""
        if change.kind == "token" and change.expires_at is not None:
            self._revoked.note(change.subject, change.expires_at)
        elif change.kind == "session":
            self._web.forget(change.subject)
        elif change.kind == "keys":
            self._keys.reload()

    def _load_principal(self, principal_id: str) -> tuple[Principal | None, float]:
        principal = self._directory.load_principal(principal_id)
        if principal is None:
            return None, _NEVER
        query = select(PrincipalRecord.tokens_valid_after).where(PrincipalRecord.id == principal_id)
        with session_scope(self._sessions) as session:
            after = session.scalar(query)
        return principal, _NEVER if after is None else after.timestamp()

    # -- revocation ------------------------------------------------------------------

    def revoke(self, token: str) -> None:
        """Revoke an access token (by its jti) or a refresh token's family; ignore others."""
        if parse_api_key(token) is not None:  # a whole key: a refresh token may begin "wk_"
            return
        try:
            claims = self._keys.verify(token)
        except Unauthenticated:
            self._revoke_refresh(token)
            return
        self._revoked.add(str(claims["jti"]), float(claims["exp"]))
        self._announce("token", str(claims["jti"]), float(claims["exp"]))
        self._audit.record(
            action="auth.revoke", outcome="ok", target=str(claims["jti"]),
            detail={"kind": "access", "principal_id": claims["sub"]},
        )  # fmt: skip

    def _end_family(self, family_id: str) -> int:
        """Revoke a refresh-token family and the access tokens issued from it."""
        revoked = self._refresh.revoke_family(family_id)
        # Its access tokens live at most one lifetime from now, plus the leeway granted to
        # the clock of the process that signed them; held as revoked that long.
        ends = self._clock() + self._ttl_s + IAT_LEEWAY_S
        self._revoked.add(family_id, ends)
        self._announce("token", family_id, ends)
        return revoked

    def _revoke_refresh(self, token: str) -> None:
        row = self._refresh.find(token)
        if row is None:
            return
        self._end_family(row.family_id)
        self._audit.record(
            action="auth.revoke", outcome="ok", target=row.family_id,
            detail={"kind": "refresh", "principal_id": row.principal_id},
        )  # fmt: skip

    def list_credentials(self, actor: Principal, principal_id: str) -> list[CredentialView]:
        """The principal's live refresh-token families and web sessions."""
        self._check_actor(actor, principal_id, IAM_READ)
        return self._refresh.families(principal_id) + self._web.listing(principal_id)

    def revoke_credential(self, actor: Principal, credential_id: str) -> None:
        """Revoke one refresh-token family or web session by its id."""
        owner = self._refresh.principal_of(credential_id)
        kind = "refresh"
        if owner is None:
            owner, kind = self._web.principal_of(credential_id), "session"
        if owner is None:
            raise NotFound("no such credential", code="not_found", id=credential_id)
        self._check_actor(actor, owner, IAM_ADMIN)
        if kind == "refresh":
            self._end_family(credential_id)
        else:
            self._web.revoke(credential_id)
            self._announce("session", owner, None)
        self._audit.record(
            action="auth.credential.revoke", outcome="ok", actor=actor, target=credential_id,
            detail={"kind": kind, "principal_id": owner},
        )  # fmt: skip

    def _check_actor(self, actor: Principal, principal_id: str, permission: str) -> None:
        if actor.id == principal_id:
            return
        with session_scope(self._sessions) as session:
            org_id = session.scalar(
                select(PrincipalRecord.org_id).where(PrincipalRecord.id == principal_id)
            )
        visible = org_id is not None and (
            actor.allows(IAM_READ, org_id=org_id) or actor.allows(permission, org_id=org_id)
        )
        if not visible:
            raise NotFound("no such principal", code="not_found", id=principal_id)
        if not actor.allows(permission, org_id=org_id):
            raise Forbidden(f"this needs the permission {permission!r}", code="forbidden")

    # -- web sessions ------------------------------------------------------------------

    def open_session(self, principal: Principal, *, ip: str, user_agent: str) -> WebSession:
        """Open a web session for a principal that just logged in."""
        cookie, live = self._web.open(principal.id, ip=ip, user_agent=user_agent)
        self._audit.record(
            action="auth.session.open", outcome="ok", actor=principal, ip=ip,
            user_agent=user_agent, target=live.id,
        )  # fmt: skip
        expires = datetime.fromtimestamp(live.expires, UTC)
        holder = principal.with_credential(live.id, "session")
        return WebSession(live.id, cookie, live.csrf, expires, holder)

    def verify_session(self, cookie: str, *, touch: bool = True) -> tuple[Principal, str]:
        """The principal of a session cookie and the session's CSRF token.

        `touch` counts this as the user's activity (restarting the idle time); a check
        the user did not cause (an open page's periodic sweep) passes False.
        """
        live = self._web.check(cookie, touch=touch)
        known = self._principals.get(live.principal_id)
        if known.principal is None:
            raise Unauthenticated("this account is disabled", code="principal_disabled")
        if live.created < known.valid_after:
            raise Unauthenticated("the session has been revoked", code="token_revoked")
        return known.principal.with_credential(live.id, "session"), live.csrf

    def close_session(self, cookie: str) -> None:
        """End the session of a cookie (logout); an unknown cookie is no error."""
        ended = self._web.close(cookie)
        if ended is not None:
            self._announce("session", ended.principal_id, None)
            self._audit.record(
                action="auth.session.close", outcome="ok", target=ended.id,
                detail={"principal_id": ended.principal_id},
            )  # fmt: skip

    # -- signing keys ------------------------------------------------------------------

    def rotate_signing_key(self, actor: Principal) -> str:
        """Sign with a new key from now on; return its key id."""
        if not actor.org_wide(IAM_ADMIN):
            raise Forbidden("only operator administrators rotate signing keys", code="forbidden")
        kid, retired = self._keys.rotate()
        self._announce("keys", kid, None)
        self._audit.record(
            action="iam.signing_key.rotate", outcome="ok", actor=actor, target=kid,
            detail={"retired": retired},
        )  # fmt: skip
        return kid

    def signing_keys(self, actor: Principal) -> list[SigningKeyView]:
        """The signing and verification keys, without private parts."""
        if not actor.org_wide(IAM_READ):
            raise Forbidden("only operator administrators see signing keys", code="forbidden")
        return self._keys.views()

    def jwks(self) -> dict[str, Any]:
        """The public verification keys as a JWK set."""
        return self._keys.signer().jwks()
