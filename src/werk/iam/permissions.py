"""The permissions werk knows, and the built-in roles made of them.

A permission is `<area>:<action>[:<qualifier>]`. Roles may list a pattern ending in `*`
(`history:read:*`, or `*` for everything). Scopes narrow a role further (see `scopes`).
"""

from __future__ import annotations

from typing import Final

from werk.core.access import PUBLIC

UNS_READ: Final = "uns:read"
UNS_PUBLISH: Final = "uns:publish"
QUARANTINE_READ: Final = "quarantine:read"
HISTORY_READ_RAW: Final = "history:read:raw"
HISTORY_READ_PROCESSED: Final = "history:read:processed"
HISTORY_READ_BUSINESS: Final = "history:read:business"
HISTORY_WRITE_BUSINESS: Final = "history:write:business"
QUALITY_READ: Final = "quality:read"
QUALITY_ADMIN: Final = "quality:admin"
DATA_ADMIN: Final = "data:admin"
SOURCES_READ: Final = "sources:read"
SOURCES_WRITE: Final = "sources:write"
SPARKPLUG_READ: Final = "sparkplug:read"
SPARKPLUG_ADMIN: Final = "sparkplug:admin"
COMMANDS_READ: Final = "commands:read"
COMMANDS_WRITE: Final = "commands:write"
IAM_READ: Final = "iam:read"
IAM_ADMIN: Final = "iam:admin"
AUDIT_READ: Final = "audit:read"
MQTT_PUBLISH: Final = "mqtt:publish"
MQTT_SUBSCRIBE: Final = "mqtt:subscribe"

ALL: Final = (
    UNS_READ, UNS_PUBLISH, QUARANTINE_READ, HISTORY_READ_RAW, HISTORY_READ_PROCESSED,
    HISTORY_READ_BUSINESS, HISTORY_WRITE_BUSINESS, QUALITY_READ, QUALITY_ADMIN, DATA_ADMIN,
    SOURCES_READ, SOURCES_WRITE, SPARKPLUG_READ, SPARKPLUG_ADMIN, COMMANDS_READ,
    COMMANDS_WRITE, IAM_READ, IAM_ADMIN, AUDIT_READ, MQTT_PUBLISH, MQTT_SUBSCRIBE,
)  # fmt: skip

_READ_DATA: Final = (UNS_READ, "history:read:*", QUALITY_READ, SOURCES_READ, SPARKPLUG_READ)

BUILTIN_ROLES: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "admin": ("Everything, including identity and access management", ("*",)),
    "engineer": (
        "Run the plant's data: read all, publish, command machines, manage rules and sources",
        (
            *_READ_DATA,
            UNS_PUBLISH,
            QUARANTINE_READ,
            HISTORY_WRITE_BUSINESS,
            QUALITY_ADMIN,
            DATA_ADMIN,
            SOURCES_WRITE,
            SPARKPLUG_ADMIN,
            COMMANDS_READ,
            COMMANDS_WRITE,
            MQTT_PUBLISH,
            MQTT_SUBSCRIBE,
        ),
    ),
    "operator": (
        "Watch the plant and write setpoints",
        (*_READ_DATA, QUARANTINE_READ, COMMANDS_READ, COMMANDS_WRITE, MQTT_SUBSCRIBE),
    ),
    "viewer": ("Read data and dashboards", (*_READ_DATA, MQTT_SUBSCRIBE)),
    "partner-admin": (
        "A partner's administrator: its own people, devices and keys, and its data",
        (
            UNS_READ,
            HISTORY_READ_PROCESSED,
            HISTORY_READ_BUSINESS,
            SOURCES_READ,
            SOURCES_WRITE,
            IAM_READ,
            IAM_ADMIN,
            AUDIT_READ,
            MQTT_PUBLISH,
            MQTT_SUBSCRIBE,
        ),
    ),
    "partner-user": (
        "A partner's user: reads the partner's processed and business data",
        (UNS_READ, HISTORY_READ_PROCESSED, HISTORY_READ_BUSINESS, SOURCES_READ),
    ),
    "device": ("A machine or gateway publishing under its own subtree", (MQTT_PUBLISH,)),
    "edge-node": (
        "A Sparkplug edge node: publishes its births and data, takes its commands",
        (MQTT_PUBLISH, MQTT_SUBSCRIBE),
    ),
    "integration": (
        "A system pushing business data and reading history",
        (UNS_READ, "history:read:*", SOURCES_READ, SOURCES_WRITE, HISTORY_WRITE_BUSINESS),
    ),
    "auditor": ("Read the audit log and the access model", (IAM_READ, AUDIT_READ)),
}

__all__ = ["ALL", "BUILTIN_ROLES", "PUBLIC"]
