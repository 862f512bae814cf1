"""The embedded broker as werk configures it: both protocol versions, retained, wills, $share."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from tests.conftest import wait_until

from werk.core.settings import Settings
from werk.uns.broker import EmbeddedBroker
from werk.uns.mqtt import subscribe


@pytest.fixture
def broker(settings: Settings) -> Iterator[Settings]:
    embedded = EmbeddedBroker(settings, serve_public=True)
    embedded.start()
    try:
        yield settings
    finally:
        embedded.stop()


class Listener:
    """A paho client recording what it receives."""

    def __init__(self, port: int, *, v5: bool, will: tuple[str, bytes] | None = None) -> None:
        protocol = paho.MQTTv5 if v5 else paho.MQTTv311
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
        self.got: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.client.on_message = self._on_message
        connected = threading.Event()
        self.client.on_connect = lambda *_args: connected.set()
        if will:
            self.client.will_set(will[0], will[1], qos=1)
        self.client.connect("127.0.0.1", port, keepalive=2)
        self.client.loop_start()
        assert connected.wait(10), "no CONNACK"  # the broker holds the will from here on

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.got.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def subscribe(self, topic: str) -> None:
        subscribe(self.client, topic, qos=1)  # returns on the SUBACK

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.parametrize(
    ("pub_v5", "sub_v5"), [(False, True), (True, False), (False, False), (True, True)]
)
def test_retained_messages_cross_protocol_versions(
    broker: Settings, *, pub_v5: bool, sub_v5: bool
) -> None:
    ports = {False: broker.mqtt_port, True: broker.mqtt5_port}
    publisher = Listener(ports[pub_v5], v5=pub_v5)
    publisher.client.publish("t/retained", b"kept", qos=1, retain=True).wait_for_publish(5)
    subscriber = Listener(ports[sub_v5], v5=sub_v5)
    subscriber.subscribe("t/#")
    assert wait_until(lambda: subscriber.got) == [("t/retained", b"kept", True)]
    publisher.close()
    subscriber.close()


@pytest.mark.parametrize("v5", [False, True])
def test_a_will_is_published_when_a_client_dies(broker: Settings, *, v5: bool) -> None:
    watcher = Listener(broker.mqtt5_port, v5=True)
    watcher.subscribe("wills/#")
    port = broker.mqtt5_port if v5 else broker.mqtt_port
    doomed = Listener(port, v5=v5, will=("wills/edge-1", b"offline"))
    doomed.client.loop_stop()
    doomed.client.socket().close()  # vanish without DISCONNECT
    assert wait_until(lambda: watcher.got, timeout=15) == [("wills/edge-1", b"offline", False)]
    watcher.close()


def test_shared_subscriptions_split_the_load_across_versions(broker: Settings) -> None:
    members = [Listener(broker.mqtt_port, v5=False), Listener(broker.mqtt5_port, v5=True)]
    for member in members:
        member.subscribe("$share/g/load/#")
    publisher = Listener(broker.mqtt_port, v5=False)
    for i in range(40):
        publisher.client.publish(f"load/{i}", b"x", qos=1).wait_for_publish(5)
    wait_until(lambda: sum(len(m.got) for m in members) == 40)
    assert all(m.got for m in members), "every group member gets a share"
    for client in (*members, publisher):
        client.close()


def test_large_payloads_pass(broker: Settings) -> None:
    subscriber = Listener(broker.mqtt5_port, v5=True)
    subscriber.subscribe("big")
    publisher = Listener(broker.mqtt_port, v5=False)
    publisher.client.publish("big", b"x" * 3_000_000, qos=1).wait_for_publish(10)
    (got,) = wait_until(lambda: subscriber.got)
    assert len(got[1]) == 3_000_000
    subscriber.close()
    publisher.close()
