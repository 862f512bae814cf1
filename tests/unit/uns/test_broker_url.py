"""Broker URLs: defaults, credentials, and errors that never show a password."""

from __future__ import annotations

import pytest

from werk.core.errors import BrokerUnavailable
from werk.uns.broker import parse_broker_url


def test_defaults_and_credentials() -> None:
    plain = parse_broker_url("mqtt://broker.local")
    assert (plain.host, plain.port, plain.username) == ("broker.local", 1883, None)
    secured = parse_broker_url("mqtt://werk:s3cret@10.0.0.5:8883")
    assert (secured.host, secured.port, secured.username, secured.password) == (
        "10.0.0.5",
        8883,
        "werk",
        "s3cret",
    )
    assert "s3cret" not in secured.url and "s3cret" not in repr(secured)
    assert parse_broker_url("127.0.0.1:1999").port == 1999


@pytest.mark.parametrize("url", ["http://werk:s3cret@host:1883", "mqtt://werk:s3cret@host:99999"])
def test_errors_never_show_the_password(url: str) -> None:
    with pytest.raises(BrokerUnavailable) as info:
        parse_broker_url(url)
    assert "s3cret" not in info.value.message
    assert "host" in info.value.message
