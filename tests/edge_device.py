"""Test helpers around the edge agent: a device held in memory, a reading collector."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from werk.edge.connectors.base import Connector, ConnectorConfigBase
from werk.edge.model import Reading, TagSpec, Value


class MemoryDevice(Connector[ConnectorConfigBase]):
    """A device held in memory (tests only): the test submits its readings."""

    def __init__(self, name: str, specs: list[TagSpec]) -> None:
        super().__init__(ConnectorConfigBase(kind="memory", name=name))
        self._set_specs(specs)
        self.values: dict[str, Value] = {}

    async def _connect(self) -> None:
        pass

    async def _serve(self) -> None:
        await asyncio.Event().wait()

    async def _disconnect(self) -> None:
        pass

    async def _write(self, tag: str, value: Value) -> Value:
        self.values[tag] = value
        return value

    def _map_errors(self, tag: str | None) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


class Collector:
    """A sink that keeps every reading."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []

    def __call__(self, readings: Sequence[Reading]) -> None:
        self.readings.extend(readings)

    def latest(self, tag: str) -> Reading | None:
        return next((r for r in reversed(self.readings) if r.tag == tag), None)


async def eventually(check: Callable[[], Any], within: float = 5.0) -> Any:
    """Poll `check` on the event loop until it returns something truthy."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if result := check():
            return result
        await asyncio.sleep(0.01)
    pytest.fail(f"condition not met within {within} s")
