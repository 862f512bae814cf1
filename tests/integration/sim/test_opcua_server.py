"""A real asyncua client against the demo plant's OPC UA server."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from asyncua import Client, Node, ua
from asyncua.common.subscription import DataChangeNotif
from asyncua.ua.uaerrors import UaStatusCodeError
from tests.conftest import free_port

from werk.sim import Machine, Reading, demo_machines
from werk.sim.machines import DISABLED
from werk.sim.opcua_server import OpcUaPlantServer, variant_type
from werk.sim.registers import NAMESPACE_URI, opcua_tag_configs

T = TypeVar("T")
T0_MS = 1_700_000_000_000
# UNECE Rec. 20 codes; OPC UA packs them into EUInformation.UnitId as big-endian bytes.
UNECE = {"rpm": b"RPM", "degC": b"CEL", "mm/s": b"C16", "kW": b"KWT", "pcs": b"H87"}


class LoopThread:
    """An event loop on a thread of its own, shared by the tests of this module."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.run(self.loop.shutdown_asyncgens())
        self.run(self.loop.shutdown_default_executor())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Rig:
    """The server with line-1 and the oven, a simulated clock, and the loop it runs on."""

    server: OpcUaPlantServer
    machines: dict[str, Machine]
    loop: LoopThread
    now_ms: int = T0_MS

    async def advance(self, seconds: int = 1) -> None:
        """Step every machine `seconds` simulated seconds and publish each sample."""
        for _ in range(seconds):
            self.now_ms += 1000
            for machine in self.machines.values():
                await self.server.publish(machine, machine.step(self.now_ms), self.now_ms)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run(coroutine)


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    """One server for the module: its address space takes a second or two to build."""
    demo = demo_machines(seed=7)
    machines = [m for m in demo if m.node.line == "line-1" or m.spec.kind == "oven"]
    loop = LoopThread()
    server = OpcUaPlantServer(machines, free_port())
    loop.run(server.start())
    rig = Rig(server, {m.spec.asset: m for m in machines}, loop)
    rig.run(rig.advance())
    try:
        yield rig
    finally:
        loop.run(server.stop())
        loop.close()


def connect(rig: Rig) -> Client:
    return Client(rig.server.url, timeout=5)


async def child_names(node: Node) -> list[str]:
    return [(await child.read_browse_name()).Name for child in await node.get_children()]


def test_address_space_is_site_line_machine(rig: Rig) -> None:
    async def body() -> None:
        async with connect(rig) as client:
            index = await client.get_namespace_index(NAMESPACE_URI)
            assert index == 2
            site = await client.nodes.objects.get_child(f"{index}:berlin")
            assert sorted(await child_names(site)) == ["line-1", "line-2"]
            line = await site.get_child(f"{index}:line-1")
            assert await child_names(line) == ["cnc-1", "cnc-2", "robot-1", "press-1"]
            cnc = await line.get_child(f"{index}:cnc-1")
            assert cnc.nodeid == ua.NodeId.from_string("ns=2;s=line-1/cnc-1")
            machine = rig.machines["cnc-1"]
            assert await child_names(cnc) == [*machine.tags, "Setpoints"]
            setpoints = await cnc.get_child(f"{index}:Setpoints")
            assert await child_names(setpoints) == ["enabled", "speed_setpoint"]
            oven = client.get_node("ns=2;s=line-2/oven-1/Setpoints")
            assert "temperature_setpoint" in await child_names(oven)

    rig.run(body())


def test_every_configured_node_has_its_name_type_and_unit(rig: Rig) -> None:
    async def body() -> None:
        async with connect(rig) as client:
            for machine in rig.machines.values():
                for config in opcua_tag_configs(machine):
                    await check_variable(client, config)

    rig.run(body())


async def check_variable(client: Client, config: dict[str, Any]) -> None:
    node = client.get_node(config["node_id"])
    assert (await node.read_browse_name()).Name == config["name"]
    data = await node.read_data_value(raise_on_bad_status=False)
    assert data.StatusCode is not None and not data.StatusCode.is_bad(), config
    expected = variant_type(config["name"])
    assert data.Value is not None and data.Value.VariantType == expected, config
    assert await node.read_data_type() == ua.NodeId(expected.value)
    writable = ua.AccessLevel.CurrentWrite in await node.get_access_level()
    assert writable == config["writable"], config
    description = (await node.read_description()).Text or ""
    unit = config["unit"]
    if unit is not None:
        assert description == f"{config['name']} in {unit}"
        units = await (await node.get_child("0:EngineeringUnits")).read_value()
        assert units.UnitId == int.from_bytes(UNECE[unit], "big"), config


def test_a_subscription_sees_values_change(rig: Rig) -> None:
    class Collector:
        def __init__(self) -> None:
            self.values: dict[str, list[object]] = {}

        def datachange_notification(self, node: Node, value: object, data: DataChangeNotif) -> None:
            self.values.setdefault(node.nodeid.to_string(), []).append(value)

    async def body() -> dict[str, list[object]]:
        collector = Collector()
        async with connect(rig) as client:
            subscription = await client.create_subscription(50, collector)
            nodes = [
                client.get_node(f"ns=2;s={m.node.line}/{asset}/vibration.rms")
                for asset, m in rig.machines.items()
            ]
            await subscription.subscribe_data_change(nodes, sampling_interval=0)
            for _ in range(15):
                await rig.advance()
                await asyncio.sleep(0.1)
            await subscription.delete()
        return collector.values

    values = rig.run(body())
    assert len(values) == len(rig.machines)
    for seen in values.values():
        assert len(set(seen)) >= 5


def test_a_written_speed_setpoint_moves_the_speed(rig: Rig) -> None:
    async def body() -> None:
        async with connect(rig) as client:
            setpoint = client.get_node("ns=2;s=line-1/cnc-2/Setpoints/speed_setpoint")
            speed = client.get_node("ns=2;s=line-1/cnc-2/spindle.speed")
            await setpoint.write_value(8000.0)
            assert rig.machines["cnc-2"].setpoints["speed_setpoint"] == 8000.0
            assert await setpoint.read_value() == 8000.0
            for _ in range(300):  # stops come and go; wait for a stretch of running
                await rig.advance()
                shown = await speed.read_value()
                if rig.machines["cnc-2"].state == "RUNNING" and abs(shown - 8000) < 160:
                    return
            pytest.fail("the spindle never reached the written speed")

    rig.run(body())


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("line-1/press-1/Setpoints/speed_setpoint", 1.3 * 1450),
        ("line-1/press-1/Setpoints/speed_setpoint", -5.0),
        ("line-1/press-1/Setpoints/speed_setpoint", math.nan),
        ("line-2/oven-1/Setpoints/temperature_setpoint", 400.0),
    ],
)
def test_an_out_of_range_setpoint_is_refused_and_not_applied(
    rig: Rig, path: str, value: float
) -> None:
    async def body() -> None:
        async with connect(rig) as client:
            node = client.get_node(f"ns=2;s={path}")
            before = await node.read_value()
            with pytest.raises(UaStatusCodeError) as caught:
                await node.write_value(value)
            assert caught.value.code == ua.StatusCodes.BadOutOfRange
            assert await node.read_value() == before
            name = path.rsplit("/", 1)[1]
            machine = rig.machines[path.split("/")[1]]
            assert machine.setpoints[name] == before

    rig.run(body())


def test_each_written_item_gets_its_own_status(rig: Rig) -> None:
    async def body() -> None:
        async with connect(rig) as client:
            good = client.get_node("ns=2;s=line-1/robot-1/Setpoints/speed_setpoint")
            bad = client.get_node("ns=2;s=line-2/oven-1/Setpoints/temperature_setpoint")
            results = await client.write_values(
                [good, bad], [2500.0, 999.0], raise_on_partial_error=False
            )
            assert [r.value for r in results] == [
                ua.StatusCodes.Good,
                ua.StatusCodes.BadOutOfRange,
            ]
            assert rig.machines["robot-1"].setpoints["speed_setpoint"] == 2500.0
            assert rig.machines["oven-1"].setpoints["temperature_setpoint"] == 180.0

    rig.run(body())


def test_measurements_are_read_only(rig: Rig) -> None:
    async def body() -> None:
        async with connect(rig) as client:
            with pytest.raises(UaStatusCodeError) as caught:
                await client.get_node("ns=2;s=line-1/cnc-1/power").write_value(1.0)
            assert caught.value.code == ua.StatusCodes.BadUserAccessDenied

    rig.run(body())


def test_disabling_stops_the_machine_until_it_is_enabled(rig: Rig) -> None:
    async def body() -> None:
        async with connect(rig) as client:
            enabled = client.get_node("ns=2;s=line-1/robot-1/Setpoints/enabled")
            state = client.get_node("ns=2;s=line-1/robot-1/state")
            await enabled.write_value(False)
            for _ in range(150):  # a fault in progress runs out its repair time first
                await rig.advance()
                if await state.read_value() == "STOPPED":
                    break
            for _ in range(5):
                await rig.advance()
                assert await state.read_value() == "STOPPED"
            reason = client.get_node("ns=2;s=line-1/robot-1/stop.reason")
            assert await reason.read_value() == DISABLED
            await enabled.write_value(True)
            await rig.advance()
            assert await state.read_value() == "RUNNING"

    rig.run(body())


def test_an_uncertain_reading_carries_an_uncertain_status(rig: Rig) -> None:
    async def body() -> None:
        press = rig.machines["press-1"]
        node_id = "ns=2;s=line-1/press-1/oil.temperature"
        async with connect(rig) as client:
            node = client.get_node(node_id)
            glitch = Reading("oil.temperature", 61.5, "degC", "uncertain")
            await rig.server.publish(press, [glitch], rig.now_ms)
            data = await node.read_data_value(raise_on_bad_status=False)
            assert data.StatusCode is not None and data.StatusCode.is_uncertain()
            assert data.Value is not None and data.Value.Value == 61.5
            await rig.advance()
            data = await node.read_data_value()
            assert data.StatusCode is not None and data.StatusCode.is_good()

    rig.run(body())
