"""OPC UA connector: subscribe to variables of an OPC UA server with asyncua.

Tags come from browse rules (every variable below a root node, named by its browse
path relative to the root) and from explicit node ids. Values arrive as data change
notifications of one subscription at the configured publishing and sampling
intervals. After the server goes away the connector reconnects, browses again and
recreates the subscription with its monitored items.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, Self

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.subscription import (
    DataChangeEvent,
    OverflowPolicy,
    StatusChangeEvent,
    Subscription,
)
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaError, UaStatusCodeError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    model_validator,
)

from werk.core.errors import Conflict, Unavailable
from werk.edge.connectors.base import (
    Connector,
    ConnectorConfigBase,
    TagName,
    Unit,
    cancel_and_wait,
    describe,
)
from werk.edge.connectors.opcua_nodes import (
    NodeInfo,
    browse_variables,
    datatype_of,
    read_node_info,
    reading_value,
    timestamp_of,
    to_value,
    to_variant,
    variant_of,
)
from werk.edge.model import Reading, TagSpec, Value
from werk.sparkplug.datatypes import FLOAT_TYPES, INTEGER_TYPES, DataType

_LOGGER = logging.getLogger(__name__)

_SESSION_TIMEOUT_MS: Final = 120_000
_SUPPORTED: Final = frozenset(d for d in DataType if variant_of(d) is not None)
# Status codes that mean the connection, not the request, failed.
_UNAVAILABLE: Final = frozenset(
    {
        StatusCodes.BadCommunicationError,
        StatusCodes.BadConnectionClosed,
        StatusCodes.BadServerNotConnected,
        StatusCodes.BadSecureChannelClosed,
        StatusCodes.BadSessionClosed,
        StatusCodes.BadSessionIdInvalid,
        StatusCodes.BadShutdown,
        StatusCodes.BadServerHalted,
        StatusCodes.BadTimeout,
        StatusCodes.BadTooManyOperations,
    }
)


def _node_id(text: str) -> str:
    try:
        ua.NodeId.from_string(text)
    except Exception as exc:
        raise ValueError(f"{text!r} is not an OPC UA node id: {exc}") from exc
    return text


def _datatype(value: Any) -> Any:
    if isinstance(value, str) and value.upper() in DataType.__members__:
        return DataType[value.upper()]
    return value


def _supported(datatype: DataType) -> DataType:
    if datatype not in _SUPPORTED:
        raise ValueError(f"datatype {datatype.name} is not supported for OPC UA tags")
    return datatype


NodeIdText = Annotated[str, StringConstraints(min_length=1), AfterValidator(_node_id)]
ScalarType = Annotated[DataType, BeforeValidator(_datatype), AfterValidator(_supported)]


class BrowseRule(BaseModel):
    """Every variable below `root` (to `max_depth` levels) becomes a tag."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: NodeIdText
    max_depth: int | None = Field(default=None, ge=1, le=64)


class OpcUaTag(BaseModel):
    """One variable named explicitly; unset fields are read from the server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: TagName
    node_id: NodeIdText
    datatype: ScalarType | None = None
    deadband: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    writable: bool | None = None
    unit: Unit | None = None


class OpcUaConfig(ConnectorConfigBase):
    """An OPC UA server (security mode None, optional user name and password)."""

    kind: Literal["opcua"] = "opcua"
    endpoint: Annotated[str, StringConstraints(pattern=r"^opc\.tcp://[^/\s]+")]
    security: Literal["none"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    publishing_interval_ms: int = Field(default=500, ge=10, le=3_600_000)
    sampling_interval_ms: int = Field(default=250, ge=0, le=3_600_000)
    queue_size: int = Field(default=10, ge=1, le=10_000)
    browse: list[BrowseRule] = Field(default_factory=list)
    tags: list[OpcUaTag] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if not self.browse and not self.tags:
            raise ValueError("an OPC UA connector needs 'browse' rules or 'tags'")
        if self.password is not None and self.username is None:
            raise ValueError("'password' needs 'username'")
        names = [tag.name for tag in self.tags]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"tag names must be unique, repeated: {', '.join(duplicates)}")
        return self


@dataclass(frozen=True, slots=True)
class _Binding:
    """A tag bound to a variable of the server."""

    spec: TagSpec
    node_id: ua.NodeId
    variant: ua.VariantType


class OpcUaConnector(Connector[OpcUaConfig]):
    """Subscribes to an OPC UA server's variables and writes them."""

    def __init__(self, config: OpcUaConfig) -> None:
        super().__init__(config)
        self._client: Client | None = None
        self._subscription: Subscription | None = None
        self._bindings: dict[str, _Binding] = {}
        self._by_node: dict[ua.NodeId, list[str]] = {}
        self._lost: asyncio.Event = asyncio.Event()
        self._loss: BaseException | None = None
        self._pending: list[Reading] = []
        self._discovered = False
        self._set_specs(self._configured_specs())

    async def _connect(self) -> None:
        client = Client(
            self._config.endpoint,
            timeout=self._config.timeout_s,
            watchdog_intervall=self._config.timeout_s,
        )
        if self._config.username is not None:
            client.set_user(self._config.username)
        if self._config.password is not None:
            client.set_password(self._config.password.get_secret_value())
        self._lost, self._loss = asyncio.Event(), None
        client.session_timeout = _SESSION_TIMEOUT_MS
        client.connection_lost_callback = self._on_connection_lost
        self._client = client
        async with asyncio.timeout(self._config.timeout_s):
            await client.connect()
        self._bind(await self._discover(client))
        self._subscription = await self._subscribe(client)

    async def _serve(self) -> None:
        if self._subscription is None:
            raise ConnectionError("no subscription")
        consumer = asyncio.create_task(self._consume(self._subscription))
        lost = asyncio.create_task(self._lost.wait())
        try:
            await asyncio.wait({consumer, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            error = await cancel_and_wait([consumer, lost], self._config.timeout_s)
        if error is not None:
            raise error
        raise ConnectionError(describe(self._loss) if self._loss else "connection lost")

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        self._subscription = None
        if client is None:
            return
        try:
            async with asyncio.timeout(self._config.timeout_s):
                await client.disconnect()
        except Exception as exc:
            _LOGGER.debug("%s: disconnect: %s", self.name, describe(exc))

    async def _on_connection_lost(self, exc: Exception) -> None:
        self._loss = exc
        self._lost.set()

    # -- discovery ------------------------------------------------------------------------

    def _configured_specs(self) -> list[TagSpec]:
        return [
            self._spec(tag.name, tag.datatype, tag.writable or False, tag)
            for tag in self._config.tags
            if tag.datatype is not None
        ]

    def _spec(self, name: str, datatype: DataType, writable: bool, tag: OpcUaTag | None) -> TagSpec:
        numeric = datatype in INTEGER_TYPES or datatype in FLOAT_TYPES
        deadband = tag.deadband if tag is not None and tag.deadband is not None else None
        if deadband is None:
            deadband = self._config.deadband if numeric else 0.0
        unit = tag.unit if tag is not None else None
        return TagSpec(
            name=name, datatype=datatype, writable=writable, unit=unit, deadband=deadband
        )

    async def _discover(self, client: Client) -> list[_Binding]:
        found: dict[str, tuple[ua.NodeId, OpcUaTag | None]] = {}
        for rule in self._config.browse:
            root = ua.NodeId.from_string(rule.root)
            for path, node_id in await browse_variables(client, root, rule.max_depth):
                found.setdefault(path, (node_id, None))
        for tag in self._config.tags:
            found[tag.name] = (ua.NodeId.from_string(tag.node_id), tag)
        infos = await read_node_info(client, [node_id for node_id, _ in found.values()])
        bindings = [
            binding
            for (name, (node_id, tag)), info in zip(found.items(), infos, strict=True)
            if (binding := self._binding(name, node_id, tag, info)) is not None
        ]
        self._discovered = True
        return bindings

    def _binding(
        self, name: str, node_id: ua.NodeId, tag: OpcUaTag | None, info: NodeInfo
    ) -> _Binding | None:
        datatype = tag.datatype if tag is not None else None
        variant = info.variant if info.exists else None
        if variant is None and datatype is not None:
            variant = variant_of(datatype)
        if datatype is None and variant is not None:
            datatype = datatype_of(variant)
        if variant is None or datatype is None or not info.scalar:
            self._skip(name, node_id, info)
            return None
        writable = tag.writable if tag is not None and tag.writable is not None else info.writable
        return _Binding(self._spec(name, datatype, writable, tag), node_id, variant)

    def _skip(self, name: str, node_id: ua.NodeId, info: NodeInfo) -> None:
        log = _LOGGER.debug if self._discovered else _LOGGER.warning
        reason = "does not exist" if not info.exists else "has no scalar type werk carries"
        log("%s: skipping %s (%s): the node %s", self.name, name, node_id.to_string(), reason)

    def _bind(self, bindings: Sequence[_Binding]) -> None:
        by_node: dict[ua.NodeId, list[str]] = {}
        for binding in bindings:
            by_node.setdefault(binding.node_id, []).append(binding.spec.name)
        self._bindings = {b.spec.name: b for b in bindings}
        self._by_node = by_node
        self._set_specs(b.spec for b in bindings)

    # -- subscription ---------------------------------------------------------------------

    async def _subscribe(self, client: Client) -> Subscription:
        config = self._config
        nodes = list(self._by_node)
        subscription = await client.create_subscription(
            self._subscription_parameters(),
            None,
            queue_maxsize=max(1000, 2 * len(nodes) * config.queue_size),
            overflow=OverflowPolicy.DROP_OLDEST,
        )
        if not nodes:
            _LOGGER.warning("%s: no variables to subscribe to", self.name)
            return subscription
        results = await subscription.subscribe_data_change(
            [client.get_node(node_id) for node_id in nodes],
            queuesize=config.queue_size,
            sampling_interval=ua.Double(config.sampling_interval_ms),
        )
        failed = [
            name
            for node_id, result in zip(nodes, results, strict=True)
            if _failed(result)
            for name in self._by_node[node_id]
        ]
        if failed:
            _LOGGER.warning("%s: cannot monitor %s", self.name, ", ".join(failed))
            self._count_reads(0, len(failed))
            self._emit_bad(failed)
        return subscription

    def _subscription_parameters(self) -> ua.CreateSubscriptionParameters:
        # Keep-alives about every timeout_s let a silent subscription be noticed.
        interval = self._config.publishing_interval_ms
        keepalive = min(max(math.ceil(self._config.timeout_s * 1000 / interval), 1), 5000)
        return ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=ua.Double(interval),
            RequestedLifetimeCount=ua.UInt32(keepalive * 6),
            RequestedMaxKeepAliveCount=ua.UInt32(keepalive),
            MaxNotificationsPerPublish=ua.UInt32(10_000),
            PublishingEnabled=True,
        )

    async def _consume(self, subscription: Subscription) -> None:
        loop = asyncio.get_running_loop()
        async for event in subscription:
            if isinstance(event, StatusChangeEvent):
                _check_status(event.notification.Status)
            elif isinstance(event, DataChangeEvent):
                if not self._pending:
                    loop.call_soon(self._flush)
                self._pending.extend(self._reading(event))

    def _reading(self, event: DataChangeEvent) -> list[Reading]:
        names = self._by_node.get(event.node.nodeid, ())
        data = event.data.monitored_item.Value
        if not names or data is None:
            return []
        value, quality = reading_value(data)
        ts_ns = timestamp_of(data)
        return [Reading(name, value, ts_ns, quality) for name in names]

    def _flush(self) -> None:
        readings, self._pending = self._pending, []
        bad = sum(1 for r in readings if r.value is None)
        self._count_reads(len(readings) - bad, bad)
        self._emit(readings)

    # -- writes ---------------------------------------------------------------------------

    async def _write(self, tag: str, value: Value) -> Value:
        binding = self._bindings[tag]
        client = self._client
        if client is None:
            raise ConnectionError("not connected")
        variant = to_variant(value, binding.variant)
        params = ua.WriteParameters()
        params.NodesToWrite = [
            ua.WriteValue(
                NodeId=binding.node_id,
                AttributeId=AttributeIds.Value,
                Value=ua.DataValue(variant),
            )
        ]
        async with asyncio.timeout(self._config.timeout_s):
            (status,) = await client.uaclient.write(params)
            status.check()
            data = await client.get_node(binding.node_id).read_data_value()
        if data.StatusCode is not None:
            data.StatusCode.check()
        result = to_value(data.Value.Value) if data.Value is not None else None
        if result is None:
            raise Conflict(f"{tag} read back a value werk cannot carry", code="write_failed")
        return result

    @contextlib.contextmanager
    def _map_errors(self, tag: str | None) -> Iterator[None]:
        action = "read" if tag is None else f"write to {tag!r}"
        try:
            yield
        except UaStatusCodeError as exc:
            code = ua.StatusCode(exc.code)
            if exc.code in _UNAVAILABLE:
                raise _unavailable(self.name, action, code.name) from exc
            raise Conflict(
                f"{self.name} refused the {action}: {code.name}",
                code="read_failed" if tag is None else "write_failed",
                status=code.name,
            ) from exc
        except (UaError, ConnectionError, OSError, TimeoutError) as exc:
            raise _unavailable(self.name, action, describe(exc)) from exc


def _unavailable(name: str, action: str, reason: str) -> Unavailable:
    return Unavailable(
        f"{name} could not complete the {action}: {reason}",
        code="device_unavailable",
        device=name,
    )


def _failed(result: int | ua.StatusCode) -> bool:
    return isinstance(result, ua.StatusCode) and not result.is_good()


def _check_status(status: ua.StatusCode) -> None:
    if status.is_bad():
        raise ConnectionError(f"subscription status {status.name}")
