"""The ACL matrix against the embedded broker: rumqttd behind werk's MQTT gateway.

The same members and cases as the Mosquitto matrix. Unlike Mosquitto, the gateway
answers a denied subscription with 0x87 in the SUBACK, and nothing published under a
denied filter reaches the member.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from tests.conftest import make_settings
from tests.integration.iam.acl_matrix import (
    CASES,
    MEMBERS,
    NOT_AUTHORIZED,
    ROOT,
    Case,
    Probe,
)

from werk.iam.mqtt import IamMqttAuthority
from werk.iam.scopes import Principal
from werk.uns.broker import EmbeddedBroker
from werk.uns.gateway import MqttGateway

BAD_CREDENTIALS = 0x86


class _Keys:
    """Members' MQTT passwords, checked the way IAM checks API keys (by name and secret)."""

    def verify_mqtt(self, username: str, password: str) -> Principal | None:
        member = MEMBERS.get(username)
        if member is None or not secrets.compare_digest(member.password, password):
            return None
        return member.principal


@dataclass
class Embedded:
    """The gateway's public port, and werk's own client on the internal listener."""

    port: int
    broker: EmbeddedBroker
    gateway: MqttGateway
    probes: list[Probe]

    def member(self, who: str, *, v5: bool = True, password: str | None = None) -> Probe:
        found = MEMBERS[who]
        probe = Probe(self.port, found.name, password or found.password, v5=v5)
        self.probes.append(probe)
        probe.connect()
        return probe

    def observer(self, *filters: str) -> Probe:
        internal = self.broker.address
        probe = Probe(internal.port, internal.username, internal.password)
        self.probes.append(probe)
        assert probe.connect() == 0
        if filters:
            assert all(c < 0x80 for c in probe.subscribe(*filters))
        return probe


def _refused(probe: Probe) -> bool:
    """Whether the broker refused the connection (rumqttd closes it without a CONNACK)."""
    try:
        return probe.connect() != 0
    except TimeoutError:
        return True


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    settings = make_settings(tmp_path_factory.mktemp("gateway"), mqtt_allow_anonymous=False)
    broker = EmbeddedBroker(settings, serve_public=False)
    broker.start()
    gateway = MqttGateway(
        settings, IamMqttAuthority(_Keys(), settings),
        broker.internal_v311_address, broker.address,
    )  # fmt: skip
    gateway.start()
    found = Embedded(settings.mqtt5_port, broker, gateway, [])
    try:
        yield found
    finally:
        for probe in found.probes:
            probe.close()
        gateway.stop()
        broker.stop()


@pytest.mark.parametrize("case", [c for c in CASES if c.action == "publish"], ids=lambda c: c.id)
def test_publish_matrix(embedded: Embedded, case: Case) -> None:
    observer = embedded.observer("#", "spBv1.0/#")
    member = embedded.member(case.who)
    assert member.publish(case.topic) == (0 if case.allowed else NOT_AUTHORIZED)
    sentinel = f"sentinel/{secrets.token_hex(4)}"
    observer.publish(sentinel)
    assert observer.wait_for(sentinel)
    assert observer.got(case.topic) is case.allowed  # a denied publish reaches nobody


@pytest.mark.parametrize("case", [c for c in CASES if c.action == "subscribe"], ids=lambda c: c.id)
def test_subscribe_matrix(embedded: Embedded, case: Case) -> None:
    canary = MEMBERS[case.who].canary
    member = embedded.member(case.who)
    codes = member.subscribe(case.topic, canary)
    assert codes[1] < 0x80
    assert (codes[0] < 0x80) is case.allowed
    if not case.allowed:
        assert codes[0] == NOT_AUTHORIZED
    observer = embedded.observer()
    if case.probe is not None:
        observer.publish(case.probe)
    observer.publish(canary)
    assert member.wait_for(canary)
    if case.probe is not None:
        assert member.got(case.probe) is case.allowed


@pytest.mark.parametrize("v5", [True, False], ids=["mqtt5", "mqtt311"])
def test_wrong_or_missing_credentials_are_refused(embedded: Embedded, v5: bool) -> None:
    wrong = embedded.member("press-7", v5=v5, password=MEMBERS["mes-bridge"].password)
    assert wrong.code == BAD_CREDENTIALS  # paho reports 3.1.1's return codes as reason codes
    anonymous = Probe(embedded.port, None, None, v5=v5)
    embedded.probes.append(anonymous)
    assert anonymous.connect() == NOT_AUTHORIZED


def test_sys_topics_never_reach_a_member(embedded: Embedded) -> None:
    member = embedded.member("press-7")
    assert member.subscribe("$SYS/#")[0] == NOT_AUTHORIZED
    canary = MEMBERS["press-7"].canary
    member.subscribe(canary)
    embedded.observer().publish(canary)
    assert member.wait_for(canary)
    assert not any(topic.startswith("$") for topic in member.received)


def test_the_internal_listener_refuses_other_credentials(embedded: Embedded) -> None:
    internal = embedded.broker.address
    member = MEMBERS["press-7"]
    for username, password in ((internal.username, "not-the-password"),
                               (member.name, member.password)):  # fmt: skip
        probe = Probe(internal.port, username, password)
        embedded.probes.append(probe)
        assert _refused(probe)


@pytest.mark.parametrize("v5", [True, False], ids=["mqtt5", "mqtt311"])
def test_a_dropped_principal_loses_its_live_connections(embedded: Embedded, v5: bool) -> None:
    viewer = embedded.member("hh-viewer", v5=v5)
    other = embedded.member("press-7", v5=v5)
    assert viewer.code == 0 and other.code == 0
    assert embedded.gateway.drop(MEMBERS["hh-viewer"].principal.id) >= 1
    assert viewer.disconnected.wait(2)
    assert not other.disconnected.is_set()
    assert other.publish(f"{ROOT}/{MEMBERS['press-7'].canary.split('/', 2)[2]}") == 0
