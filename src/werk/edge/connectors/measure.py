"""Delivery rates of the connectors against local servers, for `werk bench`.

Each measurement starts a real server in a child process (so it does not share the
connector's interpreter), connects a connector to it, waits until every tag has
delivered once and then counts the readings that reach the sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from typing import IO, Any, Final

from werk.core.errors import Unavailable
from werk.edge.connectors.base import Connector
from werk.edge.connectors.modbus import ModbusConfig, ModbusConnector, ModbusTag, PollGroup
from werk.edge.connectors.opcua import BrowseRule, OpcUaConfig, OpcUaConnector
from werk.edge.model import Reading
from werk.uns.contracts import Quality

OPCUA_CHANGE_S: Final = 0.1
MODBUS_GROUP_SIZE: Final = 250
MODBUS_INTERVAL_MS: Final = 1
_START_TIMEOUT_S: Final = 60.0
_FOLDER: Final = "Bench"


async def measure_opcua(items: int, seconds: float) -> float:
    """Samples/s received from `items` OPC UA variables that change every 100 ms."""
    port = _free_port()
    async with _server("opcua", port, items):
        config = OpcUaConfig(
            name="bench-opcua",
            endpoint=f"opc.tcp://127.0.0.1:{port}",
            browse=[BrowseRule(root=f"ns=2;s={_FOLDER}")],
            publishing_interval_ms=100,
            sampling_interval_ms=100,
            timeout_s=30.0,
        )
        return await _rate(OpcUaConnector(config), items, seconds)


async def measure_modbus(registers: int, seconds: float) -> float:
    """Registers/s read from `registers` holding registers, polled as fast as answered."""
    port = _free_port()
    async with _server("modbus", port, registers):
        groups = [
            PollGroup(
                name=f"g{start}",
                interval_ms=MODBUS_INTERVAL_MS,
                tags=[
                    ModbusTag(name=f"r{address}", table="holding_register", address=address)
                    for address in range(start, min(start + MODBUS_GROUP_SIZE, registers))
                ],
            )
            for start in range(0, registers, MODBUS_GROUP_SIZE)
        ]
        config = ModbusConfig(
            name="bench-modbus", host="127.0.0.1", port=port, timeout_s=10.0, groups=groups
        )
        return await _rate(ModbusConnector(config), registers, seconds)


class _Counter:
    """A sink that counts good readings, and notes when every tag has been seen."""

    def __init__(self, tags: int) -> None:
        self.good = 0
        self.seen: set[str] = set()
        self.expected = tags
        self.complete = asyncio.Event()

    def __call__(self, readings: Sequence[Reading]) -> None:
        for reading in readings:
            if reading.quality is Quality.GOOD:
                self.good += 1
                self.seen.add(reading.tag)
        if len(self.seen) >= self.expected:
            self.complete.set()


async def _rate(connector: Connector[Any], tags: int, seconds: float) -> float:
    counter = _Counter(tags)
    await connector.start(counter)
    try:
        async with asyncio.timeout(_START_TIMEOUT_S):
            await counter.complete.wait()
        first, started = counter.good, time.perf_counter()
        await asyncio.sleep(seconds)
        return (counter.good - first) / (time.perf_counter() - started)
    finally:
        await connector.stop()


@contextlib.asynccontextmanager
async def _server(kind: str, port: int, size: int) -> AsyncIterator[None]:
    with tempfile.TemporaryFile() as errors:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            kind,
            str(port),
            str(size),
            stdout=asyncio.subprocess.PIPE,
            stderr=errors,
        )
        try:
            await _until_ready(process, errors)
            yield
        finally:
            await _end(process)


async def _until_ready(process: asyncio.subprocess.Process, errors: IO[bytes]) -> None:
    if process.stdout is None:
        raise Unavailable("the bench server has no output pipe", code="bench_server")
    try:
        async with asyncio.timeout(_START_TIMEOUT_S):
            line = await process.stdout.readline()
    except TimeoutError:
        line = b""
    if line.strip() != b"ready":
        errors.seek(0)
        tail = errors.read()[-2000:].decode(errors="replace")
        raise Unavailable(f"the bench server did not start: {tail}", code="bench_server")


async def _end(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
    try:
        async with asyncio.timeout(10):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the servers, run as `python -m werk.edge.connectors.measure KIND PORT SIZE` -----------


async def _serve_opcua(port: int, items: int) -> None:
    from asyncua import ua
    from asyncua.server.server import Server

    server = Server()
    await server.init()
    server.disable_clock()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await server.register_namespace("urn:werk:bench")
    folder = await server.nodes.objects.add_folder(f"ns={idx};s={_FOLDER}", _FOLDER)
    nodes = [
        (await folder.add_variable(f"ns={idx};s=v{i}", f"v{i}", 0.0)).nodeid for i in range(items)
    ]
    async with server:
        _ready()
        loop = asyncio.get_running_loop()
        start, tick = loop.time(), 0
        while True:
            tick += 1
            for i, node_id in enumerate(nodes):
                value = ua.Variant(float(tick * items + i), ua.VariantType.Double)
                await server.write_attribute_value(node_id, ua.DataValue(value))
            await asyncio.sleep(max(0.0, start + tick * OPCUA_CHANGE_S - loop.time()))


async def _serve_modbus(port: int, registers: int) -> None:
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    block = SimData(0, count=registers, values=0, datatype=DataType.REGISTERS)
    server = ModbusTcpServer(SimDevice(id=1, simdata=[block]), address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    _ready()
    await asyncio.Event().wait()


def _ready() -> None:
    sys.stdout.write("ready\n")
    sys.stdout.flush()


def _main(argv: Sequence[str]) -> None:
    logging.basicConfig(level=logging.ERROR)
    kind, port, size = argv[0], int(argv[1]), int(argv[2])
    serve = _serve_opcua if kind == "opcua" else _serve_modbus
    asyncio.run(serve(port, size))


if __name__ == "__main__":
    _main(sys.argv[1:])
