"""The Sparkplug B 3.0 topic namespace and the host application STATE message. Pure, no I/O.

    spBv1.0/<group_id>/<message_type>/<edge_node_id>[/<device_id>]
    spBv1.0/STATE/<host_id>          payload: {"online": true, "timestamp": <epoch ms>}

Group, edge node, device and host ids are non-empty UTF-8 strings without the MQTT reserved
characters '/', '+' and '#' (nor NUL, which MQTT forbids in topic names). A device id appears
exactly for the D* message types.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, NoReturn

import orjson

from werk.core.errors import PayloadError, TopicError

NAMESPACE: Final = "spBv1.0"
STATE: Final = "STATE"
_RESERVED: Final = frozenset("/+#\x00")


class MessageType(StrEnum):
    """The Sparkplug verbs of edge node and device messages."""

    NBIRTH = "NBIRTH"
    NDEATH = "NDEATH"
    DBIRTH = "DBIRTH"
    DDEATH = "DDEATH"
    NDATA = "NDATA"
    DDATA = "DDATA"
    NCMD = "NCMD"
    DCMD = "DCMD"

    @property
    def is_birth(self) -> bool:
        """NBIRTH or DBIRTH."""
        return self in (MessageType.NBIRTH, MessageType.DBIRTH)

    @property
    def is_death(self) -> bool:
        """NDEATH or DDEATH."""
        return self in (MessageType.NDEATH, MessageType.DDEATH)

    @property
    def is_data(self) -> bool:
        """NDATA or DDATA."""
        return self in (MessageType.NDATA, MessageType.DDATA)

    @property
    def is_command(self) -> bool:
        """NCMD or DCMD."""
        return self in (MessageType.NCMD, MessageType.DCMD)

    @property
    def is_device(self) -> bool:
        """A message about a device (the topic carries a device id)."""
        return self.value.startswith("D")


_MESSAGE_TYPES: Final = {kind.value: kind for kind in MessageType}


@dataclass(frozen=True, slots=True)
class SparkplugTopic:
    """The topic of an edge node or device message; invalid ids raise TopicError."""

    group: str
    message_type: MessageType
    edge_node: str
    device: str | None = None

    def __post_init__(self) -> None:
        _check_id(self.group, "group id")
        if self.group == STATE:
            _fail(f"group id {STATE!r} is reserved for host application state", "reserved_group")
        _check_id(self.edge_node, "edge node id")
        if not isinstance(self.message_type, MessageType):
            _fail(f"unknown message type {self.message_type!r}", "message_type")
        if self.message_type.is_device:
            if self.device is None:
                _fail(f"{self.message_type} needs a device id", "device_missing")
            _check_id(self.device, "device id")
        elif self.device is not None:
            _fail(f"{self.message_type} takes no device id", "device_not_allowed")

    @property
    def topic(self) -> str:
        """Render the MQTT topic."""
        node = f"{NAMESPACE}/{self.group}/{self.message_type.value}/{self.edge_node}"
        return node if self.device is None else f"{node}/{self.device}"

    @property
    def node_key(self) -> tuple[str, str]:
        """(group, edge node): identifies the edge node the message belongs to."""
        return (self.group, self.edge_node)


@dataclass(frozen=True, slots=True)
class StateTopic:
    """The topic a host application publishes its STATE on."""

    host_id: str

    def __post_init__(self) -> None:
        _check_id(self.host_id, "host id")

    @property
    def topic(self) -> str:
        """Render the MQTT topic."""
        return f"{NAMESPACE}/{STATE}/{self.host_id}"


def parse_topic(topic: str) -> SparkplugTopic | StateTopic:
    """Parse a Sparkplug topic; anything else raises TopicError(code="sparkplug_topic")."""
    levels = topic.split("/")
    if levels[0] != NAMESPACE:
        _fail(f"{topic!r} is not in the {NAMESPACE} namespace", "namespace", topic)
    if len(levels) > 1 and levels[1] == STATE:
        if len(levels) != 3:
            _fail(f"{topic!r}: a STATE topic has exactly 3 levels", "levels", topic)
        with _about(topic):
            return StateTopic(levels[2])
    if len(levels) not in (4, 5):
        _fail(f"{topic!r} has {len(levels)} levels, not 4 or 5", "levels", topic)
    kind = _MESSAGE_TYPES.get(levels[2])
    if kind is None:
        _fail(f"{topic!r}: unknown message type {levels[2]!r}", "message_type", topic)
    device = levels[4] if len(levels) == 5 else None
    with _about(topic):
        return SparkplugTopic(levels[1], kind, levels[3], device)


@contextmanager
def _about(topic: str) -> Iterator[None]:
    """Name the topic in a TopicError raised while building its parts."""
    try:
        yield
    except TopicError as exc:
        raise TopicError(
            f"{topic!r}: {exc.message}", code=exc.code, topic=topic, reason=exc.params["reason"]
        ) from None


def state_topic(host_id: str) -> str:
    """Return the STATE topic of a host application: spBv1.0/STATE/<host_id>."""
    return StateTopic(host_id).topic


@dataclass(frozen=True, slots=True)
class HostState:
    """A host application's STATE: online or not, since `timestamp` (epoch ms)."""

    online: bool
    timestamp: int


def encode_state(state: HostState) -> bytes:
    """Encode a STATE payload as Sparkplug 3.0 JSON."""
    if type(state.online) is not bool or type(state.timestamp) is not int or state.timestamp < 0:
        raise PayloadError(f"not a valid host state: {state!r}", code="sparkplug_state")
    return orjson.dumps({"online": state.online, "timestamp": state.timestamp})


def decode_state(data: bytes) -> HostState:
    """Decode a STATE payload; anything but {"online": bool, "timestamp": ms} is rejected."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"STATE payload is not JSON: {exc}", code="sparkplug_state") from exc
    if not isinstance(document, dict):
        raise PayloadError("STATE payload is not a JSON object", code="sparkplug_state")
    online, timestamp = document.get("online"), document.get("timestamp")
    if type(online) is not bool or type(timestamp) is not int or timestamp < 0:
        raise PayloadError(
            'STATE payload needs {"online": true|false, "timestamp": <epoch ms>}',
            code="sparkplug_state",
        )
    return HostState(online=online, timestamp=timestamp)


def _check_id(value: object, what: str) -> None:
    if type(value) is not str or not value:
        _fail(f"{what} must be a non-empty string, got {value!r}", "empty_id")
    if not _RESERVED.isdisjoint(value):
        _fail(f"{what} {value!r} contains '/', '+', '#' or NUL", "reserved_char")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            _fail(f"{what} {value!r} is not valid UTF-8", "utf8")


def _fail(message: str, reason: str, topic: str | None = None) -> NoReturn:
    raise TopicError(message, code="sparkplug_topic", reason=reason, topic=topic)
