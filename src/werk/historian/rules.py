"""Quality rules: what the processed layer checks on the samples of which tags."""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from werk.core.errors import ValidationFailed
from werk.historian.units import check_unit, converter

PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]

_CACHE_LIMIT: Final = 1_000_000
_TOML_LINE: Final = re.compile(r"at line (\d+)")
_RULES_HEADER: Final = re.compile(r"^\s*\[\[\s*rules\s*\]\]")


class QualityRule(BaseModel):
    """Checks for the samples of every tag the `tags` filter matches; values in canonical units."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tags: str = Field(description="MQTT-style filter over tag paths: + one level, # the rest")
    name: str | None = Field(default=None, max_length=200)
    description: str = Field(default="", max_length=2000)
    unit: str | None = Field(default=None, description="unit the data arrives in")
    canonical_unit: str | None = Field(
        default=None, description="unit the processed layer keeps; default `unit`"
    )
    min: Finite | None = Field(default=None, description="smallest valid value")
    max: Finite | None = Field(default=None, description="largest valid value")
    max_rate: PositiveSeconds | None = Field(
        default=None, description="largest change per second (canonical units)"
    )
    flatline_s: PositiveSeconds | None = Field(
        default=None,
        description="longest time the values may stay within ±flatline_tolerance of one value",
    )
    flatline_tolerance: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        default=0.0, description="half the width of the band a flat signal stays in"
    )
    stale_s: PositiveSeconds | None = Field(
        default=None, description="longest allowed time between two samples"
    )
    spike: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        default=None, description="a lone jump larger than this away from both neighbours"
    )

    @field_validator("tags")
    @classmethod
    def _valid_filter(cls, tags: str) -> str:
        try:
            return check_filter(tags)
        except ValidationFailed as exc:
            raise _custom(exc) from None

    @field_validator("unit", "canonical_unit")
    @classmethod
    def _known_unit(cls, unit: str | None) -> str | None:
        if unit is not None:
            try:
                check_unit(unit)
            except ValidationFailed as exc:
                raise _custom(exc) from None
        return unit

    @model_validator(mode="after")
    def _consistent(self) -> QualityRule:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise PydanticCustomError(
                "bad_range",
                "min {min} is larger than max {max}",
                {"min": self.min, "max": self.max},
            )
        if self.unit is not None and self.canonical_unit is not None:
            try:
                converter(self.unit, self.canonical_unit)
            except ValidationFailed as exc:
                raise _custom(exc) from None
        return self

    @property
    def target_unit(self) -> str | None:
        """The unit processed values are kept in."""
        return self.canonical_unit or self.unit


def _custom(exc: ValidationFailed) -> PydanticCustomError:
    """Keep a werk error's code as the pydantic error type (the API shows it)."""
    return PydanticCustomError(exc.code, "{message}", {"message": exc.message})


def check_filter(tags: str) -> str:
    """Validate an MQTT-style filter over tag paths (wildcards fill whole levels)."""
    if not tags:
        raise ValidationFailed("a tag filter cannot be empty", code="bad_filter", filter=tags)
    levels = tags.split("/")
    for i, level in enumerate(levels):
        if level == "#" and i != len(levels) - 1:
            raise ValidationFailed(
                "'#' must be the last level of a filter", code="bad_filter", filter=tags
            )
        if level not in ("+", "#") and ("+" in level or "#" in level):
            raise ValidationFailed(
                f"a wildcard must fill a whole level, not {level!r}", code="bad_filter", filter=tags
            )
    return tags


def filter_matches(tags: str, path: str) -> bool:
    """Whether `path` matches the filter (``+`` one level, ``#`` this level and below)."""
    return _matches(tuple(tags.split("/")), path.split("/"))


def _matches(levels: tuple[str, ...], parts: list[str]) -> bool:
    for i, level in enumerate(levels):
        if level == "#":
            return True
        if i >= len(parts) or (level != "+" and level != parts[i]):
            return False
    return len(levels) == len(parts)


class RuleSet:
    """An ordered, immutable list of rules; the first rule that matches a tag applies."""

    def __init__(self, rules: Iterable[QualityRule] = ()) -> None:
        self._rules = tuple(rules)
        self._levels = tuple(tuple(r.tags.split("/")) for r in self._rules)
        self._cache: dict[str, QualityRule | None] = {}

    @property
    def rules(self) -> tuple[QualityRule, ...]:
        """The rules in the order they are tried."""
        return self._rules

    def __len__(self) -> int:
        return len(self._rules)

    def __iter__(self) -> Iterator[QualityRule]:
        return iter(self._rules)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RuleSet) and self._rules == other._rules

    def __hash__(self) -> int:
        return hash(self._rules)

    def for_tag(self, path: str) -> QualityRule | None:
        """The first rule whose filter matches `path`, or None."""
        try:
            return self._cache[path]
        except KeyError:
            pass
        parts = path.split("/")
        pairs = zip(self._rules, self._levels, strict=True)
        found = next((rule for rule, levels in pairs if _matches(levels, parts)), None)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[path] = found
        return found

    @classmethod
    def load(cls, path: Path) -> RuleSet:
        """Read rules from a TOML file of ``[[rules]]`` tables."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValidationFailed(
                f"cannot read the quality rules file {path}: {exc}",
                code="bad_rules_file",
                file=str(path),
            ) from exc
        return cls.loads(text, source=str(path))

    @classmethod
    def loads(cls, text: str, *, source: str = "<rules>") -> RuleSet:
        """Parse rules from TOML text; errors name `source`, the rule and its line."""
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            match = _TOML_LINE.search(str(exc))
            line = int(match.group(1)) if match else None
            raise _file_error(source, f"not valid TOML: {exc}", line=line) from exc
        tables = _rule_tables(document, source)
        return cls(_rule(table, i, source, text) for i, table in enumerate(tables, start=1))

    def dumps(self) -> str:
        """The rules as TOML text that `loads` reads back."""
        return "\n".join(_dump_rule(rule) for rule in self._rules)

    def save(self, path: Path) -> None:
        """Write the rules as TOML, replacing the file in one step."""
        partial = path.with_name(path.name + ".partial")
        partial.write_text(self.dumps(), encoding="utf-8")
        os.replace(partial, path)


def _rule_tables(document: dict[str, Any], source: str) -> list[dict[str, Any]]:
    unknown = sorted(set(document) - {"rules"})
    if unknown:
        raise _file_error(source, f"unknown top-level keys {unknown}; only [[rules]] tables")
    tables = document.get("rules", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise _file_error(source, "'rules' must be an array of tables ([[rules]])")
    return tables


def _line_of(text: str, index: int, key: str) -> int | None:
    """Line (from 1) of `key` in the index-th ``[[rules]]`` table, else of its header."""
    lines = text.splitlines()
    headers = [n for n, line in enumerate(lines) if _RULES_HEADER.match(line)]
    if index > len(headers):
        return None
    begin = headers[index - 1]
    end = headers[index] if index < len(headers) else len(lines)
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    found = next((n for n in range(begin, end) if pattern.match(lines[n])), begin)
    return found + 1


def _rule(table: dict[str, Any], index: int, source: str, text: str) -> QualityRule:
    try:
        return QualityRule.model_validate(table)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "rule"
        raise _file_error(
            source, f"rule {index}: {where}: {first['msg']}", line=_line_of(text, index, where),
            rule=index, field=where, reason=first["type"],
        ) from exc  # fmt: skip


def _file_error(
    source: str, detail: str, *, line: int | None = None, **params: Any
) -> ValidationFailed:
    place = source if line is None else f"{source} line {line}"
    return ValidationFailed(
        f"{place}: {detail}", code="bad_rules_file", file=source, line=line, **params
    )


def _dump_rule(rule: QualityRule) -> str:
    lines = ["[[rules]]"]
    for key, value in rule.model_dump(exclude_defaults=True).items():
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: str | float) -> str:
    if isinstance(value, str):
        # a JSON string is a TOML basic string, but for DEL, which TOML wants escaped
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    return repr(float(value))
