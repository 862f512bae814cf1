"""Signed access tokens: JWT with EdDSA (Ed25519), a key id per signing key, and a verify cache.

One key signs; every key not yet dropped verifies, so tokens signed before a rotation
stay valid until they expire. A bounded LRU remembers tokens whose signature was already
checked: a repeated token costs a dictionary lookup and an expiry comparison.

Tokens are made with PyJWT. They are checked here, for the one algorithm werk signs
with, straight on `cryptography`: a compact JWS of exactly that shape, the key named by
`kid`, the signature over the first two segments as sent, then the claims.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from werk.core.errors import Unauthenticated, ValidationFailed

__all__ = [
    "ALGORITHM",
    "SigningKey",
    "TokenSigner",
    "generate_signing_key",
    "key_id",
    "private_key_from_pem",
    "public_jwk",
    "public_key_from_pem",
]

ALGORITHM: Final = "EdDSA"
REQUIRED_CLAIMS: Final = ("iss", "sub", "jti", "iat", "exp")
CACHE_SIZE: Final = 10_000
IAT_LEEWAY_S: Final = 60.0
MAX_TOKEN_CHARS: Final = 8192
# Header, claims, signature. An Ed25519 signature is 64 bytes: 86 base64url characters
# whose last one carries 2 bits and 4 zero bits; any other spelling is refused.
_COMPACT: Final = re.compile(
    r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{85}[AQgw])", re.ASCII
)


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A signing key as stored: key id, PEM texts, and when it was made and retired."""

    kid: str
    private_pem: str
    public_pem: str
    created_at: datetime
    retired_at: datetime | None = None


def generate_signing_key(created_at: datetime) -> SigningKey:
    """Make a new Ed25519 key; its id is the RFC 7638 thumbprint of its public key."""
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    return SigningKey(key_id(private.public_key()), private_pem, public_pem, created_at)


def private_key_from_pem(pem: str) -> Ed25519PrivateKey:
    """Load an Ed25519 private key from PKCS#8 PEM text."""
    try:
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeError) as exc:
        raise ValidationFailed(f"not a PEM private key: {exc}", code="bad_key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ValidationFailed("the signing key is not an Ed25519 key", code="bad_key")
    return key


def public_key_from_pem(pem: str) -> Ed25519PublicKey:
    """Load an Ed25519 public key from SubjectPublicKeyInfo PEM text."""
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, TypeError, UnicodeError) as exc:
        raise ValidationFailed(f"not a PEM public key: {exc}", code="bad_key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ValidationFailed("the verification key is not an Ed25519 key", code="bad_key")
    return key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    """The RFC 7638 JWK thumbprint (sha256, base64url) of `public`."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _b64url(_raw(public))}, separators=(",", ":")
    )
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def public_jwk(kid: str, public: Ed25519PublicKey) -> dict[str, str]:
    """The public key as a JWK (RFC 8037 OKP)."""
    x = _b64url(_raw(public))
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "use": "sig", "alg": ALGORITHM}


def _bad(reason: str) -> Unauthenticated:
    return Unauthenticated(f"the access token is not valid: {reason}", code="bad_token")


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"claim {name!r} is not a number")
    return float(value)


class TokenSigner:
    """Sign access tokens with the active key; verify with any key still known."""

    def __init__(
        self,
        active: SigningKey,
        others: Iterable[SigningKey] = (),
        *,
        issuer: str,
        clock: Callable[[], float] = time.time,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self._issuer = issuer
        self._clock = clock
        self._cache_size = cache_size
        self._cache: OrderedDict[str, tuple[dict[str, Any], float]] = OrderedDict()
        self._lock = threading.Lock()
        self._active_kid = ""
        self._signer = private_key_from_pem(active.private_pem)
        self._public: dict[str, Ed25519PublicKey] = {}
        self.load(active, others)

    @property
    def active_kid(self) -> str:
        """Id of the key that signs new tokens."""
        return self._active_kid

    @property
    def kids(self) -> tuple[str, ...]:
        """Ids of every key that verifies."""
        return tuple(self._public)

    @property
    def cached(self) -> int:
        """How many verified tokens the cache holds."""
        return len(self._cache)

    def load(self, active: SigningKey, others: Iterable[SigningKey] = ()) -> None:
        """Sign with `active` from now on; verify with it and `others` only."""
        signer = private_key_from_pem(active.private_pem)
        public = {k.kid: public_key_from_pem(k.public_pem) for k in others}
        public[active.kid] = signer.public_key()
        with self._lock:
            self._signer, self._active_kid, self._public = signer, active.kid, public
            # A cached token may name a key that is gone now.
            self._cache.clear()

    def issue(self, claims: Mapping[str, Any]) -> str:
        """Sign `claims` (with `iss` set to this issuer) as a compact JWT."""
        with self._lock:
            signer, kid = self._signer, self._active_kid
        payload = {**claims, "iss": self._issuer}
        return jwt.encode(payload, signer, algorithm=ALGORITHM, headers={"kid": kid})

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid, unexpired token; Unauthenticated otherwise."""
        now = self._clock()
        with self._lock:
            hit = self._cache.get(token)
            if hit is not None:
                self._cache.move_to_end(token)
        if hit is None:
            hit = self._verify_signed(token, now)
            self._remember(token, hit)
        claims, expires = hit
        if now >= expires:
            raise Unauthenticated("the access token has expired", code="token_expired")
        return claims

    def forget(self, token: str) -> None:
        """Drop `token` from the cache of verified tokens."""
        with self._lock:
            self._cache.pop(token, None)

    def jwks(self) -> dict[str, Any]:
        """Every verification key as a JWK set."""
        with self._lock:
            public = dict(self._public)
        return {"keys": [public_jwk(kid, key) for kid, key in public.items()]}

    def _remember(self, token: str, entry: tuple[dict[str, Any], float]) -> None:
        with self._lock:
            self._cache[token] = entry
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _verify_signed(self, token: str, now: float) -> tuple[dict[str, Any], float]:
        parts = _COMPACT.fullmatch(token) if len(token) <= MAX_TOKEN_CHARS else None
        if parts is None:
            raise _bad("not a compact EdDSA JWS")
        key = self._key_for(_json_object(parts[1]))
        try:
            key.verify(_unb64(parts[3]), f"{parts[1]}.{parts[2]}".encode("ascii"))
        except InvalidSignature as exc:
            raise _bad("the signature does not match") from exc
        claims = _json_object(parts[2])
        self._check_claims(claims, now)
        return claims, _number(claims, "exp")

    def _check_claims(self, claims: dict[str, Any], now: float) -> None:
        missing = [name for name in REQUIRED_CLAIMS if name not in claims]
        if missing:
            raise _bad(f"claims {missing} are missing")
        if claims["iss"] != self._issuer:
            raise _bad(f"issuer {claims['iss']!r} is not {self._issuer!r}")
        if not isinstance(claims["sub"], str) or not isinstance(claims["jti"], str):
            raise _bad("claims 'sub' and 'jti' must be strings")
        if _number(claims, "iat") > now + IAT_LEEWAY_S:
            raise _bad("issued in the future")
        if "nbf" in claims and _number(claims, "nbf") > now + IAT_LEEWAY_S:
            raise _bad("not valid yet")

    def _key_for(self, header: dict[str, Any]) -> Ed25519PublicKey:
        if header.get("alg") != ALGORITHM:
            raise _bad(f"algorithm {header.get('alg')!r} is not {ALGORITHM}")
        if "crit" in header:
            raise _bad("critical header extensions are not supported")
        kid = header.get("kid")
        key = self._public.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthenticated("the access token names an unknown key", code="unknown_key")
        return key


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _json_object(segment: str) -> dict[str, Any]:
    try:
        found = json.loads(_unb64(segment))
    except ValueError as exc:
        raise _bad("a segment is not base64url-encoded JSON") from exc
    if not isinstance(found, dict):
        raise _bad("a segment is not a JSON object")
    return found
