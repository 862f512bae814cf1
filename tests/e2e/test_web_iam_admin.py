"""The access administration pages in a real Chromium: tenants, users, device keys, audit."""

from __future__ import annotations

import re
from uuid import uuid4

import httpx
import pytest
from playwright.sync_api import Page, expect
from tests.conftest import wait_until
from tests.e2e.web_support import Person, WerkApi, make_user, screenshot, session_cookie, sign_in

from werk.core.errors import Unauthenticated
from werk.iam.http import SESSION_COOKIE

pytestmark = pytest.mark.browser

expect.set_options(timeout=10_000)

PARTNER_TAG = "acme/partners/webpartner/line-1/cell-1/press-1/force"
OPERATOR_TAG = "acme/berlin/assembly/line-7/cell-1/saw-1/blade.speed"


@pytest.fixture(scope="module")
def admin(werk_server: WerkApi) -> Person:
    """An administrator of the operator, over every organisation."""
    return make_user(werk_server.iam, "web-admin", org="operator", role="admin", org_scope="any")


@pytest.fixture(scope="module")
def partner_admin(werk_server: WerkApi) -> Person:
    """The administrator of partner `webpartner`, scoped to the partner's subtree."""
    scope = ("acme/partners/webpartner/#",)
    make_user(werk_server.iam, "webpartner-user", org="webpartner", role="partner-user",
              namespace=scope)  # fmt: skip
    return make_user(
        werk_server.iam, "webpartner-admin", org="webpartner", role="partner-admin",
        namespace=scope,
    )  # fmt: skip


@pytest.fixture(scope="module")
def two_tenants_data(werk_server: WerkApi) -> None:
    """One tag in the partner's subtree and one in the operator's plant."""
    werk_server.publish(PARTNER_TAG, 812.5, "kN")
    werk_server.publish(OPERATOR_TAG, 2950.0, "rpm")
    wait_until(lambda: werk_server.value_of(PARTNER_TAG) == 812.5, timeout=20)
    wait_until(lambda: werk_server.value_of(OPERATOR_TAG) == 2950.0, timeout=20)


def test_a_partner_admin_sees_only_its_subtree_and_its_people(
    werk_server: WerkApi,
    admin: Person,
    partner_admin: Person,
    two_tenants_data: None,
    page: Page,
) -> None:
    sign_in(page.context, werk_server.url, partner_admin.name, partner_admin.password)
    page.goto(f"{werk_server.url}/")
    tree = page.get_by_test_id("namespace-tree")
    expect(tree).to_contain_text("webpartner")
    expect(tree).not_to_contain_text("berlin")
    table = page.get_by_test_id("tag-table")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("812.5")
    page.get_by_test_id("tag-search").fill("speed")
    expect(page.get_by_test_id("tag-count")).to_have_text("0 tags")
    screenshot(page, "partner-namespace")

    response = page.goto(f"{werk_server.url}/tag/{OPERATOR_TAG}")
    assert response is not None and response.status == 404
    expect(page.get_by_test_id("tag-not-found")).to_be_visible()

    page.goto(f"{werk_server.url}/admin/users")
    users = page.get_by_test_id("user-table")
    expect(users.locator("tbody tr")).to_have_count(2)
    expect(users).to_contain_text("webpartner-user")
    expect(users).not_to_contain_text(admin.name)
    nav = page.get_by_test_id("nav")
    expect(nav).to_contain_text("Access")
    expect(nav).not_to_contain_text("Data quality")
    screenshot(page, "partner-users")
    page.goto(f"{werk_server.url}/admin/orgs")
    expect(page.get_by_test_id("org-table").locator("tbody tr")).to_have_count(1)


def test_the_operator_sees_both_tenants(
    werk_server: WerkApi, admin: Person, two_tenants_data: None, page: Page
) -> None:
    sign_in(page.context, werk_server.url, admin.name, admin.password)
    page.goto(f"{werk_server.url}/")
    tree = page.get_by_test_id("namespace-tree")
    expect(tree).to_contain_text("webpartner")
    expect(tree).to_contain_text("berlin")


def test_a_new_device_key_is_shown_once_and_works(
    werk_server: WerkApi, admin: Person, page: Page
) -> None:
    name = f"web-press-{uuid4().hex[:6]}"
    sign_in(page.context, werk_server.url, admin.name, admin.password)
    page.goto(f"{werk_server.url}/admin/devices")
    page.get_by_test_id("device-new").click()
    page.get_by_test_id("device-name").fill(name)
    page.get_by_test_id("device-group").fill("web-plant")
    page.get_by_test_id("device-node").fill(name)
    page.get_by_test_id("device-submit").click()
    dialog = page.get_by_test_id("keys-dialog")
    expect(dialog).to_contain_text(f"API keys of {name}")
    page.get_by_test_id("key-create").click()
    shown = page.get_by_test_id("new-key")
    expect(shown).to_have_text(re.compile(r"^wk_[0-9a-f]{12}_\S{43}$"))
    secret = shown.inner_text()
    screenshot(page, "device-key-once")
    assert werk_server.iam.authn.verify(secret).name == name

    page.get_by_test_id("secret-done").click()
    expect(shown).to_have_count(0)
    key_id = secret.split("_")[1]
    row = dialog.get_by_test_id("key-table").locator("tbody tr", has_text=key_id)
    expect(row).to_contain_text("active")
    assert secret not in page.content()
    page.reload()
    assert secret not in page.content()

    page.get_by_test_id("device-table").locator("tbody tr", has_text=name).get_by_role(
        "button", name="API keys"
    ).click()
    page.get_by_test_id("key-table").locator("tbody tr", has_text=key_id).get_by_role(
        "button", name="Revoke"
    ).click()
    expect(page.get_by_test_id("key-table").locator("tbody tr", has_text=key_id)).to_contain_text(
        "revoked"
    )
    with pytest.raises(Unauthenticated):
        werk_server.iam.authn.verify(secret)


def test_a_new_user_gets_a_generated_password_shown_once(
    werk_server: WerkApi, admin: Person, page: Page
) -> None:
    name = f"web-newcomer-{uuid4().hex[:6]}"
    sign_in(page.context, werk_server.url, admin.name, admin.password)
    page.goto(f"{werk_server.url}/admin/users")
    page.get_by_test_id("user-new").click()
    page.get_by_test_id("user-name").fill(name)
    page.get_by_test_id("user-display-name").fill("New Comer")
    page.get_by_test_id("user-submit").click()
    shown = page.get_by_test_id("new-password")
    expect(shown).to_have_text(re.compile(r"^\S{12,}$"))
    password = shown.inner_text()
    page.get_by_test_id("secret-done").click()
    expect(page.get_by_test_id("user-table")).to_contain_text(name)
    assert session_cookie(werk_server.url, name, password)


def test_the_audit_page_lists_the_logins(
    werk_server: WerkApi, admin: Person, partner_admin: Person, page: Page
) -> None:
    session_cookie(werk_server.url, partner_admin.name, partner_admin.password)
    failed = httpx.post(
        f"{werk_server.url}/login",
        data={"username": partner_admin.name, "password": "not this one"},
        timeout=10.0,
    )
    assert "failed=1" in failed.headers["location"]
    sign_in(page.context, werk_server.url, admin.name, admin.password)
    page.goto(f"{werk_server.url}/admin/audit")
    page.get_by_test_id("audit-action").fill("auth.login")
    page.get_by_test_id("audit-apply").click()
    rows = page.get_by_test_id("audit-table").locator("tbody tr")
    expect(rows.filter(has_text=partner_admin.name).filter(has_text="ok").first).to_be_visible()
    expect(rows.filter(has_text=partner_admin.name).filter(has_text="failed")).to_have_count(1)
    expect(rows.filter(has_text="auth.session")).to_have_count(0)
    screenshot(page, "audit-logins")

    href = page.get_by_test_id("audit-export-csv").get_attribute("href")
    assert href is not None and "format=csv" in href and "action=auth.login" in href
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == SESSION_COOKIE)
    export = httpx.get(f"{werk_server.url}{href}", cookies={SESSION_COOKIE: cookie}, timeout=10)
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    assert partner_admin.name in export.text and "auth.session" not in export.text


def test_a_partner_admin_reads_only_its_organisation_in_the_audit(
    werk_server: WerkApi, admin: Person, partner_admin: Person, page: Page
) -> None:
    session_cookie(werk_server.url, admin.name, admin.password)
    sign_in(page.context, werk_server.url, partner_admin.name, partner_admin.password)
    page.goto(f"{werk_server.url}/admin/audit")
    page.get_by_test_id("audit-action").fill("auth.login")
    page.get_by_test_id("audit-apply").click()
    table = page.get_by_test_id("audit-table")
    expect(table).to_contain_text(partner_admin.name)
    expect(table).not_to_contain_text(admin.name)
