"""The MQTT ACL matrix: principals, what each tries, and whether a broker must allow it.

Shared by every broker werk guards (Mosquitto through its generated files, the embedded
broker through the gateway). Principals are built straight from `werk.iam.scopes`; each
logs in with its name and a key-like password. A subscribe case names a probe topic its
filter matches: an allowed filter delivers the probe, a denied one never does (Mosquitto
2.0 grants every SUBSCRIBE and filters deliveries by the ACL; the gateway refuses the
filter with a SUBACK failure). Each member also names a canary topic it may read, so a
test can tell "not delivered" from "not delivered yet". `Probe` drives one MQTT client
against any broker and waits for its acks.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from tests.conftest import require, wait_until

from werk.core.settings import Settings
from werk.iam.permissions import BUILTIN_ROLES
from werk.iam.scopes import Grant, OrgKind, Principal, PrincipalKind, Scope

ROOT = "uns/v1"
PRESS = "acme/berlin/machining/line-1/cell-1/press-7"
SIBLING = "acme/berlin/machining/line-1/cell-1/press-8"
CELL2 = "acme/berlin/machining/line-1/cell-2"
HAMBURG = "acme/hamburg/assembly/line-1/cell-1/robot-1"
NOT_AUTHORIZED = 0x87
TIMEOUT_S = 5.0


def _role(name: str) -> frozenset[str]:
    return frozenset(BUILTIN_ROLES[name][1])


@dataclass(frozen=True)
class Member:
    """A principal of the matrix, its password, and a topic it may read."""

    principal: Principal
    password: str = field(
        default_factory=lambda: f"wk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
    )
    canary: str = ""

    @property
    def name(self) -> str:
        """Its MQTT username."""
        return self.principal.name


def _member(
    name: str,
    kind: PrincipalKind,
    grants: Iterable[tuple[str, frozenset[str], tuple[str, ...]]],
    canary: str,
    sparkplug: tuple[str, str] | None = None,
) -> Member:
    made = tuple(Grant(role, perms, Scope(namespace=ns)) for role, perms, ns in grants)
    principal = Principal(
        f"id-{name}", kind, name, "org-acme", OrgKind.OPERATOR, made, sparkplug=sparkplug
    )
    return Member(principal, canary=canary)


MEMBERS: dict[str, Member] = {
    m.name: m
    for m in (
        _member(
            "press-7",
            PrincipalKind.DEVICE,
            [
                ("device", _role("device"), (f"{PRESS}/#",)),
                ("reader", frozenset({"mqtt:subscribe"}), (f"{PRESS}/#",)),
            ],
            canary=f"{ROOT}/{PRESS}/_value/canary",
        ),
        _member(
            "edge-cell-2",
            PrincipalKind.DEVICE,
            [("edge-node", _role("edge-node"), (f"{CELL2}/#",))],
            canary="spBv1.0/plant/NCMD/cell-2",
            sparkplug=("plant", "cell-2"),
        ),
        _member(
            "mes-bridge",
            PrincipalKind.SERVICE,
            [("engineer", _role("engineer"), ("acme/berlin/#",))],
            canary=f"{ROOT}/{PRESS}/_value/canary",
        ),
        _member(
            "hh-viewer",
            PrincipalKind.SERVICE,
            [("viewer", _role("viewer"), ("acme/hamburg/#",))],
            canary=f"{ROOT}/{HAMBURG}/_value/canary",
        ),
    )
}


@dataclass(frozen=True, slots=True)
class Case:
    """One attempt: `who` publishes on `topic` or subscribes to it; allowed or not."""

    who: str
    action: Literal["publish", "subscribe"]
    topic: str
    allowed: bool
    probe: str | None = None

    @property
    def id(self) -> str:
        """A readable test id."""
        verdict = "allowed" if self.allowed else "denied"
        return f"{self.who}:{self.action}:{verdict}:{self.topic}"


def _pub(who: str, topic: str, allowed: bool) -> Case:
    return Case(who, "publish", topic, allowed)


def _sub(who: str, topic_filter: str, allowed: bool, probe: str | None) -> Case:
    return Case(who, "subscribe", topic_filter, allowed, probe)


_PRESS_VALUE = f"{ROOT}/{PRESS}/_value/force"
_SIBLING_VALUE = f"{ROOT}/{SIBLING}/_value/force"
_HAMBURG_VALUE = f"{ROOT}/{HAMBURG}/_value/torque"
_CELL_FORCES = f"{ROOT}/acme/berlin/machining/line-1/cell-1/+/_value/force"

CASES: tuple[Case, ...] = (
    # a device: its own subtree, no commands, no siblings, no wildcards, no $SYS
    _pub("press-7", _PRESS_VALUE, True),
    _pub("press-7", f"{ROOT}/{PRESS}/_batch", True),
    _pub("press-7", f"{ROOT}/{PRESS}/hydraulics/_value/pressure", True),
    _pub("press-7", f"{ROOT}/{PRESS}/_cmd/force", False),
    _pub("press-7", _SIBLING_VALUE, False),
    _pub("press-7", f"{ROOT}/acme/berlin/machining/line-1/cell-1/_batch", False),
    _pub("press-7", f"{ROOT}/{PRESS}/no-class", False),
    _pub("press-7", "spBv1.0/plant/NDATA/cell-2", False),
    _pub("press-7", "plain/topic", False),
    _sub("press-7", f"{ROOT}/{PRESS}/#", True, _PRESS_VALUE),
    _sub("press-7", _PRESS_VALUE, True, _PRESS_VALUE),
    _sub("press-7", "#", False, _SIBLING_VALUE),
    _sub("press-7", "+/#", False, _SIBLING_VALUE),
    _sub("press-7", f"{ROOT}/acme/#", False, _SIBLING_VALUE),
    _sub("press-7", _CELL_FORCES, False, _SIBLING_VALUE),
    _sub("press-7", "$SYS/#", False, None),
    # an edge node: its own Sparkplug topics and commands, its cell's UNS subtree
    _pub("edge-cell-2", "spBv1.0/plant/NBIRTH/cell-2", True),
    _pub("edge-cell-2", "spBv1.0/plant/DDATA/cell-2/plc-1", True),
    _pub("edge-cell-2", f"{ROOT}/{CELL2}/mixer-1/_value/speed", True),
    _pub("edge-cell-2", "spBv1.0/plant/NDATA/cell-3", False),
    _pub("edge-cell-2", "spBv1.0/other/NDATA/cell-2", False),
    _pub("edge-cell-2", "spBv1.0/plant/NCMD/cell-2", False),
    _pub("edge-cell-2", "spBv1.0/STATE/werk", False),
    _pub("edge-cell-2", f"{ROOT}/{CELL2}/mixer-1/_cmd/speed", False),
    _sub("edge-cell-2", "spBv1.0/plant/NCMD/cell-2", True, "spBv1.0/plant/NCMD/cell-2"),
    _sub("edge-cell-2", "spBv1.0/plant/DCMD/cell-2/+", True, "spBv1.0/plant/DCMD/cell-2/plc-1"),
    _sub("edge-cell-2", "spBv1.0/STATE/+", True, "spBv1.0/STATE/werk"),
    _sub("edge-cell-2", "spBv1.0/plant/NCMD/cell-3", False, "spBv1.0/plant/NCMD/cell-3"),
    _sub("edge-cell-2", "spBv1.0/#", False, "spBv1.0/plant/NDATA/cell-3"),
    _sub("edge-cell-2", "spBv1.0/plant/DDATA/cell-2/+", False, "spBv1.0/plant/DDATA/cell-2/x"),
    # a service with the engineer role over one site: data and commands there only
    _pub("mes-bridge", f"{ROOT}/{PRESS}/_cmd/force", True),
    _pub("mes-bridge", _SIBLING_VALUE, True),
    _pub("mes-bridge", _HAMBURG_VALUE, False),
    _pub("mes-bridge", f"{ROOT}/{HAMBURG}/_cmd/torque", False),
    _sub("mes-bridge", f"{ROOT}/acme/berlin/#", True, _SIBLING_VALUE),
    _sub("mes-bridge", f"$share/mes/{ROOT}/acme/berlin/#", True, _SIBLING_VALUE),
    _sub("mes-bridge", f"{ROOT}/acme/#", False, _HAMBURG_VALUE),
    _sub("mes-bridge", f"{ROOT}/+/+/+/+/+/+/_value/+", False, _HAMBURG_VALUE),
    # a viewer of another site: reads there, publishes nowhere
    _pub("hh-viewer", _HAMBURG_VALUE, False),
    _sub("hh-viewer", f"{ROOT}/acme/hamburg/#", True, _HAMBURG_VALUE),
    _sub("hh-viewer", f"{ROOT}/acme/berlin/#", False, _PRESS_VALUE),
)


class Probe:
    """One paho client; waits for CONNACK, PUBACK and SUBACK and keeps what arrives."""

    def __init__(self, port: int, username: str | None, password: str | None, *, v5: bool = True,
                 client_id: str | None = None) -> None:  # fmt: skip
        protocol = paho.MQTTv5 if v5 else paho.MQTTv311
        cid = client_id or f"probe-{secrets.token_hex(4)}"
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=protocol)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.connack: ReasonCode | None = None
        self.disconnected = threading.Event()
        self.received: list[str] = []
        self._acks: dict[int, Any] = {}
        self._cond = threading.Condition()
        self._port = port
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def connect(self) -> int:
        """Connect and return the CONNACK reason code (0 = accepted)."""
        self.client.connect("127.0.0.1", self._port, keepalive=30)
        self.client.loop_start()
        with self._cond:
            self._cond.wait_for(lambda: self.connack is not None, TIMEOUT_S)
        if self.connack is None:
            raise TimeoutError("no CONNACK")
        return int(self.connack.value)

    @property
    def code(self) -> int | None:
        """The CONNACK reason code (0 = accepted), None before any."""
        return None if self.connack is None else int(self.connack.value)

    def publish(self, topic: str, payload: bytes = b'{"value": 1}') -> int:
        """Publish at QoS 1 and return the PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1)
        return int(self._wait(info.mid)[0])

    def subscribe(self, *filters: str) -> list[int]:
        """Subscribe at QoS 1 and return the SUBACK reason codes."""
        _, mid = self.client.subscribe([(f, 1) for f in filters])
        return [int(c) for c in self._wait(mid)]

    def got(self, topic: str) -> bool:
        """Whether a message on `topic` arrived."""
        with self._cond:
            return topic in self.received

    def wait_for(self, topic: str) -> bool:
        """Wait until a message on `topic` arrives; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: topic in self.received, TIMEOUT_S)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()

    def _wait(self, mid: int) -> list[int]:
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._acks, TIMEOUT_S):
                raise TimeoutError(f"no ack for message {mid}")
            found: list[int] = self._acks.pop(mid)
            return found

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        with self._cond:
            self.connack = rc
            self._cond.notify_all()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        self.client.disconnect()  # a probe never reconnects by itself
        self.disconnected.set()
        with self._cond:
            self._cond.notify_all()

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        with self._cond:
            self._acks[mid] = [rc.value]
            self._cond.notify_all()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: list[ReasonCode], _p: Any) -> None:
        with self._cond:
            self._acks[mid] = [c.value for c in codes]
            self._cond.notify_all()

    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        with self._cond:
            self.received.append(message.topic)
            self._cond.notify_all()


@contextmanager
def running_mosquitto(settings: Settings, port: int, directory: Path) -> Iterator[None]:
    """Mosquitto on `port` with the password, ACL and pid files `settings` name."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    require("mosquitto", Path(binary).exists())
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous false",
        f"password_file {settings.mosquitto_password_file}",
        f"acl_file {settings.mosquitto_acl_file}",
        f"pid_file {settings.mosquitto_pid_file}",
        "sys_interval 1",
    ]
    if os.geteuid() == 0:
        lines.append("user root")  # else Mosquitto drops to user `mosquitto` and cannot read
    (directory / "mosquitto.conf").write_text("\n".join(lines) + "\n")
    with (directory / "mosquitto.log").open("wb") as log:
        process = subprocess.Popen(
            [binary, "-c", str(directory / "mosquitto.conf")], stdout=log, stderr=log
        )
        try:
            wait_until(lambda: _listening(port), timeout=10)
            yield
        finally:
            process.terminate()
            process.wait(10)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
