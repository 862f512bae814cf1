"""What the MQTT gateway asks of an authority, and what it reports back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, Protocol

ANONYMOUS: Final = "anonymous"

EventKind = Literal["connect", "connect_refused", "publish_denied", "subscribe_denied", "dropped"]


class MqttGrant(Protocol):
    """What one authenticated MQTT connection may do; asked on the gateway's event loop."""

    @property
    def principal_id(self) -> str:
        """The principal the connection belongs to (what `MqttGateway.drop` takes)."""
        ...

    def may_publish(self, topic: str) -> bool:
        """Whether the connection may publish to `topic` (never a ``$`` topic)."""
        ...

    def may_subscribe(self, topic_filter: str) -> bool:
        """Whether the connection may subscribe to `topic_filter`.

        Shared subscriptions are asked without their ``$share/<group>/`` prefix.
        """
        ...


class MqttAuthority(Protocol):
    """Authenticates MQTT connections; called in a worker thread, so it may block briefly."""

    def connect(self, username: str, password: str, client_id: str, peer: str) -> MqttGrant | None:
        """The grant for these credentials, or None to refuse them as bad credentials.

        Raising `TooManyAttempts` refuses with "rate exceeded"; any other error with
        "server unavailable". Clients without credentials never reach the authority.
        """
        ...


@dataclass(frozen=True, slots=True)
class OpenGrant:
    """Everything but ``$`` topics: anonymous clients when `mqtt_allow_anonymous` is set."""

    principal_id: str = ANONYMOUS

    def may_publish(self, topic: str) -> bool:
        """Allow every topic but ``$`` ones."""
        return not topic.startswith("$")

    def may_subscribe(self, topic_filter: str) -> bool:
        """Allow every filter but ``$`` ones."""
        return not topic_filter.startswith("$")


@dataclass(frozen=True, slots=True)
class GatewayEvent:
    """Something the gateway decided about a connection, for the audit log.

    `detail` is the denied topic or filter, or why a connection was refused or dropped;
    `count` is how many denials of this kind the event stands for (repeated denials on
    one connection are reported at most once per rate-limit window).
    """

    kind: EventKind
    peer: str
    client_id: str
    username: str | None
    principal_id: str | None
    protocol: int
    detail: str = ""
    count: int = 1


@dataclass(frozen=True, slots=True)
class GatewayStats:
    """Counters of a running gateway."""

    connections: int
    messages: int
    denials: int
    refused: int
