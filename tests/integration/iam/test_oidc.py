"""Web login through an OpenID Connect provider (authorization code + PKCE), end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from tests.conftest import LiveServer, make_settings
from tests.integration.iam.oidc_provider import Provider, ServedProvider


@pytest.fixture
def provider() -> Iterator[Provider]:
    with ServedProvider(Provider()) as served:
        yield served


@pytest.fixture
def werk(provider: Provider, tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path / "data", oidc_issuer=provider.issuer, oidc_client_id=provider.client_id,
        oidc_client_secret="s3cret-client", oidc_role="viewer",
    )  # fmt: skip
    with LiveServer(settings) as server:
        yield server


def _login(werk: LiveServer, next_path: str = "/layers") -> httpx.Response:
    """Follow the browser's redirects from werk to the provider and back; the last answer."""
    with httpx.Client(timeout=10) as browser:
        start = browser.get(f"{werk.url}/api/v1/auth/oidc/login", params={"next": next_path})
        assert start.status_code == 303
        at_provider = browser.get(start.headers["location"])
        assert at_provider.status_code in (302, 307)
        return browser.get(at_provider.headers["location"])


def test_first_login_creates_a_viewer_and_opens_a_session(werk: LiveServer) -> None:
    back = _login(werk)
    assert back.status_code == 303 and back.headers["location"] == "/layers"
    cookie = back.cookies.get("werk_session")
    assert cookie
    me = httpx.get(f"{werk.url}/api/v1/auth/me", cookies={"werk_session": cookie}, timeout=5)
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["principal"]["name"] == "jane.doe"
    assert "uns:read" in body["permissions"] and "iam:admin" not in body["permissions"]
    again = _login(werk)
    assert again.status_code == 303
    assert werk.runtime.iam is not None
    users = werk.runtime.iam.directory
    assert users.find_by_name("jane.doe") is not None and users.find_by_name("jane.doe-2") is None


def test_open_redirects_are_refused(werk: LiveServer) -> None:
    assert _login(werk, "//evil.example/x").headers["location"] == "/"
    assert _login(werk, "https://evil.example/").headers["location"] == "/"


def test_replayed_or_forged_state_is_refused(werk: LiveServer) -> None:
    with httpx.Client(timeout=10) as browser:
        start = browser.get(f"{werk.url}/api/v1/auth/oidc/login")
        callback = browser.get(browser.get(start.headers["location"]).headers["location"])
        assert callback.status_code == 303
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        replay = browser.get(
            f"{werk.url}/api/v1/auth/oidc/callback", params={"code": "x", "state": state}
        )
        assert replay.status_code == 401 and replay.json()["code"] == "oidc_state"


@pytest.mark.parametrize(
    ("attribute", "value"), [("audience", "another-client"), ("nonce_override", "other-nonce")]
)
def test_tokens_for_someone_else_are_refused(
    werk: LiveServer, provider: Provider, attribute: str, value: str
) -> None:
    setattr(provider, attribute, value)
    back = _login(werk)
    assert back.status_code == 401 and back.json()["code"] == "oidc_token"
    assert "werk_session" not in back.cookies


def test_without_configuration_the_route_says_so(tmp_path: Path) -> None:
    with LiveServer(make_settings(tmp_path / "data")) as server:
        answer = httpx.get(f"{server.url}/api/v1/auth/oidc/login", timeout=5)
    assert answer.status_code == 404 and answer.json()["code"] == "oidc_disabled"
