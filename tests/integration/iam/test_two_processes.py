"""Two werk runtimes on one database, as two processes of a scale-out deployment.

A device disabled or a token revoked through one werk is refused by the other within a
poll of the change feed: on its API, and on its MQTT gateway, which drops the live
connection.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from tests.conftest import admin_client, bearer, make_settings, wait_until
from tests.integration.iam.acl_matrix import Probe

from werk.iam.bootstrap import SYSTEM
from werk.iam.service import Iam
from werk.runtime import Runtime

BAD_CREDENTIALS = 0x86
TOPIC = "uns/v1/acme/berlin/machining/line-9/press-7/_value/force"


def _refused(client: TestClient, credential: str) -> bool:
    return client.get("/api/v1/auth/me", headers=bearer(credential)).status_code == 401


def _device(iam: Iam) -> tuple[str, str]:
    org = next(o for o in iam.directory.list_orgs(SYSTEM) if o.slug == "operator")
    role = next(r for r in iam.directory.list_roles(SYSTEM) if r.builtin and r.name == "device")
    made = iam.directory.create_device(SYSTEM, org_id=org.id, name="press-7")
    iam.directory.create_binding(
        SYSTEM, role_id=role.id, principal_id=made.id,
        namespace=("acme/berlin/machining/line-9/press-7/#",),
    )  # fmt: skip
    _, key = iam.directory.create_api_key(SYSTEM, principal_id=made.id, name="main")
    return made.id, key


def _service(iam: Iam) -> tuple[str, str]:
    org = next(o for o in iam.directory.list_orgs(SYSTEM) if o.slug == "operator")
    role = next(
        r for r in iam.directory.list_roles(SYSTEM) if r.builtin and r.name == "integration"
    )
    made = iam.directory.create_service_account(SYSTEM, org_id=org.id, name="mes-sync")
    iam.directory.create_binding(SYSTEM, role_id=role.id, principal_id=made.id)
    _, key = iam.directory.create_api_key(SYSTEM, principal_id=made.id, name="main")
    return made.name, key


def _two_werks(tmp_path: Path, sync_interval_s: float) -> tuple[Runtime, Runtime]:
    """Two runtimes on one SQLite database, each with its own broker and data directory."""
    shared = f"sqlite:///{tmp_path / 'shared.db'}"

    def runtime(name: str) -> Runtime:
        return Runtime(
            make_settings(
                tmp_path / name, database_url=shared, mqtt_allow_anonymous=False,
                iam_sync_interval_s=sync_interval_s,
            )
        )  # fmt: skip

    return runtime("a"), runtime("b")


def test_a_change_made_through_one_werk_reaches_the_other(tmp_path: Path) -> None:
    runtime_a, runtime_b = _two_werks(tmp_path, sync_interval_s=0.1)
    settings_b = runtime_b.settings
    with admin_client(runtime_a) as a, admin_client(runtime_b) as b:
        assert runtime_a.iam is not None
        device_id, key = _device(runtime_a.iam)
        guard_b = runtime_b.security.guard if runtime_b.security else None
        assert guard_b is not None and not guard_b(TOPIC)
        assert wait_until(lambda: guard_b(TOPIC), timeout=5)  # b's ingest lets it in now
        assert b.get("/api/v1/auth/me", headers=bearer(key)).json()["name"] == "press-7"
        on_b = Probe(settings_b.mqtt_port, "press-7", key)
        try:
            assert on_b.connect() == 0
            assert on_b.publish(TOPIC) < 0x80
            assert a.post(f"/api/v1/iam/principals/{device_id}/disable").status_code == 200
            assert wait_until(lambda: _refused(b, key), timeout=5)
            assert wait_until(on_b.disconnected.is_set, timeout=5)
        finally:
            on_b.close()
        again = Probe(settings_b.mqtt_port, "press-7", key)
        try:
            assert again.connect() == BAD_CREDENTIALS
        finally:
            again.close()

        client_id, secret = _service(runtime_a.iam)
        token = a.post(
            "/api/v1/auth/token",
            data={"grant_type": "client_credentials", "client_id": client_id,
                  "client_secret": secret},
        )  # fmt: skip
        assert token.status_code == 200, token.text
        access = token.json()["access_token"]
        assert b.get("/api/v1/auth/me", headers=bearer(access)).status_code == 200
        assert a.post("/api/v1/auth/revoke", data={"token": access}).status_code == 200
        assert wait_until(lambda: _refused(b, access), timeout=5)


def test_a_device_made_through_one_werk_publishes_through_the_other_at_once(
    tmp_path: Path,
) -> None:
    """Its login to the other werk's gateway tells that werk's ingest of it, before any poll."""
    runtime_a, runtime_b = _two_werks(tmp_path, sync_interval_s=60.0)
    settings_b = runtime_b.settings
    with admin_client(runtime_a), admin_client(runtime_b):
        assert runtime_a.iam is not None and runtime_b.pipeline is not None
        _, key = _device(runtime_a.iam)
        on_b = Probe(settings_b.mqtt_port, "press-7", key)
        try:
            assert on_b.connect() == 0
            assert on_b.publish(TOPIC, b'{"value": 812.5}') < 0x80
            tag = TOPIC.removeprefix("uns/v1/").replace("/_value/", "/")
            assert wait_until(lambda: runtime_b.namespace.find(tag), timeout=5)
            assert runtime_b.pipeline.stats.rejected == 0
        finally:
            on_b.close()
