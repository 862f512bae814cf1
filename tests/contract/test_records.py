"""Business records: stored once, read by range, by key, or newest version per key."""

from __future__ import annotations

from typing import Any

import pytest
from tests.contract.support import DAY, HOUR, T0

from werk.core.errors import ValidationFailed
from werk.historian import HistorianStore, Record


def _record(key: str, ts: int, ingest: int, msg_id: int = 1, **payload: Any) -> Record:
    return Record("erp/orders", key, ts, ingest, payload or {"qty": 1}, msg_id, "erp.csv")


def test_records_are_stored_once_and_read_oldest_first(store: HistorianStore) -> None:
    first = _record("A-1", T0, T0 + 5, qty=3, lines=[{"sku": "x", "n": 2}], note=None)
    second = _record("A-2", T0 + HOUR, T0 + HOUR, msg_id=2)
    assert store.write_records([first, second, first]) == 2
    assert store.write_records([first]) == 0
    found = store.records("erp/orders", T0, T0 + DAY, 10)
    assert [r.key for r in found] == ["A-1", "A-2"]
    assert found[0].payload == {"qty": 3, "lines": [{"sku": "x", "n": 2}], "note": None}
    assert (found[0].ts_ns, found[0].ingest_ns, found[0].msg_id) == (T0, T0, 1)
    assert found[0].source == "erp.csv" and found[0].dataset == "erp/orders"
    assert store.records("erp/orders", T0 + 1_000, T0 + HOUR, 10) == []
    assert store.records("erp/orders", T0, T0 + DAY, 1) == found[:1]
    assert store.records("crm/accounts", T0, T0 + DAY, 10) == []


def test_the_same_key_and_time_from_another_message_is_a_new_version(
    store: HistorianStore,
) -> None:
    store.write_records([_record("A-1", T0, T0, msg_id=1), _record("A-1", T0, T0 + 1000, 2)])
    assert store.datasets() == {"erp/orders": 2}


def test_latest_keeps_the_newest_version_of_each_key(store: HistorianStore) -> None:
    store.write_records(
        [
            _record("A-1", T0, T0, msg_id=1, status="new"),
            _record("A-1", T0 + HOUR, T0 + HOUR, msg_id=2, status="shipped"),
            _record("A-1", T0 + HOUR, T0 + 2 * HOUR, msg_id=3, status="invoiced"),
            _record("A-2", T0 + 10, T0 + 10, msg_id=4, status="new"),
        ]
    )
    latest = store.records("erp/orders", T0, T0 + DAY, 10, latest=True)
    assert [(r.key, r.payload["status"]) for r in latest] == [("A-2", "new"), ("A-1", "invoiced")]
    one = store.records("erp/orders", T0, T0 + DAY, 10, key="A-1")
    assert [r.payload["status"] for r in one] == ["new", "shipped", "invoiced"]
    newest = store.records("erp/orders", T0, T0 + DAY, 10, key="A-1", latest=True)
    assert [r.msg_id for r in newest] == [3]


def test_datasets_count_their_records(store: HistorianStore) -> None:
    assert store.datasets() == {}
    store.write_records([_record("A-1", T0, T0), _record("A-2", T0, T0)])
    store.write_records([Record("crm/accounts", "C-1", T0, T0, {}, 9, "crm")])
    assert store.datasets() == {"erp/orders": 2, "crm/accounts": 1}
    assert store.write_records([]) == 0


def test_a_payload_json_cannot_hold_is_refused(store: HistorianStore) -> None:
    with pytest.raises(ValidationFailed):
        store.write_records([_record("A-1", T0, T0, qty=float("nan"))])
    with pytest.raises(ValidationFailed):
        store.write_records([_record("A-1", T0, T0, when=object())])
    assert store.datasets() == {}
