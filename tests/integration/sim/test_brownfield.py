"""The brownfield plant: machines at a fixed rate behind real OPC UA and Modbus servers."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
from asyncua import Client
from pymodbus.client import AsyncModbusTcpClient
from tests.conftest import free_port, wait_until

from werk.core.errors import Conflict, Unavailable, ValidationFailed
from werk.sim import demo_machines
from werk.sim.brownfield import BrownfieldPlant, Endpoint
from werk.sim.registers import register_map


def listening(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


async def opcua_power(endpoint: Endpoint) -> list[float]:
    """Read a machine's power over OPC UA a few times, 0.3 s apart."""
    async with Client(endpoint.url, timeout=5) as client:
        node = client.get_node(f"{endpoint.node_prefix}/power")
        values = []
        for _ in range(4):
            values.append(await node.read_value())
            await asyncio.sleep(0.3)
        return values


async def modbus_power(endpoint: Endpoint) -> list[float]:
    """Read a machine's power over Modbus a few times, 0.3 s apart."""
    power = next(r for r in register_map("cnc") if r.name == "power")
    client = AsyncModbusTcpClient(endpoint.host, port=endpoint.port, timeout=2, retries=0)
    try:
        assert await client.connect()
        values = []
        for _ in range(4):
            response = await client.read_input_registers(
                power.address, count=power.size, device_id=endpoint.unit_id or 0
            )
            assert not response.isError(), response
            values.append(float(power.decode(response.registers)))
            await asyncio.sleep(0.3)
        return values
    finally:
        client.close()


def test_the_demo_split_serves_both_protocols_from_a_thread() -> None:
    opcua_port, modbus_port = free_port(), free_port()
    plant = BrownfieldPlant(
        demo_machines(), opcua_port=opcua_port, modbus_port=modbus_port, interval_s=0.25
    )
    started = time.perf_counter()
    plant.start_in_thread()
    try:
        print(f"brownfield plant started in {time.perf_counter() - started:.2f} s")
        assert plant.running
        cnc1, cnc3 = plant.endpoint("cnc-1"), plant.endpoint("cnc-3")
        assert (cnc1.transport, cnc1.url, cnc1.node_prefix) == (
            "opcua",
            f"opc.tcp://127.0.0.1:{opcua_port}",
            "ns=2;s=line-1/cnc-1",
        )
        assert (cnc3.transport, cnc3.url, cnc3.unit_id) == (
            "modbus",
            f"modbus://127.0.0.1:{modbus_port}",
            1,
        )
        on_modbus = [e.asset for e in plant.endpoints if e.transport == "modbus"]
        assert on_modbus == ["cnc-3", "robot-2", "oven-1", "conveyor-1", "packer-1"]
        assert len(set(asyncio.run(opcua_power(cnc1)))) > 1
        assert len(set(asyncio.run(modbus_power(cnc3)))) > 1
    finally:
        stopping = time.perf_counter()
        plant.stop()
        print(f"brownfield plant stopped in {time.perf_counter() - stopping:.2f} s")
    assert not plant.running
    assert not listening(opcua_port)
    assert not listening(modbus_port)
    assert not any(t.name == "werk-sim-brownfield" for t in threading.enumerate())


def test_the_plant_runs_inside_an_event_loop() -> None:
    machines = [m for m in demo_machines() if m.node.line == "line-2"]
    port = free_port()

    async def main() -> None:
        async with BrownfieldPlant(machines, modbus_port=port, interval_s=0.1) as plant:
            assert plant.opcua is None
            with pytest.raises(Conflict):
                plant.stop()
            values = await modbus_power(plant.endpoint("cnc-3"))
            assert len(set(values)) > 1
        assert not listening(port)

    asyncio.run(main())


def test_a_taken_port_fails_the_start_and_leaves_nothing_open() -> None:
    modbus_port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        opcua_port = taken.getsockname()[1]
        plant = BrownfieldPlant(demo_machines(), opcua_port=opcua_port, modbus_port=modbus_port)
        with pytest.raises(Unavailable) as caught:
            plant.start_in_thread()
    assert caught.value.code == "port_in_use"
    assert not plant.running
    wait_until(lambda: not listening(modbus_port), timeout=5)


def test_the_split_goes_by_asset_before_line() -> None:
    split = {"line-1": "opcua", "line-2": "modbus", "oven-1": "opcua"}
    plant = BrownfieldPlant(demo_machines(), split=split)
    assert plant.endpoint("oven-1").transport == "opcua"
    assert plant.endpoint("oven-1").node_prefix == "ns=2;s=line-2/oven-1"
    assert plant.endpoint("packer-1").unit_id == 4


def test_every_machine_needs_a_protocol() -> None:
    with pytest.raises(ValidationFailed) as caught:
        BrownfieldPlant(demo_machines(), split={"line-1": "opcua"})
    assert caught.value.code == "unassigned_machine"
    with pytest.raises(ValidationFailed) as caught:
        BrownfieldPlant(demo_machines(), split={"line-1": "opcua", "line-2": "bacnet"})
    assert caught.value.code == "bad_protocol"
