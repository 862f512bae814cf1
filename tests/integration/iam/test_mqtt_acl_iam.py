"""MQTT access end to end with real IAM: the authority, Mosquitto kept in step, the ingest guard."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from tests.conftest import free_port, make_settings, publish, wait_until
from tests.integration.iam.acl_matrix import NOT_AUTHORIZED, Probe, running_mosquitto

from werk.core.db import create_db_engine, upgrade_schema
from werk.core.settings import Settings
from werk.historian.backends import store_for
from werk.iam.bootstrap import SYSTEM, demo_devices, ensure_builtin_roles
from werk.iam.mosquitto import MosquittoFiles, MosquittoSync, load_entries
from werk.iam.mqtt import ANONYMOUS, IamMqttAuthority, PublishGuard
from werk.iam.secrets import parse_api_key
from werk.iam.service import Iam
from werk.uns import quarantine
from werk.uns.broker import BrokerAddress
from werk.uns.ingest import IngestPipeline
from werk.uns.models import QuarantineRecord
from werk.uns.namespace import Namespace

ROOT = "uns/v1"
CELL3 = "acme/berlin/machining/line-2/cell-3"
CELL1 = "acme/berlin/machining/line-1/cell-1"
JSON_DEVICE = "demo-line-2-cell-3"
EDGE = "demo-edge"


@dataclass
class Werk:
    """IAM on a fresh database, with the demo's principals and their keys."""

    iam: Iam
    settings: Settings
    sessions: sessionmaker[Session]
    keys: dict[str, str]

    def principal_id(self, name: str) -> str:
        found = self.iam.directory.find_by_name(name)
        assert found is not None
        return found

    def revoke_key(self, name: str) -> None:
        parsed = parse_api_key(self.keys[name])
        assert parsed is not None
        self.iam.directory.revoke_api_key(SYSTEM, parsed[0])


def open_werk(directory: Path, **overrides: object) -> tuple[Werk, Engine]:
    settings = make_settings(directory / "data", **{"mqtt_allow_anonymous": False, **overrides})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_db_engine(settings.relational_url)
    upgrade_schema(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    iam = Iam(sessions, settings)
    return Werk(iam, settings, sessions, seed(iam)), engine


def seed(iam: Iam) -> dict[str, str]:
    """The demo plant's devices (and a partner's script) with one API key each."""
    ensure_builtin_roles(iam)
    roles = {r.name: r.id for r in iam.directory.list_roles(SYSTEM) if r.builtin}
    org = iam.directory.create_org(SYSTEM, slug="operator", name="Operator", kind="operator")
    keys = {}
    for device in demo_devices():
        made = iam.directory.create_device(
            SYSTEM, org_id=org.id, name=device.name, sparkplug=device.sparkplug
        )
        iam.directory.create_binding(
            SYSTEM, role_id=roles[device.role], principal_id=made.id, namespace=(device.namespace,)
        )
        keys[device.name] = iam.directory.create_api_key(SYSTEM, principal_id=made.id, name="mqtt")[
            1
        ]
    script = iam.directory.create_service_account(SYSTEM, org_id=org.id, name="report-script")
    iam.directory.create_binding(
        SYSTEM, role_id=roles["partner-user"], principal_id=script.id, namespace=("acme/#",)
    )
    keys[script.name] = iam.directory.create_api_key(SYSTEM, principal_id=script.id, name="mqtt")[1]
    return keys


@pytest.fixture
def werk(tmp_path: Path) -> Iterator[Werk]:
    found, engine = open_werk(tmp_path)
    yield found
    engine.dispose()


# -- the authority the embedded gateway asks ------------------------------------------------


def test_a_device_logs_in_with_its_key_and_gets_its_subtree(werk: Werk) -> None:
    authority = IamMqttAuthority(werk.iam.authn, werk.settings)
    key = werk.keys[JSON_DEVICE]
    grant = authority.connect(JSON_DEVICE, key, "c1", "127.0.0.1:5000")
    assert grant is not None
    assert grant.principal_id == werk.principal_id(JSON_DEVICE)
    assert grant.may_publish(f"{ROOT}/{CELL3}/conveyor-1/_value/speed")
    assert not grant.may_publish(f"{ROOT}/{CELL1}/press-1/_value/force")
    assert not grant.may_publish(f"{ROOT}/{CELL3}/conveyor-1/_cmd/speed")
    assert not grant.may_subscribe("#")
    assert authority.connect(EDGE, key, "c1", "peer") is None  # another device's key
    assert authority.connect(JSON_DEVICE, "wk_0123456789ab_" + "x" * 43, "c", "p") is None


def test_an_edge_node_gets_its_sparkplug_topics(werk: Werk) -> None:
    authority = IamMqttAuthority(werk.iam.authn, werk.settings)
    grant = authority.connect(EDGE, werk.keys[EDGE], "c1", "peer")
    assert grant is not None
    assert grant.may_publish("spBv1.0/acme/NBIRTH/berlin-gw-1")
    assert grant.may_publish("spBv1.0/acme/DDATA/berlin-gw-1/cnc-1")
    assert not grant.may_publish("spBv1.0/acme/NBIRTH/other-gw")
    assert grant.may_subscribe("spBv1.0/acme/DCMD/berlin-gw-1/+")
    assert grant.may_subscribe("spBv1.0/STATE/werk")


def test_a_revoked_key_and_a_disabled_principal_log_in_no_more(werk: Werk) -> None:
    authority = IamMqttAuthority(werk.iam.authn, werk.settings)
    werk.revoke_key(JSON_DEVICE)
    assert authority.connect(JSON_DEVICE, werk.keys[JSON_DEVICE], "c", "p") is None
    werk.iam.directory.update_principal(SYSTEM, werk.principal_id(EDGE), disabled=True)
    assert authority.connect(EDGE, werk.keys[EDGE], "c", "p") is None


def test_a_key_of_a_principal_without_mqtt_permission_does_not_log_in(werk: Werk) -> None:
    key = werk.keys["report-script"]
    assert werk.iam.authn.verify_mqtt("report-script", key) is not None
    authority = IamMqttAuthority(werk.iam.authn, werk.settings)
    assert authority.connect("report-script", key, "c", "p") is None


def test_anonymous_clients_only_where_the_settings_allow_them(werk: Werk) -> None:
    assert IamMqttAuthority(werk.iam.authn, werk.settings).anonymous() is None
    lab = werk.settings.model_copy(update={"mqtt_allow_anonymous": True})
    grant = IamMqttAuthority(werk.iam.authn, lab).anonymous()
    assert grant is not None and grant.principal_id == ANONYMOUS
    assert grant.may_publish(f"{ROOT}/{CELL3}/conveyor-1/_cmd/speed")
    assert grant.may_subscribe("#")
    assert not grant.may_subscribe("$SYS/#")
    assert not grant.may_publish("$SYS/broker/x")
    assert IamMqttAuthority(werk.iam.authn, lab).connect("nobody", "x", "c", "p") is None


# -- Mosquitto kept in step with IAM ---------------------------------------------------------


@pytest.mark.mosquitto
def test_mosquitto_follows_revocations_disabling_and_new_keys(tmp_path: Path) -> None:
    port, internal = free_port(), secrets.token_urlsafe(16)
    werk, engine = open_werk(
        tmp_path,
        broker_url=f"mqtt://werk-internal:{internal}@127.0.0.1:{port}",
        mosquitto_password_file=tmp_path / "passwd",
        mosquitto_acl_file=tmp_path / "acl",
        mosquitto_pid_file=tmp_path / "mosquitto.pid",
    )
    first = MosquittoFiles(werk.settings.model_copy(update={"mosquitto_pid_file": None}))
    first.write(
        load_entries(werk.sessions, werk.iam.directory.load_principal, datetime.now(UTC))[0]
    )
    probes: list[Probe] = []
    sync = MosquittoSync(
        MosquittoFiles(werk.settings), werk.sessions, werk.iam.directory.load_principal
    )
    try:
        with running_mosquitto(werk.settings, port, tmp_path):
            sync.start()
            werk.iam.on_change(sync.on_change)
            _follow_changes(werk, port, probes)
    finally:
        sync.stop()
        for probe in probes:
            probe.close()
        engine.dispose()


def _follow_changes(werk: Werk, port: int, probes: list[Probe]) -> None:
    def connect(name: str, key: str) -> Probe:
        probe = Probe(port, name, key)
        probes.append(probe)
        probe.connect()
        return probe

    device = connect(JSON_DEVICE, werk.keys[JSON_DEVICE])
    edge = connect(EDGE, werk.keys[EDGE])
    assert device.code == edge.code == 0
    assert device.publish(f"{ROOT}/{CELL3}/conveyor-1/_value/speed") < 0x80
    assert device.publish(f"{ROOT}/{CELL1}/press-1/_value/force") == NOT_AUTHORIZED
    assert edge.publish("spBv1.0/acme/NBIRTH/berlin-gw-1") < 0x80
    werk.revoke_key(JSON_DEVICE)
    assert wait_until(device.disconnected.is_set, timeout=5)
    assert connect(JSON_DEVICE, werk.keys[JSON_DEVICE]).code == NOT_AUTHORIZED
    _, newer = werk.iam.directory.create_api_key(
        SYSTEM, principal_id=werk.principal_id(EDGE), name="rotated"
    )
    assert wait_until(edge.disconnected.is_set, timeout=5)  # one hash per user: the newest
    rotated = connect(EDGE, newer)
    assert rotated.code == 0
    werk.iam.directory.update_principal(SYSTEM, werk.principal_id(EDGE), disabled=True)
    assert wait_until(rotated.disconnected.is_set, timeout=5)
    assert connect(EDGE, newer).code == NOT_AUTHORIZED
    expiring = datetime.now(UTC) + timedelta(seconds=5)
    _, short = werk.iam.directory.create_api_key(
        SYSTEM, principal_id=werk.principal_id(JSON_DEVICE), name="short", expires_at=expiring
    )
    # the worker rewrites the files a moment after the change
    brief = wait_until(lambda: (found := connect(JSON_DEVICE, short)).code == 0 and found)
    assert wait_until(brief.disconnected.is_set, timeout=10)  # rewritten when the key expired
    assert datetime.now(UTC) >= expiring


# -- the ingest guard --------------------------------------------------------------------------


def test_the_guard_follows_iam_changes(werk: Werk) -> None:
    guard = PublishGuard.from_settings(werk.iam.directory.enabled_principals, werk.settings)
    werk.iam.on_change(guard.on_change)
    value = f"{ROOT}/{CELL3}/conveyor-1/_value/speed"
    assert guard(value)
    assert guard(f"{ROOT}/{CELL1}/press-1/_value/force")  # the edge node's machining subtree
    assert guard("spBv1.0/acme/NDATA/berlin-gw-1")
    assert guard("spBv1.0/acme/DCMD/berlin-gw-1/cnc-1")  # werk's own Sparkplug commands
    assert not guard(f"{ROOT}/{CELL3}/conveyor-1/_cmd/speed")  # nobody may command by MQTT
    assert not guard(f"{ROOT}/acme/hamburg/a/b/c/_value/x")
    assert not guard("spBv1.0/other/NDATA/node")
    werk.iam.directory.update_principal(SYSTEM, werk.principal_id(JSON_DEVICE), disabled=True)
    assert guard(value)  # the edge node still covers it
    werk.iam.directory.update_principal(SYSTEM, werk.principal_id(EDGE), disabled=True)
    assert not guard(value)
    assert not guard("spBv1.0/acme/NDATA/berlin-gw-1")


@pytest.mark.mosquitto
def test_ingest_quarantines_what_no_principal_may_publish(
    werk: Werk, mosquitto: int, tmp_path: Path
) -> None:
    guard = PublishGuard.from_settings(werk.iam.directory.enabled_principals, werk.settings)
    settings = werk.settings.model_copy(
        update={"ingest_client_id": f"ingest-{secrets.token_hex(4)}",
                "ingest_shared_group": f"g{secrets.token_hex(4)}"}
    )  # fmt: skip
    store = store_for(settings.historian_url, settings.historian_file)
    store.open()
    namespace = Namespace()
    pipeline = IngestPipeline(
        settings=settings,
        address=BrokerAddress("127.0.0.1", mosquitto, mqtt5=True),
        store=store,
        namespace=namespace,
        sessions=werk.sessions,
        publish_guard=guard,
    )
    pipeline.start()
    try:
        inside = f"{ROOT}/{CELL3}/conveyor-1/_value/speed"
        outside = f"{ROOT}/{CELL3}/conveyor-1/_cmd/speed"
        publish(mosquitto, outside, orjson.dumps({"value": 1}), v5=True)
        publish(mosquitto, inside, orjson.dumps({"value": 2.5}), v5=True)
        assert wait_until(lambda: namespace.find(f"{CELL3}/conveyor-1/speed"))
        records = wait_until(lambda: _quarantined(werk.sessions))
        assert [(r.topic, r.reason) for r in records] == [(outside, "publisher_scope")]
        assert pipeline.stats.rejected == 1
    finally:
        pipeline.stop()
        store.close()


def _quarantined(sessions: sessionmaker[Session]) -> list[QuarantineRecord]:
    with sessions() as session:
        records, _ = quarantine.list_records(session=session, reason="publisher_scope")
        return records
