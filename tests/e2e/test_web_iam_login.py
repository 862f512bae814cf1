"""Signing in and out of the web UI, page gating, and revoked sessions, in a real Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from playwright.sync_api import Browser, Page, expect
from tests.e2e.web_support import (
    IAM,
    Person,
    WerkApi,
    fresh_tab,
    login,
    make_user,
    screenshot,
    sign_in,
)

from werk.iam.http import SESSION_COOKIE
from werk.web.auth import safe_next

pytestmark = pytest.mark.browser

expect.set_options(timeout=10_000)


@pytest.fixture(scope="module")
def operator(werk_server: WerkApi) -> Person:
    """An engineer of the operator: reads everything, administers nothing."""
    return make_user(werk_server, "iam-engineer", org="operator", role="engineer")


@pytest.fixture(scope="module")
def auditor(werk_server: WerkApi) -> Person:
    """An auditor of the operator who reads the audit log of every organisation."""
    return make_user(werk_server, "iam-auditor", org="operator", role="auditor", org_scope="any")


@pytest.fixture
def tab(browser: Browser) -> Iterator[Page]:
    """A tab nobody is signed in to."""
    yield from fresh_tab(browser)


@pytest.fixture
def second_tab(browser: Browser) -> Iterator[Page]:
    """A tab of another browser profile (its own cookies)."""
    yield from fresh_tab(browser)


def test_an_anonymous_page_request_redirects_to_the_login(werk_server: WerkApi) -> None:
    for path, login_page in (
        ("/", "/login"),
        ("/quality", "/login?next=%2Fquality"),
        ("/admin/users", "/login?next=%2Fadmin%2Fusers"),
        ("/tag/acme/berlin/x?window=1h", "/login?next=%2Ftag%2Facme%2Fberlin%2Fx%3Fwindow%3D1h"),
    ):
        response = httpx.get(f"{werk_server.url}{path}", timeout=10.0)
        assert response.status_code == 303
        assert response.headers["location"] == login_page


def test_a_wrong_password_is_refused_without_saying_whether_the_user_exists(
    werk_server: WerkApi, operator: Person, tab: Page
) -> None:
    tab.goto(f"{werk_server.url}/quality")
    expect(tab).to_have_url(re.compile(r"/login\?next=%2Fquality$"))
    for username in (operator.name, "nobody-by-this-name"):
        submit(tab, username, "not the password at all")
        expect(tab.get_by_test_id("login-error")).to_have_text("Wrong username or password.")
    screenshot(tab, "login-failed")
    assert tab.context.cookies() == []


def test_signing_in_returns_to_the_page_asked_for(
    werk_server: WerkApi, operator: Person, tab: Page
) -> None:
    tab.goto(f"{werk_server.url}/quality")
    tab.get_by_test_id("login-username").fill(operator.name)
    tab.get_by_test_id("login-password").fill(operator.password)
    tab.get_by_test_id("login-submit").click()
    expect(tab).to_have_url(f"{werk_server.url}/quality")
    expect(tab.get_by_test_id("refiner-status")).to_be_visible()
    tab.get_by_test_id("user-menu-button").click()
    expect(tab.get_by_test_id("user-name")).to_have_text(operator.name)
    expect(tab.get_by_test_id("user-org")).to_have_text("Operator")
    expect(tab.get_by_test_id("logout")).to_be_visible()
    cookie = next(c for c in tab.context.cookies() if c["name"] == SESSION_COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    screenshot(tab, "signed-in-user-menu")


def test_the_login_never_redirects_to_another_site(werk_server: WerkApi, operator: Person) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "/login"):
        response = httpx.post(
            f"{werk_server.url}/login",
            data={"username": operator.name, "password": operator.password, "next": target},
            timeout=10.0,
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/"


@given(st.text(max_size=40))
def test_only_paths_of_this_site_are_followed_after_the_login(value: str) -> None:
    target = safe_next(value)
    assert target.startswith("/") and not target.startswith("//")
    assert "\\" not in target and not any(ord(c) < 0x20 for c in target)
    assert target == value or target == "/"


def test_logging_out_ends_the_session(werk_server: WerkApi, operator: Person, tab: Page) -> None:
    login(tab, werk_server.url, operator.name, operator.password, next_path="/quality")
    cookie = next(c["value"] for c in tab.context.cookies() if c["name"] == SESSION_COOKIE)
    tab.get_by_test_id("user-menu-button").click()
    tab.get_by_test_id("logout").click()
    expect(tab).to_have_url(f"{werk_server.url}/login")
    tab.goto(f"{werk_server.url}/quality")
    expect(tab).to_have_url(re.compile(r"/login\?next=%2Fquality$"))
    # The old cookie is dead on the server too, not only gone from the browser.
    response = httpx.get(
        f"{werk_server.url}/quality", cookies={SESSION_COOKIE: cookie}, timeout=10.0
    )
    assert response.status_code == 303


def test_a_page_without_the_permission_answers_403(
    werk_server: WerkApi, auditor: Person, tab: Page
) -> None:
    sign_in(tab.context, werk_server.url, auditor.name, auditor.password)
    response = tab.goto(f"{werk_server.url}/quality")
    assert response is not None and response.status == 403
    expect(tab.get_by_test_id("forbidden")).to_contain_text("quality:read")
    nav = tab.get_by_test_id("nav")
    expect(nav).to_contain_text("Audit log")
    expect(nav).to_contain_text("Access")
    expect(nav).not_to_contain_text("Data quality")
    expect(nav).not_to_contain_text("Namespace")


def test_revoking_a_session_signs_that_browser_out(
    werk_server: WerkApi, tab: Page, second_tab: Page
) -> None:
    admin = make_user(werk_server, "iam-revoker", org="operator", role="admin")
    person = make_user(werk_server, "iam-revoked", org="operator", role="viewer")
    login(tab, werk_server.url, person.name, person.password, next_path="/quality")
    sign_in(second_tab.context, werk_server.url, admin.name, admin.password)
    second_tab.goto(f"{werk_server.url}/admin/keys")
    row = second_tab.get_by_test_id("signin-table").locator("tbody tr", has_text=person.name)
    expect(row).to_have_count(1)
    screenshot(second_tab, "admin-keys")
    row.get_by_role("button", name="Revoke").click()
    expect(row).to_have_count(0)
    # The open page goes to the login without a click; a reload would land there too.
    expect(tab).to_have_url(re.compile(r"/login\?next=%2Fquality$"))
    tab.goto(f"{werk_server.url}/quality")
    expect(tab).to_have_url(re.compile(r"/login\?next=%2Fquality$"))


def test_a_disabled_user_cannot_sign_in_and_its_open_pages_close(
    werk_server: WerkApi, tab: Page
) -> None:
    person = make_user(werk_server, "iam-leaver", org="operator", role="viewer")
    login(tab, werk_server.url, person.name, person.password, next_path="/quality")
    werk_server.http.post(f"{IAM}/principals/{person.id}/disable").raise_for_status()
    expect(tab).to_have_url(re.compile(r"/login\?next=%2Fquality$"))
    submit(tab, person.name, person.password)
    expect(tab.get_by_test_id("login-error")).to_have_text("Wrong username or password.")


def submit(tab: Page, username: str, password: str) -> None:
    """Fill in and send the login form, and wait for the page the post leads to."""
    tab.get_by_test_id("login-username").fill(username)
    tab.get_by_test_id("login-password").fill(password)
    tab.get_by_test_id("login-submit").click()
    # The page after the post is a new one: its username field starts empty again.
    expect(tab.get_by_test_id("login-username")).to_have_value("")


def test_too_many_failures_lock_the_account_and_say_how_long(
    werk_server: WerkApi, tab: Page
) -> None:
    person = make_user(werk_server, "iam-locked", org="operator", role="viewer")
    for _ in range(10):
        refused = httpx.post(
            f"{werk_server.url}/login",
            data={"username": person.name, "password": "a wrong password"},
            timeout=10.0,
        )
        if "wait=" in refused.headers["location"]:
            break
    else:
        pytest.fail("ten wrong passwords in a row did not lock the account")
    tab.goto(f"{werk_server.url}/login")
    submit(tab, person.name, person.password)
    expect(tab.get_by_test_id("login-error")).to_have_text(
        re.compile(r"Too many failed sign-ins\. Try again in \d+ (seconds?|minutes?)\.")
    )
    screenshot(tab, "login-locked")
