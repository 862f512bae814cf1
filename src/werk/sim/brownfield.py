"""The brownfield demo plant: simulated machines behind real OPC UA and Modbus TCP servers.

Machines are split between the protocols by asset or line (`DEFAULT_SPLIT` puts line-1
on OPC UA and line-2 on Modbus). One OPC UA server serves every OPC UA machine; one
Modbus TCP server serves every Modbus machine, with unit ids 1, 2, ... in the order
the machines are given. Every `interval_s` each machine is stepped and its sample shown
on its server.

Run it inside an event loop (``async with BrownfieldPlant(...)``), on a thread of its
own (`start_in_thread` / `stop`), or from a shell::

    python -m werk.sim.brownfield --opcua-port 4840 --modbus-port 5020
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Final, Literal, Protocol, get_args

from werk.core.errors import Conflict, NotFound, Unavailable, ValidationFailed
from werk.sim.machines import Machine, Reading
from werk.sim.modbus_server import ModbusPlantServer
from werk.sim.opcua_server import OpcUaPlantServer
from werk.sim.plant import demo_machines
from werk.sim.registers import NAMESPACE_INDEX, node_prefix
from werk.uns.topics import Node

_LOGGER = logging.getLogger(__name__)

Transport = Literal["opcua", "modbus"]

DEFAULT_SPLIT: Final[Mapping[str, Transport]] = MappingProxyType(
    {"line-1": "opcua", "line-2": "modbus"}
)
DEFAULT_OPCUA_PORT: Final = 4840
DEFAULT_MODBUS_PORT: Final = 5020
START_TIMEOUT_S: Final = 30.0
JOIN_TIMEOUT_S: Final = 10.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one machine is served: its server's URL and its unit id or node id prefix."""

    asset: str
    node: Node
    transport: Transport
    host: str
    port: int
    unit_id: int | None = None
    node_prefix: str | None = None

    @property
    def url(self) -> str:
        """``opc.tcp://host:port`` or ``modbus://host:port``."""
        scheme = "opc.tcp" if self.transport == "opcua" else "modbus"
        return f"{scheme}://{self.host}:{self.port}"


class _Server(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, machine: Machine, readings: Sequence[Reading], now_ms: int) -> None: ...


class BrownfieldPlant:
    """Run machines at a fixed rate behind their OPC UA and Modbus TCP servers."""

    def __init__(
        self,
        machines: Sequence[Machine],
        *,
        split: Mapping[str, Transport] = DEFAULT_SPLIT,
        host: str = "127.0.0.1",
        opcua_port: int = DEFAULT_OPCUA_PORT,
        modbus_port: int = DEFAULT_MODBUS_PORT,
        interval_s: float = 1.0,
    ) -> None:
        if not interval_s > 0:
            raise ValidationFailed("interval_s must be positive", code="bad_interval")
        transports = {m.spec.asset: transport_of(m, split) for m in machines}
        by_opcua = [m for m in machines if transports[m.spec.asset] == "opcua"]
        by_modbus = [m for m in machines if transports[m.spec.asset] == "modbus"]
        self.interval_s = interval_s
        self.opcua = OpcUaPlantServer(by_opcua, opcua_port, host) if by_opcua else None
        self.modbus = ModbusPlantServer(by_modbus, modbus_port, host) if by_modbus else None
        # Modbus first: it starts at once, so a taken port fails before the slow OPC UA setup.
        self._servers: list[_Server] = [s for s in (self.modbus, self.opcua) if s is not None]
        self._placed = [(m, self._server_of(transports[m.spec.asset])) for m in machines]
        self.endpoints = [self._endpoint(m, transports[m.spec.asset]) for m in machines]
        self._ticker: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._halt: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: Exception | None = None

    @property
    def running(self) -> bool:
        """Whether the machines run and their servers listen."""
        return self._ticker is not None

    def endpoint(self, asset: str) -> Endpoint:
        """Where the machine `asset` is served; raise NotFound for an unknown one."""
        for endpoint in self.endpoints:
            if endpoint.asset == asset:
                return endpoint
        raise NotFound(f"the plant has no machine {asset!r}", code="unknown_asset", asset=asset)

    async def start(self) -> None:
        """Open the servers and start the machines; raise Unavailable if a port is taken."""
        if self._ticker is not None:
            return
        started: list[_Server] = []
        try:
            for server in self._servers:
                await server.start()
                started.append(server)
            await self._tick()
        except BaseException:
            for server in reversed(started):
                await server.stop()
            raise
        self._ticker = asyncio.create_task(self._run(), name="werk-sim-brownfield")

    async def aclose(self) -> None:
        """Stop the machines and close the servers; safe to call twice."""
        ticker, self._ticker = self._ticker, None
        try:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
        finally:
            for server in reversed(self._servers):
                await server.stop()

    async def __aenter__(self) -> BrownfieldPlant:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def start_in_thread(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Run the plant on a thread with its own event loop; return once the servers listen."""
        if self._thread is not None:
            return
        self._ready.clear()
        self._failure = None
        self._thread = threading.Thread(target=self._serve, name="werk-sim-brownfield", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            self.stop()
            raise Unavailable(
                f"the brownfield plant did not start within {timeout_s} s", code="start_timeout"
            )
        failure = self._failure
        if failure is not None:
            self.stop()
            raise failure

    def stop(self) -> None:
        """Stop a plant started with `start_in_thread`; safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is None:
            if self._ticker is not None:
                raise Conflict("the plant runs in an event loop: use aclose()", code="not_threaded")
            return
        loop, halt = self._loop, self._halt
        if loop is not None and halt is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(halt.set)
        thread.join(JOIN_TIMEOUT_S)
        if thread.is_alive():
            _LOGGER.warning("the brownfield plant did not stop within %s s", JOIN_TIMEOUT_S)

    def __enter__(self) -> BrownfieldPlant:
        self.start_in_thread()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self) -> None:
        asyncio.run(self._serve_until_halted())

    async def _serve_until_halted(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._halt = halt = asyncio.Event()
        try:
            await self.start()
        except Exception as exc:
            self._failure = exc
            return
        finally:
            self._ready.set()
        try:
            await halt.wait()
        finally:
            await self.aclose()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        failing = False
        while True:
            # Keep a fixed rate, but never burst to catch up after a stall.
            due = max(due + self.interval_s, loop.time())
            await asyncio.sleep(due - loop.time())
            failing = await self._sample(failing)

    async def _sample(self, failing: bool) -> bool:
        """Take one sample; log the first failure of a streak and the recovery."""
        try:
            await self._tick()
        except Exception:
            if not failing:
                _LOGGER.exception("the brownfield plant missed a sample")
            return True
        if failing:
            _LOGGER.info("the brownfield plant samples again")
        return False

    async def _tick(self) -> None:
        now_ms = time.time_ns() // 1_000_000
        for machine, server in self._placed:
            await server.publish(machine, machine.step(now_ms), now_ms)

    def _server_of(self, transport: Transport) -> _Server:
        server = self.opcua if transport == "opcua" else self.modbus
        if server is None:
            raise Conflict(f"no {transport} server", code="no_server")
        return server

    def _endpoint(self, machine: Machine, transport: Transport) -> Endpoint:
        asset, modbus, opcua = machine.spec.asset, self.modbus, self.opcua
        if transport == "modbus" and modbus is not None:
            unit_id = modbus.unit_ids[asset]
            return Endpoint(asset, machine.node, transport, modbus.host, modbus.port, unit_id)
        if transport == "opcua" and opcua is not None:
            prefix = f"ns={NAMESPACE_INDEX};s={node_prefix(machine)}"
            return Endpoint(asset, machine.node, transport, opcua.host, opcua.port, None, prefix)
        raise Conflict(f"no {transport} server", code="no_server")


def transport_of(machine: Machine, split: Mapping[str, Transport]) -> Transport:
    """The protocol `split` gives a machine: by its asset name, else by its line."""
    for key in (machine.spec.asset, machine.node.line):
        if key not in split:
            continue
        transport = split[key]
        if transport not in get_args(Transport):
            raise ValidationFailed(
                f"{key!r} is split to {transport!r}; use 'opcua' or 'modbus'", code="bad_protocol"
            )
        return transport
    raise ValidationFailed(
        f"{machine.spec.asset} ({machine.node.line}) is split to no protocol",
        code="unassigned_machine",
        asset=machine.spec.asset,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the demo plant's machines over OPC UA and Modbus TCP until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m werk.sim.brownfield", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--opcua-port", type=int, default=DEFAULT_OPCUA_PORT)
    parser.add_argument("--modbus-port", type=int, default=DEFAULT_MODBUS_PORT)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # asyncua warns about every security policy the demo leaves out on purpose.
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    plant = BrownfieldPlant(
        demo_machines(args.seed),
        host=args.host,
        opcua_port=args.opcua_port,
        modbus_port=args.modbus_port,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(plant))


async def _serve_forever(plant: BrownfieldPlant) -> None:
    terminated = asyncio.Event()
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminated.set)
    async with plant:
        for e in plant.endpoints:
            where = f"unit {e.unit_id}" if e.unit_id is not None else e.node_prefix
            print(f"{e.asset:<12} {e.url:<28} {where}", flush=True)
        print("serving; Ctrl-C stops", flush=True)
        await terminated.wait()


if __name__ == "__main__":
    main()
