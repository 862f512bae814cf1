"""Modbus TCP connector: poll groups of registers and bits with pymodbus.

Each poll group is read every `interval_ms` with as few requests as possible: tags of
one table that lie at most `merge_gap` addresses apart share a request (at most 125
registers or 2000 bits). An exception response marks that request's tags BAD; when a
merged request is refused for its address range it is split into one request per
tag, so only the tags that are really unmapped stay BAD.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.pdu import ModbusPDU

from werk.core.clock import now_ns
from werk.core.errors import Conflict, Unavailable, WerkError
from werk.edge.connectors.base import (
    Connector,
    ConnectorConfigBase,
    TagName,
    Unit,
    cancel_and_wait,
)
from werk.edge.connectors.modbus_codec import (
    ModbusType,
    Order,
    ReadPlan,
    RegisterCodec,
    Span,
    Table,
    check_bool,
    plan_reads,
)
from werk.edge.model import Reading, TagSpec, Value
from werk.uns.contracts import Quality

_LOGGER = logging.getLogger(__name__)

_BIT_TABLES: Final = ("coil", "discrete_input")
_WRITABLE_TABLES: Final = ("coil", "holding_register")
# Exception codes that say the request's address range itself is wrong.
_ADDRESS_REFUSALS: Final = (2, 3)
_Finite = Annotated[float, Field(allow_inf_nan=False)]


class ModbusTag(BaseModel):
    """One value in a Modbus table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: TagName
    table: Table
    address: int = Field(ge=0, le=65535)
    type: ModbusType | None = None
    length: int = Field(default=1, ge=1, le=125)
    bit: int | None = Field(default=None, ge=0, le=15)
    scale: _Finite = 1.0
    offset: _Finite = 0.0
    deadband: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    writable: bool = False
    unit: Unit | None = None
    byte_order: Order | None = None
    word_order: Order | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        problem = _tag_problem(self)
        if problem:
            raise ValueError(f"tag {self.name!r}: {problem}")
        return self

    @property
    def value_type(self) -> ModbusType:
        """The configured type, or the table's natural one (bool for bits, else uint16)."""
        if self.type is not None:
            return self.type
        return "bool" if self.table in _BIT_TABLES or self.bit is not None else "uint16"


def _tag_problem(tag: ModbusTag) -> str | None:
    kind = tag.value_type
    if tag.table in _BIT_TABLES and (kind != "bool" or tag.bit is not None):
        return f"a {tag.table} is a bool without 'bit'"
    if kind == "bool" and tag.table not in _BIT_TABLES and tag.bit is None:
        return "a bool in a register needs 'bit'"
    if tag.bit is not None and kind != "bool":
        return "'bit' needs type bool"
    if kind in ("bool", "string") and (tag.scale != 1.0 or tag.offset != 0.0):
        return f"a {kind} cannot be scaled"
    if tag.scale == 0.0:
        return "scale must not be 0"
    if tag.length != 1 and kind != "string":
        return "'length' applies to strings only"
    if tag.writable and tag.table not in _WRITABLE_TABLES:
        return f"a {tag.table} cannot be written"
    return None


class PollGroup(BaseModel):
    """Tags read together at one interval."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: TagName
    interval_ms: int = Field(default=1000, ge=1, le=3_600_000)
    tags: list[ModbusTag] = Field(min_length=1)


class ModbusConfig(ConnectorConfigBase):
    """A Modbus TCP device."""

    kind: Literal["modbus"] = "modbus"
    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255)
    byte_order: Order = "big"
    word_order: Order = "big"
    retries: int = Field(default=2, ge=0, le=10)
    merge_gap: int = Field(default=8, ge=0, le=124)
    groups: list[PollGroup] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_names(self) -> Self:
        names = [tag.name for group in self.groups for tag in group.tags]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"tag names must be unique, repeated: {', '.join(duplicates)}")
        return self


@dataclass(frozen=True, slots=True)
class _Slot:
    """A configured tag with its codec and published spec."""

    tag: ModbusTag
    codec: RegisterCodec
    spec: TagSpec

    @property
    def span(self) -> Span[_Slot]:
        """The addresses the tag occupies."""
        size = 1 if self.tag.table in _BIT_TABLES else self.codec.registers
        return Span(self.tag.table, self.tag.address, size, self)


@dataclass(slots=True)
class _Group:
    """A poll group with its current read plan."""

    config: PollGroup
    reads: list[ReadPlan[_Slot]] = field(default_factory=list)


class ModbusConnector(Connector[ModbusConfig]):
    """Polls a Modbus TCP device in groups and writes coils and holding registers."""

    def __init__(self, config: ModbusConfig) -> None:
        super().__init__(config)
        self._slots = {s.tag.name: s for s in _slots(config)}
        self._groups = [_group(g, self._slots, config.merge_gap) for g in config.groups]
        self._client: AsyncModbusTcpClient | None = None
        self._set_specs(s.spec for s in self._slots.values())

    def requests_per_poll(self) -> dict[str, int]:
        """How many read requests each poll group needs now."""
        return {g.config.name: len(g.reads) for g in self._groups}

    async def _connect(self) -> None:
        config = self._config
        client = AsyncModbusTcpClient(
            config.host,
            port=config.port,
            name=config.name,
            timeout=config.timeout_s,
            retries=config.retries,
            reconnect_delay=0,
        )
        async with asyncio.timeout(config.timeout_s + 1.0):
            connected = await client.connect()
        if not connected:
            client.close()
            raise ConnectionError(f"cannot connect to {config.host}:{config.port}")
        self._client = client

    async def _serve(self) -> None:
        tasks = [asyncio.create_task(self._poll_forever(group)) for group in self._groups]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            error = await cancel_and_wait(tasks, self._config.timeout_s)
        if error is not None:
            raise error

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def _poll_forever(self, group: _Group) -> None:
        loop = asyncio.get_running_loop()
        period = group.config.interval_ms / 1000
        due = loop.time()
        while True:
            self._emit(await self._poll(group))
            due = max(due + period, loop.time())
            await asyncio.sleep(due - loop.time())

    async def _poll(self, group: _Group) -> list[Reading]:
        readings: list[Reading] = []
        for plan in list(group.reads):
            readings.extend(await self._read_plan(group, plan))
        return readings

    async def _read_plan(self, group: _Group, plan: ReadPlan[_Slot]) -> list[Reading]:
        try:
            with self._map_errors(None):
                values = await self._read(plan.table, plan.address, plan.count)
        except Conflict as exc:
            if exc.params.get("exception_code") in _ADDRESS_REFUSALS and len(plan.spans) > 1:
                return await self._split(group, plan)
            return self._failed(plan, exc)
        except Unavailable as exc:
            if self._client is None or not self._client.connected:
                raise ConnectionError(exc.message) from exc
            return self._failed(plan, exc)
        self._count_reads(len(plan.spans))
        return _decode(plan, values, now_ns())

    async def _split(self, group: _Group, plan: ReadPlan[_Slot]) -> list[Reading]:
        _LOGGER.info(
            "%s: %s %d..%d refused as one request; reading its tags one by one",
            self.name,
            plan.table,
            plan.address,
            plan.address + plan.count - 1,
        )
        singles = [plan_reads([span], 0)[0] for span in plan.spans]
        at = group.reads.index(plan)
        group.reads[at : at + 1] = singles
        readings: list[Reading] = []
        for single in singles:
            readings.extend(await self._read_plan(group, single))
        return readings

    def _failed(self, plan: ReadPlan[_Slot], exc: WerkError) -> list[Reading]:
        _LOGGER.debug("%s: read of %s %d failed: %s", self.name, plan.table, plan.address, exc)
        self._count_reads(0, len(plan.spans))
        ts_ns = now_ns()
        return [Reading(span.item.spec.name, None, ts_ns, Quality.BAD) for span in plan.spans]

    async def _read(self, table: Table, address: int, count: int) -> list[int] | list[bool]:
        client = self._connected_client()
        device_id = self._config.unit_id
        readers = {
            "coil": client.read_coils,
            "discrete_input": client.read_discrete_inputs,
            "holding_register": client.read_holding_registers,
            "input_register": client.read_input_registers,
        }
        response = await self._call(readers[table](address, count=count, device_id=device_id))
        if table in _BIT_TABLES:
            return list(response.bits[:count])
        return list(response.registers[:count])

    async def _write(self, tag: str, value: Value) -> Value:
        slot = self._slots[tag]
        client = self._connected_client()
        address, device_id = slot.tag.address, self._config.unit_id
        if slot.tag.table == "coil":
            await self._call(client.write_coil(address, check_bool(value), device_id=device_id))
        elif slot.codec.bit is not None:
            current = await self._read("holding_register", address, 1)
            word = slot.codec.set_bit(int(current[0]), value)
            await self._call(client.write_register(address, word, device_id=device_id))
        else:
            words = slot.codec.encode(value)
            await self._call(client.write_registers(address, words, device_id=device_id))
        span = slot.span
        return _decode_one(slot, await self._read(span.table, span.address, span.size))

    def _connected_client(self) -> AsyncModbusTcpClient:
        if self._client is None or not self._client.connected:
            raise ConnectionException("not connected")
        return self._client

    async def _call(self, request: Awaitable[ModbusPDU]) -> ModbusPDU:
        guard = self._config.timeout_s * (self._config.retries + 1) + 1.0
        async with asyncio.timeout(guard):
            response = await request
        if response.isError():
            raise _Refused(response)
        return response

    @contextlib.contextmanager
    def _map_errors(self, tag: str | None) -> Iterator[None]:
        action = "read" if tag is None else f"write to {tag!r}"
        target = f"{self._config.host}:{self._config.port}"
        try:
            yield
        except _Refused as exc:
            code = exc.exception_code
            raise Conflict(
                f"{self.name} refused the {action} (Modbus exception {code})",
                code="read_failed" if tag is None else "write_failed",
                exception_code=code,
            ) from exc
        except (ModbusException, OSError, TimeoutError) as exc:
            raise Unavailable(
                f"{self.name} ({target}) did not answer the {action}: {exc}",
                code="device_unavailable",
                device=self.name,
            ) from exc


class _Refused(Exception):
    """The device answered with a Modbus exception response."""

    def __init__(self, response: ModbusPDU) -> None:
        super().__init__(str(response))
        self.exception_code = int(response.exception_code)


def _slots(config: ModbusConfig) -> list[_Slot]:
    return [_slot(config, tag) for group in config.groups for tag in group.tags]


def _slot(config: ModbusConfig, tag: ModbusTag) -> _Slot:
    codec = RegisterCodec(
        type=tag.value_type,
        byte_order=tag.byte_order or config.byte_order,
        word_order=tag.word_order or config.word_order,
        length=tag.length,
        bit=tag.bit,
        scale=tag.scale,
        offset=tag.offset,
    )
    numeric = codec.type not in ("bool", "string")
    deadband = tag.deadband if tag.deadband is not None else config.deadband
    spec = TagSpec(
        name=tag.name,
        datatype=codec.datatype,
        writable=tag.writable,
        unit=tag.unit,
        deadband=deadband if numeric else 0.0,
    )
    return _Slot(tag, codec, spec)


def _group(config: PollGroup, slots: dict[str, _Slot], max_gap: int) -> _Group:
    spans = [slots[tag.name].span for tag in config.tags]
    return _Group(config, plan_reads(spans, max_gap))


def _decode(plan: ReadPlan[_Slot], values: Sequence[Any], ts_ns: int) -> list[Reading]:
    readings = []
    for span in plan.spans:
        at = span.address - plan.address
        value = _decode_one(span.item, values[at : at + span.size])
        readings.append(Reading(span.item.spec.name, value, ts_ns, Quality.GOOD))
    return readings


def _decode_one(slot: _Slot, values: Sequence[Any]) -> Value:
    if slot.tag.table in _BIT_TABLES:
        return bool(values[0])
    return slot.codec.decode([int(v) for v in values])
