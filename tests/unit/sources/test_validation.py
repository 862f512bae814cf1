"""Rows against their dataset contract: what is accepted, what is rejected and why."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from werk.sources.contracts import BUILTIN_CONTRACTS, Catalog, DatasetContract
from werk.sources.validation import Reason, Rejection, ValidRow, validate_row

CATALOG = Catalog(list(BUILTIN_CONTRACTS))
ORDERS = CATALOG.get("orders")
INVENTORY = CATALOG.get("inventory")
NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
NOW_NS = int(NOW.timestamp()) * 1_000_000_000


def order(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "order_id": "SO-1001",
        "line": 1,
        "customer_id": "C-7",
        "sku": "BRK-200",
        "quantity": 12.5,
        "status": "open",
        "ordered_at": "2026-05-01T08:30:00Z",
    }
    row.update(changes)
    return {k: v for k, v in row.items() if v is not ...}


def check(
    row: object, contract: DatasetContract = ORDERS, *, text: bool = False
) -> ValidRow | Rejection:
    return validate_row(contract, row, text=text, now_ns=NOW_NS)


def rejected(row: object, contract: DatasetContract = ORDERS, *, text: bool = False) -> Rejection:
    outcome = check(row, contract, text=text)
    assert isinstance(outcome, Rejection), outcome
    return outcome


def test_a_valid_order_gets_its_key_time_and_typed_payload() -> None:
    row = check(order(unit_price=Decimal("3.20"), promised_date="2026-05-20"))
    assert isinstance(row, ValidRow)
    assert row.key == "SO-1001|1"
    assert row.ts_ns == int(datetime(2026, 5, 1, 8, 30, tzinfo=UTC).timestamp()) * 10**9
    assert row.payload["quantity"] == 12.5
    assert row.payload["unit_price"] == 3.2
    assert row.payload["promised_date"] == "2026-05-20"
    assert row.payload["ordered_at"] == "2026-05-01T08:30:00Z"
    assert row.payload["currency"] is None  # optional and absent: kept as null
    assert row.samples == ()


def test_text_cells_are_parsed_and_empty_cells_are_missing() -> None:
    cells = {k: str(v) for k, v in order().items()} | {"unit_price": "", "line": " 2 "}
    row = check(cells, text=True)
    assert isinstance(row, ValidRow)
    assert (row.payload["line"], row.payload["unit_price"], row.key) == (2, None, "SO-1001|2")


@pytest.mark.parametrize(
    ("changes", "reason", "field"),
    [
        ({"quantity": ...}, Reason.MISSING_FIELD, "quantity"),
        ({"quantity": None}, Reason.MISSING_FIELD, "quantity"),
        ({"quantity": "12"}, Reason.WRONG_TYPE, "quantity"),  # typed rows: no strings as numbers
        ({"quantity": True}, Reason.WRONG_TYPE, "quantity"),
        ({"quantity": float("nan")}, Reason.NOT_FINITE, "quantity"),
        ({"quantity": float("inf")}, Reason.NOT_FINITE, "quantity"),
        ({"line": 1.5}, Reason.WRONG_TYPE, "line"),
        ({"line": "1"}, Reason.WRONG_TYPE, "line"),
        ({"status": 3.0}, Reason.WRONG_TYPE, "status"),
        ({"ordered_at": "yesterday"}, Reason.BAD_DATETIME, "ordered_at"),
        ({"ordered_at": 1714550000}, Reason.WRONG_TYPE, "ordered_at"),
        ({"ordered_at": "1969-12-31T23:59:59Z"}, Reason.TIME_OUT_OF_RANGE, "ordered_at"),
        ({"ordered_at": "2026-05-05T12:00:01Z"}, Reason.TIME_OUT_OF_RANGE, "ordered_at"),
        ({"promised_date": "2026-02-30"}, Reason.BAD_DATETIME, "promised_date"),
        ({"promised_date": datetime(2026, 5, 1, 9, 0)}, Reason.WRONG_TYPE, "promised_date"),
        ({"qty": 3}, Reason.UNKNOWN_FIELD, "qty"),
        ({"order_id": "SO|1"}, Reason.BAD_KEY, "order_id"),
    ],
)
def test_bad_rows_are_rejected_naming_reason_and_field(
    changes: dict[str, Any], reason: str, field: str
) -> None:
    outcome = rejected(order(**changes))
    assert (outcome.reason, outcome.field) == (reason, field)
    assert repr(field) in outcome.detail


@pytest.mark.parametrize(
    ("cell", "reason"),
    [("12,5", Reason.WRONG_TYPE), ("1_000", Reason.WRONG_TYPE), ("NaN", Reason.NOT_FINITE),
     ("-inf", Reason.NOT_FINITE), ("1e400", Reason.NOT_FINITE)],
)  # fmt: skip
def test_text_numbers_are_strict(cell: str, reason: str) -> None:
    cells = {k: str(v) for k, v in order().items()} | {"quantity": cell}
    assert rejected(cells, text=True).reason == reason


def test_a_row_that_is_no_object_is_rejected() -> None:
    assert rejected([1, 2]).reason == Reason.NOT_AN_OBJECT
    assert rejected(None).reason == Reason.NOT_AN_OBJECT


def test_time_within_a_day_ahead_is_accepted_and_offsets_become_utc() -> None:
    ahead = (NOW + timedelta(hours=23)).isoformat()
    assert isinstance(check(order(ordered_at=ahead)), ValidRow)
    row = check(order(ordered_at="2026-05-01T10:30:00+02:00"))
    assert isinstance(row, ValidRow)
    assert row.payload["ordered_at"] == "2026-05-01T08:30:00Z"


def test_native_datetimes_and_dates_from_parquet_or_sql_are_taken() -> None:
    naive = datetime(2026, 5, 1, 8, 30)  # naive means UTC
    row = check(order(ordered_at=naive, promised_date=date(2026, 5, 20), line=Decimal(3)))
    assert isinstance(row, ValidRow)
    assert row.payload["ordered_at"] == "2026-05-01T08:30:00Z"
    assert (row.payload["promised_date"], row.payload["line"]) == ("2026-05-20", 3)


def test_measures_become_samples_at_the_expanded_tag_path() -> None:
    stock = {"warehouse": "WH-1", "sku": "BRK-200", "on_hand": 140, "counted_at": NOW}
    row = check(stock, INVENTORY)
    assert isinstance(row, ValidRow)
    assert row.samples == (("erp/inventory/WH-1/BRK-200/on_hand", 140.0),)  # reserved absent
    slash = rejected(stock | {"sku": "BRK/200"}, INVENTORY)
    assert (slash.reason, slash.field) == (Reason.BAD_TAG_PATH, "sku")


def test_booleans_in_text_and_from_sql_integers() -> None:
    customer = {"customer_id": "C-7", "name": "Acme", "updated_at": "2026-05-01T00:00:00Z"}
    contract = CATALOG.get("customers")
    for raw, text, expected in [("yes", True, True), ("0", True, False), (1, False, True)]:
        row = check(customer | {"active": raw}, contract, text=text)
        assert isinstance(row, ValidRow)
        assert row.payload["active"] is expected
    assert rejected(customer | {"active": "maybe"}, contract, text=True).reason == Reason.WRONG_TYPE
    assert rejected(customer | {"active": 2}, contract).reason == Reason.WRONG_TYPE


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_any_float_quantity_is_stored_exactly_or_rejected_as_not_finite(value: float) -> None:
    outcome = check(order(quantity=value))
    if math.isfinite(value):
        assert isinstance(outcome, ValidRow)
        assert outcome.payload["quantity"] == value
    else:
        assert isinstance(outcome, Rejection)
        assert outcome.reason == Reason.NOT_FINITE


@given(st.text(max_size=30))
def test_any_text_cell_either_parses_as_a_number_or_is_rejected(cell: str) -> None:
    cells = {k: str(v) for k, v in order().items()} | {"quantity": cell}
    outcome = check(cells, text=True)
    if isinstance(outcome, ValidRow):
        assert outcome.payload["quantity"] == float(cell)
    else:
        expected = {Reason.WRONG_TYPE, Reason.NOT_FINITE, Reason.MISSING_FIELD}
        assert outcome.reason in expected
        assert outcome.field == "quantity"


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)))
def test_any_time_is_accepted_exactly_when_between_1970_and_a_day_ahead(moment: datetime) -> None:
    outcome = check(order(ordered_at=moment.isoformat()))
    aware = moment.replace(tzinfo=UTC)
    if datetime(1970, 1, 1, tzinfo=UTC) <= aware <= NOW + timedelta(days=1):
        assert isinstance(outcome, ValidRow)
        assert (
            outcome.ts_ns
            == (aware - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
        )
    else:
        assert isinstance(outcome, Rejection)
        assert outcome.reason == Reason.TIME_OUT_OF_RANGE


def test_a_nul_character_rejects_the_row() -> None:
    outcome = rejected(order(customer_id="C-\x007"))
    assert (outcome.reason, outcome.field) == (Reason.BAD_TEXT, "customer_id")
    assert "NUL" in outcome.detail
