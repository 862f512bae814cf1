"""How the MQTT gateway judges a CONNECT: refusals, the authority call, the will topic."""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from werk.core.errors import TooManyAttempts
from werk.uns.gateway_hub import Hub
from werk.uns.gateway_pump import may_publish
from werk.uns.gateway_types import MqttGrant, OpenGrant
from werk.uns.mqtt_packets import (
    MQTT5,
    MQTT311,
    PROP_AUTH_METHOD,
    V3_BAD_CREDENTIALS,
    V3_NOT_AUTHORIZED,
    V3_SERVER_UNAVAILABLE,
    V3_UNACCEPTABLE_PROTOCOL,
    V5_BAD_AUTH_METHOD,
    V5_BAD_CREDENTIALS,
    V5_NOT_AUTHORIZED,
    V5_RATE_EXCEEDED,
    V5_SERVER_UNAVAILABLE,
    Connect,
    MalformedPacket,
    decode_text,
    iter_properties,
    read_varint,
)

_LOGGER = logging.getLogger(__name__)

AUTH_TIMEOUT_S: Final = 10.0
_V5_UNSUPPORTED_VERSION: Final = 0x84

# Refusal -> (MQTT 3.1.1 return code, MQTT 5 reason code)
REFUSALS: Final = {
    "bad_credentials": (V3_BAD_CREDENTIALS, V5_BAD_CREDENTIALS),
    "not_authorized": (V3_NOT_AUTHORIZED, V5_NOT_AUTHORIZED),
    "unavailable": (V3_SERVER_UNAVAILABLE, V5_SERVER_UNAVAILABLE),
    "rate_exceeded": (V3_NOT_AUTHORIZED, V5_RATE_EXCEEDED),
    "bad_auth_method": (V3_NOT_AUTHORIZED, V5_BAD_AUTH_METHOD),
    "unsupported_version": (V3_UNACCEPTABLE_PROTOCOL, _V5_UNSUPPORTED_VERSION),
}


def refusal_code(refusal: str, level: int) -> int:
    """The CONNACK code of `refusal` for a client of protocol `level`."""
    v3, v5 = REFUSALS[refusal]
    return v5 if level == MQTT5 else v3


def early_refusal(c: Connect) -> str | None:
    """A refusal that needs no authority: protocol 3.1, enhanced authentication."""
    if c.level not in (MQTT311, MQTT5):
        return "unsupported_version"
    got = read_varint(c.properties, 0, len(c.properties)) if c.properties else None
    if got is not None:
        for ident, _start, _end in iter_properties(c.properties, got[1], len(c.properties)):
            if ident == PROP_AUTH_METHOD:
                return "bad_auth_method"
    return None


def will_allowed(grant: MqttGrant, topic: str) -> bool:
    """Whether the grant may publish the will on `topic` (a plain topic, no wildcards)."""
    return bool(topic) and "+" not in topic and "#" not in topic and may_publish(grant, topic)


async def authenticate(hub: Hub, c: Connect, peer: str) -> MqttGrant | str:
    """The grant for the CONNECT's credentials, or the refusal; the authority runs off-loop."""
    if c.username is None and c.password is None:
        return OpenGrant() if hub.allow_anonymous else "not_authorized"
    try:
        password = decode_text(c.password or b"")
    except MalformedPacket:
        return "bad_credentials"
    if c.username is None:
        return "bad_credentials"
    loop = asyncio.get_running_loop()
    job = loop.run_in_executor(
        hub.executor, hub.authority.connect, c.username, password, c.client_id, peer
    )
    try:
        grant = await asyncio.wait_for(job, AUTH_TIMEOUT_S)
    except TooManyAttempts:
        return "rate_exceeded"
    except Exception:
        _LOGGER.exception("MQTT authority failed for %r from %s", c.username, peer)
        return "unavailable"
    return "bad_credentials" if grant is None else grant
