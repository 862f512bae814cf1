"""Access tokens: EdDSA JWTs, key ids, rotation, expiry, tampering, the verify cache, JWKS."""

from __future__ import annotations

import timeit
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from werk.core.errors import Unauthenticated, ValidationFailed
from werk.iam.tokens import (
    SigningKey,
    TokenSigner,
    generate_signing_key,
    key_id,
    private_key_from_pem,
    public_key_from_pem,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW.timestamp()

    def __call__(self) -> float:
        return self.now


def _claims(clock: Clock, ttl: float = 900) -> dict[str, Any]:
    iat = int(clock.now)
    return {"sub": uuid.uuid4().hex, "jti": uuid.uuid4().hex, "iat": iat, "exp": iat + ttl}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def key() -> SigningKey:
    return generate_signing_key(NOW)


@pytest.fixture
def signer(key: SigningKey, clock: Clock) -> TokenSigner:
    return TokenSigner(key, issuer="werk", clock=clock)


def _code(signer: TokenSigner, token: str) -> str:
    with pytest.raises(Unauthenticated) as caught:
        signer.verify(token)
    return caught.value.code


def test_issued_token_verifies_and_names_its_key(signer: TokenSigner, clock: Clock) -> None:
    claims = _claims(clock)
    token = signer.issue(claims)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    assert header["kid"] == signer.active_kid
    verified = signer.verify(token)
    assert verified["sub"] == claims["sub"]
    assert verified["iss"] == "werk"


def test_pem_round_trip_keeps_the_key_id(key: SigningKey) -> None:
    private = private_key_from_pem(key.private_pem)
    public = public_key_from_pem(key.public_pem)
    assert key_id(private.public_key()) == key_id(public) == key.kid
    with pytest.raises(ValidationFailed):
        private_key_from_pem("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ValidationFailed):
        public_key_from_pem(key.private_pem)


def test_expired_token_fails_even_when_cached(signer: TokenSigner, clock: Clock) -> None:
    token = signer.issue(_claims(clock, ttl=60))
    signer.verify(token)
    clock.now += 59
    signer.verify(token)
    clock.now += 1
    assert _code(signer, token) == "token_expired"
    assert _code(TokenSigner(generate_signing_key(NOW), issuer="werk", clock=clock), token) == (
        "unknown_key"
    )


def test_expired_token_fails_on_first_sight(signer: TokenSigner, clock: Clock) -> None:
    token = signer.issue(_claims(clock, ttl=60))
    clock.now += 61
    assert _code(signer, token) == "token_expired"


def test_token_of_another_key_or_issuer_fails(key: SigningKey, clock: Clock) -> None:
    other = TokenSigner(generate_signing_key(NOW), issuer="werk", clock=clock)
    mine = TokenSigner(key, issuer="werk", clock=clock)
    assert _code(mine, other.issue(_claims(clock))) == "unknown_key"
    foreign = TokenSigner(key, issuer="elsewhere", clock=clock)
    assert _code(mine, foreign.issue(_claims(clock))) == "bad_token"


def test_missing_claims_and_future_tokens_fail(signer: TokenSigner, clock: Clock) -> None:
    claims = _claims(clock)
    del claims["jti"]
    assert _code(signer, signer.issue(claims)) == "bad_token"
    future = _claims(clock)
    future["iat"] += 3600
    future["exp"] += 3600
    assert _code(signer, signer.issue(future)) == "bad_token"
    assert _code(signer, signer.issue({**_claims(clock), "exp": "never"})) == "bad_token"


def test_other_algorithms_are_refused(signer: TokenSigner, clock: Clock) -> None:
    kid = signer.active_kid
    hs = jwt.encode({**_claims(clock), "iss": "werk"}, "k" * 32, "HS256", headers={"kid": kid})
    assert _code(signer, hs) == "bad_token"
    none = jwt.encode({**_claims(clock), "iss": "werk"}, None, "none", headers={"kid": kid})
    assert _code(signer, none) == "bad_token"
    for junk in ("", "a.b.c", "not a token", "...."):
        assert _code(signer, junk) == "bad_token"


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_changed_character_makes_the_token_fail(data: st.DataObject) -> None:
    clock = Clock()
    signer = TokenSigner(generate_signing_key(NOW), issuer="werk", clock=clock)
    token = signer.issue(_claims(clock))
    where = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.characters(codec="utf-8").filter(lambda c: c != token[where]))
    tampered = token[:where] + replacement + token[where + 1 :]
    with pytest.raises(Unauthenticated):
        signer.verify(tampered)
    assert signer.verify(token)


def test_another_spelling_of_the_same_signature_fails(signer: TokenSigner, clock: Clock) -> None:
    token = signer.issue(_claims(clock))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for other in alphabet.replace(token[-1], ""):
        with pytest.raises(Unauthenticated):
            signer.verify(token[:-1] + other)
    assert signer.verify(token)


@settings(max_examples=100, deadline=None)
@given(cut=st.integers(1, 200), extra=st.text(min_size=1, max_size=5))
def test_truncated_or_extended_tokens_fail(cut: int, extra: str) -> None:
    clock = Clock()
    signer = TokenSigner(generate_signing_key(NOW), issuer="werk", clock=clock)
    token = signer.issue(_claims(clock))
    with pytest.raises(Unauthenticated):
        signer.verify(token[:-cut])
    with pytest.raises(Unauthenticated):
        signer.verify(token + extra)


def test_rotation_keeps_old_tokens_valid_until_the_key_is_dropped(
    signer: TokenSigner, key: SigningKey, clock: Clock
) -> None:
    old = signer.issue(_claims(clock))
    signer.verify(old)
    new_key = generate_signing_key(NOW)
    signer.load(new_key, [key])
    new = signer.issue(_claims(clock))
    assert jwt.get_unverified_header(new)["kid"] == new_key.kid != key.kid
    assert signer.verify(old)["iss"] == "werk"
    assert set(signer.kids) == {key.kid, new_key.kid}
    signer.load(new_key)
    assert _code(signer, old) == "unknown_key"
    assert signer.verify(new)


def test_cache_is_bounded_and_skips_the_signature_check(key: SigningKey, clock: Clock) -> None:
    signer = TokenSigner(key, issuer="werk", clock=clock, cache_size=10)
    tokens = [signer.issue(_claims(clock)) for _ in range(12)]
    for token in tokens:
        signer.verify(token)
    assert signer.cached == 10
    token = tokens[-1]

    def uncached_verify() -> None:
        signer.forget(token)
        signer.verify(token)

    cached = min(timeit.repeat(lambda: signer.verify(token), number=300, repeat=5))
    uncached = min(timeit.repeat(uncached_verify, number=300, repeat=5))
    assert cached * 5 < uncached


def test_jwks_publishes_every_verification_key(signer: TokenSigner, key: SigningKey) -> None:
    clock = Clock()
    token = signer.issue(_claims(clock))
    signer.load(generate_signing_key(NOW), [key])
    jwks = signer.jwks()
    assert {k["kid"] for k in jwks["keys"]} == set(signer.kids)
    assert all(k["kty"] == "OKP" and k["crv"] == "Ed25519" for k in jwks["keys"])
    assert all("d" not in jwk for jwk in jwks["keys"])
    published = jwt.PyJWKSet.from_dict(jwks)[key.kid]
    claims = jwt.decode(
        token,
        published.key,
        algorithms=["EdDSA"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == "werk"
