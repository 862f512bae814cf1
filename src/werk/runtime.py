"""The composition root: wires broker, stores, ingest and the demo plant together."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from werk.core.db import create_db_engine, session_scope, upgrade_schema
from werk.core.errors import BrokerUnavailable
from werk.core.settings import Settings
from werk.core.tuning import tune_gc
from werk.historian import HistorianStore
from werk.historian.backends import describe, store_for
from werk.historian.lifecycle_worker import RetentionWorker
from werk.historian.quality_service import QualityService
from werk.historian.refiner import Refiner
from werk.iam.service import Iam
from werk.runtime_iam import Security, start_gateway, start_iam, start_mosquitto
from werk.sources.runner import SourceRunner, build_sources
from werk.sparkplug.client import HostClient
from werk.sparkplug.service import SparkplugService
from werk.uns.broker import BrokerAddress, EmbeddedBroker, parse_broker_url, reachable
from werk.uns.gateway import MqttGateway
from werk.uns.ingest import IngestPipeline
from werk.uns.mqtt import Publisher
from werk.uns.namespace import Namespace
from werk.uns.topics import check_root

_LOGGER = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything a running werk process holds, started and stopped in order."""

    settings: Settings
    demo: bool = False
    namespace: Namespace = field(default_factory=Namespace)
    engine: Engine | None = None
    sessions: sessionmaker[Session] | None = None
    store: HistorianStore | None = None
    broker: EmbeddedBroker | None = None
    address: BrokerAddress | None = None
    pipeline: IngestPipeline | None = None
    sparkplug: SparkplugService | None = None
    publisher: Publisher | None = None
    plant: Any = None
    retention: RetentionWorker | None = None
    quality: QualityService | None = None
    refiner: Refiner | None = None
    sources: SourceRunner | None = None
    security: Security | None = None
    gateway: MqttGateway | None = None
    _stack: list[Any] = field(default_factory=list)
    _started: bool = False

    @property
    def mqtt_port(self) -> int:
        """Port for plain MQTT 3.1.1 clients (the embedded broker's first listener)."""
        if self.broker is None and self.address is not None:
            return self.address.port
        return self.settings.mqtt_port

    @property
    def started(self) -> bool:
        """Whether `start` completed and `stop` has not run since."""
        return self._started

    def start(self) -> None:
        """Start every part; on failure stop what already started and re-raise."""
        if self.started:
            return
        tune_gc()
        if self.demo:
            self._route_demo_plant()
        try:
            self._start_storage()
            self._start_iam()
            self._start_layers()
            self._start_broker()
            self._start_ingest()
            if self.demo:
                self._start_plant()
            self._follow_other_processes()
            self._started = True
        except BaseException:
            self.stop()
            raise

    def _start_storage(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.engine = create_db_engine(self.settings.relational_url)
        upgrade_schema(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        with session_scope(self.sessions) as session:
            self.namespace.load(session=session)
        store = store_for(self.settings.historian_url, self.settings.historian_file)
        store.open()
        _LOGGER.info(
            "historian: %s", describe(self.settings.historian_url, self.settings.historian_file)
        )
        self.store = store
        self._stack.append(store.close)
        self._recover_registry(store)
        self._stack.append(self.engine.dispose)

    def _start_iam(self) -> None:
        assert self.sessions is not None
        from werk.sim.demo import GROUP

        self.security = start_iam(self.sessions, self.settings, demo=self.demo, enterprise=GROUP)

    def _follow_other_processes(self) -> None:
        """Apply IAM changes of other werk processes; started last, so it stops first."""
        if self.security is None:
            return
        changes = self.security.iam.changes
        changes.start(self.settings.iam_sync_interval_s)
        self._stack.append(changes.stop)

    @property
    def iam(self) -> Iam | None:
        """Identity and access management, once started."""
        return None if self.security is None else self.security.iam

    def _start_layers(self) -> None:
        """Start what keeps the processed and business layers and retention going."""
        assert self.store is not None
        s = self.settings
        rules_file = s.quality_rules_file or s.data_dir / "quality-rules.toml"
        if self.demo and not rules_file.exists():
            from werk.sim.quality_rules import DEMO_RULES

            rules_file.write_text(DEMO_RULES, encoding="utf-8")
        self.quality = QualityService(rules_file)
        self.refiner = Refiner(
            self.store,
            self.quality.rule_set,
            interval_s=s.refine_interval_ms / 1000,
            batch_rows=s.refine_batch_rows,
            tag_units=self._tag_unit,
        )
        self.quality.refiner = self.refiner
        self._stack.append(self.refiner.stop)
        self.refiner.start()
        self.retention = RetentionWorker.from_settings(self.settings, self.store)
        self._stack.append(self.retention.stop)
        self.retention.start()
        assert self.sessions is not None
        self.sources = build_sources(
            sources_file=s.sources_file, store=self.store, sessions=self.sessions
        )
        self._stack.append(self.sources.stop)
        self.sources.start()

    def _tag_unit(self, path: str) -> str | None:
        """The unit a tag's publisher declares, as the namespace registry knows it."""
        state = self.namespace.find(path)
        return None if state is None else state.unit

    def _recover_registry(self, store: HistorianStore) -> None:
        """Give back the registry any tag the historian has and the registry lost."""
        missing = self.namespace.missing(store.tag_paths())
        for last in store.last(missing):
            p = last.point
            if p.value is not None:
                self.namespace.recover(last.tag, p.value, p.ts_ns, p.ingest_ns, p.quality, p.msg_id)
        if missing:
            _LOGGER.info("recovered %d tags into the namespace from the historian", len(missing))

    def _start_broker(self) -> None:
        if self.settings.broker_url:
            self.address = parse_broker_url(self.settings.broker_url)
            if not reachable(self.address):
                raise BrokerUnavailable(
                    f"cannot reach the MQTT broker at {self.address.url}", code="broker_unreachable"
                )
            assert self.security is not None
            sync = start_mosquitto(self.security, self.settings)
            if sync is not None:
                self._stack.append(sync.stop)
            return
        self.broker = EmbeddedBroker(self.settings)
        self.address = self.broker.start()
        self._stack.append(self.broker.stop)
        assert self.security is not None
        self.gateway = start_gateway(self.security, self.settings, self.broker)
        self._stack.append(self.gateway.stop)

    def _start_ingest(self) -> None:
        check_root(self.settings.uns_root)
        if self.address is None or self.store is None or self.sessions is None:
            raise RuntimeError("storage and broker must start before ingest")
        if self.settings.sparkplug_enabled:
            self.sparkplug = SparkplugService(
                settings=self.settings, sessions=self.sessions, namespace=self.namespace
            )
            self.sparkplug.restore()
        self.pipeline = IngestPipeline(
            settings=self.settings,
            address=self.address,
            store=self.store,
            namespace=self.namespace,
            sessions=self.sessions,
            translators=[self.sparkplug.host] if self.sparkplug else [],
            publish_guard=None if self.security is None else self.security.guard,
        )
        if self.sparkplug is not None:
            self.pipeline.command_handlers.append(self.sparkplug.handle_uns_command)
        if self.refiner is not None:
            refiner = self.refiner
            self.pipeline.listeners.append(lambda _accepted: refiner.notify())
        self._stack.append(self.pipeline.stop)  # also cleans up a start that failed half-way
        self.pipeline.start()
        if self.sparkplug is not None:
            self._start_sparkplug_host(self.sparkplug, self.pipeline, self.address)
        self.publisher = Publisher(self.address, role="api")
        if self.security is not None:
            self.publisher.listeners.append(self.security.guard.expect)
        self.publisher.start()
        self._stack.append(self.publisher.stop)

    def _start_sparkplug_host(
        self, service: SparkplugService, pipeline: IngestPipeline, address: BrokerAddress
    ) -> None:
        client = HostClient(self.settings, address, pipeline.deliver)
        service.client = client
        self._stack.append(client.stop)
        client.start()

    def _route_demo_plant(self) -> None:
        """Add the Sparkplug routes that put the demo's machines at their ISA-95 paths."""
        from werk.sim.demo import demo_routes

        routes = [*self.settings.sparkplug_routes, *demo_routes()]
        self.settings = self.settings.model_copy(update={"sparkplug_routes": routes})

    def _start_plant(self) -> None:
        from werk.sim.demo import DemoSite

        assert self.address
        s = self.settings
        self.plant = DemoSite(
            mqtt_host=s.mqtt_host, mqtt_port=self.mqtt_port, root=s.uns_root,
            opcua_port=s.demo_opcua_port, modbus_port=s.demo_modbus_port, data_dir=s.data_dir,
            primary_host=s.sparkplug_host_id if s.sparkplug_enabled else None,
            credentials=self._plant_credentials(),
        )  # fmt: skip
        self._stack.append(self.plant.stop)
        self.plant.start()

    def _plant_credentials(self) -> dict[str, tuple[str, str]]:
        """The MQTT logins IAM made for the demo plant's edge node and JSON devices."""
        from werk.iam.bootstrap import DEMO_CELL, DEMO_EDGE
        from werk.sim.demo import EDGE_NODE, JSON_DEVICES

        assert self.security is not None
        found = {EDGE_NODE: DEMO_EDGE, JSON_DEVICES: DEMO_CELL}
        pairs = {sim: self.security.credentials_of(iam) for sim, iam in found.items()}
        return {sim: pair for sim, pair in pairs.items() if pair is not None}

    def stop(self) -> None:
        """Stop in reverse start order; keep going if one part fails to stop."""
        self._started = False
        while self._stack:
            step = self._stack.pop()
            try:
                step()
            except Exception:
                _LOGGER.exception("error while stopping %s", step)
