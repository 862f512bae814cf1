"""The Modbus TCP connector against a real pymodbus server on a free port."""

from __future__ import annotations

import asyncio
import struct
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pydantic
import pytest
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice
from tests.conftest import free_port
from tests.edge_device import Collector, eventually

from werk.core.errors import Conflict, NotFound, Unavailable, ValidationFailed
from werk.edge.connectors import ConnectorState, ModbusConfig, ModbusConnector, build_connector
from werk.sparkplug.datatypes import DataType
from werk.uns.contracts import Quality

pytestmark = pytest.mark.anyio

READ_HOLDING = 3


def words(fmt: str, value: Any, *, byte_order: str = "big", word_order: str = "big") -> list[int]:
    """Registers holding `value` packed big-endian with `fmt`, then laid out as asked."""
    data = struct.pack(f">{fmt}", value)
    regs = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if byte_order == "little":
        regs = [((r & 0xFF) << 8) | (r >> 8) for r in regs]
    return regs[::-1] if word_order == "little" else regs


# address -> registers of the holding table; 29..39 and 42 stay unmapped
HOLDING: dict[int, list[int]] = {
    0: words("h", -1234),
    1: words("H", 60000),
    2: words("i", -123456789),
    4: words("I", 4_000_000_000, word_order="little"),
    6: words("q", -(2**40) - 7),
    10: words("Q", 2**63 + 11, byte_order="little", word_order="little"),
    14: words("f", 1.5, byte_order="little"),
    16: words("d", -2.25e10),
    20: [0x5055, 0x4D50, 0x2D37, 0x0000],  # "PUMP-7"
    24: [0b1000_0000_0000_0101],
    25: words("H", 2155),
    26: words("H", 10),
    27: words("f", 0.0),
    40: [11, 12],
    43: [13],
    100: words("i", 77),
}
TAGS: list[dict[str, Any]] = [
    {"name": "i16", "table": "holding_register", "address": 0, "type": "int16"},
    {"name": "u16", "table": "holding_register", "address": 1},
    {"name": "i32", "table": "holding_register", "address": 2, "type": "int32"},
    {
        "name": "u32",
        "table": "holding_register",
        "address": 4,
        "type": "uint32",
        "word_order": "little",
    },
    {"name": "i64", "table": "holding_register", "address": 6, "type": "int64"},
    {
        "name": "u64",
        "table": "holding_register",
        "address": 10,
        "type": "uint64",
        "byte_order": "little",
        "word_order": "little",
    },
    {
        "name": "f32",
        "table": "holding_register",
        "address": 14,
        "type": "float32",
        "byte_order": "little",
    },
    {"name": "f64", "table": "holding_register", "address": 16, "type": "float64"},
    {"name": "text", "table": "holding_register", "address": 20, "type": "string", "length": 4},
    {"name": "bit0", "table": "holding_register", "address": 24, "bit": 0},
    {"name": "bit1", "table": "holding_register", "address": 24, "bit": 1, "writable": True},
    {"name": "bit15", "table": "holding_register", "address": 24, "bit": 15},
    {"name": "level", "table": "holding_register", "address": 25, "scale": 0.1, "offset": -10},
    {"name": "setpoint", "table": "holding_register", "address": 26, "writable": True},
    {
        "name": "ratio",
        "table": "holding_register",
        "address": 27,
        "type": "float32",
        "writable": True,
        "scale": 2,
    },
    {"name": "far", "table": "holding_register", "address": 100, "type": "int32"},
    {"name": "run", "table": "coil", "address": 0},
    {"name": "valve", "table": "coil", "address": 2, "writable": True},
    {"name": "door", "table": "discrete_input", "address": 1},
    {"name": "flow", "table": "input_register", "address": 1, "deadband": 3},
]
GAPPY: list[dict[str, Any]] = [
    {"name": "g40", "table": "holding_register", "address": 40},
    {"name": "g42", "table": "holding_register", "address": 42},
    {"name": "g43", "table": "holding_register", "address": 43},
]
EXPECTED = {
    "i16": -1234,
    "u16": 60000,
    "i32": -123456789,
    "u32": 4_000_000_000,
    "i64": -(2**40) - 7,
    "u64": 2**63 + 11,
    "f32": 1.5,
    "f64": -2.25e10,
    "text": "PUMP-7",
    "bit0": True,
    "bit1": False,
    "bit15": True,
    "level": pytest.approx(205.5),
    "far": 77,
    "run": True,
    "valve": True,
    "door": True,
    "flow": 8,
    "g40": 11,
    "g43": 13,
}


class Plc:
    """A pymodbus server that can be stopped and started again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: Counter[tuple[int, int, int]] = Counter()
        holding = [SimData(a, values=v, datatype=SimType.REGISTERS) for a, v in HOLDING.items()]
        self.device = SimDevice(
            id=1,
            simdata=(
                [SimData(0, values=[True, False, True] + [False] * 13, datatype=SimType.BITS)],
                [SimData(0, values=[False, True] + [False] * 14, datatype=SimType.BITS)],
                holding,
                [SimData(0, values=[7, 8], datatype=SimType.REGISTERS)],
            ),
        )
        self.server: ModbusTcpServer | None = None

    def _trace(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.requests[(pdu.function_code, pdu.address, pdu.count)] += 1
        return pdu

    async def start(self) -> None:
        self.server = ModbusTcpServer(
            self.device, address=("127.0.0.1", self.port), trace_pdu=self._trace
        )
        await self.server.serve_forever(background=True)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None


def _polled_after(sink: Collector, start: int, *tags: str) -> dict[str, Any] | None:
    seen = {r.tag: r.value for r in sink.readings[start:] if r.tag in tags}
    return seen if len(seen) == len(tags) else None


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def plc() -> AsyncIterator[Plc]:
    server = Plc()
    await server.start()
    yield server
    await server.stop()


def config(plc: Plc, interval_ms: int = 50, **overrides: Any) -> ModbusConfig:
    values: dict[str, Any] = {
        "kind": "modbus",
        "name": "plc-1",
        "host": "127.0.0.1",
        "port": plc.port,
        "timeout_s": 0.5,
        "retries": 0,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.2,
        "groups": [
            {"name": "fast", "interval_ms": interval_ms, "tags": TAGS},
            {"name": "gappy", "interval_ms": interval_ms, "tags": GAPPY},
        ],
    }
    values.update(overrides)
    return pydantic.TypeAdapter(ModbusConfig).validate_python(values)


@pytest.fixture
async def running(plc: Plc) -> AsyncIterator[tuple[ModbusConnector, Collector]]:
    connector = ModbusConnector(config(plc))
    sink = Collector()
    await connector.start(sink)
    yield connector, sink
    await connector.stop()


async def test_every_type_order_scale_and_bit_decodes(
    running: tuple[ModbusConnector, Collector],
) -> None:
    connector, sink = running
    await eventually(lambda: all(sink.latest(tag) for tag in EXPECTED))
    for tag, expected in EXPECTED.items():
        reading = sink.latest(tag)
        assert reading is not None and reading.quality is Quality.GOOD, tag
        assert reading.value == expected, tag
    specs = {spec.name: spec for spec in connector.tags()}
    assert specs["level"].datatype is DataType.DOUBLE  # scaled integer
    assert specs["u16"].datatype is DataType.UINT16 and specs["f32"].datatype is DataType.FLOAT
    assert specs["text"].datatype is DataType.STRING and specs["run"].datatype is DataType.BOOLEAN
    assert specs["flow"].deadband == 3.0 and not specs["flow"].writable
    assert connector.health().state is ConnectorState.CONNECTED


async def test_reads_are_merged_and_a_refused_range_is_split(plc: Plc) -> None:
    connector = ModbusConnector(config(plc, interval_ms=60_000))
    sink = Collector()
    await connector.start(sink)
    try:
        await eventually(lambda: sink.latest("g43"))
        holding_reads = sorted(
            (address, count)
            for (code, address, count), n in plc.requests.items()
            if code == READ_HOLDING
        )
        # 0..28 in one request, 100..101 alone; 40..43 refused, then read tag by tag
        assert holding_reads == [(0, 29), (40, 1), (40, 4), (42, 1), (43, 1), (100, 2)]
        assert sum(plc.requests.values()) == 9  # + coils, discrete inputs, input registers
        assert connector.requests_per_poll() == {"fast": 5, "gappy": 3}
        bad = sink.latest("g42")
        assert bad is not None and bad.quality is Quality.BAD and bad.value is None
        assert sink.latest("g40").quality is Quality.GOOD  # type: ignore[union-attr]
        assert connector.health().read_errors >= 1
    finally:
        await connector.stop()


async def test_writes_are_encoded_range_checked_and_read_back(
    plc: Plc, running: tuple[ModbusConnector, Collector]
) -> None:
    connector, sink = running
    assert await connector.write("setpoint", 4242) == 4242
    assert await connector.write("valve", False) is False
    assert await connector.write("bit1", True) is True
    assert await connector.write("ratio", 7.0) == 7.0
    written = len(sink.readings)
    polled = await eventually(lambda: _polled_after(sink, written, "setpoint", "bit0", "bit15"))
    assert polled == {"setpoint": 4242, "bit0": True, "bit15": True}  # other bits untouched

    with pytest.raises(ValidationFailed, match="0 to 65535") as too_big:
        await connector.write("setpoint", 70000)
    assert too_big.value.code == "bad_value"
    with pytest.raises(ValidationFailed, match="boolean"):
        await connector.write("valve", 1)
    with pytest.raises(ValidationFailed) as read_only:
        await connector.write("flow", 1)
    assert read_only.value.code == "not_writable"
    with pytest.raises(NotFound):
        await connector.write("nope", 1)
    health = connector.health()
    assert health.writes == 4 and health.write_errors == 4


async def test_a_refused_write_is_write_failed(plc: Plc) -> None:
    tags = [{"name": "hole", "table": "holding_register", "address": 35, "writable": True}]
    groups = [{"name": "g", "interval_ms": 1000, "tags": tags}]
    connector = build_connector(config(plc, groups=groups))
    await connector.start(Collector())
    try:
        with pytest.raises(Conflict) as refused:
            await connector.write("hole", 1)
        assert refused.value.code == "write_failed"
        assert refused.value.params["exception_code"] == 2
    finally:
        await connector.stop()


async def test_server_loss_reports_bad_and_reconnects(
    plc: Plc, running: tuple[ModbusConnector, Collector]
) -> None:
    connector, sink = running
    await eventually(lambda: sink.latest("far"))
    await plc.stop()
    await eventually(lambda: connector.health().state is ConnectorState.RECONNECTING)
    await eventually(
        lambda: all(
            (r := sink.latest(spec.name)) and r.quality is Quality.BAD for spec in connector.tags()
        )
    )
    with pytest.raises(Unavailable) as down:
        await connector.write("setpoint", 1)
    assert down.value.code == "device_unavailable"
    bad_count = len(sink.readings)
    await asyncio.sleep(0.3)
    assert len(sink.readings) == bad_count  # BAD is reported once per outage

    await plc.start()
    await eventually(lambda: connector.health().state is ConnectorState.CONNECTED)
    await eventually(lambda: (r := sink.latest("far")) and r.quality is Quality.GOOD)
    assert connector.health().reconnects >= 1


async def test_unreachable_device_does_not_block_start() -> None:
    port = free_port()
    groups = [{"name": "g", "tags": [{"name": "t", "table": "coil", "address": 0}]}]
    connector = ModbusConnector(
        ModbusConfig.model_validate(
            {"name": "gone", "host": "127.0.0.1", "port": port, "groups": groups}
        )
    )
    sink = Collector()
    await connector.start(sink)
    health = connector.health()
    assert health.state is ConnectorState.RECONNECTING and health.last_error
    assert [(r.tag, r.quality) for r in sink.readings] == [("t", Quality.BAD)]
    await connector.stop()
    assert connector.health().state is ConnectorState.STOPPED


def test_config_rejects_what_cannot_work() -> None:
    adapter = pydantic.TypeAdapter(ModbusConfig)

    def with_tag(**tag: Any) -> dict[str, Any]:
        entry = {"name": "t", "table": "holding_register", "address": 0} | tag
        return {
            "kind": "modbus",
            "name": "m",
            "host": "h",
            "groups": [{"name": "g", "tags": [entry]}],
        }

    for bad in (
        with_tag(table="coil", type="uint16"),
        with_tag(type="bool"),  # a register bit needs 'bit'
        with_tag(bit=3, type="int16"),
        with_tag(type="string", scale=2),
        with_tag(scale=0),
        with_tag(table="input_register", writable=True),
        with_tag(table="discrete_input", writable=True),
        with_tag(type="int32", length=2),
        with_tag(address=70000),
        with_tag(byte_order="middle"),
    ):
        with pytest.raises(pydantic.ValidationError):
            adapter.validate_python(bad)
    duplicate = with_tag()
    duplicate["groups"].append({"name": "h", "tags": duplicate["groups"][0]["tags"]})
    with pytest.raises(pydantic.ValidationError, match="unique"):
        adapter.validate_python(duplicate)
