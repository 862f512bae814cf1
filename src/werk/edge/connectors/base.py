"""The contract every edge connector implements: config shape, lifecycle, health, writes.

A connector is one Sparkplug device: its `name` is the device id, its tags are the
device's metrics. `start()` makes the first connection attempt and returns; a task the
connector owns keeps (re)connecting and reading until `stop()`. When the device goes
away every tag is reported once as BAD, the connector retries with exponential
back-off, and on return resumes where it was. Library errors become werk errors in one
place per connector (`_map_errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Annotated, Any, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from werk.core.clock import now_ns
from werk.core.errors import Conflict, NotFound, Unavailable, ValidationFailed, WerkError
from werk.edge.model import Reading, TagSpec, Value
from werk.uns.contracts import Quality

_LOGGER = logging.getLogger(__name__)

Sink = Callable[[Sequence[Reading]], None]
"""Receives readings; called from the asyncio loop and must not block."""

DeviceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+$", max_length=64)]
TagName = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Unit = Annotated[str, StringConstraints(max_length=32)]


class ConnectorConfigBase(BaseModel):
    """Settings every connector shares; `kind` tells the connectors apart."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    name: DeviceId
    enabled: bool = True
    deadband: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    timeout_s: float = Field(default=5.0, gt=0.0, le=300.0)
    reconnect_min_s: float = Field(default=0.5, gt=0.0)
    reconnect_max_s: float = Field(default=30.0, gt=0.0)

    @model_validator(mode="after")
    def _check_backoff(self) -> Self:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must not be smaller than reconnect_min_s")
        return self


class ConnectorState(StrEnum):
    """Where a connector is in its lifecycle."""

    STARTING = "starting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"


@dataclass(slots=True)
class ConnectorHealth:
    """Counters and state of one connector.

    `reads` counts values received from the device, `read_errors` reads that failed,
    `reconnects` connection attempts after the first one.
    """

    state: ConnectorState = ConnectorState.STARTING
    last_error: str | None = None
    reads: int = 0
    read_errors: int = 0
    writes: int = 0
    write_errors: int = 0
    reconnects: int = 0
    last_read_ns: int | None = None


C = TypeVar("C", bound=ConnectorConfigBase)


class Connector(ABC, Generic[C]):
    """Lifecycle, health, outage reporting and writes shared by every connector."""

    def __init__(self, config: C) -> None:
        self._config = config
        self._health = ConnectorHealth()
        self._specs: dict[str, TagSpec] = {}
        self._sink: Sink | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def name(self) -> str:
        """The Sparkplug device id."""
        return self._config.name

    @property
    def config(self) -> C:
        """The validated configuration."""
        return self._config

    def tags(self) -> list[TagSpec]:
        """Every tag this connector provides (complete once it has connected)."""
        return list(self._specs.values())

    def health(self) -> ConnectorHealth:
        """A snapshot of state and counters."""
        return replace(self._health)

    async def start(self, sink: Sink) -> None:
        """Make the first connection attempt, then keep connecting and reading in a task."""
        if self._task is not None:
            raise Conflict(f"connector {self.name!r} is already started", code="already_started")
        self._sink = sink
        self._stopping = False
        self._health.state = ConnectorState.STARTING
        attempted = asyncio.Event()
        self._task = asyncio.create_task(self._run(attempted), name=f"werk-edge-{self.name}")
        await attempted.wait()

    async def stop(self) -> None:
        """Cancel the connector's task and close the connection, within `timeout_s`."""
        task, self._task = self._task, None
        if task is not None:
            # The flag ends the task even if a library swallows the cancellation.
            self._stopping = True
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=self._config.timeout_s)
            if not done:
                _LOGGER.warning("%s: did not stop within %s s", self.name, self._config.timeout_s)
        self._health.state = ConnectorState.STOPPED

    async def write(self, tag: str, value: Value) -> Value:
        """Write `value` to `tag`, read it back and return what the device holds now."""
        spec = self._specs.get(tag)
        try:
            self._check_writable(tag, spec)
            with self._map_errors(tag):
                result = await self._write(tag, value)
        except WerkError:
            self._health.write_errors += 1
            raise
        self._health.writes += 1
        return result

    def _check_writable(self, tag: str, spec: TagSpec | None) -> None:
        if spec is None:
            raise NotFound(f"{self.name} has no tag {tag!r}", code="unknown_tag", tag=tag)
        if not spec.writable:
            raise ValidationFailed(f"tag {tag!r} is read-only", code="not_writable", tag=tag)
        if self._health.state is not ConnectorState.CONNECTED:
            raise Unavailable(
                f"{self.name} is not connected", code="device_unavailable", device=self.name
            )

    # -- for subclasses -----------------------------------------------------------------

    @abstractmethod
    async def _connect(self) -> None:
        """Connect to the device and prepare reading; raise when that fails."""

    @abstractmethod
    async def _serve(self) -> None:
        """Read until the connection is lost; raise (or return) when it is."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """Close the connection; must not raise."""

    @abstractmethod
    async def _write(self, tag: str, value: Value) -> Value:
        """Write one tag and return its read-back value."""

    @abstractmethod
    def _map_errors(self, tag: str | None) -> contextlib.AbstractContextManager[None]:
        """Turn the library's exceptions into werk errors (the one place per connector)."""

    def _set_specs(self, specs: Iterable[TagSpec]) -> None:
        self._specs = {spec.name: spec for spec in specs}

    def _emit(self, readings: Sequence[Reading]) -> None:
        if not readings or self._sink is None:
            return
        try:
            self._sink(readings)
        except Exception:
            _LOGGER.exception("%s: the reading sink failed", self.name)

    def _count_reads(self, good: int, bad: int = 0) -> None:
        self._health.reads += good
        self._health.read_errors += bad
        if good:
            self._health.last_read_ns = now_ns()

    def _emit_bad(self, tags: Iterable[str] | None = None) -> None:
        ts_ns = now_ns()
        names = self._specs if tags is None else tags
        self._emit([Reading(name, None, ts_ns, Quality.BAD) for name in names])

    # -- the connection loop --------------------------------------------------------------

    async def _run(self, attempted: asyncio.Event) -> None:
        delay = self._config.reconnect_min_s
        while not self._stopping:
            if await self._attempt(attempted):
                delay = self._config.reconnect_min_s
            if self._stopping:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._config.reconnect_max_s)
            self._health.reconnects += 1

    async def _attempt(self, attempted: asyncio.Event) -> bool:
        """Connect and serve once; return whether the connection was up."""
        connected = False
        try:
            await self._connect()
            connected = True
            self._on_connected()
            attempted.set()
            if not self._stopping:
                await self._serve()
                raise ConnectionError("the connection closed")
        except Exception as exc:
            self._on_failure(exc)
        finally:
            attempted.set()
            await self._disconnect()
        return connected

    def _on_connected(self) -> None:
        if self._health.state is ConnectorState.RECONNECTING:
            _LOGGER.info("%s: connected again", self.name)
        else:
            _LOGGER.info("%s: connected", self.name)
        self._health.state = ConnectorState.CONNECTED
        self._health.last_error = None

    def _on_failure(self, exc: Exception) -> None:
        message = describe(exc)
        self._health.last_error = message
        if self._health.state is ConnectorState.RECONNECTING:
            _LOGGER.debug("%s: still unreachable: %s", self.name, message)
            return
        _LOGGER.warning("%s: device unreachable, retrying: %s", self.name, message)
        self._health.state = ConnectorState.RECONNECTING
        self._emit_bad()


async def cancel_and_wait(
    tasks: Sequence[asyncio.Task[Any]], within: float
) -> BaseException | None:
    """Cancel helper tasks, wait `within` seconds for them to end; return the first error."""
    # Cancel again while waiting: in Python 3.11 asyncio.wait_for (used inside the protocol
    # libraries) can swallow a cancellation that races with its awaited result.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    pending = {task for task in tasks if not task.done()}
    while pending and loop.time() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(0.1, deadline - loop.time()))
    errors = [t.exception() for t in tasks if t.done() and not t.cancelled()]
    return next((error for error in errors if error is not None), None)


def describe(exc: BaseException) -> str:
    """A one-line description of an exception for health and logs."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
