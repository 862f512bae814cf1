"""Dataset contracts: the typed shape of each business dataset (orders, inventory, ...)."""

from __future__ import annotations

import string
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Final, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from werk.core.errors import NotFound

NAME_PATTERN: Final = r"^[a-z][a-z0-9_]{0,63}$"
FIELD_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
KEY_SEPARATOR: Final = "|"


class FieldType(StrEnum):
    """The value types a dataset field can have."""

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    DATE = "date"


_KEY_TYPES: Final = frozenset({FieldType.STRING, FieldType.INTEGER, FieldType.DATE})
_TIME_TYPES: Final = frozenset({FieldType.DATETIME, FieldType.DATE})
_MEASURE_TYPES: Final = frozenset({FieldType.INTEGER, FieldType.NUMBER, FieldType.BOOLEAN})
_PATH_TYPES: Final = frozenset({FieldType.STRING, FieldType.INTEGER})


class FieldSpec(BaseModel):
    """One typed field of a dataset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: FieldType
    required: bool = True
    format: str | None = Field(
        default=None, description="strptime format of datetime/date text; default ISO 8601"
    )
    description: str = ""


class Measure(BaseModel):
    """A numeric field also stored as raw samples of a tag, one tag per template expansion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str
    tag: str = Field(description="tag path template, e.g. erp/inventory/{warehouse}/{sku}/on_hand")

    @field_validator("tag")
    @classmethod
    def _static_levels(cls, tag: str) -> str:
        levels = tag.split("/")
        if any(not level for level in levels) or any(c in tag for c in "+#"):
            raise ValueError(f"tag template {tag!r} has an empty level or a '+' or '#'")
        return tag

    @cached_property
    def placeholders(self) -> tuple[str, ...]:
        """The field names the template refers to, in order."""
        parsed = string.Formatter().parse(self.tag)
        return tuple(name for _, name, _, _ in parsed if name is not None)


class DatasetContract(BaseModel):
    """A named, versioned dataset: its key, its time field, its typed fields, its measures."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    version: Annotated[int, Field(ge=1)] = 1
    description: str = ""
    key: Annotated[tuple[str, ...], Field(min_length=1)]
    time: str
    fields: dict[Annotated[str, Field(pattern=FIELD_PATTERN)], FieldSpec]
    measures: tuple[Measure, ...] = ()

    @field_validator("key", mode="before")
    @classmethod
    def _one_key(cls, key: Any) -> Any:
        return (key,) if isinstance(key, str) else key

    @field_validator("fields", mode="before")
    @classmethod
    def _type_shorthand(cls, fields: Any) -> Any:
        if not isinstance(fields, dict):
            return fields
        return {k: {"type": v} if isinstance(v, str) else v for k, v in fields.items()}

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for name in self.key:
            self._check(name, _KEY_TYPES, "key field")
        self._check(self.time, _TIME_TYPES, "time field")
        for measure in self.measures:
            self._check(measure.field, _MEASURE_TYPES, "measure field", required=False)
            for name in measure.placeholders:
                self._check(name, _PATH_TYPES, f"placeholder of {measure.tag!r}")
        return self

    def _check(
        self, name: str, types: frozenset[FieldType], role: str, required: bool = True
    ) -> None:
        spec = self.fields.get(name)
        if spec is None:
            raise ValueError(f"{role} {name!r} is not a field of the dataset")
        if spec.type not in types:
            allowed = ", ".join(sorted(types))
            raise ValueError(f"{role} {name!r} is {spec.type}; it must be one of {allowed}")
        if required and not spec.required:
            raise ValueError(f"{role} {name!r} must be a required field")

    @property
    def required(self) -> frozenset[str]:
        """Names of the fields every row must have."""
        return frozenset(n for n, f in self.fields.items() if f.required)


class Catalog:
    """The dataset contracts werk knows, by name."""

    def __init__(self, contracts: list[DatasetContract]) -> None:
        self._contracts = {c.name: c for c in contracts}

    def __contains__(self, name: object) -> bool:
        return name in self._contracts

    def get(self, name: str) -> DatasetContract:
        """The contract of `name`; NotFound when there is none."""
        contract = self._contracts.get(name)
        if contract is None:
            known = ", ".join(sorted(self._contracts))
            raise NotFound(
                f"no dataset {name!r}; known datasets: {known}",
                code="unknown_dataset",
                dataset=name,
            )
        return contract

    def all(self) -> list[DatasetContract]:
        """Every contract, by name."""
        return [self._contracts[n] for n in sorted(self._contracts)]


def _contract(**data: Any) -> DatasetContract:
    return DatasetContract.model_validate(data)


BUILTIN_CONTRACTS: Final = (
    _contract(
        name="orders",
        description="Sales order lines from the ERP",
        key=("order_id", "line"),
        time="ordered_at",
        fields={
            "order_id": "string",
            "line": "integer",
            "customer_id": "string",
            "sku": "string",
            "quantity": "number",
            "unit": {"type": "string", "required": False},
            "unit_price": {"type": "number", "required": False},
            "currency": {"type": "string", "required": False},
            "status": "string",
            "ordered_at": "datetime",
            "promised_date": {"type": "date", "required": False},
            "site": {"type": "string", "required": False},
        },
    ),
    _contract(
        name="shipments",
        description="Outbound shipments and their delivery state",
        key=("shipment_id",),
        time="shipped_at",
        fields={
            "shipment_id": "string",
            "order_id": "string",
            "sku": "string",
            "quantity": "number",
            "carrier": {"type": "string", "required": False},
            "tracking_id": {"type": "string", "required": False},
            "status": "string",
            "shipped_at": "datetime",
            "delivered_at": {"type": "datetime", "required": False},
            "destination_country": {"type": "string", "required": False},
        },
    ),
    _contract(
        name="inventory",
        description="Stock levels per warehouse and SKU",
        key=("warehouse", "sku"),
        time="counted_at",
        fields={
            "warehouse": "string",
            "sku": "string",
            "on_hand": "number",
            "reserved": {"type": "number", "required": False},
            "unit": {"type": "string", "required": False},
            "counted_at": "datetime",
        },
        measures=(
            {"field": "on_hand", "tag": "erp/inventory/{warehouse}/{sku}/on_hand"},
            {"field": "reserved", "tag": "erp/inventory/{warehouse}/{sku}/reserved"},
        ),
    ),
    _contract(
        name="customers",
        description="Customer master data from the CRM",
        key=("customer_id",),
        time="updated_at",
        fields={
            "customer_id": "string",
            "name": "string",
            "country": {"type": "string", "required": False},
            "segment": {"type": "string", "required": False},
            "email": {"type": "string", "required": False},
            "active": {"type": "boolean", "required": False},
            "customer_since": {"type": "date", "required": False},
            "updated_at": "datetime",
        },
    ),
)
