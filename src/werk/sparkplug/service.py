"""The Sparkplug host as a service: birth certificates, rebirths, and writes to machines.

`SparkplugService` gives the host logic (`werk.sparkplug.host`) what it needs from the
outside world (`HostEffects`): it keeps births in the relational store so alias maps
survive a restart, publishes rebirth requests and commands through the host's MQTT
client, and keeps the command log, which is the audit trail of every write.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import orjson
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from werk.core.clock import NS_PER_MS, NS_PER_S, now_ns
from werk.core.errors import Conflict, NotFound, PayloadError, Unavailable, ValidationFailed
from werk.core.settings import Settings
from werk.sparkplug.client import HostClient
from werk.sparkplug.codec import Metric, Payload, PropertySet, encode
from werk.sparkplug.convert import is_writable
from werk.sparkplug.datatypes import COMMAND_ID, FLOAT_TYPES, INTEGER_TYPES, DataType
from werk.sparkplug.effects import CommandResult
from werk.sparkplug.host import SparkplugHost
from werk.sparkplug.models import BirthRecord, CommandRecord
from werk.sparkplug.state import EdgeNodeState, MetricInfo
from werk.sparkplug.topics import MessageType, SparkplugTopic
from werk.uns.contracts import Command
from werk.uns.namespace import Namespace

_LOGGER = logging.getLogger(__name__)

REBIRTH_METRIC: Final = "Node Control/Rebirth"
PENDING: Final = "pending"
TIMEOUT: Final = "timeout"
FAILED: Final = "failed"

CommandValue = bool | int | float | str


class SparkplugService:
    """Host effects, births, rebirths and commands around one `SparkplugHost`."""

    def __init__(
        self, *, settings: Settings, sessions: sessionmaker[Session], namespace: Namespace
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._namespace = namespace
        self.host = SparkplugHost(settings, self)
        self.client: HostClient | None = None
        self._finished = threading.Condition()

    @property
    def host_id(self) -> str:
        """The Sparkplug host id."""
        return self._settings.sparkplug_host_id

    def node(self, group: str, edge_node: str) -> EdgeNodeState:
        """One edge node, or NotFound."""
        node = self.host.node(group, edge_node)
        if node is None:
            raise NotFound(f"no Sparkplug edge node {group}/{edge_node}", code="unknown_node")
        return node

    # -- lifecycle ---------------------------------------------------------------------

    def restore(self) -> int:
        """Rebuild the host's alias maps from the stored births; return how many."""
        with self._sessions() as session:
            records = session.scalars(
                select(BirthRecord).order_by(BirthRecord.device, BirthRecord.born_ns)
            ).all()
        nodes = {(r.group_id, r.edge_node): r for r in records if not r.device}
        usable = [r for r in records if _current(r, nodes)]
        self.host.restore((r.topic, r.payload) for r in usable)
        for record in usable:
            node = self.host.node(record.group_id, record.edge_node)
            device = None if node is None else node.devices.get(record.device or None)
            if device is not None:
                device.online = record.online
            if node is not None and not record.device:
                node.online = record.online
        return len(usable)

    # -- HostEffects -------------------------------------------------------------------

    def request_rebirth(self, group: str, edge_node: str) -> None:
        """Publish NCMD ``Node Control/Rebirth`` = true, by name."""
        metric = Metric(
            name=REBIRTH_METRIC, datatype=DataType.BOOLEAN, value=True, timestamp=_now_ms()
        )
        topic = SparkplugTopic(group, MessageType.NCMD, edge_node).topic
        self._send(topic, Payload(timestamp=_now_ms(), metrics=(metric,)))

    def record_birth(self, node: EdgeNodeState, device: str | None, payload: bytes) -> None:
        """Keep the newest birth of a node or device."""
        kind = MessageType.NBIRTH if device is None else MessageType.DBIRTH
        topic = SparkplugTopic(node.group, kind, node.edge_node, device).topic
        record = BirthRecord(
            group_id=node.group, edge_node=node.edge_node, device=device or "", topic=topic,
            payload=payload, bd_seq=node.bd_seq, born_ns=now_ns(), died_ns=None, online=True,
        )  # fmt: skip
        with self._stored("keep a birth"), self._sessions.begin() as session:
            if device is None:
                _forget_devices(session, node)
            session.merge(record)

    def record_death(self, node: EdgeNodeState, device: str | None) -> None:
        """Mark the stored birth of a node (and its devices) or a device offline."""
        query = update(BirthRecord).where(
            BirthRecord.group_id == node.group, BirthRecord.edge_node == node.edge_node
        )
        if device is not None:
            query = query.where(BirthRecord.device == device)
        with self._stored("note a death"), self._sessions.begin() as session:
            session.execute(query.values(online=False, died_ns=now_ns()))

    def command_result(self, result: CommandResult) -> None:
        """Complete a pending command with what its own edge node and metric reported."""
        with self._stored("complete a command"), self._sessions.begin() as session:
            record = session.get(CommandRecord, result.command_id)
            if record is None or record.status != PENDING or not _answers(record, result):
                return
            record.status = result.status if result.status in ("done", FAILED) else FAILED
            record.completed_ns = now_ns()
            record.result_json = orjson.dumps(result.value, default=str).decode()
            record.error = result.error
        with self._finished:
            self._finished.notify_all()
        _LOGGER.info("command %s on %s: %s", result.command_id, record.tag_path, record.status)

    @contextmanager
    def _stored(self, action: str) -> Iterator[None]:
        """Log a failed write of host bookkeeping instead of failing the message with it."""
        try:
            yield
        except SQLAlchemyError as exc:
            _LOGGER.warning("could not %s in the relational store: %s", action, exc)

    def tag_type(self, tag_path: str) -> str | None:
        """The namespace's data type of a tag, if it knows it."""
        try:
            return self._namespace.get(tag_path).data_type
        except NotFound:
            return None

    def last_value(self, tag_path: str) -> bool | int | float | str | None:
        """The namespace's last-known value of a tag."""
        try:
            return self._namespace.get(tag_path).value
        except NotFound:
            return None

    # -- rebirths and commands ---------------------------------------------------------

    def rebirth(self, group: str, edge_node: str) -> None:
        """Ask an edge node for its births now."""
        self.node(group, edge_node)
        if self.client is None or not self.client.connected:
            raise Unavailable("the Sparkplug host is not connected", code="host_offline")
        self.host.rebirth(group, edge_node)

    def write(
        self, *, tag_path: str, value: CommandValue, requested_by: str, origin: str
    ) -> CommandRecord:
        """Send a write to the machine behind a tag and log it; the result comes later."""
        found = self.host.find_metric(tag_path)
        if found is None:
            raise NotFound(f"no Sparkplug metric is mapped to {tag_path!r}", code="unknown_tag")
        node, info = found
        _check_writable(node, info, tag_path)
        command_id = uuid.uuid4().hex
        payload = _command_payload(info, value, command_id)
        topic = _command_topic(node, info)
        record = CommandRecord(
            id=command_id, requested_ns=now_ns(), requested_by=requested_by, origin=origin,
            tag_path=tag_path, topic=topic, metric=info.name,
            value_json=orjson.dumps(value).decode(), status=PENDING,
        )  # fmt: skip
        with self._sessions.begin() as session:
            session.add(record)
        self._send_logged(record, payload)
        return record

    def handle_uns_command(self, command: Command) -> None:
        """Carry out a write requested on a UNS ``_cmd`` topic."""
        self.write(
            tag_path=command.tag_path,
            value=command.value,
            requested_by=command.requested_by,
            origin=f"uns {command.topic}",
        )

    def wait(self, command_id: str, timeout_s: float) -> CommandRecord:
        """The command once it finished, or as it is after `timeout_s`."""
        deadline = now_ns() + int(timeout_s * NS_PER_S)
        with self._finished:
            while True:
                record = self.command(command_id)
                remaining = (deadline - now_ns()) / NS_PER_S
                if record.status != PENDING or remaining <= 0:
                    return record
                self._finished.wait(min(remaining, 0.5))

    def command(self, command_id: str) -> CommandRecord:
        """One command of the log (pending ones past the timeout are marked timed out)."""
        self._expire()
        with self._sessions() as session:
            record = session.get(CommandRecord, command_id)
        if record is None:
            raise NotFound(f"no command {command_id!r}", code="unknown_command")
        return record

    def commands(self, *, tag_path: str | None = None, limit: int = 100) -> list[CommandRecord]:
        """The newest commands first, optionally of one tag."""
        self._expire()
        query = select(CommandRecord).order_by(CommandRecord.requested_ns.desc()).limit(limit)
        if tag_path is not None:
            query = query.where(CommandRecord.tag_path == tag_path)
        with self._sessions() as session:
            return list(session.scalars(query).all())

    def _expire(self) -> None:
        horizon = now_ns() - int(self._settings.command_timeout_s * NS_PER_S)
        query = (
            update(CommandRecord)
            .where(CommandRecord.status == PENDING, CommandRecord.requested_ns < horizon)
            .values(status=TIMEOUT, completed_ns=now_ns(), error="no result from the edge node")
        )
        with self._sessions.begin() as session:
            session.execute(query)

    def _send_logged(self, record: CommandRecord, payload: Payload) -> None:
        try:
            self._send(record.topic, payload)
        except Unavailable as exc:
            with self._sessions.begin() as session:
                session.execute(
                    update(CommandRecord)
                    .where(CommandRecord.id == record.id)
                    .values(status=FAILED, completed_ns=now_ns(), error=exc.message)
                )
            raise
        _LOGGER.info("command %s: %s = %s by %s (%s)", record.id, record.tag_path,
                     record.value_json, record.requested_by, record.origin)  # fmt: skip

    def _send(self, topic: str, payload: Payload) -> None:
        if self.client is None or not self.client.connected:
            raise Unavailable("the Sparkplug host is not connected", code="host_offline")
        self.client.publish_command(topic, encode(payload))


def _check_writable(node: EdgeNodeState, info: MetricInfo, tag_path: str) -> None:
    if not is_writable(info):
        raise ValidationFailed(f"{tag_path!r} is not writable", code="not_writable")
    device = node.devices.get(info.device)
    if not node.online or device is None or not device.online:
        raise Conflict(
            f"the edge node or device behind {tag_path!r} is offline", code="device_offline"
        )


def _command_payload(info: MetricInfo, value: CommandValue, command_id: str) -> Payload:
    typed = _typed(info.datatype, value)
    metric = Metric(
        name=info.name, datatype=info.datatype, value=typed, timestamp=_now_ms(),
        properties=PropertySet.of(**{COMMAND_ID: (DataType.STRING, command_id)}),
    )  # fmt: skip
    payload = Payload(timestamp=_now_ms(), metrics=(metric,))
    try:
        encode(payload)
    except PayloadError as exc:
        raise ValidationFailed(
            f"{value!r} does not fit {info.name!r} ({info.datatype.name}): {exc.message}",
            code="bad_value",
        ) from exc
    return payload


def _typed(datatype: DataType, value: CommandValue) -> Any:
    """JSON numbers as the metric wants them: 1500 for a Double, 8000.0 for a UInt16."""
    if datatype in FLOAT_TYPES and type(value) is int:
        return float(value)
    if datatype in INTEGER_TYPES and type(value) is float and value.is_integer():
        return int(value)
    return value


def _command_topic(node: EdgeNodeState, info: MetricInfo) -> str:
    kind = MessageType.NCMD if info.device is None else MessageType.DCMD
    return SparkplugTopic(node.group, kind, node.edge_node, info.device).topic


def _answers(record: CommandRecord, result: CommandResult) -> bool:
    """Whether a result comes from the node, device and metric the command went to."""
    sent, came = record.topic.split("/"), result.topic.split("/")
    same_place = len(sent) == len(came) and all(
        a == b for i, (a, b) in enumerate(zip(sent, came, strict=True)) if i != 2
    )
    return same_place and record.metric == result.metric


def _forget_devices(session: Session, node: EdgeNodeState) -> None:
    """A new NBIRTH voids the node's device births (they must be born again)."""
    session.execute(
        update(BirthRecord)
        .where(BirthRecord.group_id == node.group, BirthRecord.edge_node == node.edge_node)
        .values(online=False)
    )


def _current(record: BirthRecord, nodes: dict[tuple[str, str], BirthRecord]) -> bool:
    """A node birth, or a device birth made after its node's latest birth."""
    if not record.device:
        return True
    node = nodes.get((record.group_id, record.edge_node))
    return node is not None and record.born_ns >= node.born_ns


def _now_ms() -> int:
    return now_ns() // NS_PER_MS
