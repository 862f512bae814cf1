"""The MQTT gateway in front of the real embedded broker, driven by paho 3.1.1 and 5 clients."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from tests.conftest import make_settings, wait_until
from tests.integration.uns.test_gateway_support import FixedAuthority, Peer, RawClient, Rules

from werk.core.errors import BrokerUnavailable, TooManyAttempts
from werk.core.settings import Settings
from werk.uns.broker import EmbeddedBroker
from werk.uns.gateway import GatewayEvent, MqttGateway
from werk.uns.mqtt_packets import (
    MQTT5,
    MQTT311,
    PUBREC,
    Connect,
    build_ack,
    build_publish,
    parse_connack,
)

DEVICE = Rules("p-device", publish=("plant/a/#",), subscribe=("plant/a/cmd",))
ADMIN = Rules("p-admin", publish=("#",), subscribe=("#",))
USERS = {"device": ("dev-secret", DEVICE), "admin": ("adm-secret", ADMIN)}
VERSIONS = pytest.mark.parametrize("v5", [False, True], ids=["3.1.1", "5"])


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    embedded = EmbeddedBroker(make_settings(tmp_path_factory.mktemp("gw")), serve_public=False)
    embedded.start()
    yield embedded
    embedded.stop()


class Running:
    """A started gateway, its settings and the events it reported."""

    def __init__(self, gateway: MqttGateway, settings: Settings, events: list[GatewayEvent]):
        self.gateway, self.settings, self.events = gateway, settings, events
        self.peers: list[Peer] = []

    def port(self, v5: bool) -> int:
        return self.settings.mqtt5_port if v5 else self.settings.mqtt_port

    def peer(self, v5: bool, user: str | None = "device", **kwargs: Any) -> Peer:
        default = USERS[user][0] if user in USERS else None
        password = kwargs.pop("password", default)
        peer = Peer(self.port(v5), v5=v5, user=user, password=password, **kwargs)
        self.peers.append(peer)
        return peer


Start = Callable[..., Running]


@pytest.fixture
def start(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[Start]:
    started: list[Running] = []

    def run(authority: Any = None, **overrides: Any) -> Running:
        overrides.setdefault("mqtt_allow_anonymous", False)
        settings = make_settings(tmp_path / f"g{len(started)}", **overrides)
        events: list[GatewayEvent] = []
        gateway = MqttGateway(settings, authority or FixedAuthority(dict(USERS)),
                              broker.internal_v311_address, broker.address, events.append)  # fmt: skip
        gateway.start()
        started.append(Running(gateway, settings, events))
        return started[-1]

    yield run
    for running in started:
        for peer in running.peers:
            peer.close()
        running.gateway.stop()


@pytest.fixture
def gw(start: Start) -> Running:
    return start()


# --- connecting ---------------------------------------------------------------------------


def raw_client(
    gw: Running, level: int, user: str | None = "device", password: bytes | None = b"dev-secret"
) -> RawClient:
    """A socket that sent a CONNECT of `level` to the gateway."""
    props = b"\x00" if level == MQTT5 else b""
    connect = Connect(level, True, 30, "raw", props, None, user, password)
    return RawClient(gw.port(level == MQTT5), connect)


def connack(gw: Running, level: int, user: str | None, password: bytes | None) -> bytes:
    """The CONNACK bytes the gateway answers a raw CONNECT with."""
    with raw_client(gw, level, user, password) as raw:
        return raw.packet()


@VERSIONS
def test_a_wrong_password_is_refused_with_the_right_code(gw: Running, v5: bool) -> None:
    peer = gw.peer(v5, user="device", password="wrong")
    assert peer.result is not None
    assert peer.result.value == 0x86  # paho maps the 3.1.1 return code 4 to 0x86
    unknown = gw.peer(v5, user="nobody", password="x")
    assert unknown.result is not None and unknown.result.value == 0x86
    wait_until(lambda: len([e for e in gw.events if e.kind == "connect_refused"]) == 2)
    refused = [e for e in gw.events if e.kind == "connect_refused"]
    assert [e.username for e in refused] == ["device", "nobody"]
    assert gw.gateway.stats().refused == 2


def test_refusals_carry_the_codes_of_each_protocol_version(start: Start) -> None:
    gw = start()
    assert connack(gw, MQTT311, "device", b"wrong").hex() == "20020004"
    assert connack(gw, MQTT5, "device", b"wrong").hex() == "2003008600"
    assert connack(gw, MQTT311, None, None).hex() == "20020005"
    assert connack(gw, MQTT5, None, None).hex() == "2003008700"
    assert connack(gw, 3, "device", b"dev-secret").hex() == "20020001"  # MQTT 3.1
    assert connack(gw, MQTT311, "device", b"dev-secret").hex() == "20020000"
    enhanced = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    enhanced.AuthenticationMethod = "SCRAM-SHA-1"
    props = bytes(enhanced.pack())  # type: ignore[no-untyped-call]
    connect = Connect(MQTT5, True, 30, "raw", props, None, "device", b"x")
    with RawClient(gw.port(True), connect) as raw:
        assert raw.packet().hex() == "2003008c00"  # bad authentication method


@VERSIONS
def test_right_credentials_get_in_and_are_passed_to_the_authority(start: Start, v5: bool) -> None:
    authority = FixedAuthority(dict(USERS))
    gw = start(authority)
    peer = gw.peer(v5, client_id="sensor-7")
    assert peer.ok
    assert authority.asked[0][:2] == ("device", "sensor-7")
    assert authority.asked[0][2].startswith("127.0.0.1:")
    wait_until(lambda: any(e.kind == "connect" and e.principal_id == "p-device" for e in gw.events))
    assert gw.gateway.stats().connections == 1
    peer.close()
    wait_until(lambda: gw.gateway.stats().connections == 0)


@VERSIONS
def test_anonymous_clients_are_refused_unless_allowed(start: Start, v5: bool) -> None:
    closed = start().peer(v5, user=None)
    assert closed.result is not None and closed.result.value == 0x87
    lab = start(mqtt_allow_anonymous=True)
    anonymous = lab.peer(v5, user=None)
    assert anonymous.ok
    assert [c.is_failure for c in anonymous.subscribe("any/#", "$SYS/#")] == [False, True]
    anonymous.publish("any/x", b"1", qos=1)
    wait_until(lambda: anonymous.got() == [("any/x", b"1")])
    anonymous.close()


@VERSIONS
def test_a_will_on_a_denied_topic_refuses_the_connect(gw: Running, v5: bool) -> None:
    peer = gw.peer(v5, will=("plant/b/status", b"gone"))
    assert peer.result is not None and peer.result.value == 0x87
    assert gw.peer(v5, will=("plant/a/status", b"gone")).ok


def test_a_will_on_an_allowed_topic_is_published_when_the_client_dies(gw: Running) -> None:
    watcher = gw.peer(True, user="admin")
    watcher.subscribe("plant/#")
    doomed = gw.peer(False, will=("plant/a/status", b"offline"))
    doomed.client.loop_stop()
    doomed.client.socket().close()  # vanish without DISCONNECT
    assert wait_until(watcher.got, timeout=10) == [("plant/a/status", b"offline")]
    watcher.close()


def test_a_throttling_or_failing_authority_refuses_cleanly(start: Start) -> None:
    class Throttled:
        def connect(self, username: str, *_: str) -> None:
            if username == "locked":
                raise TooManyAttempts("locked", retry_after_s=60)
            raise RuntimeError("directory down")

    gw = start(Throttled())
    assert connack(gw, MQTT5, "locked", b"x").hex() == "2003009f00"  # rate exceeded
    assert connack(gw, MQTT5, "other", b"x").hex() == "2003008800"  # server unavailable
    assert connack(gw, MQTT311, "other", b"x").hex() == "20020003"


def test_a_slow_authority_does_not_hold_up_other_connections(start: Start) -> None:
    authority = FixedAuthority(dict(USERS), delay_s=1.0)
    gw = start(authority)
    started = time.monotonic()
    # Paho connects without waiting for the CONNACK; Peer waits after loop_start.
    clients = [paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5) for _ in range(4)]
    connected = []
    for c in clients:
        c.username_pw_set("device", "dev-secret")
        c.on_connect = lambda *args: connected.append(args[3])
        c.connect("127.0.0.1", gw.port(True))
        c.loop_start()
    wait_until(lambda: len(connected) == 4, timeout=8)
    assert not any(rc.is_failure for rc in connected)
    # one at a time would take 4 s
    assert time.monotonic() - started < 3.0, "the authority ran one connect at a time"
    for c in clients:
        c.disconnect()
        c.loop_stop()


def test_client_ids_are_scoped_to_their_principal(gw: Running) -> None:
    device = gw.peer(False, client_id="shared-id")
    admin = gw.peer(False, user="admin", client_id="shared-id")
    assert device.ok and admin.ok
    time.sleep(0.3)
    assert not device.disconnected.is_set(), "another principal took over the session"
    device.close()
    admin.close()


def test_the_internal_listeners_refuse_wrong_credentials(broker: EmbeddedBroker) -> None:
    for address in (broker.address, broker.internal_v311_address):
        good = Peer(address.port, v5=address.mqtt5, user=address.username,
                    password=address.password)  # fmt: skip
        assert good.ok
        good.close()
        for user, password in ((address.username, "wrong"), (None, None), ("device", "x")):
            bad = Peer(address.port, v5=address.mqtt5, user=user, password=password)
            assert not bad.ok
            bad.close()


def test_the_internal_password_is_random_private_and_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(tmp_path)
    passwords = []
    for _ in range(2):
        broker = EmbeddedBroker(settings, serve_public=False)
        broker.start()
        try:
            passwords.append(broker.address.password)
            config = tmp_path / "rumqttd.toml"
            assert config.stat().st_mode & 0o777 == 0o600
            assert str(broker.address.password) in config.read_text()
            assert str(broker.address.password) not in f"{broker.address!r} {broker.address.url}"
        finally:
            broker.stop()
    assert passwords[0] != passwords[1] and len(str(passwords[0])) >= 32
    assert not any(p and p in caplog.text for p in passwords)


def test_a_taken_public_port_stops_the_gateway_with_one_line(start: Start) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BrokerUnavailable) as info:
            start(mqtt_port=port)
    assert info.value.code == "port_in_use"
    assert "\n" not in info.value.message


# --- publishing ---------------------------------------------------------------------------


@VERSIONS
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_denied_publishes_never_reach_a_subscriber(gw: Running, v5: bool, qos: int) -> None:
    watcher = gw.peer(True, user="admin")
    watcher.subscribe("#")
    device = gw.peer(v5)
    denied = device.publish("plant/b/x", b"denied", qos)
    allowed = device.publish("plant/a/x", b"allowed", qos)
    assert wait_until(watcher.got) == [("plant/a/x", b"allowed")]
    time.sleep(0.2)
    assert watcher.got() == [("plant/a/x", b"allowed")]
    if qos:
        assert denied.is_published() and allowed.is_published()  # the client is not stuck
    if v5 and qos == 1:
        assert device.acks[denied.mid].value == 0x87
        assert not device.acks[allowed.mid].is_failure
    assert gw.gateway.stats().denials == 1
    wait_until(lambda: any(e.kind == "publish_denied" for e in gw.events))
    assert [e.detail for e in gw.events if e.kind == "publish_denied"] == ["plant/b/x"]
    watcher.close()
    device.close()


@pytest.mark.parametrize("level", [MQTT311, MQTT5])
def test_a_denied_qos2_publish_gets_pubrec_not_authorized(gw: Running, level: int) -> None:
    with raw_client(gw, level) as raw:
        assert parse_connack(raw.packet()[2:], level)[0] == 0
        raw.send(build_publish("plant/b/x", b"1", level=level, qos=2, packet_id=77))
        assert raw.packet() == build_ack(PUBREC, 77, level, 0x87)


def test_publish_to_sys_is_denied_even_with_full_rights(gw: Running) -> None:
    admin = gw.peer(True, user="admin")
    info = admin.publish("$SYS/broker/fake", b"x", 1)
    assert admin.acks[info.mid].value == 0x87
    assert admin.subscribe("$SYS/#", "$share/g/$SYS/#")[0].is_failure
    admin.close()


def test_repeated_denials_are_reported_rate_limited(gw: Running) -> None:
    device = gw.peer(False)
    for i in range(50):
        device.publish(f"plant/b/{i}", b"x", 1)
    device.close()
    wait_until(lambda: sum(e.count for e in gw.events if e.kind == "publish_denied") == 50)
    assert len([e for e in gw.events if e.kind == "publish_denied"]) == 2


# --- subscribing --------------------------------------------------------------------------


@VERSIONS
def test_one_subscribe_with_allowed_and_denied_filters(gw: Running, v5: bool) -> None:
    device = gw.peer(v5)
    codes = device.subscribe("plant/b/cmd", "plant/a/cmd", "#", "$SYS/#")
    assert [c.is_failure for c in codes] == [True, False, True, True]
    if v5:
        assert codes[0].value == 0x87
    else:
        assert codes[0].value == 0x80 and codes[1].value == 1
    admin = gw.peer(True, user="admin")
    admin.publish("plant/b/cmd", b"not for you", 1)
    admin.publish("plant/a/cmd", b"for you", 1)
    assert wait_until(device.got) == [("plant/a/cmd", b"for you")]
    time.sleep(0.2)
    assert device.got() == [("plant/a/cmd", b"for you")]
    assert device.subscribe("plant/b/#")[0].is_failure  # all denied: answered by the gateway
    assert [e.detail for e in gw.events if e.kind == "subscribe_denied"][:1] == ["plant/b/cmd"]
    device.close()
    admin.close()


# --- dropping and bad input ---------------------------------------------------------------


@VERSIONS
def test_drop_disconnects_a_live_client_at_once(gw: Running, v5: bool) -> None:
    device = gw.peer(v5)
    admin = gw.peer(v5, user="admin")
    assert gw.gateway.drop("p-device") == 1
    assert device.disconnected.wait(3.0)  # not at the next keep-alive (30 s)
    if v5:
        assert device.disconnect_reason is not None
        assert device.disconnect_reason.value == 0x98
    assert not admin.disconnected.is_set()
    admin.publish("plant/a/x", b"still up", 1)
    assert gw.gateway.drop("p-device") == 0
    wait_until(lambda: any(e.kind == "dropped" for e in gw.events))
    admin.close()


def test_drop_from_another_thread_while_messages_flow(gw: Running) -> None:
    device = gw.peer(False)
    watcher = gw.peer(True, user="admin")
    watcher.subscribe("plant/#")
    for i in range(200):
        device.client.publish("plant/a/flow", str(i).encode(), qos=0)
    assert gw.gateway.drop("p-device") == 1
    assert device.disconnected.wait(3.0)
    wait_until(lambda: gw.gateway.stats().connections == 1)
    watcher.close()


@pytest.mark.parametrize(
    "garbage",
    [b"\x00\x00", b"\x30\xff\xff\xff\xff\x7f", build_publish("a/+", b"", level=MQTT311),
     b"\x20\x02\x00\x00", b"\x80\x06\x00\x01\x00\x01a\x00"],
    ids=["reserved-type", "bad-length", "wildcard-topic", "connack-from-client", "subscribe-flags"],
)  # fmt: skip
def test_malformed_packets_close_only_their_connection(gw: Running, garbage: bytes) -> None:
    watcher = gw.peer(True, user="admin")
    watcher.subscribe("plant/#")
    with raw_client(gw, MQTT311) as raw:
        assert raw.packet() == b"\x20\x02\x00\x00"
        raw.send(garbage)
        assert raw.closed()
    watcher.publish("plant/a/x", b"unaffected", 1)
    assert wait_until(watcher.got) == [("plant/a/x", b"unaffected")]
    watcher.close()


def test_oversized_packets_close_the_connection(start: Start) -> None:
    gw = start(mqtt_max_payload=2048)
    with raw_client(gw, MQTT5) as raw:
        assert raw.packet()[0] == 0x20
        big = build_publish("plant/a/x", b"x" * 200_000, level=MQTT5, qos=1, packet_id=1)
        raw.send(big[:5000])
        assert raw.packet() == b"\xe0\x01\x95"  # DISCONNECT "packet too large"
        assert raw.closed()


def test_a_half_close_reaches_the_broker_and_ends_the_session(gw: Running) -> None:
    watcher = gw.peer(True, user="admin")
    watcher.subscribe("plant/#")
    with raw_client(gw, MQTT311) as raw:
        assert raw.packet() == b"\x20\x02\x00\x00"
        raw.send(build_publish("plant/a/x", b"last", level=MQTT311, qos=1, packet_id=3))
        raw.sock.shutdown(socket.SHUT_WR)
        assert raw.closed()  # whether rumqttd still sends the PUBACK is up to rumqttd
    assert wait_until(watcher.got) == [("plant/a/x", b"last")]
    wait_until(lambda: gw.gateway.stats().connections == 1)
    watcher.close()


def test_garbage_instead_of_a_connect_is_refused(gw: Running) -> None:
    with socket.create_connection(("127.0.0.1", gw.port(False)), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert sock.recv(10) == b""


def test_large_payloads_pass_in_both_directions(gw: Running) -> None:
    watcher = gw.peer(False, user="admin")
    watcher.subscribe("plant/a/big")
    device = gw.peer(True)
    device.publish("plant/a/big", b"x" * 3_000_000, 1)
    ((topic, payload),) = wait_until(watcher.got, timeout=15)
    assert (topic, len(payload)) == ("plant/a/big", 3_000_000)
    assert gw.gateway.stats().messages == 1
    watcher.close()
    device.close()


def test_stop_closes_every_connection(start: Start) -> None:
    gw = start()
    peers = [gw.peer(v5) for v5 in (False, True)]
    gw.gateway.stop()
    assert all(p.disconnected.wait(2) for p in peers)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", gw.port(False)), timeout=1).close()
