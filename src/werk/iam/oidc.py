"""Web login through an external OpenID Connect provider (Keycloak, Entra ID, ...).

Authorization-code flow with PKCE, state and nonce. The provider's ID token is verified
against its JWKS (signature, issuer, audience, expiry, nonce). A user is found by the
token's `sub`; an unknown one is created in the configured organisation with the
configured role, so access stays decided by werk's own roles and scopes.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

import httpx
import jwt

from werk.core.errors import Unauthenticated, Unavailable
from werk.core.settings import Settings
from werk.iam.secrets import new_token

_LOGGER = logging.getLogger(__name__)
_TIMEOUT_S: Final = 5.0
_PENDING_TTL_S: Final = 600.0
_PENDING_MAX: Final = 10_000
_ALGORITHMS: Final = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"]


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """The endpoints a provider's discovery document names."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclass(frozen=True, slots=True)
class _Pending:
    verifier: str
    nonce: str
    redirect_uri: str
    next_path: str
    created: float


@dataclass(frozen=True, slots=True)
class OidcIdentity:
    """Who the provider says logged in."""

    subject: str
    username: str
    email: str | None
    next_path: str


class OidcClient:
    """Start and finish logins at the configured provider."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._metadata: ProviderMetadata | None = None
        self._jwks: jwt.PyJWKClient | None = None
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether an issuer and client id are configured."""
        return bool(self._settings.oidc_issuer and self._settings.oidc_client_id)

    def authorization_url(self, redirect_uri: str, next_path: str) -> str:
        """Where to send the browser; remembers state, nonce and PKCE verifier."""
        meta = self.metadata()
        state, nonce, verifier = new_token(), new_token(), new_token(48)
        with self._lock:
            self._forget_stale()
            self._pending[state] = _Pending(
                verifier, nonce, redirect_uri, next_path, time.monotonic()
            )
        query = {
            "response_type": "code",
            "client_id": self._settings.oidc_client_id or "",
            "redirect_uri": redirect_uri,
            "scope": "openid profile email",
            "state": state,
            "nonce": nonce,
            "code_challenge": _challenge(verifier),
            "code_challenge_method": "S256",
        }
        return f"{meta.authorization_endpoint}?{urlencode(query)}"

    def finish(self, code: str, state: str) -> OidcIdentity:
        """Exchange the code and verify the ID token; refuse unknown or replayed states."""
        with self._lock:
            pending = self._pending.pop(state, None)
        if pending is None or time.monotonic() - pending.created > _PENDING_TTL_S:
            raise Unauthenticated("this login link is unknown or expired", code="oidc_state")
        tokens = self._exchange(code, pending)
        claims = self._verify(str(tokens.get("id_token", "")), pending.nonce)
        username = str(claims.get("preferred_username") or claims.get("email") or claims["sub"])
        email = claims.get("email")
        return OidcIdentity(
            str(claims["sub"]), username, str(email) if email else None, pending.next_path
        )

    def metadata(self) -> ProviderMetadata:
        """The provider's endpoints, discovered once."""
        if self._metadata is None:
            issuer = (self._settings.oidc_issuer or "").rstrip("/")
            doc = _get_json(f"{issuer}/.well-known/openid-configuration")
            try:
                self._metadata = ProviderMetadata(
                    str(doc["issuer"]), str(doc["authorization_endpoint"]),
                    str(doc["token_endpoint"]), str(doc["jwks_uri"]),
                )  # fmt: skip
            except KeyError as exc:
                raise Unavailable(
                    f"the OpenID provider's discovery document lacks {exc}", code="oidc_discovery"
                ) from exc
        return self._metadata

    def _exchange(self, code: str, pending: _Pending) -> dict[str, Any]:
        s = self._settings
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pending.redirect_uri,
            "client_id": s.oidc_client_id or "",
            "code_verifier": pending.verifier,
        }
        if s.oidc_client_secret is not None:
            form["client_secret"] = s.oidc_client_secret.get_secret_value()
        try:
            response = httpx.post(self.metadata().token_endpoint, data=form, timeout=_TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise Unavailable(f"the OpenID provider is unreachable: {exc}", code="oidc") from exc
        if response.status_code != 200:
            raise Unauthenticated(
                f"the OpenID provider refused the code ({response.status_code})",
                code="oidc_code",
            )
        body: dict[str, Any] = response.json()
        return body

    def _verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        meta = self.metadata()
        if self._jwks is None:
            self._jwks = jwt.PyJWKClient(meta.jwks_uri, cache_keys=True, timeout=int(_TIMEOUT_S))
        try:
            key = self._jwks.get_signing_key_from_jwt(id_token)
            claims: dict[str, Any] = jwt.decode(
                id_token, key.key, algorithms=_ALGORITHMS,
                audience=self._settings.oidc_client_id, issuer=meta.issuer,
                options={"require": ["exp", "iat", "sub"]},
            )  # fmt: skip
        except (jwt.PyJWTError, jwt.PyJWKClientError) as exc:
            raise Unauthenticated(
                f"the provider's ID token is not valid: {exc}", code="oidc_token"
            ) from exc
        if claims.get("nonce") != nonce:
            raise Unauthenticated("the ID token's nonce does not match", code="oidc_token")
        return claims

    def _forget_stale(self) -> None:
        now = time.monotonic()
        while self._pending:
            state, oldest = next(iter(self._pending.items()))
            if now - oldest.created <= _PENDING_TTL_S and len(self._pending) < _PENDING_MAX:
                break
            del self._pending[state]


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _get_json(url: str) -> dict[str, Any]:
    try:
        response = httpx.get(url, timeout=_TIMEOUT_S)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise Unavailable(f"cannot read {url}: {exc}", code="oidc_discovery") from exc
    return body
