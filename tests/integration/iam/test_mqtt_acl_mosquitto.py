"""The ACL matrix against a real Mosquitto 2.0 running on the files werk writes.

Measured on Mosquitto 2.0.11 (and asserted below): every SUBSCRIBE is granted, the ACL
decides per delivered message; a denied QoS 1 publish is answered with reason 0x87 and
reaches nobody; on SIGHUP Mosquitto checks every connected client's password against
the new file and closes the connections that fail, while clients whose password still
holds keep their session and get the new ACL on their next publish and delivery.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from tests.conftest import free_port, make_settings, wait_until
from tests.integration.iam.acl_matrix import (
    CASES,
    HAMBURG,
    MEMBERS,
    NOT_AUTHORIZED,
    PRESS,
    ROOT,
    SIBLING,
    Case,
    Member,
    Probe,
    running_mosquitto,
)

from werk.iam.mosquitto import MosquittoEntry, MosquittoFiles, mosquitto_hash
from werk.iam.permissions import BUILTIN_ROLES
from werk.iam.scopes import Grant, Scope

pytestmark = pytest.mark.mosquitto

INTERNAL = "werk-internal"
SUBACK_GRANTED_QOS1 = 1
ODD = Member(  # a password with a colon, dollars, non-ASCII letters and 300 more characters
    replace(MEMBERS["press-7"].principal, id="id-odd", name="odd-password"),
    password="pä:ss$wörd ✓ " + "x" * 300,
)


@dataclass
class Broker:
    """A Mosquitto on werk's files, and clients for the matrix's members."""

    port: int
    files: MosquittoFiles
    internal_password: str
    probes: list[Probe]

    def member(self, who: Member | str, *, v5: bool = True, password: str | None = None) -> Probe:
        """A connected client of a member (or a refused one: see `code`)."""
        found = MEMBERS[who] if isinstance(who, str) else who
        probe = Probe(self.port, found.name, password or found.password, v5=v5)
        self.probes.append(probe)
        probe.connect()
        return probe

    def observer(self, *filters: str) -> Probe:
        """werk's own user, subscribed to `filters`."""
        probe = Probe(self.port, INTERNAL, self.internal_password)
        self.probes.append(probe)
        assert probe.connect() == 0
        if filters:
            assert all(c < 0x80 for c in probe.subscribe(*filters))
        return probe

    def write(self, members: Iterable[Member]) -> None:
        """Rewrite both files for `members` and reload Mosquitto."""
        self.files.write(entries(members))


def entries(members: Iterable[Member]) -> list[MosquittoEntry]:
    return [MosquittoEntry(m.principal, mosquitto_hash(m.password)) for m in members]


@contextmanager
def mosquitto_broker(directory: Path, members: Iterable[Member]) -> Iterator[Broker]:
    port, password = free_port(), secrets.token_urlsafe(16)
    settings = make_settings(
        directory / "data",
        broker_url=f"mqtt://{INTERNAL}:{password}@127.0.0.1:{port}",
        mosquitto_password_file=directory / "passwd",
        mosquitto_acl_file=directory / "acl",
        mosquitto_pid_file=directory / "mosquitto.pid",
    )
    # Mosquitto reads the files at start; only later writes need a reload.
    MosquittoFiles(settings.model_copy(update={"mosquitto_pid_file": None})).write(entries(members))
    with running_mosquitto(settings, port, directory):
        broker = Broker(port, MosquittoFiles(settings), password, [])
        try:
            yield broker
        finally:
            for probe in broker.probes:
                probe.close()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with mosquitto_broker(tmp_path_factory.mktemp("mosquitto"), [*MEMBERS.values(), ODD]) as b:
        yield b


@pytest.fixture
def own(tmp_path: Path) -> Iterator[Broker]:
    with mosquitto_broker(tmp_path, MEMBERS.values()) as broker:
        yield broker


# -- the matrix ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", [c for c in CASES if c.action == "publish"], ids=lambda c: c.id)
def test_publish_matrix(shared: Broker, case: Case) -> None:
    observer = shared.observer("#")
    member = shared.member(case.who)
    assert member.publish(case.topic) == (0 if case.allowed else NOT_AUTHORIZED)
    sentinel = f"sentinel/{secrets.token_hex(4)}"
    observer.publish(sentinel)
    assert observer.wait_for(sentinel)
    assert observer.got(case.topic) is case.allowed  # a denied publish reaches nobody


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.action == "subscribe" and c.probe], ids=lambda c: c.id
)
def test_subscribe_matrix(shared: Broker, case: Case) -> None:
    assert case.probe is not None
    canary = MEMBERS[case.who].canary
    member = shared.member(case.who)
    codes = member.subscribe(case.topic, canary)
    assert codes == [SUBACK_GRANTED_QOS1, SUBACK_GRANTED_QOS1]  # Mosquitto grants every filter
    observer = shared.observer()
    observer.publish(case.probe)
    observer.publish(canary)
    assert member.wait_for(canary)
    assert member.got(case.probe) is case.allowed


def test_sys_topics_never_reach_a_member(shared: Broker) -> None:
    observer = shared.observer("$SYS/broker/uptime")
    member = shared.member("press-7")
    member.subscribe("$SYS/#", "#", MEMBERS["press-7"].canary)
    assert observer.wait_for("$SYS/broker/uptime")  # sys_interval 1: it is published
    shared.observer().publish(MEMBERS["press-7"].canary)
    assert member.wait_for(MEMBERS["press-7"].canary)
    assert not any(topic.startswith("$") for topic in member.received)


# -- credentials ---------------------------------------------------------------------------


@pytest.mark.parametrize("v5", [True, False], ids=["mqtt5", "mqtt311"])
def test_mosquitto_takes_werks_hash_of_any_password(shared: Broker, v5: bool) -> None:
    assert shared.member(ODD, v5=v5).code == 0
    assert shared.member("edge-cell-2", v5=v5).code == 0


@pytest.mark.parametrize("v5", [True, False], ids=["mqtt5", "mqtt311"])
def test_a_wrong_password_an_unknown_user_and_anonymous_are_refused(
    shared: Broker, v5: bool
) -> None:
    wrong = shared.member("press-7", v5=v5, password=MEMBERS["mes-bridge"].password)
    assert wrong.code == NOT_AUTHORIZED
    stranger = replace(MEMBERS["press-7"], principal=replace(MEMBERS["press-7"].principal,
                                                             name="stranger"))  # fmt: skip
    assert shared.member(stranger, v5=v5).code == NOT_AUTHORIZED
    anonymous = Probe(shared.port, None, None, v5=v5)
    shared.probes.append(anonymous)
    assert anonymous.connect() == NOT_AUTHORIZED


@pytest.mark.parametrize("inside", [True, False], ids=["inside", "outside"])
def test_a_will_is_published_only_inside_the_scope(shared: Broker, inside: bool) -> None:
    observer = shared.observer("#")
    member = MEMBERS["press-7"]
    will = f"{ROOT}/{PRESS if inside else SIBLING}/_value/online-{secrets.token_hex(3)}"
    probe = Probe(shared.port, member.name, member.password)
    probe.client.will_set(will, b"false", qos=1)
    shared.probes.append(probe)
    assert probe.connect() == 0  # Mosquitto 2.0.11 does not check the Will at CONNECT
    probe.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=0x04))
    assert wait_until(probe.disconnected.is_set)
    sentinel = f"sentinel/{secrets.token_hex(4)}"
    observer.publish(sentinel)
    assert observer.wait_for(sentinel)
    if inside:
        assert observer.wait_for(will)
    assert observer.got(will) is inside


# -- changes while clients are connected ---------------------------------------------------


def test_a_removed_principal_is_disconnected_on_reload_and_refused_after(own: Broker) -> None:
    v5 = own.member("press-7")
    v311 = own.member("press-7", v5=False)
    other = own.member("mes-bridge")
    assert v5.code == v311.code == other.code == 0
    started = time.monotonic()
    own.write([m for name, m in MEMBERS.items() if name != "press-7"])
    assert wait_until(lambda: v5.disconnected.is_set() and v311.disconnected.is_set(), timeout=5)
    elapsed = time.monotonic() - started
    assert elapsed < 4.0, f"live sessions dropped {elapsed:.3f} s after the rewrite"
    assert not other.disconnected.is_set()
    assert other.publish(f"{ROOT}/{SIBLING}/_value/force") < 0x80  # 0x10: no subscriber
    assert own.member("press-7").code == NOT_AUTHORIZED
    assert own.member("press-7", v5=False).code == NOT_AUTHORIZED


def test_changed_rights_reach_a_live_session_without_a_reconnect(own: Broker) -> None:
    bridge = own.member("mes-bridge")
    assert bridge.subscribe(f"{ROOT}/acme/berlin/#", f"{ROOT}/acme/hamburg/#") == [1, 1]
    viewer_role = frozenset(BUILTIN_ROLES["viewer"][1])
    demoted = replace(MEMBERS["mes-bridge"], principal=replace(
        MEMBERS["mes-bridge"].principal,
        grants=(Grant("viewer", viewer_role, Scope(namespace=("acme/hamburg/#",))),),
    ))  # fmt: skip
    own.write([*(m for n, m in MEMBERS.items() if n != "mes-bridge"), demoted])
    topic = f"{ROOT}/{SIBLING}/_value/force"
    assert wait_until(lambda: bridge.publish(topic) == NOT_AUTHORIZED, timeout=5)
    assert not bridge.disconnected.is_set()  # same password: the session stays
    observer = own.observer()
    observer.publish(f"{ROOT}/{PRESS}/_value/force")
    observer.publish(f"{ROOT}/{HAMBURG}/_value/torque")
    assert bridge.wait_for(f"{ROOT}/{HAMBURG}/_value/torque")
    assert not bridge.got(f"{ROOT}/{PRESS}/_value/force")  # still subscribed, no longer read


def test_a_newer_key_replaces_the_older_one_and_drops_its_session(own: Broker) -> None:
    old = own.member("press-7")
    rotated = replace(MEMBERS["press-7"], password=f"wk_{secrets.token_hex(6)}_new")
    own.write([*(m for n, m in MEMBERS.items() if n != "press-7"), rotated])
    assert wait_until(old.disconnected.is_set, timeout=5)
    assert own.member("press-7").code == NOT_AUTHORIZED
    assert own.member(rotated).code == 0
