"""`werk.uns.mqtt.subscribe` fails at once, with its cause, when it cannot even send."""

from __future__ import annotations

import time

import pytest

from werk.core.errors import BrokerUnavailable
from werk.uns.broker import BrokerAddress
from werk.uns.mqtt import make_client, subscribe


def test_subscribe_without_a_connection_names_the_cause_at_once() -> None:
    client = make_client(BrokerAddress("127.0.0.1", 1, mqtt5=True), "never-connected")
    started = time.monotonic()
    with pytest.raises(
        BrokerUnavailable, match=r"cannot subscribe to a/#: .*not currently connected"
    ):
        subscribe(client, "a/#", timeout_s=5)
    assert time.monotonic() - started < 1  # not after the timeout
