"""The embedded MQTT broker (rumqttd through iotcore) with MQTT 3.1.1 and 5 listeners."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from werk.core.errors import BrokerUnavailable
from werk.core.settings import Settings

_LOGGER = logging.getLogger(__name__)

_RUMQTTD_TOML = """\
# Written by werk at start-up; edit werk settings instead of this file.
id = 0

[router]
id = 0
max_connections = 10010
max_outgoing_packet_count = {max_inflight}
max_segment_size = {segment_size}
max_segment_count = 10

[v4.1]
name = "mqtt311"
listen = "{host}:{port}"
next_connection_delay_ms = 1
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = {max_payload}
    max_inflight_count = {max_inflight}
    dynamic_filters = true

[v5.1]
name = "mqtt5"
listen = "{host}:{port5}"
next_connection_delay_ms = 1
    [v5.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = {max_payload}
    max_inflight_count = {max_inflight}
"""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where werk's clients connect, and which MQTT version they speak there."""

    host: str
    port: int
    mqtt5: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The address as an mqtt:// URL (never with the password)."""
        user = f"{self.username}@" if self.username else ""
        return f"mqtt://{user}{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """Parse ``mqtt://[user[:password]@]host[:port]`` (port 1883 when omitted).

    External brokers are spoken to in MQTT 5. Error messages never repeat the password.
    """
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise BrokerUnavailable(
            f"broker URL {shown!r} is not of the form mqtt://host:port", code="bad_broker_url"
        )
    try:
        port = parts.port or 1883
    except ValueError as exc:
        raise BrokerUnavailable(
            f"broker URL {shown!r} has a bad port", code="bad_broker_url"
        ) from exc
    return BrokerAddress(
        parts.hostname, port, mqtt5=True, username=parts.username, password=parts.password
    )


def port_in_use(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def reachable(address: BrokerAddress, timeout_s: float = 3.0) -> bool:
    """Whether the broker at `address` accepts TCP connections."""
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout_s):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """rumqttd in a child process: MQTT 3.1.1 on `mqtt_port`, MQTT 5 on `mqtt5_port`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._broker: Any = None

    @property
    def address(self) -> BrokerAddress:
        """The MQTT 5 listener, which werk's own clients use."""
        return BrokerAddress(self._settings.mqtt_host, self._settings.mqtt5_port, mqtt5=True)

    def config_text(self) -> str:
        """The rumqttd TOML for the current settings."""
        s = self._settings
        return _RUMQTTD_TOML.format(
            host=s.mqtt_host,
            port=s.mqtt_port,
            port5=s.mqtt5_port,
            max_payload=s.mqtt_max_payload,
            max_inflight=s.mqtt_max_inflight,
            segment_size=max(100 * 1024 * 1024, 8 * s.mqtt_max_payload),
        )

    def start(self) -> BrokerAddress:
        """Start the broker; stop with one clear line when a port is taken."""
        from iotcore import Broker

        s = self._settings
        for port in (s.mqtt_port, s.mqtt5_port):
            if port_in_use(s.mqtt_host, port):
                raise BrokerUnavailable(
                    f"port {port} on {s.mqtt_host} is already in use: name a running broker "
                    f"with --broker mqtt://host:port, or pick free ports with --mqtt-port "
                    f"and --mqtt5-port",
                    code="port_in_use",
                    port=port,
                )
        config = Path(s.data_dir) / "rumqttd.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(self.config_text(), encoding="utf-8")
        try:
            self._broker = Broker(config_path=str(config)).start(timeout=15.0)
        except (OSError, RuntimeError) as exc:
            raise BrokerUnavailable(f"the embedded broker did not start: {exc}") from exc
        _LOGGER.info(
            "embedded MQTT broker: 3.1.1 on %s:%d, 5 on %s:%d",
            s.mqtt_host, s.mqtt_port, s.mqtt_host, s.mqtt5_port,
        )  # fmt: skip
        return self.address

    def stop(self) -> None:
        """Stop the broker and release its ports."""
        if self._broker is not None:
            self._broker.stop()
            self._broker = None
