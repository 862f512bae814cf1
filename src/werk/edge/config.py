"""`edge.toml`: what an edge agent connects to, buffers and reads (unknown keys refused).

A relative `buffer.path` in a file is relative to that file's directory; in a config
built in Python it is relative to the working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from werk.core.errors import ValidationFailed, WerkError
from werk.core.tomlfile import read_toml
from werk.edge.buffer import DropPolicy
from werk.edge.connectors import ConnectorConfig
from werk.uns.broker import BrokerAddress, parse_broker_url

_MIB = 1024 * 1024


def _check_id(value: str) -> str:
    if any(c in value for c in "+/#"):
        raise ValueError("a Sparkplug id must not contain '+', '/' or '#'")
    return value


SparkplugId = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(_check_id)
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeConfig(_Section):
    """`[node]`: the Sparkplug identity, the broker and how data is batched."""

    group: SparkplugId
    edge_node: SparkplugId
    primary_host: SparkplugId | None = None
    broker: str = "mqtt://127.0.0.1:1883"
    keepalive_s: int = Field(default=10, ge=2, le=3600)
    publish_interval_ms: int = Field(default=100, ge=1, le=60_000)
    max_metrics_per_message: int = Field(default=1000, ge=1, le=100_000)

    @field_validator("group")
    @classmethod
    def _check_group(cls, value: str) -> str:
        if value == "STATE":
            raise ValueError("group id 'STATE' is reserved for host application state")
        return value

    @field_validator("broker")
    @classmethod
    def _check_broker(cls, value: str) -> str:
        try:
            parse_broker_url(value)
        except WerkError as exc:
            raise ValueError(exc.message) from None
        return value

    @property
    def broker_address(self) -> BrokerAddress:
        """Where to connect (user and password come from the URL)."""
        return parse_broker_url(self.broker)


class BufferConfig(_Section):
    """`[buffer]`: the on-disk store-and-forward buffer."""

    path: Path = Path(".werk-edge/buffer")
    max_bytes: int = Field(default=256 * _MIB, ge=_MIB)
    max_age_s: int = Field(default=7 * 24 * 3600, ge=1)
    drop: DropPolicy = DropPolicy.DROP_OLDEST
    replay_rate: int = Field(default=50_000, ge=1)
    fsync: bool = True


class EdgeConfig(_Section):
    """The whole edge agent: node, buffer and one connector per Sparkplug device."""

    node: NodeConfig
    buffer: BufferConfig = BufferConfig()
    connectors: list[ConnectorConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_devices(self) -> Self:
        names = [c.name for c in self.connectors]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"connector names must be unique; repeated: {', '.join(doubled)}")
        return self


def load_config(path: Path) -> EdgeConfig:
    """Read and validate an edge.toml; raise ValidationFailed with one line naming the key."""
    data = read_toml(path)
    config = parse_config(data, source=str(path))
    if config.buffer.path.is_absolute():
        return config
    buffer = config.buffer.model_copy(update={"path": path.parent / config.buffer.path})
    return config.model_copy(update={"buffer": buffer})


def parse_config(data: object, *, source: str = "edge config") -> EdgeConfig:
    """Validate already parsed config data."""
    try:
        return EdgeConfig.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(f"{source}: {_first_error(exc)}", code="bad_config") from None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    key = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    more = exc.error_count() - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{key}: {message}{suffix}" if key else f"{message}{suffix}"
