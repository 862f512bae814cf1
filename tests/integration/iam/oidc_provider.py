"""A minimal OpenID Connect provider served over real HTTP, standing in for Keycloak.

It implements what werk's login uses: discovery, the authorization endpoint (it logs in
a fixed user at once and redirects back), the token endpoint with PKCE, and JWKS.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Form, HTTPException
from fastapi.responses import RedirectResponse
from jwt.algorithms import RSAAlgorithm
from tests.conftest import free_port, wait_until


@dataclass
class Provider:
    """The provider's user, its signing key and the codes it handed out."""

    client_id: str = "werk"
    subject: str = "kc-user-1"
    username: str = "jane.doe"
    audience: str | None = None
    nonce_override: str | None = None
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    port: int = field(default_factory=free_port)

    @property
    def issuer(self) -> str:
        """The issuer URL."""
        return f"http://127.0.0.1:{self.port}/realms/plant"

    def id_token(self, nonce: str) -> str:
        """An ID token for the user, signed with the provider's key."""
        now = int(time.time())
        claims = {
            "iss": self.issuer, "sub": self.subject, "aud": self.audience or self.client_id,
            "iat": now, "exp": now + 300, "nonce": self.nonce_override or nonce,
            "preferred_username": self.username, "email": f"{self.username}@example.com",
        }  # fmt: skip
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "k1"})

    def app(self) -> FastAPI:
        """The provider's HTTP endpoints."""
        app = FastAPI()
        base = "/realms/plant"

        @app.get(f"{base}/.well-known/openid-configuration")
        def discovery() -> dict[str, str]:
            return {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/auth",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/certs",
            }

        @app.get(f"{base}/auth")
        def authorize(
            redirect_uri: str, state: str, nonce: str, code_challenge: str, client_id: str
        ) -> RedirectResponse:
            code = secrets.token_urlsafe(16)
            self.codes[code] = {"nonce": nonce, "challenge": code_challenge, "client": client_id}
            return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}")

        @app.post(f"{base}/token")
        def token(code: str = Form(), code_verifier: str = Form()) -> dict[str, Any]:
            issued = self.codes.pop(code, None)
            digest = hashlib.sha256(code_verifier.encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if issued is None or issued["challenge"] != challenge:
                raise HTTPException(400, "invalid_grant")
            return {"id_token": self.id_token(issued["nonce"]), "token_type": "Bearer"}

        @app.get(f"{base}/certs")
        def certs() -> dict[str, Any]:
            jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
            return {"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}

        return app


class ServedProvider:
    """Run a `Provider` with uvicorn in a thread."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        config = uvicorn.Config(
            provider.app(), host="127.0.0.1", port=provider.port, log_level="warning"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> Provider:
        self._thread.start()
        wait_until(lambda: self._server.started, timeout=10)
        return self.provider

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
