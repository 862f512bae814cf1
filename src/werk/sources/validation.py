"""Strict validation of one dataset row against its contract.

Rows come either as text (CSV cells: every value a string, an empty cell is missing) or
typed (JSON, Parquet, SQL: native values, None is missing). A row either becomes a
`ValidRow` or a `Rejection` naming the reason code and the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Final

from werk.sources.contracts import KEY_SEPARATOR, DatasetContract, FieldSpec, FieldType

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE: Final = timedelta(days=1)
_INTEGER: Final = re.compile(r"[+-]?\d+\Z")
_TRUE: Final = frozenset({"true", "t", "yes", "y", "1"})
_FALSE: Final = frozenset({"false", "f", "no", "n", "0"})
_PATH_BREAKERS: Final = frozenset("/+#")

Json = str | int | float | bool | None


class Reason:
    """Reason codes of rejected rows, as the quarantine and the push answer show them."""

    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_FIELD = "unknown_field"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    NOT_FINITE = "not_finite"
    BAD_DATETIME = "bad_datetime"
    TIME_OUT_OF_RANGE = "time_out_of_range"
    BAD_KEY = "bad_key"
    BAD_TAG_PATH = "bad_tag_path"
    BAD_TEXT = "bad_text"


@dataclass(frozen=True, slots=True)
class ValidRow:
    """A row that passed its contract: key, time, JSON-ready payload, measure samples."""

    key: str
    ts_ns: int
    payload: dict[str, Json]
    samples: tuple[tuple[str, float | bool], ...]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a row was not accepted."""

    reason: str
    field: str | None
    detail: str


class _Bad(Exception):
    def __init__(self, reason: str, field: str | None, detail: str) -> None:
        super().__init__(detail)
        self.rejection = Rejection(reason, field, detail)


def validate_row(
    contract: DatasetContract, row: object, *, text: bool, now_ns: int
) -> ValidRow | Rejection:
    """Check one row against `contract`; `text` says every value arrived as a string."""
    try:
        return _validate(contract, row, text, now_ns)
    except _Bad as bad:
        return bad.rejection


def _validate(contract: DatasetContract, row: object, text: bool, now_ns: int) -> ValidRow:
    if not isinstance(row, Mapping):
        kind = "null" if row is None else type(row).__name__
        raise _Bad(Reason.NOT_AN_OBJECT, None, f"a row must be an object of fields, got {kind}")
    unknown = [str(k) for k in row if k not in contract.fields]
    if unknown:
        raise _Bad(Reason.UNKNOWN_FIELD, unknown[0], f"field {unknown[0]!r} is not in the contract")
    values = {
        name: _field(name, spec, row.get(name), text) for name, spec in contract.fields.items()
    }
    ts_ns = _time_ns(contract.time, values[contract.time], now_ns)
    payload = {name: _json(value) for name, value in values.items()}
    return ValidRow(_key(contract, payload), ts_ns, payload, _samples(contract, values, payload))


def _field(name: str, spec: FieldSpec, raw: object, text: bool) -> object:
    if raw is None or (text and isinstance(raw, str) and not raw.strip()):
        if spec.required:
            raise _Bad(Reason.MISSING_FIELD, name, f"required field {name!r} is missing")
        return None
    try:
        return _COERCE[spec.type](raw, spec, text)
    except _Bad as bad:
        raise _Bad(bad.rejection.reason, name, f"field {name!r}: {bad.rejection.detail}") from None


def _wrong(raw: object, expected: str) -> _Bad:
    shown = repr(raw) if len(repr(raw)) <= 60 else repr(raw)[:57] + "..."
    return _Bad(Reason.WRONG_TYPE, None, f"{shown} is not {expected}")


def _string(raw: object, _spec: FieldSpec, text: bool) -> str:
    if isinstance(raw, str):
        if "\x00" in raw:  # PostgreSQL cannot store it; refuse the row, not the batch
            raise _Bad(Reason.BAD_TEXT, None, "contains a NUL character")
        return raw
    if not text and isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    raise _wrong(raw, "a string")


def _integer(raw: object, _spec: FieldSpec, text: bool) -> int:
    if isinstance(raw, str):
        if text and _INTEGER.match(raw.strip()):
            return int(raw.strip())
    elif isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    elif isinstance(raw, float | Decimal) and _finite(raw) and raw == int(raw):
        return int(raw)
    raise _wrong(raw, "an integer")


def _number(raw: object, _spec: FieldSpec, text: bool) -> float:
    if isinstance(raw, str) and text and "_" not in raw:
        try:
            value = float(raw)
        except ValueError:
            raise _wrong(raw, "a number") from None
    elif isinstance(raw, int | float | Decimal) and not isinstance(raw, bool):
        value = float(raw)
    else:
        raise _wrong(raw, "a number")
    if not math.isfinite(value):
        raise _Bad(Reason.NOT_FINITE, None, f"{raw!r} is not a finite number")
    return value


def _boolean(raw: object, _spec: FieldSpec, text: bool) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str) and text and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    raise _wrong(raw, "a boolean (true/false)")


def _datetime(raw: object, spec: FieldSpec, _text: bool) -> datetime:
    if isinstance(raw, datetime):
        moment = raw
    elif isinstance(raw, date):
        moment = datetime(raw.year, raw.month, raw.day)
    elif isinstance(raw, str):
        moment = _parse(raw.strip(), spec.format, datetime.fromisoformat, "a date and time")
    else:
        raise _wrong(raw, "a date and time")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _date(raw: object, spec: FieldSpec, _text: bool) -> date:
    if isinstance(raw, datetime):
        if raw.time() != datetime.min.time():
            raise _wrong(raw, "a date without a time of day")
        return raw.date()
    if isinstance(raw, date):
        return raw
    if isinstance(raw, str):
        return _parse(raw.strip(), spec.format, date.fromisoformat, "a date").date()
    raise _wrong(raw, "a date")


def _parse(raw: str, fmt: str | None, iso: Callable[[str], date], expected: str) -> datetime:
    try:
        parsed = datetime.strptime(raw, fmt) if fmt else iso(raw)
    except ValueError:
        wanted = f"format {fmt!r}" if fmt else "ISO 8601"
        raise _Bad(Reason.BAD_DATETIME, None, f"{raw!r} is not {expected} ({wanted})") from None
    return (
        parsed if isinstance(parsed, datetime) else datetime(parsed.year, parsed.month, parsed.day)
    )


_COERCE: Final[dict[FieldType, Callable[[object, FieldSpec, bool], object]]] = {
    FieldType.STRING: _string,
    FieldType.INTEGER: _integer,
    FieldType.NUMBER: _number,
    FieldType.BOOLEAN: _boolean,
    FieldType.DATETIME: _datetime,
    FieldType.DATE: _date,
}


def _finite(value: float | Decimal) -> bool:
    return math.isfinite(value) if isinstance(value, float) else value.is_finite()


def epoch_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime, exact to the microsecond."""
    return (moment - EPOCH) // timedelta(microseconds=1) * 1000


def _time_ns(name: str, value: object, now_ns: int) -> int:
    if isinstance(value, datetime):
        moment = value
    else:
        assert isinstance(value, date)
        moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
    ts_ns = epoch_ns(moment)
    if ts_ns < 0 or ts_ns > now_ns + FUTURE_TOLERANCE // timedelta(microseconds=1) * 1000:
        raise _Bad(
            Reason.TIME_OUT_OF_RANGE,
            name,
            f"time field {name!r}: {_json(moment)} is before 1970 or more than 1 day in the future",
        )
    return ts_ns


def _json(value: object) -> Json:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    assert value is None or isinstance(value, str | int | float | bool)
    return value


def _key(contract: DatasetContract, payload: dict[str, Json]) -> str:
    parts = [str(payload[name]) for name in contract.key]
    if len(parts) > 1:
        for name, part in zip(contract.key, parts, strict=True):
            if KEY_SEPARATOR in part:
                detail = f"key field {name!r}: {part!r} contains {KEY_SEPARATOR!r}"
                raise _Bad(Reason.BAD_KEY, name, detail)
    return KEY_SEPARATOR.join(parts)


def _samples(
    contract: DatasetContract, values: dict[str, object], payload: dict[str, Json]
) -> tuple[tuple[str, float | bool], ...]:
    samples: list[tuple[str, float | bool]] = []
    for measure in contract.measures:
        value = values[measure.field]
        if not isinstance(value, int | float):  # None: the optional measure is absent
            continue
        for name in measure.placeholders:
            _check_level(name, str(payload[name]))
        tag = measure.tag.format(**{n: payload[n] for n in measure.placeholders})
        samples.append((tag, value if isinstance(value, bool) else float(value)))
    return tuple(samples)


def _check_level(name: str, level: str) -> None:
    if not level.strip() or _PATH_BREAKERS & set(level):
        raise _Bad(
            Reason.BAD_TAG_PATH,
            name,
            f"field {name!r}: {level!r} cannot be a tag path level (empty, or has / + #)",
        )
