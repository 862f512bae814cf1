"""Commands to the edge node: NCMD (rebirth) and DCMD (writes to devices).

Each device has its own bounded queue and worker, so a slow device does not hold up the
others and writes to one device keep their order. A DCMD metric becomes
`connector.write(tag, value)`; the outcome goes back as a DDATA carrying that metric with
``werk.command_status`` (and ``werk.command_id`` / ``werk.command_error``). Nothing a
command contains can stop the node: every failure becomes a "failed" result or a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Final, NamedTuple

from werk.core.clock import NS_PER_MS, now_ns
from werk.core.errors import PayloadError, WerkError
from werk.edge.connectors import Connector
from werk.edge.model import TagSpec, Value
from werk.edge.node import (
    COMMAND_ERROR,
    COMMAND_ID,
    COMMAND_STATUS,
    REBIRTH,
    EdgeNode,
    fit_value,
    wire_datatype,
)
from werk.sparkplug.codec import DatatypeLookup, Metric, Payload, PropertySet, decode
from werk.sparkplug.datatypes import DataType
from werk.sparkplug.topics import MessageType

_LOGGER = logging.getLogger(__name__)

QUEUE_SIZE: Final = 1000
WRITE_TIMEOUT_S: Final = 60.0

Publish = Callable[[str, Payload], bool]


class Command(NamedTuple):
    """One metric of a DCMD: the tag (None when unknown), the value and the request id."""

    device: str
    name: str
    spec: TagSpec | None
    value: object  # as decoded; None for a null metric
    command_id: str | None


def datatype_lookup(node: EdgeNode, device: str | None) -> DatatypeLookup:
    """For the codec: the declared datatype of a command metric, by name or alias."""

    def datatype_of(name: str | None, alias: int | None) -> DataType | None:
        name = name if name is not None else _alias_name(node, device, alias)
        if name is None:
            return None
        if device is None:
            return node.node_metric_type(name)
        spec = node.spec(device, name)
        return None if spec is None else spec.datatype

    return datatype_of


def metric_name(node: EdgeNode, device: str | None, metric: Metric) -> str | None:
    """The metric a command refers to: by name, else by an alias of `device`."""
    return metric.name if metric.name is not None else _alias_name(node, device, metric.alias)


def _alias_name(node: EdgeNode, device: str | None, alias: int | None) -> str | None:
    found = None if alias is None else node.name_of(alias)
    return found[1] if found is not None and found[0] == device else None


def parse_dcmd(node: EdgeNode, device: str, payload: Payload) -> list[Command]:
    """The writes a DCMD asks for."""
    commands = []
    for metric in payload.metrics:
        name = metric_name(node, device, metric)
        spec = None if name is None else node.spec(device, name)
        value = None if metric.is_null else metric.value
        shown = name if name is not None else f"alias {metric.alias}"
        command_id = _text(metric.properties, COMMAND_ID)
        commands.append(Command(device, shown, spec, value, command_id))
    return commands


def command_result(
    node: EdgeNode, command: Command, value: Value | None, now_ms: int, error: str | None
) -> Payload:
    """The DDATA that reports a command's outcome (read-back or last known value)."""
    props: dict[str, tuple[DataType, object]] = {
        COMMAND_STATUS: (DataType.STRING, "failed" if error else "done")
    }
    if command.command_id is not None:
        props[COMMAND_ID] = (DataType.STRING, command.command_id)
    if error is not None:
        props[COMMAND_ERROR] = (DataType.STRING, error)
    spec = command.spec
    if spec is None:  # unknown metric: answered by the name it was asked by
        metric = Metric(name=command.name, timestamp=now_ms, is_null=True)
    else:
        fitted = fit_value(spec.datatype, value)
        metric = Metric(
            alias=node.alias(command.device, spec.name), timestamp=now_ms,
            datatype=wire_datatype(spec.datatype, fitted), value=fitted, is_null=fitted is None,
        )  # fmt: skip
    metric = replace(metric, properties=PropertySet.of(**props))
    return node.data((metric,), now_ms)


def _text(properties: PropertySet | None, key: str) -> str | None:
    found = None if properties is None else properties.get(key)
    return found.value if found is not None and isinstance(found.value, str) else None


def rebirth_requested(node: EdgeNode, data: bytes) -> bool:
    """Whether an NCMD asks for a rebirth; other node metrics are logged and ignored."""
    try:
        payload = decode(data, datatype_lookup(node, None))
    except PayloadError as exc:
        _LOGGER.warning("NCMD ignored: %s", exc.message)
        return False
    rebirth = False
    for metric in payload.metrics:
        name = metric_name(node, None, metric)
        if name == REBIRTH and metric.value is True:
            rebirth = True
        else:
            shown = name or f"alias {metric.alias}"
            _LOGGER.info("NCMD %s=%r ignored: not a writable node metric", shown, metric.value)
    return rebirth


class CommandRunner:
    """Runs DCMD writes against the connectors and publishes their results."""

    def __init__(
        self, node: EdgeNode, connectors: Mapping[str, Connector[Any]], publish: Publish
    ) -> None:
        self._node = node
        self._connectors = connectors
        self._publish = publish
        self._queues: dict[str, asyncio.Queue[tuple[str, bytes]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self.handled = 0

    def add_device(self, device: str) -> None:
        """Start the worker of a device."""
        self._queues[device] = asyncio.Queue(QUEUE_SIZE)
        self._workers[device] = asyncio.create_task(self._work(device), name=f"werk-dcmd-{device}")

    async def remove_device(self, device: str) -> None:
        """Stop the worker of a device (queued commands are dropped with a log line)."""
        task = self._workers.pop(device, None)
        queue = self._queues.pop(device, None)
        if queue is not None and queue.qsize():
            _LOGGER.warning("%s: %d queued DCMD dropped at stop", device, queue.qsize())
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def submit(self, device: str | None, topic: str, data: bytes) -> None:
        """Queue a DCMD for its device."""
        queue = self._queues.get(device or "")
        if queue is None:
            _LOGGER.warning("DCMD on %s ignored: no such device", topic)
            return
        try:
            queue.put_nowait((topic, data))
        except asyncio.QueueFull:
            _LOGGER.warning("DCMD on %s dropped: %d commands already queued", topic, QUEUE_SIZE)

    async def _work(self, device: str) -> None:
        queue = self._queues[device]
        while True:
            topic, data = await queue.get()
            try:
                await self._run(device, topic, data)
            except Exception:
                _LOGGER.exception("DCMD on %s failed unexpectedly", topic)

    async def _run(self, device: str, topic: str, data: bytes) -> None:
        try:
            payload = decode(data, datatype_lookup(self._node, device))
        except PayloadError as exc:
            await self._reject(device, topic, data, exc.message)
            return
        for command in parse_dcmd(self._node, device, payload):
            value, error = await self._execute(command)
            self._answer(topic, command, value, error)

    async def _reject(self, device: str, topic: str, data: bytes, why: str) -> None:
        """A DCMD that does not fit the birth's datatypes: no write, every metric fails."""
        try:
            payload = decode(data)
        except PayloadError:
            _LOGGER.warning("DCMD on %s ignored: %s", topic, why)
            return
        for command in parse_dcmd(self._node, device, payload):
            spec = command.spec
            current = None if spec is None else self._node.current(device, spec.name)
            value = None if current is None else current.value
            self._answer(topic, command, value, f"the command does not fit the birth: {why}")

    def _answer(self, topic: str, command: Command, value: Value | None, error: str | None) -> None:
        self.handled += 1
        outcome = f"failed: {error}" if error else f"done, the device holds {value!r}"
        _LOGGER.info(
            "DCMD %s %s=%r (id %s) %s",
            topic, command.name, command.value, command.command_id or "-", outcome,
        )  # fmt: skip
        result = command_result(self._node, command, value, now_ns() // NS_PER_MS, error)
        if not self._publish(self._node.topic(MessageType.DDATA, command.device), result):
            _LOGGER.warning("result of DCMD %s %s not sent: offline", topic, command.name)

    async def _execute(self, command: Command) -> tuple[Value | None, str | None]:
        """Write; return (read-back value, None) or (last known value, error)."""
        spec = command.spec
        if spec is None:
            return None, f"{command.device} has no metric {command.name!r}"
        current = self._node.current(command.device, spec.name)
        last = None if current is None else current.value
        if command.value is None:
            return last, "a null value cannot be written"
        scalar = command.value if isinstance(command.value, bool | int | float | str) else None
        value = fit_value(spec.datatype, scalar)
        if value is None:
            return last, f"{command.value!r} is not a valid {spec.datatype.name} value"
        connector = self._connectors.get(command.device)
        if connector is None:
            return last, f"{command.device} is not running"
        try:
            written = await asyncio.wait_for(connector.write(spec.name, value), WRITE_TIMEOUT_S)
        except WerkError as exc:
            return last, exc.message
        except TimeoutError:
            return last, f"no answer from {command.device} within {WRITE_TIMEOUT_S:g} s"
        return written, None
