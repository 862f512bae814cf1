"""A Modbus TCP server (pymodbus) in front of simulated machines: one unit id per machine.

Each unit is laid out by `werk.sim.registers.register_map`: measurements in input
registers and discrete inputs, setpoints in holding registers and the enable coil.

* A write goes to `Machine.apply`. A value the machine refuses is answered with
  exception 3 (ILLEGAL DATA VALUE) and changes nothing; so is a write that covers only
  part of a multi-register value or an unmapped coil, with exception 2 (ILLEGAL DATA
  ADDRESS), as is any unmapped register.
* Until its first sample a unit answers exception 6 (SERVER DEVICE BUSY).
* Modbus has no quality: a reading the machine marks uncertain leaves its register at
  the last good value.
* A unit id that holds no machine answers exception 2.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from werk.core.errors import Conflict, NotFound, Unavailable, ValidationFailed
from werk.sim.machines import Machine, Reading, State, Value
from werk.sim.registers import BIT_TABLES, RUNNING, Register, Table, register_map

_LOGGER = logging.getLogger(__name__)

MAX_UNIT_ID: Final = 247
_TABLES: Final[tuple[Table, ...]] = ("coil", "discrete_input", "holding_register", "input_register")
_FUNCTION_TABLES: Final[dict[int, Table]] = {
    1: "coil",
    5: "coil",
    15: "coil",
    2: "discrete_input",
    4: "input_register",
    3: "holding_register",
    6: "holding_register",
    16: "holding_register",
    22: "holding_register",
    23: "holding_register",
}


class _Unit:
    """One machine behind a unit id: its register image and its writes."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.registers = register_map(machine.spec.kind)
        self.ready = False
        self._image: dict[Table, dict[int, int]] = {table: {} for table in _TABLES}
        for register in self.registers:
            for address in range(register.address, register.address + register.size):
                self._image[register.table][address] = 0
        self._failing: set[str] = set()

    def device(self, unit_id: int) -> SimDevice:
        """Describe the unit's four tables to pymodbus."""
        coils, inputs, holding, measured = (self._blocks(table) for table in _TABLES)
        return SimDevice(id=unit_id, simdata=(coils, inputs, holding, measured), action=self.act)

    def _blocks(self, table: Table) -> list[SimData]:
        readonly = table in ("discrete_input", "input_register")
        if table in BIT_TABLES:
            return [
                SimData(r.address, values=False, datatype=DataType.BITS, readonly=readonly)
                for r in self.registers
                if r.table == table
            ]
        return [
            SimData(r.address, count=r.size, datatype=DataType.REGISTERS, readonly=readonly)
            for r in self.registers
            if r.table == table
        ]

    async def act(
        self,
        function_code: int,
        start: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Serve one request on `registers`, pymodbus's memory of the table from `start`."""
        if not self.ready:
            return ExcCodes.DEVICE_BUSY
        table = _FUNCTION_TABLES[function_code]
        if values is not None:
            refusal = self._write(table, address, values)
            if refusal is not None:
                return refusal
        self._fill(table, start, registers)
        return None

    def update(self, readings: Sequence[Reading]) -> None:
        """Show one sample; uncertain readings keep their registers' last good value."""
        values: dict[str, Value] = {r.tag: r.value for r in readings if r.quality == "good"}
        if "state" in values:
            values[RUNNING] = values["state"] == State.RUNNING
        values.update(self.machine.setpoints)
        for register in self.registers:
            if register.name in values:
                self._store(register, values[register.name])
        self.ready = True

    def _store(self, register: Register, value: Value) -> None:
        if register.table in BIT_TABLES:
            self._image[register.table][register.address] = int(bool(value))
            return
        try:
            words = register.encode(value)
        except ValidationFailed as exc:
            self._note(register.name, exc)
            return
        self._note(register.name, None)
        for offset, word in enumerate(words):
            self._image[register.table][register.address + offset] = word

    def _note(self, name: str, error: ValidationFailed | None) -> None:
        asset = self.machine.spec.asset
        if error is not None and name not in self._failing:
            self._failing.add(name)
            _LOGGER.warning("%s: %s keeps its last value: %s", asset, name, error)
        elif error is None and name in self._failing:
            self._failing.discard(name)
            _LOGGER.info("%s: %s is published again", asset, name)

    def _fill(self, table: Table, start: int, registers: list[int]) -> None:
        image = self._image[table]
        if table not in BIT_TABLES:
            for address, word in image.items():
                registers[address - start] = word
            return
        # pymodbus packs 16 bits per register, the lowest address in the lowest bit.
        for address, bit in image.items():
            index, mask = address // 16 - start, 1 << (address % 16)
            registers[index] = registers[index] | mask if bit else registers[index] & ~mask

    def _write(self, table: Table, address: int, values: list[int] | list[bool]) -> ExcCodes | None:
        touched = self._touched(table, address, len(values))
        if touched is None:
            return ExcCodes.ILLEGAL_ADDRESS
        try:
            check = self.machine.check
            changes = [(r, check(r.name, _written(r, address, values))) for r in touched]
        except ValidationFailed as exc:
            _LOGGER.info("%s refused a write: %s", self.machine.spec.asset, exc)
            return ExcCodes.ILLEGAL_VALUE
        for register, value in changes:
            self._store(register, self.machine.apply(register.name, value))
        return None

    def _touched(self, table: Table, address: int, count: int) -> list[Register] | None:
        """The tags a write covers, or None if it covers part of one or an unmapped bit."""
        end = address + count
        touched = [
            r for r in self.registers if r.table == table and r.address < end and address < r.end
        ]
        if any(r.address < address or r.end > end for r in touched):
            return None
        if table in BIT_TABLES and len(touched) != count:
            return None
        return touched


def _written(register: Register, address: int, values: list[int] | list[bool]) -> Value:
    chunk = values[register.address - address : register.end - address]
    if register.table in BIT_TABLES:
        return bool(chunk[0])
    return register.decode([int(word) for word in chunk])


def _nobody() -> SimDevice:
    """A catch-all for unit ids without a machine: every address is illegal."""
    return SimDevice(id=0, simdata=[SimData(0, datatype=DataType.INVALID)])


class ModbusPlantServer:
    """Serve machines over Modbus TCP, unit ids counting up from `first_unit_id`."""

    def __init__(
        self,
        machines: Sequence[Machine],
        port: int,
        host: str = "127.0.0.1",
        first_unit_id: int = 1,
    ) -> None:
        if first_unit_id < 1 or first_unit_id + len(machines) - 1 > MAX_UNIT_ID:
            raise ValidationFailed(
                f"unit ids {first_unit_id}.. for {len(machines)} machines leave 1..{MAX_UNIT_ID}",
                code="bad_unit_id",
            )
        self.host = host
        self.port = port
        self._units = {first_unit_id + i: _Unit(m) for i, m in enumerate(machines)}
        self._by_asset = {unit.machine.spec.asset: unit for unit in self._units.values()}
        if len(self._by_asset) != len(self._units):
            raise Conflict("two machines share an asset name", code="duplicate_asset")
        self._server: ModbusTcpServer | None = None

    @property
    def unit_ids(self) -> dict[str, int]:
        """The unit id of every machine, by asset."""
        return {unit.machine.spec.asset: unit_id for unit_id, unit in self._units.items()}

    @property
    def running(self) -> bool:
        """Whether the server listens."""
        return self._server is not None

    async def start(self) -> None:
        """Listen on host:port; raise Unavailable if the port is taken."""
        if self._server is not None:
            return
        devices = [unit.device(unit_id) for unit_id, unit in self._units.items()]
        server = ModbusTcpServer([*devices, _nobody()], address=(self.host, self.port))
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:
            raise Unavailable(
                f"the Modbus server cannot listen on {self.host}:{self.port}",
                code="port_in_use",
                port=self.port,
            ) from exc
        self._server = server
        _LOGGER.info("Modbus server for %d units at %s:%s", len(self._units), self.host, self.port)

    async def stop(self) -> None:
        """Close every connection and stop listening; safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]

    async def publish(self, machine: Machine, readings: Sequence[Reading], now_ms: int) -> None:
        """Show one sample of `machine` in its unit's registers."""
        unit = self._by_asset.get(machine.spec.asset)
        if unit is None:
            raise NotFound(
                f"the Modbus server has no unit for {machine.spec.asset}",
                code="unknown_asset",
                asset=machine.spec.asset,
            )
        unit.update(readings)
