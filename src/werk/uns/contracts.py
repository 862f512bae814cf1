"""Versioned payload contracts per data class, and decoding of a message into samples.

`value/v1` carries one sample of the tag named in the topic::

    {"value": 21.5, "ts": 1732190400000, "quality": "good", "unit": "degC", "id": "m-1"}

(a bare JSON number, boolean or string is accepted as shorthand for ``{"value": ...}``).
`batch/v1` carries many tags of one node in one message::

    {"ts": 1732190400000, "values": {"temp": 21.5, "speed": {"value": 1200, "unit": "rpm"}}}

`ts` is epoch milliseconds or an ISO 8601 string; missing means "when werk received it".
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from functools import lru_cache
from typing import Annotated, Any, Final, Literal, NamedTuple, TypeVar

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    TypeAdapter,
)
from pydantic import ValidationError as PydanticValidationError

from werk.core.clock import NS_PER_MS, from_datetime
from werk.core.errors import PayloadError
from werk.uns.topics import DataClass, UnsTopic, check_tag

MAX_TEXT_CHARS: Final = 4096
MAX_BATCH_TAGS: Final = 100_000
_FUTURE_TOLERANCE_NS: Final = 24 * 3600 * 1_000_000_000


class Quality(IntEnum):
    """Quality of a sample, stored as a small integer."""

    GOOD = 0
    UNCERTAIN = 1
    BAD = 2
    STALE = 3

    @property
    def label(self) -> str:
        """Lower-case name as used in payloads and the API."""
        return self.name.lower()


QualityName = Literal["good", "uncertain", "bad", "stale"]
# Strict: in lax mode 0, 1, 0.0 and 1.0 would validate as booleans.
Scalar = (
    StrictBool
    | Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]
    | StrictFloat
    | Annotated[StrictStr, StringConstraints(max_length=MAX_TEXT_CHARS, pattern=r"^[^\x00]*$")]
)
Timestamp = int | datetime
MessageId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Unit = Annotated[str, StringConstraints(max_length=32)]


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


_M = TypeVar("_M", bound=_Contract)


class SampleV1(_Contract):
    """One value with optional timestamp, quality and unit."""

    value: Scalar = Field(union_mode="left_to_right")
    ts: Timestamp | None = None
    quality: QualityName = "good"
    unit: Unit | None = None


class ValueV1(SampleV1):
    """Contract `value/v1`: one sample of the tag named in the topic."""

    id: MessageId | None = None


class BatchV1(_Contract):
    """Contract `batch/v1`: many tags of one node, sharing a default timestamp."""

    values: dict[str, Scalar | SampleV1] = Field(min_length=1, max_length=MAX_BATCH_TAGS)
    ts: Timestamp | None = None
    quality: QualityName = "good"
    id: MessageId | None = None


class CommandV1(_Contract):
    """Contract `cmd/v1`: write a value to the machine behind the tag named in the topic."""

    value: Scalar = Field(union_mode="left_to_right")
    id: MessageId | None = None
    by: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None


@dataclass(frozen=True, slots=True)
class Contract:
    """A named, versioned payload schema for one data class."""

    data_class: DataClass
    version: int
    model: type[_Contract]

    @property
    def name(self) -> str:
        """Contract name such as ``value/v1``."""
        return f"{self.data_class}/v{self.version}"

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema of the payload."""
        return self.model.model_json_schema()


CONTRACTS: Final = (
    Contract(DataClass.VALUE, 1, ValueV1),
    Contract(DataClass.BATCH, 1, BatchV1),
    Contract(DataClass.COMMAND, 1, CommandV1),
)
_CURRENT: Final = {c.data_class: c for c in CONTRACTS}
_SCALAR: TypeAdapter[Scalar] = TypeAdapter(Scalar)
_QUALITY: Final = {q.label: q for q in Quality}


class Sample(NamedTuple):
    """One accepted sample, ready for the historian and the last-known-value store."""

    tag_path: str
    ts_ns: int
    value: bool | int | float | str
    quality: Quality
    unit: str | None


@dataclass(frozen=True, slots=True)
class SampleColumns:
    """Samples of one message in column form: equally long lists, one quality for all.

    Translators of busy protocols hand over plain data this way; the writer appends the
    columns to the historian and folds them into the namespace without a tuple per sample.
    """

    tags: list[str]
    ts_ns: list[int]
    values: list[bool | int | float | str]
    quality: Quality
    units: list[str | None]

    def __len__(self) -> int:
        return len(self.tags)

    def rows(self) -> list[Sample]:
        """The same samples as tuples."""
        qualities = [self.quality] * len(self.tags)
        columns = (self.tags, self.ts_ns, self.values, qualities, self.units)
        return list(map(Sample, *columns))


@dataclass(frozen=True, slots=True)
class Decoded:
    """The samples of one message and the id that identifies the message.

    Samples come as tuples (`samples`), as columns (`columns`), or both. Columns are only
    given by a translator that keeps every tag's type consistent itself.
    """

    message_id: int
    samples: list[Sample]
    columns: SampleColumns | None = None

    def __len__(self) -> int:
        return len(self.samples) + (0 if self.columns is None else len(self.columns))


@dataclass(frozen=True, slots=True)
class Command:
    """A write requested through the UNS, for whoever drives the machine behind the tag."""

    message_id: int
    tag_path: str
    value: bool | int | float | str
    requested_by: str
    topic: str


CommandHandler = Callable[[Command], None]


def decode_command(topic: UnsTopic, payload: bytes, received_ns: int, root: str) -> Command:
    """Validate a `cmd/v1` payload (a bare scalar stands for ``{"value": ...}``)."""
    message = _validate(CommandV1, _as_object(payload))
    msg_id = _message_id(topic, payload, message.id, None, received_ns)
    return Command(msg_id, topic.tag_path, message.value, message.by or "uns", topic.topic(root))


def contract_for(data_class: DataClass) -> Contract:
    """The current contract of a data class."""
    return _CURRENT[data_class]


def decode(topic: UnsTopic, payload: bytes, received_ns: int) -> Decoded:
    """Validate `payload` against the contract of the topic's class and return its samples."""
    if topic.data_class is DataClass.VALUE:
        return _decode_value(topic, payload, received_ns)
    if topic.data_class is DataClass.COMMAND:
        raise PayloadError("a _cmd message asks for a write and carries no samples", code="command")
    return _decode_batch(topic, payload, received_ns)


def _decode_value(topic: UnsTopic, payload: bytes, received_ns: int) -> Decoded:
    message = _validate(ValueV1, _as_object(payload))
    ts_ns = _timestamp(message.ts, received_ns)
    sample = Sample(topic.tag_path, ts_ns, message.value, _QUALITY[message.quality], message.unit)
    msg_id = _message_id(topic, payload, message.id, message.ts, received_ns)
    return Decoded(msg_id, [sample])


def _decode_batch(topic: UnsTopic, payload: bytes, received_ns: int) -> Decoded:
    message = _validate(BatchV1, payload)
    default_ts = _timestamp(message.ts, received_ns)
    default_quality = _QUALITY[message.quality]
    node_path = topic.node.path
    path = _batch_tag_path
    samples = [
        Sample(path(node_path, tag), default_ts, entry, default_quality, None)  # type: ignore[arg-type]
        if type(entry) is not SampleV1
        else _object_sample(path(node_path, tag), entry, default_ts)
        for tag, entry in message.values.items()
    ]
    msg_id = _message_id(topic, payload, message.id, message.ts, received_ns)
    return Decoded(msg_id, samples)


@lru_cache(maxsize=65_536)
def _batch_tag_path(node_path: str, tag: str) -> str:
    """Validate a batch key and join it to the node (cached: batches repeat their keys)."""
    try:
        check_tag(tag)
    except Exception as exc:
        raise PayloadError(f"batch entry {tag!r}: {exc}", code="bad_tag", tag=tag) from exc
    return f"{node_path}/{tag}"


def _object_sample(tag_path: str, entry: SampleV1, default_ts: int) -> Sample:
    ts_ns = default_ts if entry.ts is None else _timestamp(entry.ts, default_ts)
    return Sample(tag_path, ts_ns, entry.value, _QUALITY[entry.quality], entry.unit)


def _as_object(payload: bytes) -> bytes | dict[str, Any]:
    """Let a bare scalar stand for ``{"value": scalar}``."""
    stripped = payload.lstrip()
    if stripped[:1] == b"{":
        return payload
    try:
        return {"value": _SCALAR.validate_json(payload)}
    except PydanticValidationError as exc:
        raise PayloadError(_explain(exc), code=_error_code(exc)) from exc


def _validate(model: type[_M], payload: bytes | dict[str, Any]) -> _M:
    try:
        if isinstance(payload, dict):
            return model.model_validate(payload)
        return model.model_validate_json(payload)
    except PydanticValidationError as exc:
        raise PayloadError(_explain(exc), code=_error_code(exc)) from exc


def _error_code(exc: PydanticValidationError) -> str:
    kinds = {e["type"] for e in exc.errors()}
    if kinds & {"json_invalid", "json_type"}:
        return "not_json"
    return "contract"


_UNION_BRANCHES: Final = frozenset(
    {"bool", "int", "constrained-int", "float", "str", "constrained-str", "SampleV1"}
)


def _explain(exc: PydanticValidationError) -> str:
    """One readable line: union alternatives collapse into one message per field."""
    messages: dict[str, str] = {}
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        if loc and loc[-1] in _UNION_BRANCHES:
            where = ".".join(loc[:-1])
            messages.setdefault(where, _scalar_message(error.get("input")))
        else:
            messages.setdefault(".".join(loc) or "payload", error["msg"])
    parts = [f"{where}: {msg}" for where, msg in list(messages.items())[:3]]
    more = len(messages) - 3
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _scalar_message(value: object) -> str:
    if isinstance(value, float):
        return f"must be a finite number, a boolean or a string, got {value!r}"
    kind = "null" if value is None else type(value).__name__
    limit = f"at most {MAX_TEXT_CHARS} characters, no NUL"
    return f"must be a finite number, a boolean or a string ({limit}), got {kind}"


def _timestamp(ts: Timestamp | None, received_ns: int) -> int:
    if ts is None:
        return received_ns
    ts_ns = from_datetime(ts) if isinstance(ts, datetime) else ts * NS_PER_MS
    if ts_ns < 0 or ts_ns > received_ns + _FUTURE_TOLERANCE_NS:
        raise PayloadError(
            f"timestamp {ts_ns // NS_PER_MS} ms is before 1970 or more than 24 h in the future",
            code="timestamp_out_of_range",
        )
    return ts_ns


def _message_id(
    topic: UnsTopic, payload: bytes, given: str | None, ts: Timestamp | None, received_ns: int
) -> int:
    """A stable 63-bit id: a redelivered message gets the same id, so it is stored once.

    Without a publisher id or a timestamp two identical payloads are different readings,
    so the receive time is mixed in.
    """
    digest = hashlib.blake2b(digest_size=8)
    digest.update(topic.node.path.encode())
    digest.update(b"\x00" + (topic.tag or "").encode() + b"\x00")
    if given is not None:
        digest.update(b"id:" + given.encode())
    else:
        digest.update(payload)
        if ts is None:
            digest.update(received_ns.to_bytes(8, "big"))
    return int.from_bytes(digest.digest(), "big") >> 1


def dumps(payload: dict[str, Any]) -> bytes:
    """Encode a payload the way werk publishes it."""
    return orjson.dumps(payload)
