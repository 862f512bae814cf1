"""An OPC UA server (asyncua) in front of simulated machines of one site.

The address space is ``Objects/<site>/<line>/<asset>``: one variable per machine tag
(Double, UInt32 counters, String, Boolean, with a Description naming the unit and an
EngineeringUnits property) and a ``Setpoints`` folder of writable variables. Node ids
are strings in namespace ``urn:werk:demo-plant`` (index 2) spelling the browse path
below the site, e.g. ``ns=2;s=line-1/cnc-1/spindle.speed`` (see `werk.sim.registers`).

A setpoint write goes to `Machine.apply`; a value the machine refuses is answered
BadOutOfRange and leaves the setpoint as it was. A reading the machine marks uncertain
carries the status Uncertain, and before the first sample every variable is
BadWaitingForInitialData.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Final

from asyncua import ua
from asyncua.common.node import Node
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.address_space import AttributeService, NodeData
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.status_codes import StatusCodes

from werk.core.errors import Conflict, NotFound, Unavailable, ValidationFailed
from werk.sim.machines import Machine, Reading
from werk.sim.registers import (
    NAMESPACE_INDEX,
    NAMESPACE_URI,
    SETPOINTS_FOLDER,
    node_prefix,
)

_LOGGER = logging.getLogger(__name__)

APPLICATION_URI: Final = "urn:werk:demo-plant:server"
SERVER_NAME: Final = "werk demo plant"
_UNITS_URI: Final = "http://www.opcfoundation.org/UA/units/un/cefact"
# UNECE Rec. 20 common code, symbol and name of every unit the machines report.
_UNECE: Final = {
    "rpm": ("RPM", "r/min", "revolutions per minute"),
    "degC": ("CEL", "°C", "degree Celsius"),
    "mm/s": ("C16", "mm/s", "millimetre per second"),
    "kW": ("KWT", "kW", "kilowatt"),
    "pcs": ("H87", "pcs", "piece"),
}
_VARIANTS: Final = {
    "state": ua.VariantType.String,
    "stop.reason": ua.VariantType.String,
    "fault.code": ua.VariantType.String,
    "alarm.active": ua.VariantType.Boolean,
    "parts.good": ua.VariantType.UInt32,
    "parts.bad": ua.VariantType.UInt32,
    "enabled": ua.VariantType.Boolean,
}
_ZERO: Final = {
    ua.VariantType.String: "",
    ua.VariantType.Boolean: False,
    ua.VariantType.UInt32: 0,
    ua.VariantType.Double: 0.0,
}
_STATUS: Final = {
    "good": StatusCodes.Good,
    "uncertain": StatusCodes.Uncertain,
    "bad": StatusCodes.BadSensorFailure,
}
_ADMIN: Final = User(role=UserRole.Admin)


class _Refused(Exception):
    """A setpoint write the machine does not take."""


_Slot = tuple[ua.NodeId, ua.VariantType]


def variant_type(tag: str) -> ua.VariantType:
    """The OPC UA type a tag or setpoint is served as."""
    return _VARIANTS.get(tag, ua.VariantType.Double)


class _ItemWrites(AttributeService):
    """Answer each written item with its own status, so one refused setpoint fails alone."""

    async def write(self, params: ua.WriteParameters, user: User = _ADMIN) -> list[ua.StatusCode]:
        results: list[ua.StatusCode] = []
        for item in params.NodesToWrite:
            try:
                results += await super().write(ua.WriteParameters(NodesToWrite=[item]), user)
            except _Refused:
                results.append(_status(StatusCodes.BadOutOfRange))
        return results


class OpcUaPlantServer:
    """Serve machines of one site over OPC UA at ``opc.tcp://host:port``."""

    def __init__(self, machines: Sequence[Machine], port: int, host: str = "127.0.0.1") -> None:
        self.machines = list(machines)
        self.host = host
        self.port = port
        _check_layout(self.machines)
        self._server: Server | None = None
        self._tags: dict[tuple[str, str], _Slot] = {}
        self._setpoints: dict[tuple[str, str], _Slot] = {}

    @property
    def url(self) -> str:
        """The endpoint clients connect to."""
        return f"opc.tcp://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server listens."""
        return self._server is not None

    async def start(self) -> None:
        """Build the address space and listen; raise Unavailable if the port is taken."""
        if self._server is not None:
            return
        # Fail fast: building the address space takes a second or two.
        self._check_port()
        server = await self._prepare()
        try:
            await server.start()
        except OSError as exc:
            raise self._port_in_use(exc) from exc
        self._server = server
        _LOGGER.info("OPC UA server for %d machines at %s", len(self.machines), self.url)

    async def stop(self) -> None:
        """Close every session and stop listening; safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop()

    async def publish(self, machine: Machine, readings: Sequence[Reading], now_ms: int) -> None:
        """Show one sample of `machine`, stamped `now_ms`."""
        server = self._running()
        stamp = ua.DateTime.fromtimestamp(now_ms / 1000, UTC)
        for reading in readings:
            node, vtype = _slot(self._tags, machine, reading.tag)
            await server.write_attribute_value(node, _data_value(reading, vtype, stamp))
        for name, value in machine.setpoints.items():
            node, vtype = _slot(self._setpoints, machine, name)
            shown = server.read_attribute_value(node).Value
            if shown is None or shown.Value != value:
                await server.write_attribute_value(node, ua.DataValue(ua.Variant(value, vtype)))

    def _check_port(self) -> None:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self.host, self.port))
            except OSError as exc:
                raise self._port_in_use(exc) from exc

    def _port_in_use(self, exc: OSError) -> Unavailable:
        return Unavailable(
            f"the OPC UA server cannot listen on {self.host}:{self.port}: {exc}",
            code="port_in_use",
            port=self.port,
        )

    def _running(self) -> Server:
        if self._server is None:
            raise Conflict("the OPC UA server is not started", code="not_started")
        return self._server

    async def _prepare(self) -> Server:
        server = Server()
        await server.init()
        server.set_endpoint(self.url)
        server.set_server_name(SERVER_NAME)
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        await server.set_application_uri(APPLICATION_URI)
        index = await server.register_namespace(NAMESPACE_URI)
        if index != NAMESPACE_INDEX:
            raise Conflict(f"{NAMESPACE_URI} got index {index}", code="namespace_index")
        server.iserver.attribute_service = _ItemWrites(server.iserver.aspace)
        for machine in self.machines:
            await self._add_machine(server, machine)
        return server

    async def _add_machine(self, server: Server, machine: Machine) -> None:
        site = await _child(server.nodes.objects, machine.node.site, machine.node.site)
        line = await _child(site, machine.node.line, machine.node.line)
        prefix = node_prefix(machine)
        device = await line.add_object(_node_id(prefix), _name(machine.spec.asset))
        for tag, unit in machine.tags.items():
            variable = await _variable(device, f"{prefix}/{tag}", tag, unit)
            self._tags[(machine.spec.asset, tag)] = (variable.nodeid, variant_type(tag))
            waiting = _status(StatusCodes.BadWaitingForInitialData)
            await server.write_attribute_value(variable.nodeid, ua.DataValue(StatusCode=waiting))
        folder_id = _node_id(f"{prefix}/{SETPOINTS_FOLDER}")
        folder = await device.add_folder(folder_id, _name(SETPOINTS_FOLDER))
        for name in machine.setpoints:
            await self._add_setpoint(server, folder, machine, name)

    async def _add_setpoint(
        self, server: Server, folder: Node, machine: Machine, name: str
    ) -> None:
        setpoint = machine.setpoint(name)
        node_id = f"{node_prefix(machine)}/{SETPOINTS_FOLDER}/{name}"
        variable = await _variable(folder, node_id, name, setpoint.unit, machine.setpoints[name])
        await variable.set_writable()
        if setpoint.low is not None and setpoint.high is not None:
            limits = ua.Range(Low=setpoint.low, High=setpoint.high)
            await _property(variable, node_id, "EURange", limits)
        vtype = variant_type(name)
        server.set_attribute_value_setter(variable.nodeid, _setter(machine, name, vtype))
        self._setpoints[(machine.spec.asset, name)] = (variable.nodeid, vtype)


def _slot(slots: dict[tuple[str, str], _Slot], machine: Machine, name: str) -> _Slot:
    try:
        return slots[(machine.spec.asset, name)]
    except KeyError:
        raise NotFound(
            f"the OPC UA server has no variable {name!r} of {machine.spec.asset}",
            code="unknown_variable",
            asset=machine.spec.asset,
            name=name,
        ) from None


def _check_layout(machines: Sequence[Machine]) -> None:
    sites = {machine.node.site for machine in machines}
    if len(sites) > 1:
        raise ValidationFailed(
            f"one OPC UA server serves one site, got {sorted(sites)}", code="mixed_sites"
        )
    prefixes = [node_prefix(machine) for machine in machines]
    repeated = sorted({p for p in prefixes if prefixes.count(p) > 1})
    if repeated:
        raise Conflict(f"machines share node ids: {repeated}", code="duplicate_node")


def _node_id(path: str) -> ua.NodeId:
    return ua.NodeId(ua.String(path), ua.Int16(NAMESPACE_INDEX))


def _status(code: int) -> ua.StatusCode:
    return ua.StatusCode(ua.UInt32(code))


def _name(name: str) -> ua.QualifiedName:
    return ua.QualifiedName(name, NAMESPACE_INDEX)


async def _child(parent: Node, path: str, name: str) -> Node:
    """Return the object `path` below `parent`, creating it on first use."""
    for child in await parent.get_children():
        if child.nodeid == _node_id(path):
            return child
    return await parent.add_object(_node_id(path), _name(name))


async def _variable(
    parent: Node, path: str, name: str, unit: str | None, value: object = None
) -> Node:
    vtype = variant_type(name)
    initial = _ZERO[vtype] if value is None else value
    variable = await parent.add_variable(_node_id(path), _name(name), ua.Variant(initial, vtype))
    text = name if unit is None else f"{name} in {unit}"
    await variable.write_attribute(
        AttributeIds.Description, ua.DataValue(ua.Variant(ua.LocalizedText(text)))
    )
    if unit in _UNECE:
        await _property(variable, path, "EngineeringUnits", _engineering_units(unit))
    return variable


async def _property(variable: Node, path: str, name: str, value: object) -> None:
    """Add a standard property (EngineeringUnits, EURange) to a variable."""
    await variable.add_property(_node_id(f"{path}/{name}"), ua.QualifiedName(name, 0), value)


def _engineering_units(unit: str) -> ua.EUInformation:
    code, symbol, name = _UNECE[unit]
    return ua.EUInformation(
        NamespaceUri=_UNITS_URI,
        UnitId=int.from_bytes(code.encode("ascii"), "big"),
        DisplayName=ua.LocalizedText(symbol),
        Description=ua.LocalizedText(name),
    )


def _data_value(reading: Reading, vtype: ua.VariantType, stamp: ua.DateTime) -> ua.DataValue:
    return ua.DataValue(
        ua.Variant(reading.value, vtype),
        StatusCode=_status(_STATUS[reading.quality]),
        SourceTimestamp=stamp,
        ServerTimestamp=stamp,
    )


def _setter(
    machine: Machine, name: str, vtype: ua.VariantType
) -> Callable[[NodeData, AttributeIds, ua.DataValue], None]:
    """Route a write of one setpoint variable through `Machine.apply`."""

    def write(node: NodeData, attribute: AttributeIds, value: ua.DataValue) -> None:
        given = None if value.Value is None else value.Value.Value
        try:
            applied = machine.apply(name, given)
        except ValidationFailed as exc:
            _LOGGER.info("%s refused %s: %s", machine.spec.asset, name, exc)
            raise _Refused(str(exc)) from exc
        stored = dataclasses.replace(value, Value=ua.Variant(applied, vtype))
        node.attributes[attribute].value = stored

    return write
