"""A real pymodbus client against the demo plant's Modbus TCP server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu import ModbusPDU
from tests.conftest import free_port

from werk.core.errors import Unavailable
from werk.sim import Machine, Reading, demo_machines
from werk.sim.machines import DISABLED, MachineKind
from werk.sim.modbus_server import ModbusPlantServer
from werk.sim.registers import RUNNING, Register, register_map

T0_MS = 1_700_000_000_000
ILLEGAL_ADDRESS, ILLEGAL_VALUE, DEVICE_BUSY = 2, 3, 6


@dataclass
class Rig:
    """A server with the line-2 machines, a connected client and a simulated clock."""

    server: ModbusPlantServer
    client: AsyncModbusTcpClient
    machines: dict[str, Machine]
    now_ms: int = T0_MS
    last: dict[str, list[Reading]] = field(default_factory=dict)

    def unit(self, asset: str) -> int:
        return self.server.unit_ids[asset]

    async def advance(self, seconds: int = 1) -> None:
        """Step every machine `seconds` simulated seconds and publish each sample."""
        for _ in range(seconds):
            self.now_ms += 1000
            for asset, machine in self.machines.items():
                self.last[asset] = machine.step(self.now_ms)
                await self.server.publish(machine, self.last[asset], self.now_ms)

    async def read(self, asset: str, register: Register) -> object:
        """Read one tag of a machine and decode it per the register map."""
        unit = self.unit(asset)
        if register.table == "coil":
            response = await self.client.read_coils(register.address, count=1, device_id=unit)
            return ok(response).bits[0]
        if register.table == "discrete_input":
            read_bits = self.client.read_discrete_inputs
            return ok(await read_bits(register.address, count=1, device_id=unit)).bits[0]
        read_words = (
            self.client.read_input_registers
            if register.table == "input_register"
            else self.client.read_holding_registers
        )
        response = await read_words(register.address, count=register.size, device_id=unit)
        return register.decode(ok(response).registers)


def ok(response: ModbusPDU) -> ModbusPDU:
    """The response, failing the test on an exception response."""
    assert not response.isError(), response
    return response


def refusal(response: ModbusPDU) -> int:
    """The exception code of a response that must be an exception."""
    assert response.isError(), response
    return int(response.exception_code)


def register(kind: MachineKind, name: str) -> Register:
    """One register of the map."""
    return next(r for r in register_map(kind) if r.name == name)


@asynccontextmanager
async def serving() -> AsyncIterator[Rig]:
    """Serve the demo's line-2 machines and connect a client."""
    machines = [m for m in demo_machines(seed=7) if m.node.line == "line-2"]
    server = ModbusPlantServer(machines, free_port())
    await server.start()
    client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=2, retries=0)
    try:
        assert await client.connect()
        yield Rig(server, client, {m.spec.asset: m for m in machines})
    finally:
        client.close()
        await server.stop()


def scenario(body: Callable[[Rig], Awaitable[None]]) -> None:
    """Run `body` against a fresh server and client."""

    async def main() -> None:
        async with serving() as rig:
            await body(rig)

    asyncio.run(main())


def test_units_follow_the_machine_order() -> None:
    machines = [m for m in demo_machines() if m.node.line == "line-2"]
    server = ModbusPlantServer(machines, 5020)
    assert server.unit_ids == {
        "cnc-3": 1,
        "robot-2": 2,
        "oven-1": 3,
        "conveyor-1": 4,
        "packer-1": 5,
    }


def test_a_unit_is_busy_until_its_first_sample() -> None:
    async def body(rig: Rig) -> None:
        response = await rig.client.read_input_registers(0, count=10, device_id=1)
        assert refusal(response) == DEVICE_BUSY
        await rig.advance()
        ok(await rig.client.read_input_registers(0, count=10, device_id=1))

    scenario(body)


def test_registers_decode_to_the_machines_readings() -> None:
    async def body(rig: Rig) -> None:
        await rig.advance(5)
        for asset, machine in rig.machines.items():
            readings = {r.tag: r for r in rig.last[asset]}
            for reg in register_map(machine.spec.kind):
                shown = await rig.read(asset, reg)
                if reg.name == RUNNING:
                    assert shown is (readings["state"].value == "RUNNING")
                elif reg.name in machine.setpoints:
                    assert shown == pytest.approx(machine.setpoints[reg.name], abs=reg.scale / 2)
                elif readings[reg.name].quality == "good":
                    expected = readings[reg.name].value
                    if isinstance(expected, float):
                        assert shown == pytest.approx(expected, rel=1e-6, abs=reg.scale / 2)
                    else:
                        assert shown == expected, (asset, reg.name)

    scenario(body)


def test_a_block_read_covers_neighbouring_tags() -> None:
    async def body(rig: Rig) -> None:
        await rig.advance()
        words = ok(await rig.client.read_input_registers(0, count=10, device_id=3)).registers
        readings = {r.tag: r.value for r in rig.last["oven-1"]}
        parts = register("oven", "parts.good")
        assert parts.decode(words[parts.address : parts.end]) == readings["parts.good"]
        texts = ok(await rig.client.read_input_registers(100, count=40, device_id=3)).registers
        state = register("oven", "state")
        assert state.decode(texts[:8]) == readings["state"]

    scenario(body)


def test_an_uncertain_reading_keeps_the_last_good_value() -> None:
    async def body(rig: Rig) -> None:
        await rig.advance()
        power = register("cnc", "power")
        before = await rig.read("cnc-3", power)
        glitch = Reading("power", 999.0, "kW", "uncertain")
        await rig.server.publish(rig.machines["cnc-3"], [glitch], rig.now_ms)
        assert await rig.read("cnc-3", power) == before
        await rig.server.publish(rig.machines["cnc-3"], [Reading("power", 7.5, "kW")], rig.now_ms)
        assert await rig.read("cnc-3", power) == 7.5

    scenario(body)


def test_a_holding_register_write_sets_the_machine_speed() -> None:
    async def body(rig: Rig) -> None:
        await rig.advance()
        cnc = rig.machines["cnc-3"]
        ok(await rig.client.write_register(0, 6000, device_id=rig.unit("cnc-3")))
        assert cnc.setpoints["speed_setpoint"] == 6000.0
        assert await rig.read("cnc-3", register("cnc", "speed_setpoint")) == 6000
        speed = register("cnc", "spindle.speed")
        for _ in range(300):  # stops come and go; wait for a stretch of running
            await rig.advance()
            shown = await rig.read("cnc-3", speed)
            assert isinstance(shown, float)
            if cnc.state == "RUNNING" and abs(shown - 6000) < 120:
                return
        pytest.fail("the spindle never reached the written speed")

    scenario(body)


def test_a_multi_register_write_sets_the_oven() -> None:
    async def body(rig: Rig) -> None:
        await rig.advance()
        oven = rig.machines["oven-1"]
        ok(await rig.client.write_registers(0, [1200, 1505], device_id=rig.unit("oven-1")))
        assert oven.setpoints["speed_setpoint"] == 1200.0
        assert oven.setpoints["temperature_setpoint"] == pytest.approx(150.5)
        shown = await rig.read("oven-1", register("oven", "temperature_setpoint"))
        assert shown == pytest.approx(150.5)

    scenario(body)


def test_the_enable_coil_stops_and_restarts_the_machine() -> None:
    async def body(rig: Rig) -> None:
        await rig.advance()
        unit = rig.unit("packer-1")
        ok(await rig.client.write_coil(0, False, device_id=unit))
        assert rig.machines["packer-1"].setpoints["enabled"] is False
        assert await rig.read("packer-1", register("packer", "enabled")) is False
        for _ in range(150):  # a fault in progress runs out its repair time first
            await rig.advance()
            if await rig.read("packer-1", register("packer", "state")) == "STOPPED":
                break
        assert await rig.read("packer-1", register("packer", "stop.reason")) == DISABLED
        assert await rig.read("packer-1", register("packer", RUNNING)) is False
        ok(await rig.client.write_coil(0, True, device_id=unit))
        await rig.advance()
        assert await rig.read("packer-1", register("packer", "state")) == "RUNNING"
        assert await rig.read("packer-1", register("packer", RUNNING)) is True

    scenario(body)


@pytest.mark.parametrize(
    ("address", "words"),
    [
        (0, [30000]),  # above 1.2x the oven fan's nominal speed
        (1, [100]),  # 10.0 degC: below ambient
        (1, [0xFFFF]),  # -0.1 degC as int16
        (0, [1000, 9999]),  # a good speed with a bad temperature: nothing is applied
    ],
)
def test_an_illegal_value_is_refused_and_changes_nothing(address: int, words: list[int]) -> None:
    async def body(rig: Rig) -> None:
        await rig.advance()
        oven = rig.machines["oven-1"]
        before = dict(oven.setpoints)
        unit = rig.unit("oven-1")
        held = ok(await rig.client.read_holding_registers(0, count=2, device_id=unit)).registers
        response = await rig.client.write_registers(address, words, device_id=unit)
        assert refusal(response) == ILLEGAL_VALUE
        assert oven.setpoints == before
        after = ok(await rig.client.read_holding_registers(0, count=2, device_id=unit)).registers
        assert after == held

    scenario(body)


def test_unmapped_addresses_and_units_are_refused() -> None:
    async def body(rig: Rig) -> None:
        await rig.advance()
        client = rig.client
        assert (
            refusal(await client.read_input_registers(10, count=1, device_id=1)) == ILLEGAL_ADDRESS
        )
        assert (
            refusal(await client.read_input_registers(0, count=11, device_id=1)) == ILLEGAL_ADDRESS
        )
        # Only the oven has a temperature setpoint.
        assert refusal(await client.write_register(1, 1500, device_id=1)) == ILLEGAL_ADDRESS
        assert refusal(await client.write_coil(1, True, device_id=1)) == ILLEGAL_ADDRESS
        assert (
            refusal(await client.read_input_registers(0, count=1, device_id=99)) == ILLEGAL_ADDRESS
        )

    scenario(body)


def test_stop_closes_the_port() -> None:
    async def body() -> int:
        async with serving() as rig:
            port = rig.server.port
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
        try:
            assert not await client.connect()
        finally:
            client.close()
        return port

    asyncio.run(body())


def test_a_taken_port_is_reported() -> None:
    async def body(port: int) -> None:
        server = ModbusPlantServer(demo_machines()[:1], port)
        with pytest.raises(Unavailable) as caught:
            await server.start()
        assert caught.value.code == "port_in_use"
        assert not server.running

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        asyncio.run(body(taken.getsockname()[1]))
