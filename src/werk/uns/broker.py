"""The embedded MQTT broker (rumqttd through iotcore): internal listeners for werk itself."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, unquote, urlsplit

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
{listeners}"""

_LISTENER = """
[{version}.{index}]
name = "{name}"
listen = "{host}:{port}"
next_connection_delay_ms = 1
    [{version}.{index}.connections]
    connection_timeout_ms = 60000
    max_payload_size = {max_payload}
    max_inflight_count = {max_inflight}
{extra}"""

INTERNAL_HOST: Final = "127.0.0.1"
INTERNAL_USER: Final = "werk-internal"


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

    def login_url(self) -> str:
        """The address with user and password, to hand to another werk part; never log it."""
        if self.username is None:
            return f"mqtt://{self.host}:{self.port}"
        secret = f":{quote(self.password, safe='')}" if self.password is not None else ""
        return f"mqtt://{quote(self.username, safe='')}{secret}@{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """Parse ``mqtt://[user[:password]@]host[:port]`` (port 1883 when omitted).

    User and password may be percent-encoded (`quote(..., safe="")`).

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
    user, password = parts.username, parts.password
    return BrokerAddress(
        parts.hostname, port, mqtt5=True,
        username=None if user is None else unquote(user),
        password=None if password is None else unquote(password),
    )  # fmt: skip


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
    """rumqttd in a child process, on loopback ports that only werk's credentials open.

    werk's own clients use `address` (MQTT 5) and `internal_v311_address`; everyone else
    comes in through `werk.uns.gateway.MqttGateway` on the public `mqtt_port` and
    `mqtt5_port`. With ``serve_public=True`` rumqttd itself also serves the public ports,
    without authentication: only for tests and benchmarks that need a plain broker.
    """

    def __init__(self, settings: Settings, *, serve_public: bool = False) -> None:
        self._settings = settings
        self._serve_public = serve_public
        self._broker: Any = None
        self._password = ""
        self._ports: tuple[int, int] | None = None

    @property
    def address(self) -> BrokerAddress:
        """The internal MQTT 5 listener with werk's credentials (ingest, publisher, host)."""
        return self._internal(1, mqtt5=True)

    @property
    def internal_v311_address(self) -> BrokerAddress:
        """The internal MQTT 3.1.1 listener with werk's credentials."""
        return self._internal(0, mqtt5=False)

    def _internal(self, which: int, *, mqtt5: bool) -> BrokerAddress:
        if self._ports is None:
            raise BrokerUnavailable("the embedded broker is not running", code="broker_stopped")
        return BrokerAddress(
            INTERNAL_HOST, self._ports[which], mqtt5=mqtt5,
            username=INTERNAL_USER, password=self._password,
        )  # fmt: skip

    def config_text(self, internal_ports: tuple[int, int], password: str) -> str:
        """The rumqttd TOML for the current settings."""
        s = self._settings
        auth = f'    auth = {{ {INTERNAL_USER} = "{password}" }}\n'
        listeners = [
            self._listener("v4", 1, "internal311", INTERNAL_HOST, internal_ports[0], auth),
            self._listener("v5", 1, "internal5", INTERNAL_HOST, internal_ports[1], auth),
        ]
        if self._serve_public:
            listeners.append(self._listener("v4", 2, "mqtt311", s.mqtt_host, s.mqtt_port, ""))
            listeners.append(self._listener("v5", 2, "mqtt5", s.mqtt_host, s.mqtt5_port, ""))
        return _RUMQTTD_TOML.format(
            max_inflight=s.mqtt_max_inflight,
            segment_size=max(100 * 1024 * 1024, 8 * s.mqtt_max_payload),
            listeners="".join(listeners),
        )

    def _listener(
        self, version: str, index: int, name: str, host: str, port: int, auth: str
    ) -> str:
        extra = "    dynamic_filters = true\n" if version == "v4" else ""
        return _LISTENER.format(
            version=version, index=index, name=name, host=host, port=port,
            max_payload=self._settings.mqtt_max_payload,
            max_inflight=self._settings.mqtt_max_inflight, extra=extra + auth,
        )  # fmt: skip

    def start(self) -> BrokerAddress:
        """Start the broker; stop with one clear line when a port is taken."""
        from iotcore import Broker

        s = self._settings
        check_public_ports(s)
        public = {s.mqtt_port, s.mqtt5_port, s.http_port}
        first = _internal_port(s.mqtt_internal_port, "mqtt_internal_port", public)
        ports = (
            first,
            _internal_port(s.mqtt5_internal_port, "mqtt5_internal_port", {*public, first}),
        )
        password = secrets.token_urlsafe(32)
        config = Path(s.data_dir) / "rumqttd.toml"
        _write_private(config, self.config_text(ports, password))
        try:
            self._broker = Broker(config_path=str(config)).start(timeout=15.0)
        except (OSError, RuntimeError) as exc:
            raise BrokerUnavailable(f"the embedded broker did not start: {exc}") from exc
        self._ports, self._password = ports, password
        _LOGGER.info(
            "embedded MQTT broker: internal 3.1.1 on %s:%d, 5 on %s:%d%s",
            INTERNAL_HOST, ports[0], INTERNAL_HOST, ports[1],
            f"; open 3.1.1 on {s.mqtt_host}:{s.mqtt_port}, 5 on {s.mqtt_host}:{s.mqtt5_port}"
            if self._serve_public else "",
        )  # fmt: skip
        return self.address

    def stop(self) -> None:
        """Stop the broker and release its ports."""
        if self._broker is not None:
            self._broker.stop()
            self._broker = None
        self._ports = None


def port_taken(host: str, port: int) -> BrokerUnavailable:
    """The one-line error for a public MQTT port something else listens on."""
    return BrokerUnavailable(
        f"port {port} on {host} is already in use: name a running broker "
        f"with --broker mqtt://host:port, or pick free ports with --mqtt-port "
        f"and --mqtt5-port",
        code="port_in_use",
        port=port,
    )


def check_public_ports(settings: Settings) -> None:
    """Raise `port_taken` when a public MQTT port is in use."""
    for port in (settings.mqtt_port, settings.mqtt5_port):
        if port_in_use(settings.mqtt_host, port):
            raise port_taken(settings.mqtt_host, port)


def _internal_port(configured: int, setting: str, avoid: set[int]) -> int:
    """The configured internal port (checked free), or a free loopback port not in `avoid`.

    The public ports may be free but about to be bound by the gateway: never take them.
    """
    if configured:
        if port_in_use(INTERNAL_HOST, configured):
            raise BrokerUnavailable(
                f"port {configured} on {INTERNAL_HOST} ({setting}) is already in use",
                code="port_in_use",
                port=configured,
            )
        return configured
    while True:
        with socket.socket() as sock:
            sock.bind((INTERNAL_HOST, 0))
            port = int(sock.getsockname()[1])
        if port not in avoid:
            return port


def _write_private(path: Path, text: str) -> None:
    """Write `text` readable by this user only (it holds the internal password)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
