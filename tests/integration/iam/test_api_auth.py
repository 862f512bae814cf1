"""Authentication over HTTP: the OAuth2 token endpoint, revocation, key rotation, sessions."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import jwt
import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer
from tests.integration.iam.api_support import API, Account, Werk, started_werk

from werk.iam.tokens import private_key_from_pem

TTL_S = 30
TOKEN = f"{API}/auth/token"
ME = f"{API}/auth/me"


@pytest.fixture(scope="module")
def werk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Werk]:
    """One werk for the module, with the shortest access-token lifetime allowed."""
    with started_werk(tmp_path_factory.mktemp("werk"), access_token_ttl_s=TTL_S) as started:
        yield started


@pytest.fixture
def user(werk: Werk) -> Account:
    """A fresh operator viewer with a password."""
    return werk.account(werk.operator_org, [("viewer", ("#",), "own")])


def password_grant(client: TestClient, account: Account) -> dict[str, str]:
    data = {"grant_type": "password", "username": account.name, "password": account.password}
    response = client.post(TOKEN, data=data)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def refresh(client: TestClient, token: str) -> tuple[int, dict[str, str]]:
    response = client.post(TOKEN, data={"grant_type": "refresh_token", "refresh_token": token})
    return response.status_code, response.json()


def code_of(response: object) -> str:
    body = response.json()  # type: ignore[attr-defined]
    return str(body.get("code") or body.get("error"))


def test_password_grant_gives_a_short_lived_bearer_token(werk: Werk, user: Account) -> None:
    data = {"grant_type": "password", "username": user.name, "password": user.password}
    response = werk.client.post(TOKEN, data=data)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == TTL_S
    assert body["refresh_token"]
    assert "uns:read" in body["scope"].split()
    me = werk.client.get(ME, headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert (me.json()["id"], me.json()["auth_method"]) == (user.id, "token")
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == pytest.approx(TTL_S, abs=1)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"grant_type": "password", "username": "nobody-here", "password": "x"}, "invalid_grant"),
        ({"username": "a", "password": "b"}, "invalid_request"),
        ({"grant_type": "password", "password": "b"}, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "x"}, "unsupported_grant_type"),
        ({"grant_type": "refresh_token", "refresh_token": "not-a-token"}, "invalid_grant"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
    ],
)
def test_token_failures_answer_with_rfc_6749_errors(
    werk: Werk, data: dict[str, str], error: str
) -> None:
    response = werk.client.post(TOKEN, data=data)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert response.json()["error_description"]
    assert response.headers["cache-control"] == "no-store"


def test_wrong_password_is_an_invalid_grant(werk: Werk, user: Account) -> None:
    data = {"grant_type": "password", "username": user.name, "password": "wrong password!"}
    response = werk.client.post(TOKEN, data=data)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_grant")


def test_client_credentials_with_form_fields_and_with_basic(werk: Werk) -> None:
    service = werk.account(werk.operator_org, [("integration", ("#",), "own")], kind="service")
    form = {"grant_type": "client_credentials", "client_id": service.name}
    response = werk.client.post(TOKEN, data={**form, "client_secret": service.key})
    assert response.status_code == 200, response.text
    assert "refresh_token" not in response.json()
    basic = base64.b64encode(f"{service.name}:{service.key}".encode()).decode()
    response = werk.client.post(
        TOKEN,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200, response.text
    me = werk.client.get(ME, headers=bearer(response.json()["access_token"]))
    assert me.json()["name"] == service.name


def test_client_credentials_refuse_a_secret_of_another_client(werk: Werk) -> None:
    service = werk.account(werk.operator_org, kind="service")
    other = werk.account(werk.operator_org, kind="service")
    data = {"grant_type": "client_credentials", "client_id": service.name}
    response = werk.client.post(TOKEN, data={**data, "client_secret": other.key})
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic")
    response = werk.client.post(TOKEN, data=data)
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")


def test_refresh_rotates_and_a_reused_token_revokes_the_family(werk: Werk, user: Account) -> None:
    first = password_grant(werk.client, user)
    status, second = refresh(werk.client, first["refresh_token"])
    assert status == 200
    assert second["refresh_token"] != first["refresh_token"]
    assert werk.client.get(ME, headers=bearer(second["access_token"])).status_code == 200
    status, body = refresh(werk.client, first["refresh_token"])  # a thief replays the old one
    assert (status, body["error"]) == (400, "invalid_grant")
    status, body = refresh(werk.client, second["refresh_token"])  # so the family is gone
    assert (status, body["error"]) == (400, "invalid_grant")
    assert any(e["detail"]["principal_id"] == user.id for e in werk.audit("auth.refresh_reuse"))


def mint(werk: Werk, account: Account, *, exp: float) -> str:
    """A token signed with werk's own active key (so only its claims can make it fail)."""
    key = werk.signing_key()
    now = time.time()
    claims = {
        "iss": werk.runtime.settings.token_issuer, "sub": account.id, "org": account.org_id,
        "kind": "user", "jti": f"minted{int(now * 1e6)}", "iat": now - 60, "exp": exp,
        "auth": "password",
    }  # fmt: skip
    private = private_key_from_pem(key.private_pem)
    return jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": key.kid})


def test_an_expired_access_token_is_refused(werk: Werk, user: Account) -> None:
    live = mint(werk, user, exp=time.time() + 60)
    assert werk.client.get(ME, headers=bearer(live)).status_code == 200
    expired = mint(werk, user, exp=time.time() - 1)
    response = werk.client.get(ME, headers=bearer(expired))
    assert (response.status_code, code_of(response)) == (401, "token_expired")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_revoked_access_token_fails_on_its_next_request(werk: Werk, user: Account) -> None:
    tokens = password_grant(werk.client, user)
    access = bearer(tokens["access_token"])
    assert werk.client.get(ME, headers=access).status_code == 200
    response = werk.client.post(f"{API}/auth/revoke", data={"token": tokens["access_token"]})
    assert response.status_code == 200
    response = werk.client.get(ME, headers=access)
    assert (response.status_code, code_of(response)) == (401, "token_revoked")
    assert werk.client.post(
        f"{API}/auth/revoke", data={"token": tokens["refresh_token"]}
    ).is_success
    status, body = refresh(werk.client, tokens["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")


def test_revoking_an_unknown_token_is_no_error(werk: Werk) -> None:
    assert werk.client.post(f"{API}/auth/revoke", data={"token": "never-issued"}).status_code == 200
    response = werk.client.post(f"{API}/auth/revoke", data={})
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


def login(client: TestClient, account: Account) -> str:
    body = {"username": account.name, "password": account.password}
    response = client.post(f"{API}/auth/login", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["csrf_token"])


def test_revoke_all_ends_tokens_refresh_tokens_and_sessions(werk: Werk, user: Account) -> None:
    tokens = password_grant(werk.client, user)
    with TestClient(werk.client.app) as browser:
        login(browser, user)
        assert browser.get(ME).status_code == 200
        response = werk.client.post(
            f"{API}/iam/principals/{user.id}/revoke-all", headers=werk.admin.headers
        )
        assert response.status_code == 204
        assert browser.get(ME).status_code == 401
    response = werk.client.get(ME, headers=bearer(tokens["access_token"]))
    assert (response.status_code, code_of(response)) == (401, "token_revoked")
    assert refresh(werk.client, tokens["refresh_token"])[0] == 400
    time.sleep(0.01)  # a new login after the revocation is a new start
    fresh = password_grant(werk.client, user)
    assert werk.client.get(ME, headers=bearer(fresh["access_token"])).status_code == 200


def test_a_disabled_principal_fails_with_every_credential(werk: Werk, user: Account) -> None:
    tokens = password_grant(werk.client, user)
    admin = werk.admin.headers
    assert werk.client.post(f"{API}/iam/principals/{user.id}/disable", headers=admin).is_success
    for headers in (bearer(tokens["access_token"]), user.headers, {"X-API-Key": user.key}):
        response = werk.client.get(ME, headers=headers)
        assert (response.status_code, code_of(response)) == (401, "principal_disabled")
    data = {"grant_type": "password", "username": user.name, "password": user.password}
    assert werk.client.post(TOKEN, data=data).json()["error"] == "invalid_grant"
    assert werk.client.post(f"{API}/iam/principals/{user.id}/enable", headers=admin).is_success
    assert werk.client.get(ME, headers=user.headers).status_code == 200


def test_signing_key_rotation_keeps_old_tokens_valid(werk: Werk, user: Account) -> None:
    before = password_grant(werk.client, user)["access_token"]
    old_kid = jwt.get_unverified_header(before)["kid"]
    response = werk.client.post(f"{API}/iam/signing-keys/rotate", headers=werk.admin.headers)
    assert response.status_code == 200
    keys = werk.client.get(f"{API}/iam/signing-keys", headers=werk.admin.headers).json()
    active = [k["kid"] for k in keys if k["active"]]
    assert active == [response.json()["kid"]] and active[0] != old_kid
    assert old_kid in {k["kid"] for k in keys}
    assert all("private" not in str(k).lower() for k in keys)
    after = password_grant(werk.client, user)["access_token"]
    assert jwt.get_unverified_header(after)["kid"] == active[0]
    for token in (before, after):
        assert werk.client.get(ME, headers=bearer(token)).status_code == 200
    jwks = werk.client.get(f"{API}/auth/jwks").json()
    assert {old_kid, active[0]} <= {k["kid"] for k in jwks["keys"]}
    assert all(set(k) == {"kty", "crv", "x", "kid", "use", "alg"} for k in jwks["keys"])


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "bad_authorization"),
        ({"Authorization": "Bearer"}, "bad_authorization"),
        ({"Authorization": "Bearer not.a.jwt"}, "bad_token"),
        ({"Authorization": "Bearer wk_0123456789ab_short"}, "bad_api_key"),
        ({"X-API-Key": "not-a-werk-key"}, "bad_api_key"),
        ({"X-API-Key": "wk_0123456789ab_" + "A" * 43}, "bad_api_key"),
    ],
)
def test_malformed_credentials_fail_with_a_precise_code(
    werk: Werk, headers: dict[str, str], code: str
) -> None:
    response = werk.client.get(ME, headers=headers)
    assert (response.status_code, code_of(response)) == (401, code)


def test_a_bad_credential_never_falls_back_to_a_good_one(werk: Werk, user: Account) -> None:
    response = werk.client.get(ME, headers={"Authorization": "Bearer junk", "X-API-Key": user.key})
    assert response.status_code == 401
    with TestClient(werk.client.app) as browser:
        login(browser, user)
        assert browser.get(ME, headers={"X-API-Key": "wk_bad"}).status_code == 401


def test_a_revoked_api_key_fails_on_its_next_request(werk: Werk, user: Account) -> None:
    assert werk.client.get(ME, headers=user.headers).status_code == 200
    key_id = user.key.split("_")[1]
    response = werk.client.delete(f"{API}/iam/api-keys/{key_id}", headers=werk.admin.headers)
    assert response.status_code == 204
    response = werk.client.get(ME, headers=user.headers)
    assert (response.status_code, code_of(response)) == (401, "key_revoked")


def test_login_sets_an_http_only_same_site_cookie(werk: Werk, user: Account) -> None:
    with TestClient(werk.client.app) as browser:
        body = {"username": user.name, "password": user.password}
        response = browser.post(f"{API}/auth/login", json=body)
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("werk_session=")
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain http
        me = browser.get(ME).json()
        assert (me["id"], me["auth_method"]) == (user.id, "session")
        assert me["csrf_token"] == response.json()["csrf_token"]
    with TestClient(werk.client.app, base_url="https://testserver") as secure:
        assert "Secure" in secure.post(f"{API}/auth/login", json=body).headers["set-cookie"]


def test_a_wrong_password_login_is_refused_and_audited(werk: Werk, user: Account) -> None:
    response = werk.client.post(
        f"{API}/auth/login", json={"username": user.name, "password": "not the password"}
    )
    assert (response.status_code, code_of(response)) == (401, "bad_credentials")
    assert "set-cookie" not in response.headers
    failed = werk.audit("auth.login", outcome="failed")
    assert any(e["target"] == user.name for e in failed)


def test_cookie_writes_need_the_csrf_token(werk: Werk, user: Account) -> None:
    with TestClient(werk.client.app) as browser:
        csrf = login(browser, user)
        assert browser.get(ME).status_code == 200  # reads need no token
        for headers in ({}, {"X-CSRF-Token": "forged"}):
            response = browser.post(f"{API}/auth/logout", headers=headers)
            assert (response.status_code, code_of(response)) == (403, "csrf_failed")
        response = browser.post(f"{API}/auth/logout", headers={"X-CSRF-Token": csrf})
        assert response.status_code == 204
        assert browser.get(ME).status_code == 401


def test_a_forged_cross_site_write_is_denied_and_audited(werk: Werk) -> None:
    admin = werk.account(werk.operator_org, [("admin", ("#",), "any")])
    with TestClient(werk.client.app) as browser:
        login(browser, admin)
        body = {"name": "forged-user-1", "password": "long enough password"}
        response = browser.post(f"{API}/iam/users", json=body)
        assert (response.status_code, code_of(response)) == (403, "csrf_failed")
    assert werk.iam.directory.find_by_name("forged-user-1") is None
    denied = werk.audit("http.denied")
    assert any(e["target"] == f"{API}/iam/users" and e["status"] == 403 for e in denied)


def test_logout_with_a_bearer_token_revokes_it(werk: Werk, user: Account) -> None:
    access = bearer(password_grant(werk.client, user)["access_token"])
    assert werk.client.post(f"{API}/auth/logout", headers=access).status_code == 204
    response = werk.client.get(ME, headers=access)
    assert (response.status_code, code_of(response)) == (401, "token_revoked")


def test_me_shows_grants_and_effective_permissions(werk: Werk) -> None:
    partner = werk.org()
    account = werk.account(partner, [("partner-user", ("acme/partners/p1/#",), "own")])
    me = werk.client.get(ME, headers=account.headers).json()
    assert me["org_id"] == partner and me["org_kind"] == "partner"
    assert (me["principal"]["id"], me["principal"]["name"]) == (account.id, account.name)
    assert (me["org"]["id"], me["org"]["kind"]) == (partner, "partner")
    assert me["grants"] == [
        {
            "role": "partner-user",
            "permissions": sorted(
                ["uns:read", "history:read:processed", "history:read:business", "sources:read"]
            ),
            "namespace": ["acme/partners/p1/#"],
            "layers": None,
            "org": "own",
        }
    ]
    assert set(me["permissions"]) == set(me["grants"][0]["permissions"])
    assert me["csrf_token"] is None


def test_public_routes_need_no_credentials(werk: Werk) -> None:
    jwks = werk.client.get(f"{API}/auth/jwks")
    assert jwks.status_code == 200 and jwks.json()["keys"]
    assert werk.client.get(ME).status_code == 401
