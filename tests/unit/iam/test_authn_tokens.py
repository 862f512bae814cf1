"""Tokens and keys on a real SQLite database: refresh, expiry, revocation, rotation, API keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from sqlalchemy import select
from tests.unit.iam.test_authn import IP, PASSWORD, World, make_world

from werk.core.db import session_scope
from werk.core.errors import Forbidden, Unauthenticated
from werk.iam import authn_refresh
from werk.iam.authn_bench import measure_verification
from werk.iam.authn_cache import CACHE_TTL_S
from werk.iam.bootstrap import SYSTEM
from werk.iam.models import ApiKeyRecord, RefreshTokenRecord, RevokedTokenRecord, SigningKeyRecord
from werk.iam.secrets import new_token, parse_api_key


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(
        tmp_path, access_token_ttl_s=60, refresh_token_idle_s=120, refresh_token_max_s=300
    )


def _code(call: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(Unauthenticated) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value.code


def _alice(world: World) -> tuple[str, str, str]:
    """Alice's id, an access token and a refresh token."""
    alice = world.user()
    pair = world.authn.issue(world.authn.login_password("alice", PASSWORD, ip=IP), ip=IP)
    assert pair.refresh_token is not None
    return alice, pair.access_token, pair.refresh_token


def test_access_token_names_the_principal_and_the_signing_key(world: World) -> None:
    alice, access, _ = _alice(world)
    header, claims = (
        jwt.get_unverified_header(access),
        jwt.decode(access, options={"verify_signature": False}),
    )
    assert header["alg"] == "EdDSA"
    assert header["kid"] == world.authn.jwks()["keys"][0]["kid"]
    assert (claims["sub"], claims["kind"], claims["auth"], claims["iss"]) == (
        alice, "user", "password", "werk",
    )  # fmt: skip
    assert claims["exp"] - claims["iat"] == pytest.approx(60, abs=1)
    principal = world.authn.verify(access)
    assert (principal.id, principal.auth_method, principal.credential_id) == (
        alice, "token", claims["jti"],
    )  # fmt: skip
    assert [e.outcome for e in world.events("auth.token")] == ["ok"]


def test_access_token_expires(world: World) -> None:
    _, access, _ = _alice(world)
    world.clock.advance(58)  # "exp" is a whole second: the token lives 59 to 60 s
    assert world.authn.verify(access).name == "alice"
    world.clock.advance(3)
    assert _code(world.authn.verify, access) == "token_expired"
    assert _code(world.authenticator().verify, access) == "token_expired"


def test_garbage_credentials_fail_with_precise_codes(world: World) -> None:
    assert _code(world.authn.verify, "") == "bad_token"
    assert _code(world.authn.verify, "eyJ.e30.abc") == "bad_token"
    assert _code(world.authn.verify, "wk_short") == "bad_api_key"
    assert _code(world.authn.verify, "wk_" + "0" * 12 + "_" + "A" * 43) == "bad_api_key"


def test_refresh_rotates_and_reuse_revokes_the_family(world: World) -> None:
    alice, _, first = _alice(world)
    second = world.authn.refresh(first, ip=IP)
    assert second.refresh_token not in (None, first)
    assert world.authn.verify(second.access_token).id == alice
    third = world.authn.refresh(second.refresh_token or "", ip=IP)
    assert _code(world.authn.refresh, first, ip="203.0.113.66") == "refresh_reused"
    assert _code(world.authn.refresh, third.refresh_token or "", ip=IP) == "token_revoked"
    (reuse,) = world.events("auth.refresh_reuse")
    assert (reuse.outcome, reuse.ip, reuse.detail["principal_id"]) == (
        "denied",
        "203.0.113.66",
        alice,
    )
    assert reuse.detail["revoked"] == 1
    assert _code(world.authn.refresh, "made-up", ip=IP) == "bad_refresh_token"


def test_refresh_token_expires_when_idle_and_at_the_family_limit(world: World) -> None:
    _, _, token = _alice(world)
    world.clock.advance(121)
    assert _code(world.authn.refresh, token, ip=IP) == "token_expired"
    pair = world.authn.issue(world.authn.login_password("alice", PASSWORD, ip=IP), ip=IP)
    token = pair.refresh_token or ""
    for _ in range(5):
        world.clock.advance(55)
        token = world.authn.refresh(token, ip=IP).refresh_token or ""
    with session_scope(world.sessions) as session:
        last = session.scalars(
            select(RefreshTokenRecord).order_by(RefreshTokenRecord.created_at.desc())
        ).first()
        assert last is not None
        first = session.scalars(
            select(RefreshTokenRecord.created_at).where(
                RefreshTokenRecord.family_id == last.family_id
            )
        ).all()
        assert last.expires_at == min(first) + timedelta(seconds=300)
    world.clock.advance(26)
    assert _code(world.authn.refresh, token, ip=IP) == "token_expired"


def test_revoked_access_token_fails_now_and_after_a_restart(world: World) -> None:
    _, access, refresh = _alice(world)
    other = world.authn.refresh(refresh, ip=IP)
    world.authn.verify(access)
    world.authn.revoke(access)
    assert _code(world.authn.verify, access) == "token_revoked"
    assert _code(world.authenticator().verify, access) == "token_revoked"
    assert world.authn.verify(other.access_token).name == "alice"
    world.authn.revoke("not a token at all")
    world.authn.revoke("wk_" + "0" * 12 + "_" + "A" * 43)  # an API key: ignored
    world.authn.revoke(other.refresh_token or "")
    assert _code(world.authn.refresh, other.refresh_token or "", ip=IP) == "token_revoked"
    assert [e.detail["kind"] for e in world.events("auth.revoke")] == ["access", "refresh"]


def test_ending_a_login_ends_the_access_tokens_issued_from_it(world: World) -> None:
    alice, access, refresh = _alice(world)
    later = world.authn.refresh(refresh, ip=IP)
    elsewhere = world.authn.issue(world.authn.login_password("alice", PASSWORD, ip=IP), ip=IP)
    assert (
        jwt.decode(access, options={"verify_signature": False})["sid"]
        == jwt.decode(later.access_token, options={"verify_signature": False})["sid"]
    )
    world.authn.revoke(later.refresh_token or "")  # `werk logout`
    assert _code(world.authn.verify, access) == "token_revoked"
    assert _code(world.authn.verify, later.access_token) == "token_revoked"
    assert _code(world.authenticator().verify, later.access_token) == "token_revoked"
    assert world.authn.verify(elsewhere.access_token).id == alice  # another login lives on
    (family,) = [c.id for c in world.authn.list_credentials(world.admin, alice)]
    world.authn.revoke_credential(world.admin, family)  # the admin ends the other login
    assert _code(world.authn.verify, elsewhere.access_token) == "token_revoked"


def test_reusing_a_refresh_token_ends_the_access_tokens_of_its_login(world: World) -> None:
    _, _, first = _alice(world)
    second = world.authn.refresh(first, ip=IP)
    assert world.authn.verify(second.access_token).name == "alice"
    assert _code(world.authn.refresh, first, ip="203.0.113.66") == "refresh_reused"
    assert _code(world.authn.verify, second.access_token) == "token_revoked"


def test_revoke_all_ends_every_token_and_session(world: World) -> None:
    alice, access, refresh = _alice(world)
    principal = world.authn.login_password("alice", PASSWORD, ip=IP)
    session = world.authn.open_session(principal, ip=IP, user_agent="")
    world.iam.directory.revoke_all(world.admin, alice)
    assert _code(world.authn.verify, access) == "token_revoked"
    assert _code(world.authn.refresh, refresh, ip=IP) == "token_revoked"
    assert _code(world.authn.verify_session, session.cookie) == "bad_session"
    fresh = world.authn.issue(world.authn.login_password("alice", PASSWORD, ip=IP), ip=IP)
    assert world.authn.verify(fresh.access_token).id == alice


def test_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key(world: World) -> None:
    _, old_token, _ = _alice(world)
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    other_process = world.authenticator()
    assert other_process.verify(old_token).name == "alice"
    new_kid = world.authn.rotate_signing_key(world.admin)
    assert new_kid != old_kid
    new_token = world.authn.access_token(world.admin, method="password").access_token
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert world.authn.verify(old_token).name == "alice"
    assert {k["kid"] for k in world.authn.jwks()["keys"]} == {old_kid, new_kid}
    keys = {k.kid: k for k in world.authn.signing_keys(world.admin)}
    assert keys[new_kid].active and not keys[old_kid].active
    assert keys[old_kid].retired_at is not None
    assert _code(other_process.verify, new_token) == "unknown_key"
    world.clock.advance(1)
    assert other_process.verify(new_token).id == world.admin.id
    (event,) = world.events("iam.signing_key.rotate")
    assert event.detail["retired"] == [old_kid]
    world.clock.advance(61)
    assert {k["kid"] for k in world.authn.jwks()["keys"]} == {new_kid}
    with session_scope(world.sessions) as session:
        assert session.scalars(select(SigningKeyRecord.kid)).all() == [new_kid]


def test_only_operator_administrators_touch_signing_keys(world: World) -> None:
    world.user("bob", role="engineer")
    bob = world.authn.login_password("bob", PASSWORD, ip=IP)
    with pytest.raises(Forbidden):
        world.authn.rotate_signing_key(bob)
    with pytest.raises(Forbidden):
        world.authn.signing_keys(bob)


def test_client_credentials_with_a_service_accounts_api_key(world: World) -> None:
    service_id, key = world.service()
    pair = world.authn.client_credentials("mes-sync", key, ip=IP)
    assert pair.refresh_token is None
    assert "history:write:business" in pair.scope.split()
    principal = world.authn.verify(pair.access_token)
    assert (principal.id, principal.kind) == (service_id, "service")
    assert jwt.decode(pair.access_token, options={"verify_signature": False})["auth"] == (
        "client_credentials"
    )
    assert _code(world.authn.client_credentials, "admin", key, ip=IP) == "bad_client"
    tampered = key[:-1] + ("x" if key[-1] != "x" else "y")
    assert _code(world.authn.client_credentials, "mes-sync", tampered, ip=IP) == "bad_api_key"
    assert _code(world.authn.client_credentials, "mes-sync", "hunter2", ip=IP) == "bad_api_key"
    outcomes = [(e.outcome, e.detail.get("grant")) for e in world.events("auth.token")]
    assert outcomes == [("ok", "client_credentials")] + [("failed", "client_credentials")] * 3


def test_api_key_verifies_until_revoked_and_notes_its_use_sparingly(world: World) -> None:
    service_id, key = world.service()
    parsed = parse_api_key(key)
    assert parsed is not None
    principal = world.authn.verify(key)
    assert (principal.id, principal.auth_method, principal.credential_id) == (
        service_id, "api_key", parsed[0],
    )  # fmt: skip

    def last_used() -> datetime | None:
        with session_scope(world.sessions) as session:
            record = session.get(ApiKeyRecord, parsed[0])
            assert record is not None
            return record.last_used_at

    first = last_used()
    assert first is not None
    world.clock.advance(30)
    world.authn.verify(key)
    assert last_used() == first
    world.clock.advance(31)
    world.authn.verify(key)
    assert (last_used() or first) > first
    assert _code(world.authn.verify, key[:-2] + ("AA" if key[-2:] != "AA" else "BB")) == (
        "bad_api_key"
    )
    world.iam.directory.revoke_api_key(world.admin, parsed[0])
    assert _code(world.authn.verify, key) == "key_revoked"


def test_expired_api_key_fails(world: World) -> None:
    service_id, _ = world.service()
    _, key = world.iam.directory.create_api_key(
        SYSTEM, principal_id=service_id, name="short",
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
    )  # fmt: skip
    assert world.authn.verify(key).id == service_id
    world.clock.advance(301)
    assert _code(world.authn.verify, key) == "key_expired"


def test_mqtt_login_takes_the_principals_own_api_key(world: World) -> None:
    service_id, key = world.service()
    world.service("other")
    principal = world.authn.verify_mqtt("mes-sync", key)
    assert principal is not None and principal.id == service_id
    assert world.authn.verify_mqtt("other", key) is None
    assert world.authn.verify_mqtt("mes-sync", "wrong") is None
    assert world.authn.verify_mqtt("mes-sync", "") is None


def test_measure_verification_reports_every_figure(world: World) -> None:
    _, key = world.service()
    figures = measure_verification(world.authn, world.admin, 200, api_key=key)
    assert set(figures) == {"jwt_issue_us", "jwt_uncached_us", "jwt_cached_us", "api_key_us"}
    assert all(value > 0 for value in figures.values())
    assert figures["jwt_cached_us"] < figures["jwt_uncached_us"]
    assert "api_key_us" not in measure_verification(world.authn, world.admin, 10)


def test_revocations_no_process_announced_take_effect_within_a_minute(tmp_path: Path) -> None:
    # As if the process that revoked crashed before announcing it: only the rows exist.
    world = make_world(tmp_path, access_token_ttl_s=300)
    _, access, _ = _alice(world)
    _, key = world.service()
    parsed = parse_api_key(key)
    assert parsed is not None
    world.authn.verify(access)
    world.authn.verify(key)
    claims = jwt.decode(access, options={"verify_signature": False})
    with session_scope(world.sessions) as session:
        record = session.get(ApiKeyRecord, parsed[0])
        assert record is not None
        record.revoked_at = datetime.now(UTC)
        session.add(
            RevokedTokenRecord(
                jti=claims["jti"], expires_at=datetime.now(UTC) + timedelta(minutes=5)
            )
        )
    assert world.authn.verify(access).name == "alice"  # still held in memory
    assert world.authn.verify(key).id
    world.clock.advance(CACHE_TTL_S)
    assert _code(world.authn.verify, access) == "token_revoked"
    assert _code(world.authn.verify, key) == "key_revoked"


def test_a_refresh_token_that_begins_like_an_api_key_is_still_revoked(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.user()
    monkeypatch.setattr(authn_refresh, "new_token", lambda: "wk_" + new_token())
    pair = world.authn.issue(world.authn.login_password("alice", PASSWORD, ip=IP), ip=IP)
    assert pair.refresh_token is not None and pair.refresh_token.startswith("wk_")
    world.authn.revoke(pair.refresh_token)
    assert _code(world.authn.refresh, pair.refresh_token, ip=IP) == "token_revoked"
