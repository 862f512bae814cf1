"""The refiner against a real DuckDB historian: processed rows, rollups, late data, outages."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import wait_until

from werk.core.errors import StorageUnavailable, ValidationFailed
from werk.historian import DuckDBStore, Flag, Layer, RawColumns, refiner_reprocess
from werk.historian.refiner import Refiner
from werk.historian.rules import QualityRule, RuleSet

S = 1_000_000_000
DAY = 1_763_683_200 * S  # a midnight, UTC
T0 = DAY + 3600 * S  # 01:00
TEMP = "acme/berlin/machining/line-1/cell-1/cnc-1/temp"
STATE = "acme/berlin/machining/line-1/cell-1/cnc-1/state"
RUNNING = "acme/berlin/machining/line-1/cell-1/cnc-1/running"
_msg = iter(range(1, 1_000_000))


def _raw(
    tag: str,
    samples: list[tuple[float, float | str | bool]],
    quality: int = 0,
    arrived_s: float | None = None,
) -> RawColumns:
    """Raw rows of one tag: (seconds after T0, value), each its own message.

    Each arrives a second after its sample, or at `arrived_s` after T0 when given.
    """
    rows = RawColumns()
    for offset_s, value in samples:
        ts = T0 + int(offset_s * S)
        ingest = ts + S if arrived_s is None else T0 + int(arrived_s * S)
        rows.append(tag, ts, ingest, value, quality, next(_msg))
    return rows


class Rules:
    """A rule set the test can swap, as the runtime does on a change."""

    def __init__(self, *rules: QualityRule) -> None:
        self.current = RuleSet(rules)

    def __call__(self) -> RuleSet:
        return self.current


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    s = DuckDBStore(tmp_path / "h.duckdb")
    s.open()
    yield s
    s.close()


def _refiner(store: DuckDBStore, rules: Rules, **options: object) -> Refiner:
    return Refiner(store, rules, interval_s=0.05, batch_rows=10_000, **options)  # type: ignore[arg-type]


def _processed(store: DuckDBStore, tag: str) -> list[tuple[float, object, int, int]]:
    """(seconds after T0, value, quality, flags) of the processed samples of a tag."""
    points = store.points(tag, DAY, DAY + 86400 * S, 1000, layer=Layer.PROCESSED)
    return [((p.ts_ns - T0) / S, p.value, p.quality, p.flags) for p in points]


def test_raw_samples_become_processed_in_canonical_units_with_flags(store: DuckDBStore) -> None:
    rules = Rules(QualityRule(tags="acme/+/+/line-1/#", unit="degF", canonical_unit="degC",
                              max=100, max_rate=5))  # fmt: skip
    store.write(_raw(TEMP, [(0, 32.0), (1, 41.0), (2, 50.0), (3, 230.0), (4, math.nan)]))
    refiner = _refiner(store, rules)
    assert refiner.run_once() == 5
    assert _processed(store, TEMP)[:4] == [
        (0.0, 0.0, 0, 0),
        (1.0, 5.0, 0, 0),
        (2.0, 10.0, 0, 0),
        (3.0, 110.0, 2, Flag.RANGE | Flag.RATE),
    ]
    _, value, quality, flags = _processed(store, TEMP)[4]
    assert math.isnan(value) and (quality, flags) == (2, Flag.NOT_FINITE)  # type: ignore[arg-type]
    stats = refiner.stats()
    assert (stats.mark, stats.newest_batch, stats.refined) == (1, 1, 5)
    assert stats.violations == {TEMP: {"range": 1, "rate": 1, "not_finite": 1}}
    assert refiner.run_once() == 0


def test_duplicates_keep_the_newest_message_and_text_and_booleans_pass(store: DuckDBStore) -> None:
    rows = _raw(TEMP, [(0, 1.0)])
    rows.append(TEMP, T0, T0 + 5 * S, 2.0, 0, 900)  # the same sample sent again, newer
    rows.append(TEMP, T0, T0 + 2 * S, 3.0, 0, 901)
    store.write(rows)
    store.write(_raw(STATE, [(0, "RUN"), (1, "STOP")]))
    store.write(_raw(RUNNING, [(0, True), (1, False)]))
    _refiner(store, Rules(QualityRule(tags="#", max=0.5, spike=0.1))).run_once()
    points = store.points(TEMP, DAY, DAY + 86400 * S, 10, layer=Layer.PROCESSED)
    assert [(p.value, p.msg_id, p.flags) for p in points] == [(2.0, 900, Flag.RANGE)]
    assert _processed(store, STATE) == [(0.0, "RUN", 0, 0), (1.0, "STOP", 0, 0)]
    assert _processed(store, RUNNING) == [(0.0, True, 0, 0), (1.0, False, 0, 0)]


def test_a_spike_at_the_end_of_a_batch_is_flagged_with_the_next(store: DuckDBStore) -> None:
    refiner = _refiner(store, Rules(QualityRule(tags="#", spike=5)))
    store.write(_raw(TEMP, [(0, 10.0), (1, 10.0), (2, 40.0)]))
    refiner.run_once()
    assert _processed(store, TEMP)[2] == (2.0, 40.0, 0, 0)
    store.write(_raw(TEMP, [(3, 10.5)]))
    refiner.run_once()
    assert _processed(store, TEMP)[2] == (2.0, 40.0, 1, Flag.SPIKE)
    (minute,) = store.rollups(TEMP, 60, T0, T0 + 60 * S)
    assert (minute.count, minute.flagged, minute.max) == (4, 1, 40.0)
    assert refiner.stats().violations == {TEMP: {"spike": 1}}


def _rollup(store: DuckDBStore, width_s: int, start_ns: int) -> tuple[int, float, int, int]:
    (rollup,) = store.rollups(TEMP, width_s, start_ns, start_ns + 1)
    return rollup.count, rollup.sum, rollup.flagged, rollup.bad


def test_late_data_corrects_the_minute_hour_and_day_rollups(store: DuckDBStore) -> None:
    refiner = _refiner(store, Rules(QualityRule(tags="#", spike=5, max=1000)))
    store.write(_raw(TEMP, [(0, 10.0), (20, 10.0), (40, 10.0), (61, 10.0), (3700, 10.0)]))
    refiner.run_once()
    assert _rollup(store, 60, T0) == (3, 30.0, 0, 0)
    assert _rollup(store, 3600, T0) == (4, 40.0, 0, 0)
    assert _rollup(store, 86400, DAY) == (5, 50.0, 0, 0)
    store.write(_raw(TEMP, [(30, 90.0), (45, 5000.0)], arrived_s=3800))  # late: between stored
    refiner.run_once()
    late = _processed(store, TEMP)
    assert late[2] == (30.0, 90.0, 1, Flag.LATE | Flag.SPIKE)
    assert late[4] == (45.0, 5000.0, 2, Flag.LATE | Flag.RANGE | Flag.SPIKE)
    assert _rollup(store, 60, T0) == (4, 120.0, 1, 1)
    assert _rollup(store, 3600, T0) == (5, 130.0, 1, 1)
    assert _rollup(store, 86400, DAY) == (6, 140.0, 1, 1)
    assert _rollup(store, 60, T0 + 60 * S) == (1, 10.0, 0, 0)  # untouched


def test_late_data_is_judged_between_its_neighbours_not_the_newest(store: DuckDBStore) -> None:
    refiner = _refiner(store, Rules(QualityRule(tags="#", max_rate=1, stale_s=30)))
    store.write(_raw(TEMP, [(0, 0.0), (10, 5.0), (100, 100.0)]))
    refiner.run_once()
    store.write(_raw(TEMP, [(5, 2.0), (50, 50.0)], arrived_s=200))
    refiner.run_once()
    flags = {ts: f for ts, _, _, f in _processed(store, TEMP)}
    assert flags[5.0] == Flag.LATE  # 2 in 5 s after 0: slow enough
    assert flags[50.0] == Flag.LATE | Flag.RATE | Flag.GAP  # 45 in 40 s after 10 s of 5
    store.write(_raw(TEMP, [(101, 100.5)]))
    refiner.run_once()  # the live state did not move back to 50 s
    assert _processed(store, TEMP)[-1] == (101.0, 100.5, 0, 0)


def test_a_restart_continues_from_the_mark_without_duplicates(
    store: DuckDBStore, tmp_path: Path
) -> None:
    rules = Rules(QualityRule(tags="#", spike=5))
    store.write(_raw(TEMP, [(0, 10.0), (1, 10.0)]))
    store.write(_raw(TEMP, [(2, 40.0)]))
    _refiner(store, rules).run_once()
    store.close()
    again = DuckDBStore(tmp_path / "h.duckdb")
    again.open()
    try:
        assert again.refined_through() == 2
        again.write(_raw(TEMP, [(3, 10.0), (4, 10.0)]))
        refiner = _refiner(again, rules)
        assert refiner.run_once() == 2  # only the new batch
        assert refiner.run_once() == 0
        assert [f for _, _, _, f in _processed(again, TEMP)] == [0, 0, Flag.SPIKE, 0, 0]
        assert again.count(Layer.PROCESSED) == 5
        assert _rollup(again, 60, T0) == (5, 80.0, 1, 0)
    finally:
        again.close()


def test_storage_down_then_up_loses_nothing(store: DuckDBStore) -> None:
    refiner = _refiner(store, Rules(QualityRule(tags="#", max=100)))
    for i in range(5):
        store.write(_raw(TEMP, [(i * 10 + j, float(i * 10 + j)) for j in range(10)]))
    store.close()
    with pytest.raises(StorageUnavailable):
        refiner.run_once()
    refiner.start()
    try:
        wait_until(lambda: refiner.stats().last_error is not None)
        assert refiner.stats().mark == 0
        store.open()
        wait_until(lambda: refiner.stats().mark == 5)
        wait_until(lambda: refiner.stats().last_error is None)
    finally:
        refiner.stop()
    assert not refiner.alive
    assert store.count(Layer.PROCESSED) == 50
    assert _rollup(store, 60, T0) == (50, float(sum(range(50))), 0, 0)


def test_the_thread_refines_when_notified(store: DuckDBStore) -> None:
    refiner = Refiner(store, Rules(), interval_s=30, batch_rows=1000)
    refiner.start()
    try:
        store.write(_raw(TEMP, [(0, 1.0)]))
        refiner.notify()
        wait_until(lambda: store.count(Layer.PROCESSED) == 1, timeout=5)
        assert refiner.stats().running
    finally:
        refiner.stop()
    assert not refiner.stats().running


def test_a_unit_the_tag_publishes_that_cannot_convert_is_flagged(store: DuckDBStore) -> None:
    rules = Rules(QualityRule(tags="#", unit="degC", canonical_unit="K"))
    units = {TEMP: "bar", STATE: "degF"}
    store.write(_raw(TEMP, [(0, 1.0)]))
    store.write(_raw(STATE, [(0, 32.0)]))
    _refiner(store, rules, tag_units=units.get).run_once()
    assert _processed(store, TEMP) == [(0.0, 1.0, 1, Flag.UNIT)]
    assert _processed(store, STATE) == [(0.0, 273.15, 0, 0)]  # from the published degF


def test_missing_tags_are_those_silent_beyond_their_stale_limit(store: DuckDBStore) -> None:
    rules = Rules(QualityRule(tags=TEMP, stale_s=60), QualityRule(tags="#"))
    store.write(_raw(TEMP, [(0, 1.0)]))
    store.write(_raw(STATE, [(0, "RUN")]))
    refiner = _refiner(store, rules)
    assert refiner.missing(T0 + 59 * S) == []
    assert refiner.missing(T0 + 61 * S) == [(TEMP, T0, 60.0)]


def test_reprocessing_applies_changed_rules_to_stored_samples(store: DuckDBStore) -> None:
    rules = Rules()
    store.write(_raw(TEMP, [(0, 10.0), (30, 60.0), (70, 20.0)]))
    store.write(_raw(STATE, [(0, "RUN")]))
    refiner = _refiner(store, rules)
    refiner.run_once()
    store.write(_raw(TEMP, [(10, 15.0)], arrived_s=100))  # late, not refined yet
    assert _rollup(store, 60, T0) == (2, 70.0, 0, 0)
    rules.current = RuleSet([QualityRule(tags="acme/#", max=50)])
    result = refiner.reprocess("acme/+/+/line-1/#", T0, T0 + 60 * S)
    assert (result.tags, result.samples) == (2, 4)
    assert [f for _, _, _, f in _processed(store, TEMP)] == [0, Flag.LATE, Flag.RANGE, 0]
    assert _rollup(store, 60, T0) == (2, 25.0, 1, 1)
    assert _rollup(store, 86400, DAY) == (3, 45.0, 1, 1)
    with pytest.raises(ValidationFailed):
        refiner.reprocess("a/#/b", T0, T0 + S)


def test_rules_that_change_apply_to_data_refined_afterwards(store: DuckDBStore) -> None:
    rules = Rules()
    refiner = _refiner(store, rules)
    store.write(_raw(TEMP, [(0, 500.0)]))
    refiner.run_once()
    rules.current = RuleSet([QualityRule(tags="#", max=100)])
    store.write(_raw(TEMP, [(1, 500.0)]))
    refiner.run_once()
    assert [f for _, _, _, f in _processed(store, TEMP)] == [0, Flag.RANGE]


def test_reprocessing_pages_through_long_ranges_and_duplicates(
    store: DuckDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(refiner_reprocess, "PAGE_ROWS", 4)
    rules = Rules()
    values = [10.0, 10.0, 10.0, 10.0, 40.0, 10.0, 10.0, 10.0, 10.0, 10.0, 70.0]
    store.write(_raw(TEMP, list(enumerate(values))))
    store.write(_raw(TEMP, [(3, 10.0), (4, 40.0)]))  # the same samples again, newer
    refiner = _refiner(store, rules)
    refiner.run_once()
    rules.current = RuleSet([QualityRule(tags="#", spike=5)])
    result = refiner.reprocess("#", T0, T0 + 10 * S)  # the spike at 10 s lies outside
    assert (result.tags, result.samples) == (1, 10)
    spiked = [ts for ts, _, _, f in _processed(store, TEMP) if f & Flag.SPIKE]
    assert spiked == [4.0]
    assert store.count(Layer.PROCESSED) == 11
    assert _rollup(store, 60, T0) == (11, 200.0, 1, 0)
