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
    Person,
    WerkApi,
    login,
    make_user,
    screenshot,
    session_cookie,
    sign_in,
)

from werk.iam.bootstrap import SYSTEM
from werk.iam.http import SESSION_COOKIE
from werk.web.auth import safe_next

pytestmark = pytest.mark.browser

expect.set_options(timeout=10_000)


@pytest.fixture(scope="module")
def operator(werk_server: WerkApi) -> Person:
    """An engineer of the operator: reads everything, administers nothing."""
    return make_user(werk_server.iam, "web-engineer", org="operator", role="engineer")


@pytest.fixture(scope="module")
def auditor(werk_server: WerkApi) -> Person:
    """An auditor of the operator who reads the audit log of every organisation."""
    return make_user(
        werk_server.iam, "web-auditor", org="operator", role="auditor", org_scope="any"
    )


@pytest.fixture
def second_tab(browser: Browser) -> Iterator[Page]:
    """A tab of a browser profile of its own (its own cookies)."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    yield tab
    context.close()


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
    werk_server: WerkApi, operator: Person, page: Page
) -> None:
    page.goto(f"{werk_server.url}/quality")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fquality$"))
    for username in (operator.name, "nobody-by-this-name"):
        submit(page, username, "not the password at all")
        expect(page.get_by_test_id("login-error")).to_have_text("Wrong username or password.")
    screenshot(page, "login-failed")
    assert page.context.cookies() == []


def test_signing_in_returns_to_the_page_asked_for(
    werk_server: WerkApi, operator: Person, page: Page
) -> None:
    page.goto(f"{werk_server.url}/quality")
    page.get_by_test_id("login-username").fill(operator.name)
    page.get_by_test_id("login-password").fill(operator.password)
    page.get_by_test_id("login-submit").click()
    expect(page).to_have_url(f"{werk_server.url}/quality")
    expect(page.get_by_test_id("refiner-status")).to_be_visible()
    page.get_by_test_id("user-menu-button").click()
    expect(page.get_by_test_id("user-name")).to_have_text(operator.name)
    expect(page.get_by_test_id("user-org")).not_to_be_empty()
    cookie = next(c for c in page.context.cookies() if c["name"] == SESSION_COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    screenshot(page, "signed-in-user-menu")


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


def test_logging_out_ends_the_session(werk_server: WerkApi, operator: Person, page: Page) -> None:
    login(page, werk_server.url, operator.name, operator.password, next_path="/quality")
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == SESSION_COOKIE)
    page.get_by_test_id("user-menu-button").click()
    page.get_by_test_id("logout").click()
    expect(page).to_have_url(f"{werk_server.url}/login")
    page.goto(f"{werk_server.url}/quality")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fquality$"))
    # The old cookie is dead on the server too, not only gone from the browser.
    response = httpx.get(
        f"{werk_server.url}/quality", cookies={SESSION_COOKIE: cookie}, timeout=10.0
    )
    assert response.status_code == 303


def test_a_page_without_the_permission_answers_403(
    werk_server: WerkApi, auditor: Person, page: Page
) -> None:
    sign_in(page.context, werk_server.url, auditor.name, auditor.password)
    response = page.goto(f"{werk_server.url}/quality")
    assert response is not None and response.status == 403
    expect(page.get_by_test_id("forbidden")).to_contain_text("quality:read")
    nav = page.get_by_test_id("nav")
    expect(nav).to_contain_text("Audit log")
    expect(nav).to_contain_text("Access")
    expect(nav).not_to_contain_text("Data quality")
    expect(nav).not_to_contain_text("Namespace")


def test_revoking_a_session_signs_that_browser_out(
    werk_server: WerkApi, page: Page, second_tab: Page
) -> None:
    admin = make_user(werk_server.iam, "web-admin", org="operator", role="admin", org_scope="any")
    person = make_user(werk_server.iam, "web-revoked", org="operator", role="viewer")
    login(page, werk_server.url, person.name, person.password, next_path="/quality")
    sign_in(second_tab.context, werk_server.url, admin.name, admin.password)
    second_tab.goto(f"{werk_server.url}/admin/keys")
    row = second_tab.get_by_test_id("signin-table").locator("tbody tr", has_text=person.name)
    expect(row).to_have_count(1)
    screenshot(second_tab, "admin-keys")
    row.get_by_role("button", name="Revoke").click()
    expect(row).to_have_count(0)
    # The open page goes to the login without a click; a reload would land there too.
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fquality$"))
    page.goto(f"{werk_server.url}/quality")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fquality$"))


def test_a_disabled_user_cannot_sign_in_and_its_open_pages_close(
    werk_server: WerkApi, page: Page
) -> None:
    person = make_user(werk_server.iam, "web-leaver", org="operator", role="viewer")
    login(page, werk_server.url, person.name, person.password, next_path="/quality")
    werk_server.iam.directory.update_principal(SYSTEM, person.id, disabled=True)
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fquality$"))
    submit(page, person.name, person.password)
    expect(page.get_by_test_id("login-error")).to_have_text("Wrong username or password.")


def submit(page: Page, username: str, password: str) -> None:
    """Fill in and send the login form, and wait for the page the post leads to."""
    page.get_by_test_id("login-username").fill(username)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    # The page after the post is a new one: its username field starts empty again.
    expect(page.get_by_test_id("login-username")).to_have_value("")


def test_too_many_failures_lock_the_account_and_say_how_long(
    werk_server: WerkApi, page: Page
) -> None:
    person = make_user(werk_server.iam, "web-locked", org="operator", role="viewer")
    for _ in range(werk_server.iam.settings.login_max_failures):
        with pytest.raises(AssertionError, match="could not sign in"):
            session_cookie(werk_server.url, person.name, "a wrong password")
    page.goto(f"{werk_server.url}/login")
    submit(page, person.name, person.password)
    expect(page.get_by_test_id("login-error")).to_have_text(
        re.compile(r"Too many failed sign-ins\. Try again in \d+ (seconds?|minutes?)\.")
    )
    screenshot(page, "login-locked")
