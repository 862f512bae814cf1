"""werk's MQTT gateway in front of a broker of its own, with one device allowed to publish.

`werk bench ingest` measures its ceiling twice: once with the publisher on rumqttd's open
port, and once with the publisher logged in as a device through the gateway, which
checks its API key at CONNECT and its rights on every PUBLISH before it forwards the
message to rumqttd's internal port. The difference is what authentication and topic ACLs
cost on the data path of every device message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from werk.bench.machine import free_ports
from werk.bench.workload import NODE
from werk.core.db import create_db_engine, upgrade_schema
from werk.core.settings import Settings
from werk.iam.bootstrap import SYSTEM, ensure_admin
from werk.iam.mqtt import IamMqttAuthority
from werk.iam.service import Iam
from werk.uns.broker import BrokerAddress, EmbeddedBroker
from werk.uns.gateway import MqttGateway

DEVICE: Final = "bench-publisher"


class BenchGateway:
    """A fresh embedded broker and a gateway before it, on free ports of `mqtt_host`.

    Everything lives in `data_dir` (rumqttd's config, IAM's database), apart from the
    benchmark's other broker and runtime.
    """

    def __init__(self, settings: Settings, data_dir: Path) -> None:
        mqtt, mqtt5 = free_ports(2, settings.mqtt_host)
        self._settings = settings.model_copy(
            update={"data_dir": data_dir, "mqtt_port": mqtt, "mqtt5_port": mqtt5,
                    "mqtt_internal_port": 0, "mqtt5_internal_port": 0,
                    "mqtt_allow_anonymous": False, "database_url": None}
        )  # fmt: skip
        self.broker = EmbeddedBroker(self._settings)
        self._engine: Engine | None = None
        self._gateway: MqttGateway | None = None

    def start(self) -> BrokerAddress:
        """Start the broker, create the device and its key, start the gateway.

        Returns the gateway's address with the device's login; `stop` cleans up a
        half-done start.
        """
        s = self._settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.broker.start()
        self._engine = create_db_engine(s.relational_url)
        upgrade_schema(self._engine)
        iam = Iam(sessionmaker(self._engine, expire_on_commit=False), s)
        ensure_admin(iam)
        key = _device_key(iam)
        authority = IamMqttAuthority(iam.authn, s)
        self._gateway = MqttGateway(
            s, authority, self.broker.internal_v311_address, self.broker.address
        )
        self._gateway.start()
        return BrokerAddress(s.mqtt_host, s.mqtt5_port, True, DEVICE, key)

    def stop(self) -> None:
        """Stop the gateway and the broker, and close IAM's database."""
        if self._gateway is not None:
            self._gateway.stop()
            self._gateway = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        self.broker.stop()


def _device_key(iam: Iam) -> str:
    """A device that may publish under the benchmark's cell, and a new API key of it."""
    directory = iam.directory
    operator = next(o for o in directory.list_orgs(SYSTEM) if o.kind == "operator")
    role = next(r for r in directory.list_roles(SYSTEM) if r.builtin and r.name == "device")
    device = directory.create_device(SYSTEM, org_id=operator.id, name=DEVICE)
    directory.create_binding(
        SYSTEM, role_id=role.id, principal_id=device.id, namespace=(f"{NODE}/#",)
    )
    _view, key = directory.create_api_key(SYSTEM, principal_id=device.id, name="bench")
    return key
