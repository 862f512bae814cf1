"""The OPC UA connector against a real asyncua server on a free port."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest
from asyncua import Server, ua
from tests.conftest import free_port
from tests.edge_device import Collector, eventually

from werk.core.errors import Conflict, NotFound, Unavailable, ValidationFailed
from werk.edge.connectors import (
    ConnectorState,
    OpcUaConfig,
    OpcUaConnector,
    build_connector,
)
from werk.edge.deadband import ReportByException
from werk.sparkplug.datatypes import DataType
from werk.uns.contracts import Quality

pytestmark = pytest.mark.anyio

NS = "urn:werk:test:opcua"
WHEN = datetime(2024, 5, 17, 8, 30, 0, 250000, tzinfo=UTC)
WHEN_MS = int(WHEN.timestamp() * 1000)
# name, variant type, initial value, werk datatype
TYPED = [
    ("Flag", ua.VariantType.Boolean, True, DataType.BOOLEAN),
    ("Tiny", ua.VariantType.SByte, -5, DataType.INT8),
    ("Octet", ua.VariantType.Byte, 200, DataType.UINT8),
    ("Short", ua.VariantType.Int16, -300, DataType.INT16),
    ("UShort", ua.VariantType.UInt16, 60000, DataType.UINT16),
    ("Int", ua.VariantType.Int32, -70000, DataType.INT32),
    ("UInt", ua.VariantType.UInt32, 4_000_000_000, DataType.UINT32),
    ("Long", ua.VariantType.Int64, -(2**40), DataType.INT64),
    ("ULong", ua.VariantType.UInt64, 2**63 + 5, DataType.UINT64),
    ("Single", ua.VariantType.Float, 1.5, DataType.FLOAT),
    ("Real", ua.VariantType.Double, 21.25, DataType.DOUBLE),
    ("Text", ua.VariantType.String, "running", DataType.STRING),
    ("When", ua.VariantType.DateTime, WHEN, DataType.DATETIME),
]


@dataclass
class Plant:
    """A running asyncua server with the test address space."""

    server: Server
    endpoint: str
    idx: int

    def node_id(self, name: str) -> ua.NodeId:
        return ua.NodeId(name, self.idx)

    async def set(self, name: str, value: Any, variant: ua.VariantType, **extra: Any) -> None:
        data = ua.DataValue(ua.Variant(value, variant), **extra)
        await self.server.write_attribute_value(self.node_id(name), data)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def plant() -> AsyncIterator[Plant]:
    port = free_port()
    server = Server()
    await server.init()
    server.disable_clock()
    endpoint = f"opc.tcp://127.0.0.1:{port}/werk"
    server.set_endpoint(endpoint)
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await server.register_namespace(NS)
    await _address_space(server, idx)
    await server.start()
    yield Plant(server, endpoint, idx)
    await server.stop()


async def _address_space(server: Server, idx: int) -> None:
    root = await server.nodes.objects.add_folder(ua.NodeId("Plant", idx), "Plant")
    line = await root.add_folder(ua.NodeId("Line1", idx), "Line1")
    for name, variant, value, _ in TYPED:
        await line.add_variable(ua.NodeId(name, idx), name, value, varianttype=variant)
    setpoint = await line.add_variable(ua.NodeId("Setpoint", idx), "Setpoint", 50.0)
    await setpoint.set_writable()
    count = await line.add_variable(
        ua.NodeId("Count", idx), "Count", 7, varianttype=ua.VariantType.UInt16
    )
    await count.set_writable()
    await line.add_variable(ua.NodeId("Blob", idx), "Blob", b"\x00\x01")
    await line.add_variable(ua.NodeId("Curve", idx), "Curve", [1.0, 2.0, 3.0])
    deep = await (await root.add_folder(ua.NodeId("Line2", idx), "Line2")).add_folder(
        ua.NodeId("Cell", idx), "Cell"
    )
    await deep.add_variable(ua.NodeId("Speed", idx), "Speed", 3.5)


def config(plant: Plant, **overrides: Any) -> OpcUaConfig:
    values: dict[str, Any] = {
        "kind": "opcua",
        "name": "press-1",
        "endpoint": plant.endpoint,
        "browse": [{"root": f"ns={plant.idx};s=Plant"}],
        "publishing_interval_ms": 20,
        "sampling_interval_ms": 0,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.3,
        "timeout_s": 2.0,
    }
    values.update(overrides)
    return pydantic.TypeAdapter(OpcUaConfig).validate_python(values)


@pytest.fixture
async def running(plant: Plant) -> AsyncIterator[tuple[OpcUaConnector, Collector]]:
    connector = OpcUaConnector(config(plant))
    sink = Collector()
    await connector.start(sink)
    yield connector, sink
    await connector.stop()


async def test_browse_finds_every_supported_variable_with_type_and_access(plant: Plant) -> None:
    connector = build_connector(config(plant, deadband=0.5))
    await connector.start(Collector())
    try:
        specs = {spec.name: spec for spec in connector.tags()}
    finally:
        await connector.stop()

    for name, _, _, datatype in TYPED:
        assert specs[f"Line1/{name}"].datatype is datatype
        assert not specs[f"Line1/{name}"].writable
    assert specs["Line1/Setpoint"].writable and specs["Line1/Count"].writable
    assert specs["Line2/Cell/Speed"].datatype is DataType.DOUBLE
    assert "Line1/Blob" not in specs and "Line1/Curve" not in specs  # bytes, array
    assert specs["Line1/Real"].deadband == 0.5
    assert specs["Line1/Text"].deadband == 0.0 and specs["Line1/Flag"].deadband == 0.0
    assert connector.health().state is ConnectorState.STOPPED


async def test_browse_depth_limits_the_tags(plant: Plant) -> None:
    rules = [{"root": f"ns={plant.idx};s=Plant", "max_depth": 2}]
    connector = OpcUaConnector(config(plant, browse=rules))
    await connector.start(Collector())
    names = {spec.name for spec in connector.tags()}
    await connector.stop()
    assert "Line1/Real" in names
    assert "Line2/Cell/Speed" not in names


async def test_initial_values_and_changes_arrive_with_good_quality_and_source_time(
    plant: Plant, running: tuple[OpcUaConnector, Collector]
) -> None:
    connector, sink = running
    when = await eventually(lambda: sink.latest("Line1/When"))
    assert when.value == WHEN_MS and when.quality is Quality.GOOD
    assert (await eventually(lambda: sink.latest("Line1/ULong"))).value == 2**63 + 5

    stamp = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    await plant.set("Real", 99.5, ua.VariantType.Double, SourceTimestamp=stamp)
    reading = await eventually(
        lambda: (r := sink.latest("Line1/Real")) is not None and r.value == 99.5 and r
    )
    assert reading.quality is Quality.GOOD
    assert reading.ts_ns == int(stamp.timestamp()) * 1_000_000_000
    health = connector.health()
    assert health.state is ConnectorState.CONNECTED
    assert health.reads >= len(TYPED) and health.last_read_ns is not None


async def test_bad_and_uncertain_status_become_quality(
    plant: Plant, running: tuple[OpcUaConnector, Collector]
) -> None:
    _, sink = running
    await eventually(lambda: sink.latest("Line1/Single"))
    bad = ua.StatusCode(ua.StatusCodes.BadSensorFailure)
    await plant.set("Single", 2.5, ua.VariantType.Float, StatusCode=bad)
    reading = await eventually(
        lambda: (r := sink.latest("Line1/Single")) and r.quality is Quality.BAD and r
    )
    assert reading.value is None

    uncertain = ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue)
    await plant.set("Single", 3.5, ua.VariantType.Float, StatusCode=uncertain)
    reading = await eventually(
        lambda: (r := sink.latest("Line1/Single")) and r.quality is Quality.UNCERTAIN and r
    )
    assert reading.value == 3.5
    await plant.set("Single", 1.5, ua.VariantType.Float)
    await eventually(lambda: (r := sink.latest("Line1/Single")) and r.quality is Quality.GOOD)


async def test_explicit_tags_override_type_access_deadband_and_unit(plant: Plant) -> None:
    tags = [
        {"name": "temp", "node_id": f"ns={plant.idx};s=Real", "deadband": 2.0, "unit": "degC"},
        {"name": "missing", "node_id": f"ns={plant.idx};s=Nope", "datatype": "double"},
        {"name": "unknown", "node_id": f"ns={plant.idx};s=Nowhere"},
    ]
    connector = OpcUaConnector(config(plant, browse=[], tags=tags, deadband=0.1))
    assert [spec.name for spec in connector.tags()] == ["missing"]  # typed before connecting
    sink = Collector()
    await connector.start(sink)
    try:
        specs = {spec.name: spec for spec in connector.tags()}
        assert set(specs) == {"temp", "missing"}
        assert specs["temp"].deadband == 2.0 and specs["temp"].unit == "degC"
        assert specs["temp"].datatype is DataType.DOUBLE and not specs["temp"].writable
        missing = await eventually(lambda: sink.latest("missing"))
        assert missing.quality is Quality.BAD and missing.value is None

        rbe = ReportByException(connector.tags())
        await eventually(lambda: sink.latest("temp"))
        for value in (10.0, 11.0, 12.5):
            await plant.set("Real", value, ua.VariantType.Double)
            await eventually(lambda v=value: (r := sink.latest("temp")) and r.value == v)
        reported = [r.value for r in rbe.filter([r for r in sink.readings if r.tag == "temp"])]
        assert reported[-2:] == [10.0, 12.5]
    finally:
        await connector.stop()
        await plant.set("Real", 21.25, ua.VariantType.Double)


async def test_write_uses_the_variable_type_and_returns_the_read_back_value(
    plant: Plant, running: tuple[OpcUaConnector, Collector]
) -> None:
    connector, _ = running
    assert await connector.write("Line1/Setpoint", 12.5) == 12.5
    assert await plant.server.get_node(plant.node_id("Setpoint")).read_value() == 12.5
    assert await connector.write("Line1/Count", 65535) == 65535
    variant = await plant.server.get_node(plant.node_id("Count")).read_data_type_as_variant_type()
    assert variant is ua.VariantType.UInt16

    with pytest.raises(ValidationFailed, match="0 to 65535") as out_of_range:
        await connector.write("Line1/Count", 70000)
    assert out_of_range.value.code == "bad_value"
    with pytest.raises(ValidationFailed, match="number") as wrong_type:
        await connector.write("Line1/Setpoint", "high")
    assert wrong_type.value.code == "bad_value"
    assert connector.health().writes == 2 and connector.health().write_errors == 2


async def test_writes_to_read_only_or_unknown_tags_are_refused(plant: Plant) -> None:
    tags = [{"name": "forced", "node_id": f"ns={plant.idx};s=Real", "writable": True}]
    connector = OpcUaConnector(config(plant, tags=tags))
    await connector.start(Collector())
    try:
        with pytest.raises(ValidationFailed) as read_only:
            await connector.write("Line1/Real", 1.0)
        assert read_only.value.code == "not_writable"
        with pytest.raises(Conflict) as refused:
            await connector.write("forced", 1.0)
        assert (
            refused.value.code == "write_failed" and "BadUserAccessDenied" in refused.value.message
        )
        with pytest.raises(NotFound) as unknown:
            await connector.write("Line1/Nothing", 1.0)
        assert unknown.value.code == "unknown_tag"
    finally:
        await connector.stop()


async def test_unreachable_server_reports_bad_and_keeps_trying() -> None:
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}"
    tags = [{"name": "temp", "node_id": "ns=2;s=Real", "datatype": "DOUBLE", "writable": True}]
    connector = OpcUaConnector(
        OpcUaConfig.model_validate(
            {"name": "gone", "endpoint": endpoint, "tags": tags, "reconnect_min_s": 0.05}
        )
    )
    sink = Collector()
    started = time.monotonic()
    await connector.start(sink)
    assert time.monotonic() - started < 4.0
    health = connector.health()
    assert health.state is ConnectorState.RECONNECTING and health.last_error
    assert sink.readings and sink.readings[0].quality is Quality.BAD
    with pytest.raises(Unavailable) as unavailable:
        await connector.write("temp", 1.0)
    assert unavailable.value.code == "device_unavailable"
    await eventually(lambda: connector.health().reconnects >= 2)
    assert len(sink.readings) == 1  # reported once, not on every retry
    await connector.stop()


async def test_reconnects_and_resubscribes_after_the_server_restarts(
    plant: Plant, running: tuple[OpcUaConnector, Collector]
) -> None:
    connector, sink = running
    await eventually(lambda: sink.latest("Line1/Real"))
    await plant.server.stop()
    try:
        await eventually(lambda: connector.health().state is ConnectorState.RECONNECTING)
        await eventually(
            lambda: all(
                (r := sink.latest(spec.name)) and r.quality is Quality.BAD
                for spec in connector.tags()
            )
        )
        with pytest.raises(Unavailable) as down:
            await connector.write("Line1/Setpoint", 1.0)
        assert down.value.code == "device_unavailable"
    finally:
        await plant.server.start()
    await eventually(lambda: connector.health().state is ConnectorState.CONNECTED, within=10)
    await plant.set("Real", 77.0, ua.VariantType.Double)
    await eventually(lambda: (r := sink.latest("Line1/Real")) and r.value == 77.0)
    assert connector.health().reconnects >= 1
    await plant.set("Real", 21.25, ua.VariantType.Double)


def test_config_rejects_what_cannot_work() -> None:
    adapter = pydantic.TypeAdapter(OpcUaConfig)
    base = {"kind": "opcua", "name": "p", "endpoint": "opc.tcp://h:4840"}
    for bad in (
        {"endpoint": "http://h:4840", "browse": [{"root": "i=85"}]},
        {},  # neither browse nor tags
        {"browse": [{"root": "not a node id"}]},
        {"tags": [{"name": "a", "node_id": "i=1", "datatype": "bytes"}]},
        {"tags": [{"name": "a", "node_id": "i=1"}, {"name": "a", "node_id": "i=2"}]},
        {"browse": [{"root": "i=85"}], "password": "secret"},
        {"browse": [{"root": "i=85"}], "name": "has space"},
    ):
        with pytest.raises(pydantic.ValidationError):
            adapter.validate_python(base | bad)
