"""IAM in the running process: principals and first run, MQTT gateway or Mosquitto files.

Every change of a principal (disabled, keys revoked, grants changed) reaches the MQTT
side at once: the embedded gateway drops the principal's live connections, the files of
an external Mosquitto are rewritten and reloaded, and the ingest guard re-reads who may
publish where.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from werk.core.settings import Settings
from werk.iam.bootstrap import DemoCredential, FirstRun, ensure_admin, seed_demo
from werk.iam.mosquitto import LoadPrincipal, MosquittoFiles, MosquittoSync
from werk.iam.mqtt import IamMqttAuthority, NodePath, PublishGuard
from werk.iam.service import Iam
from werk.sparkplug.mapping import UnsMapper
from werk.uns.broker import EmbeddedBroker
from werk.uns.gateway import GatewayEvent, MqttGateway

_LOGGER = logging.getLogger(__name__)


@dataclass
class Security:
    """What IAM runs in this process."""

    iam: Iam
    guard: PublishGuard
    first_run: FirstRun | None = None
    demo_credentials: list[DemoCredential] = field(default_factory=list)
    gateway: MqttGateway | None = None
    mosquitto: MosquittoSync | None = None

    def credentials_of(self, name: str) -> tuple[str, str] | None:
        """The MQTT username and key of demo device `name`, if the demo made one."""
        for found in self.demo_credentials:
            if found.kind == "api_key" and found.name == name:
                return found.name, found.secret
        return None


def start_iam(
    sessions: sessionmaker[Session], settings: Settings, *, demo: bool, enterprise: str
) -> Security:
    """Open IAM; create the first administrator and, for the demo, partners and devices."""
    iam = Iam(sessions, settings)
    first_run = ensure_admin(iam)
    credentials = seed_demo(iam, enterprise) if demo else []
    guard = PublishGuard.from_settings(
        iam.directory.enabled_principals, settings, node_path(settings)
    )
    iam.on_change(guard.on_change)
    return Security(iam, guard, first_run, credentials)


def start_gateway(security: Security, settings: Settings, broker: EmbeddedBroker) -> MqttGateway:
    """Serve the public MQTT ports through the gateway; revocations drop live sessions."""
    authority = IamMqttAuthority(
        security.iam.authn, settings, node_path=node_path(settings), on_login=security.guard.admit
    )
    gateway = MqttGateway(
        settings,
        authority,
        broker.internal_v311_address,
        broker.address,
        on_event=_auditor(security.iam),
    )
    gateway.start()
    security.gateway = gateway
    security.iam.on_change(lambda principal_id: _drop(gateway, principal_id))
    return gateway


def start_mosquitto(security: Security, settings: Settings) -> MosquittoSync | None:
    """Keep an external Mosquitto's password and ACL files in step, when configured."""
    if settings.mosquitto_password_file is None and settings.mosquitto_acl_file is None:
        return None
    iam = security.iam
    files = MosquittoFiles(settings, node_path=node_path(settings))
    sync = MosquittoSync(files, iam.sessions, _loader(iam))
    sync.start()
    iam.on_change(sync.on_change)
    security.mosquitto = sync
    return sync


def node_path(settings: Settings) -> NodePath:
    """Where the Sparkplug routes put an edge node's own metrics."""
    mapper = UnsMapper(settings.sparkplug_routes)
    return lambda group, edge_node: mapper.node(group, edge_node, None).path


def _loader(iam: Iam) -> LoadPrincipal:
    return iam.directory.load_principal


def _drop(gateway: MqttGateway, principal_id: str) -> None:
    if principal_id == "*":
        gateway.drop_all()
        return
    dropped = gateway.drop(principal_id)
    if dropped:
        _LOGGER.info("dropped %d MQTT connection(s) of principal %s", dropped, principal_id)


def _auditor(iam: Iam) -> Callable[[GatewayEvent], None]:
    def record(event: GatewayEvent) -> None:
        iam.audit.record(
            action=f"mqtt.{event.kind}",
            outcome="ok" if event.kind in ("connect", "dropped") else "denied",
            actor_name=event.username or "",
            target=event.detail,
            ip=event.peer,
            detail={
                "client_id": event.client_id,
                "principal_id": event.principal_id,
                "protocol": event.protocol,
                "count": event.count,
            },
        )

    return record
