"""The access administration pages in a real Chromium: tenants, users, device keys, audit."""

from __future__ import annotations

import re
from collections.abc import Iterator
from uuid import uuid4

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from tests.e2e.web_support import (
    SPEED,
    Person,
    WerkApi,
    fresh_tab,
    make_user,
    screenshot,
    session_cookie,
    sign_in,
)

from werk.iam.http import SESSION_COOKIE

pytestmark = pytest.mark.browser

expect.set_options(timeout=10_000)

# The partner maintains the robot cell: it sees cell 2 of the plant, not cell 1.
PARTNER_SCOPE = "acme/berlin/machining/line-1/cell-2/#"


@pytest.fixture
def tab(browser: Browser) -> Iterator[Page]:
    """A tab nobody is signed in to yet."""
    yield from fresh_tab(browser)


@pytest.fixture(scope="module")
def admin(werk_server: WerkApi) -> Person:
    """An administrator of the operator, over every organisation."""
    return make_user(werk_server, "iam-admin", org="operator", role="admin", org_scope="any")


@pytest.fixture(scope="module")
def partner_admin(werk_server: WerkApi) -> Person:
    """The administrator of partner `webpartner`, scoped to the partner's subtree."""
    scope = (PARTNER_SCOPE,)
    make_user(werk_server, "webpartner-user", org="webpartner", role="partner-user",
              namespace=scope)  # fmt: skip
    return make_user(
        werk_server, "webpartner-admin", org="webpartner", role="partner-admin",
        namespace=scope,
    )  # fmt: skip


def test_a_partner_admin_sees_only_its_subtree_and_its_people(
    werk_server: WerkApi,
    admin: Person,
    partner_admin: Person,
    plant: WerkApi,
    tab: Page,
) -> None:
    sign_in(tab.context, werk_server.url, partner_admin.name, partner_admin.password)
    tab.goto(f"{werk_server.url}/")
    tree = tab.get_by_test_id("namespace-tree")
    expect(tree).to_contain_text("robot-1")
    expect(tree).not_to_contain_text("cell-1")
    table = tab.get_by_test_id("tag-table")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("joint.torque")
    tab.get_by_test_id("tag-search").fill("spindle")
    expect(tab.get_by_test_id("tag-count")).to_have_text("0 tags")
    screenshot(tab, "partner-namespace")

    response = tab.goto(f"{werk_server.url}/tag/{SPEED}")
    assert response is not None and response.status == 404
    expect(tab.get_by_test_id("tag-not-found")).to_be_visible()

    tab.goto(f"{werk_server.url}/admin/users")
    users = tab.get_by_test_id("user-table")
    expect(users.locator("tbody tr")).to_have_count(2)
    expect(users).to_contain_text("webpartner-user")
    expect(users).not_to_contain_text(admin.name)
    nav = tab.get_by_test_id("nav")
    expect(nav).to_contain_text("Access")
    expect(nav).not_to_contain_text("Data quality")
    screenshot(tab, "partner-users")
    tab.goto(f"{werk_server.url}/admin/orgs")
    expect(tab.get_by_test_id("org-table").locator("tbody tr")).to_have_count(1)


def test_the_operator_sees_the_partners_cell_and_its_own(
    werk_server: WerkApi, admin: Person, plant: WerkApi, tab: Page
) -> None:
    sign_in(tab.context, werk_server.url, admin.name, admin.password)
    tab.goto(f"{werk_server.url}/")
    tree = tab.get_by_test_id("namespace-tree")
    expect(tree).to_contain_text("robot-1")
    expect(tree).to_contain_text("cell-1")
    tab.goto(f"{werk_server.url}/tag/{SPEED}")
    expect(tab.get_by_test_id("tag-value")).to_have_text("12000.25")


def test_a_new_device_key_is_shown_once_and_works(
    werk_server: WerkApi, admin: Person, tab: Page
) -> None:
    name = f"web-press-{uuid4().hex[:6]}"
    sign_in(tab.context, werk_server.url, admin.name, admin.password)
    tab.goto(f"{werk_server.url}/admin/devices")
    tab.get_by_test_id("device-new").click()
    tab.get_by_test_id("device-name").fill(name)
    tab.get_by_test_id("device-group").fill("web-plant")
    tab.get_by_test_id("device-node").fill(name)
    tab.get_by_test_id("device-submit").click()
    dialog = tab.get_by_test_id("keys-dialog")
    expect(dialog).to_contain_text(f"API keys of {name}")
    tab.get_by_test_id("key-create").click()
    shown = tab.get_by_test_id("new-key")
    expect(shown).to_have_text(re.compile(r"^wk_[0-9a-f]{12}_\S{43}$"))
    secret = shown.inner_text()
    screenshot(tab, "device-key-once")
    assert me(werk_server, secret).json()["name"] == name

    tab.get_by_test_id("secret-done").click()
    expect(shown).to_have_count(0)
    key_id = secret.split("_")[1]
    row = dialog.get_by_test_id("key-table").locator("tbody tr", has_text=key_id)
    expect(row).to_contain_text("active")
    assert secret not in tab.content()
    tab.reload()
    assert secret not in tab.content()

    tab.get_by_test_id("device-table").locator("tbody tr", has_text=name).get_by_role(
        "button", name="API keys"
    ).click()
    tab.get_by_test_id("key-table").locator("tbody tr", has_text=key_id).get_by_role(
        "button", name="Revoke"
    ).click()
    expect(tab.get_by_test_id("key-table").locator("tbody tr", has_text=key_id)).to_contain_text(
        "revoked"
    )
    assert me(werk_server, secret).status_code == 401


def me(api: WerkApi, key: str) -> httpx.Response:
    """Who werk says the holder of an API key is."""
    return httpx.get(f"{api.url}/api/v1/auth/me", headers={"X-API-Key": key}, timeout=10.0)


def test_a_new_user_gets_a_generated_password_shown_once(
    werk_server: WerkApi, admin: Person, tab: Page
) -> None:
    name = f"web-newcomer-{uuid4().hex[:6]}"
    sign_in(tab.context, werk_server.url, admin.name, admin.password)
    tab.goto(f"{werk_server.url}/admin/users")
    tab.get_by_test_id("user-new").click()
    tab.get_by_test_id("user-name").fill(name)
    tab.get_by_test_id("user-display-name").fill("New Comer")
    tab.get_by_test_id("user-submit").click()
    shown = tab.get_by_test_id("new-password")
    expect(shown).to_have_text(re.compile(r"^\S{12,}$"))
    password = shown.inner_text()
    tab.get_by_test_id("secret-done").click()
    expect(tab.get_by_test_id("user-table")).to_contain_text(name)
    assert session_cookie(werk_server.url, name, password)


def test_the_audit_page_lists_the_logins(
    werk_server: WerkApi, admin: Person, partner_admin: Person, tab: Page
) -> None:
    session_cookie(werk_server.url, partner_admin.name, partner_admin.password)
    failed = httpx.post(
        f"{werk_server.url}/login",
        data={"username": partner_admin.name, "password": "not this one"},
        timeout=10.0,
    )
    assert "failed=1" in failed.headers["location"]
    sign_in(tab.context, werk_server.url, admin.name, admin.password)
    tab.goto(f"{werk_server.url}/admin/audit")
    tab.get_by_test_id("audit-action").fill("auth.login")
    tab.get_by_test_id("audit-apply").click()
    rows = tab.get_by_test_id("audit-table").locator("tbody tr")
    expect(rows.filter(has_text=partner_admin.name).filter(has_text="ok").first).to_be_visible()
    expect(rows.filter(has_text=partner_admin.name).filter(has_text="failed")).to_have_count(1)
    expect(rows.filter(has_text="auth.session")).to_have_count(0)
    screenshot(tab, "audit-logins")

    href = tab.get_by_test_id("audit-export-csv").get_attribute("href")
    assert href is not None and "format=csv" in href and "action=auth.login" in href
    cookie = next(c["value"] for c in tab.context.cookies() if c["name"] == SESSION_COOKIE)
    export = httpx.get(f"{werk_server.url}{href}", cookies={SESSION_COOKIE: cookie}, timeout=10)
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    assert partner_admin.name in export.text and "auth.session" not in export.text


def test_a_partner_admin_reads_only_its_organisation_in_the_audit(
    werk_server: WerkApi, admin: Person, partner_admin: Person, tab: Page
) -> None:
    session_cookie(werk_server.url, admin.name, admin.password)
    sign_in(tab.context, werk_server.url, partner_admin.name, partner_admin.password)
    tab.goto(f"{werk_server.url}/admin/audit")
    tab.get_by_test_id("audit-action").fill("auth.login")
    tab.get_by_test_id("audit-apply").click()
    table = tab.get_by_test_id("audit-table")
    expect(table).to_contain_text(partner_admin.name)
    expect(table).not_to_contain_text(admin.name)
