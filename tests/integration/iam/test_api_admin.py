"""The IAM administration API: organisations, principals, groups, roles, bindings, keys, audit."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer
from tests.integration.iam.api_support import API, Werk, started_werk, unique

IAM = f"{API}/iam"


@pytest.fixture(scope="module")
def werk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Werk]:
    """One werk for the module."""
    with started_werk(tmp_path_factory.mktemp("werk")) as started:
        yield started


class Admin:
    """Requests as the operator administrator, asserting the expected status."""

    def __init__(self, werk: Werk) -> None:
        self.client, self.headers = werk.client, werk.admin.headers

    def __call__(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        response = self.client.request(method, f"{IAM}{path}", headers=self.headers, **kwargs)
        assert response.status_code == expect, response.text
        return response.json() if response.content and expect != 204 else None


@pytest.fixture
def admin(werk: Werk) -> Admin:
    return Admin(werk)


def test_organisations_are_created_read_renamed_and_disabled(werk: Werk, admin: Admin) -> None:
    slug = unique("acme").lower()
    org = admin("POST", "/orgs", 201, json={"slug": slug, "name": "Acme"})
    assert (org["slug"], org["kind"], org["disabled"]) == (slug, "partner", False)
    assert admin("GET", f"/orgs/{org['id']}") == org
    assert org["id"] in {o["id"] for o in admin("GET", "/orgs")}
    assert admin("PATCH", f"/orgs/{org['id']}", json={"name": "Acme AG"})["name"] == "Acme AG"
    member = werk.account(org["id"], [("partner-user", (f"{slug}/#",), "own")])
    assert werk.client.get(f"{API}/auth/me", headers=member.headers).status_code == 200
    admin("PATCH", f"/orgs/{org['id']}", json={"disabled": True})
    assert werk.client.get(f"{API}/auth/me", headers=member.headers).status_code == 401
    admin("PATCH", f"/orgs/{org['id']}", json={"disabled": False})
    assert werk.client.get(f"{API}/auth/me", headers=member.headers).status_code == 200
    admin("POST", "/orgs", 409, json={"slug": slug, "name": "again"})
    admin("POST", "/orgs", 422, json={"slug": "Not A Slug", "name": "x"})
    admin("GET", "/orgs/0123456789abcdef0123456789abcdef", 404)


def test_only_operator_admins_create_organisations(werk: Werk) -> None:
    partner = werk.org()
    partner_admin = werk.account(partner, [("partner-admin", ("p/#",), "own")])
    response = werk.client.post(
        f"{IAM}/orgs", json={"slug": unique("x"), "name": "x"}, headers=partner_admin.headers
    )
    assert response.status_code == 403


def test_a_new_user_gets_a_generated_password_shown_once(werk: Werk, admin: Admin) -> None:
    name = unique("alice")
    response = werk.client.post(
        f"{IAM}/users", json={"name": name, "email": "alice@example.com"}, headers=admin.headers
    )
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    password = created["password"]
    assert len(password) >= 20
    user = created["user"]
    assert (user["name"], user["kind"], user["org_id"]) == (name, "user", werk.operator_org)
    assert user["has_password"] is True and "password" not in user
    login = {"grant_type": "password", "username": name, "password": password}
    assert werk.client.post(f"{API}/auth/token", data=login).status_code == 200
    for listing in (
        admin("GET", "/users"),
        admin("GET", "/principals"),
        [admin("GET", f"/principals/{user['id']}")],
    ):
        assert password not in json.dumps(listing)
    given = admin("POST", "/users", 201, json={"name": unique("bob"), "password": "x" * 16})
    assert given["password"] is None
    admin("POST", "/users", 422, json={"name": unique("carol"), "password": "short"})
    admin("POST", "/users", 409, json={"name": name})


def test_service_accounts_and_devices(admin: Admin) -> None:
    service = admin("POST", "/service-accounts", 201, json={"name": unique("erp")})
    assert service["kind"] == "service" and service["has_password"] is False
    device = admin(
        "POST", "/devices", 201,
        json={"name": unique("gw"), "sparkplug_group": "acme", "sparkplug_node": unique("node")},
    )  # fmt: skip
    assert device["kind"] == "device" and device["sparkplug"][0] == "acme"
    assert service["id"] in {p["id"] for p in admin("GET", "/service-accounts")}
    assert device["id"] in {p["id"] for p in admin("GET", "/devices")}
    assert device["id"] not in {p["id"] for p in admin("GET", "/users")}
    kinds = {p["kind"] for p in admin("GET", "/principals", params={"kind": "device"})}
    assert kinds == {"device"}


def test_principals_are_changed_and_get_passwords(werk: Werk, admin: Admin) -> None:
    user = werk.account(werk.operator_org)
    changed = admin(
        "PATCH", f"/principals/{user.id}", json={"display_name": "Dana", "email": "d@example.com"}
    )
    assert (changed["display_name"], changed["email"]) == ("Dana", "d@example.com")
    admin("PUT", f"/principals/{user.id}/password", 204, json={"password": "a new long password"})
    login = {"grant_type": "password", "username": user.name, "password": "a new long password"}
    assert werk.client.post(f"{API}/auth/token", data=login).status_code == 200
    admin("PUT", f"/principals/{user.id}/password", 422, json={"password": "too short"})
    assert admin("POST", f"/principals/{user.id}/disable")["disabled"] is True
    assert admin("POST", f"/principals/{user.id}/enable")["disabled"] is False
    admin("GET", "/principals/0123456789abcdef0123456789abcdef", 404)


def test_groups_give_their_members_the_group_bindings(werk: Werk, admin: Admin) -> None:
    user = werk.account(werk.operator_org)
    group = admin("POST", "/groups", 201, json={"name": unique("ops")})
    admin("PUT", f"/groups/{group['id']}/members/{user.id}", 204)
    assert admin("GET", f"/groups/{group['id']}")["members"] == [user.id]
    viewer = next(r for r in admin("GET", "/roles") if r["name"] == "viewer")
    binding = admin(
        "POST", "/bindings", 201, json={"role_id": viewer["id"], "group_id": group["id"]}
    )
    assert [b["id"] for b in admin("GET", "/bindings", params={"group_id": group["id"]})] == [
        binding["id"]
    ]
    me = werk.client.get(f"{API}/auth/me", headers=user.headers).json()
    assert "uns:read" in me["permissions"]
    admin("DELETE", f"/groups/{group['id']}/members/{user.id}", 204)
    me = werk.client.get(f"{API}/auth/me", headers=user.headers).json()
    assert me["permissions"] == []
    admin("DELETE", f"/groups/{group['id']}", 204)
    admin("GET", f"/groups/{group['id']}", 404)
    assert group["id"] not in {g["id"] for g in admin("GET", "/groups")}


def test_roles_are_made_of_known_permissions(werk: Werk, admin: Admin) -> None:
    roles = admin("GET", "/roles")
    assert {"admin", "viewer", "partner-admin", "auditor"} <= {
        r["name"] for r in roles if r["builtin"]
    }
    role = admin(
        "POST", "/roles", 201, json={"name": unique("reader"), "permissions": ["uns:read"]}
    )
    assert admin("GET", f"/roles/{role['id']}") == role
    changed = admin(
        "PATCH", f"/roles/{role['id']}", json={"permissions": ["uns:read", "quality:read"]}
    )
    assert changed["permissions"] == ["uns:read", "quality:read"]
    admin("POST", "/roles", 422, json={"name": unique("bad"), "permissions": ["uns:fly"]})
    builtin = next(r for r in roles if r["name"] == "viewer")
    admin("PATCH", f"/roles/{builtin['id']}", 403, json={"description": "mine now"})
    admin("DELETE", f"/roles/{role['id']}", 204)
    admin("GET", f"/roles/{role['id']}", 404)


def test_bindings_change_what_a_principal_may_do(werk: Werk, admin: Admin) -> None:
    user = werk.account(werk.operator_org)
    role_id = werk.role(werk.operator_org, ["uns:read"])
    body = {"role_id": role_id, "principal_id": user.id, "namespace": ["acme/berlin/#"]}
    binding = admin("POST", "/bindings", 201, json=body)
    assert (binding["namespace"], binding["org_scope"]) == (["acme/berlin/#"], "own")
    listed = admin("GET", "/bindings", params={"principal_id": user.id})
    assert [b["id"] for b in listed] == [binding["id"]]
    me = werk.client.get(f"{API}/auth/me", headers=user.headers).json()
    assert me["permissions"] == ["uns:read"] and me["grants"][0]["namespace"] == ["acme/berlin/#"]
    admin("DELETE", f"/bindings/{binding['id']}", 204)
    assert werk.client.get(f"{API}/auth/me", headers=user.headers).json()["permissions"] == []
    admin("POST", "/bindings", 422, json={"role_id": role_id})


def test_an_api_key_is_shown_once_and_revoked_at_once(werk: Werk, admin: Admin) -> None:
    device = werk.account(werk.operator_org, kind="device")
    response = werk.client.post(
        f"{IAM}/api-keys", json={"principal_id": device.id, "name": "mqtt"}, headers=admin.headers
    )
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    secret, key = created["secret"], created["key"]
    assert secret.startswith(f"wk_{key['id']}_")
    assert werk.client.get(f"{API}/auth/me", headers=bearer(secret)).json()["id"] == device.id
    listed = admin("GET", "/api-keys", params={"principal_id": device.id})
    assert {k["id"] for k in listed} == {key["id"], device.key.split("_")[1]}
    assert secret.split("_", 2)[2] not in json.dumps(listed)
    admin("DELETE", f"/api-keys/{key['id']}", 204)
    assert werk.client.get(f"{API}/auth/me", headers=bearer(secret)).status_code == 401
    revoked = next(k for k in admin("GET", "/api-keys") if k["id"] == key["id"])
    assert revoked["revoked_at"] is not None


def test_credentials_are_listed_and_revoked_one_by_one(werk: Werk, admin: Admin) -> None:
    user = werk.account(werk.operator_org, [("viewer", ("#",), "own")])
    tokens = werk.token(user)
    with TestClient(werk.client.app) as browser:
        body = {"username": user.name, "password": user.password}
        assert browser.post(f"{API}/auth/login", json=body).status_code == 200
        listed = admin("GET", f"/principals/{user.id}/credentials")
        assert sorted(c["kind"] for c in listed) == ["refresh", "session"]
        session = next(c for c in listed if c["kind"] == "session")
        admin("POST", f"/credentials/{session['id']}/revoke", 204)
        assert browser.get(f"{API}/auth/me").status_code == 401
    family = next(c for c in listed if c["kind"] == "refresh")
    admin("POST", f"/credentials/{family['id']}/revoke", 204)
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert werk.client.post(f"{API}/auth/token", data=data).status_code == 400
    admin("POST", "/credentials/0123456789abcdef0123456789abcdef/revoke", 404)


def test_signing_keys_are_listed_without_private_parts(admin: Admin) -> None:
    keys = admin("GET", "/signing-keys")
    assert sum(k["active"] for k in keys) == 1
    assert all(set(k) == {"kid", "algorithm", "created_at", "retired_at", "active"} for k in keys)


def test_writes_and_refusals_are_audited_by_the_middleware(werk: Werk, admin: Admin) -> None:
    headers = {**admin.headers, "User-Agent": "audit-probe/1.0"}
    name = unique("audited")
    response = werk.client.post(f"{IAM}/service-accounts", json={"name": name}, headers=headers)
    assert response.status_code == 201
    writes = [e for e in werk.audit("http.write") if e["user_agent"] == "audit-probe/1.0"]
    assert [(e["target"], e["status"], e["outcome"], e["detail"]) for e in writes] == [
        (f"{IAM}/service-accounts", 201, "ok", {"method": "POST"})
    ]
    assert (writes[0]["actor_id"], writes[0]["ip"]) == (werk.admin.id, "testclient")
    werk.client.get(f"{IAM}/orgs", headers=headers)  # a read is not audited
    assert len([e for e in werk.audit("http.write") if e["user_agent"] == "audit-probe/1.0"]) == 1
    nobody = werk.account(werk.operator_org)
    probe = {"User-Agent": "denied-probe/1.0"}
    werk.client.get(f"{IAM}/orgs", headers=probe)
    werk.client.delete(f"{IAM}/roles/x", headers={**probe, **nobody.headers})
    denied = [e for e in werk.audit("http.denied") if e["user_agent"] == "denied-probe/1.0"]
    assert (403, nobody.id, "DELETE") in [
        (e["status"], e["actor_id"], e["detail"]["method"]) for e in denied
    ]
    # anonymous refusals: one event per address and minute, later ones counted into the next
    anonymous = [e for e in werk.audit("http.denied") if e["actor_id"] == ""]
    assert anonymous and all(e["status"] == 401 for e in anonymous)


def test_audit_query_filters_pages_and_both_directions(werk: Werk, admin: Admin) -> None:
    for _ in range(3):
        admin("POST", "/service-accounts", 201, json={"name": unique("paged")})
    first = admin("GET", "/audit", params={"action": "iam.*", "limit": 2})
    assert len(first["items"]) == 2 and first["next_after_seq"] == first["items"][-1]["seq"]
    assert all(e["action"].startswith("iam.") for e in first["items"])
    after = admin("GET", "/audit", params={"action": "iam.*", "after_seq": first["next_after_seq"]})
    assert after["items"][0]["seq"] > first["items"][-1]["seq"]
    newest = admin("GET", "/audit", params={"newest_first": True, "limit": 3})
    seqs = [e["seq"] for e in newest["items"]]
    assert seqs == sorted(seqs, reverse=True) and newest["next_before_seq"] == seqs[-1]
    assert (
        admin("GET", "/audit", params={"outcome": "denied", "limit": 1000})["next_after_seq"]
        is None
    )
    admin("GET", "/audit", 422, params={"outcome": "maybe"})
    verified = admin("GET", "/audit/verify")
    assert verified["ok"] is True and verified["checked"] > 0


def test_audit_exports_stream_csv_and_json_lines(werk: Werk, admin: Admin) -> None:
    admin("POST", "/service-accounts", 201, json={"name": unique("exported")})
    expected = len(admin("GET", "/audit", params={"action": "iam.*", "limit": 1000})["items"])
    response = werk.client.get(
        f"{IAM}/audit/export", params={"format": "csv", "action": "iam.*"}, headers=admin.headers
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "werk-audit.csv" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) >= expected and all(r["action"].startswith("iam.") for r in rows)
    response = werk.client.get(
        f"{IAM}/audit/export", params={"format": "jsonl"}, headers=admin.headers
    )
    assert response.headers["content-type"].startswith("application/x-ndjson")
    events = [json.loads(line) for line in response.text.splitlines()]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    admin("GET", "/audit/export", 422, params={"format": "xml"})


def test_no_listing_carries_a_secret(werk: Werk, admin: Admin) -> None:
    user = werk.account(werk.operator_org, [("viewer", ("#",), "own")])
    werk.token(user)
    texts = [
        json.dumps(admin("GET", path))
        for path in (
            "/principals",
            "/users",
            "/api-keys",
            "/signing-keys",
            f"/principals/{user.id}/credentials",
        )
    ]
    texts.append(json.dumps(admin("GET", "/audit", params={"limit": 1000})))
    for text in texts:
        assert user.key not in text and user.key.split("_", 2)[2] not in text
        assert str(user.password) not in text
        assert "$argon2" not in text and "PRIVATE KEY" not in text


def test_an_org_admin_reads_iam_but_a_viewer_does_not(werk: Werk) -> None:
    viewer = werk.account(werk.operator_org, [("viewer", ("#",), "own")])
    auditor = werk.account(werk.operator_org, [("auditor", ("#",), "own")])
    for path in ("/orgs", "/principals", "/roles", "/bindings", "/api-keys", "/audit"):
        assert werk.client.get(f"{IAM}{path}", headers=viewer.headers).status_code == 403
        assert werk.client.get(f"{IAM}{path}", headers=auditor.headers).status_code == 200
    response = werk.client.post(
        f"{IAM}/service-accounts", json={"name": unique("no")}, headers=auditor.headers
    )
    assert response.status_code == 403


def test_partner_admins_cannot_escalate(werk: Werk) -> None:
    partner = werk.org()
    partner_admin = werk.account(partner, [("partner-admin", ("p/#",), "own")])
    created = werk.client.post(
        f"{IAM}/users",
        json={"name": unique("pu"), "password": "x" * 16},
        headers=partner_admin.headers,
    )
    assert created.status_code == 201 and created.json()["user"]["org_id"] == partner
    roles = werk.client.get(f"{IAM}/roles", headers=partner_admin.headers).json()
    admin_role = next(r for r in roles if r["name"] == "admin")
    body = {"role_id": admin_role["id"], "principal_id": created.json()["user"]["id"]}
    response = werk.client.post(f"{IAM}/bindings", json=body, headers=partner_admin.headers)
    assert response.status_code == 403
    wide = {
        **body,
        "role_id": next(r for r in roles if r["name"] == "partner-user")["id"],
        "namespace": ["#"],
    }
    response = werk.client.post(f"{IAM}/bindings", json=wide, headers=partner_admin.headers)
    assert response.status_code == 403
    rotate = werk.client.post(f"{IAM}/signing-keys/rotate", headers=partner_admin.headers)
    assert rotate.status_code == 403
