"""Retention and compaction planned and applied on a real DuckDB historian."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from tests.integration.historian.lifecycle_support import (
    DATASETS,
    KPI_NAMES,
    NAMES,
    NS_PER_S,
    US_PER_S,
    caught_up,
    everything,
    fill,
    rows,
)

from werk.core.settings import RetentionRule
from werk.historian import DuckDBStore, HistorianStore
from werk.historian.layers import Table
from werk.historian.lifecycle import (
    NAMES_PER_CALL,
    ActionKind,
    CompactionMarks,
    RetentionAction,
    apply,
    plan,
)

NOW_NS = 1_800_000_000 * NS_PER_S
NOW_US = NOW_NS // 1000
HOUR_US, DAY_US = 3600 * US_PER_S, 86400 * US_PER_S
AGES_US = (HOUR_US, 2 * DAY_US, 40 * DAY_US)
STAMPS = [NOW_US - age for age in reversed(AGES_US)]
BERLIN, MUNICH = NAMES


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistorianStore]:
    backend = DuckDBStore(tmp_path / "h.duckdb")
    backend.open()
    yield backend
    backend.close()


def _rule(table: str, subtree: str, keep: str, compact_after: str | None = None) -> RetentionRule:
    return RetentionRule(table=table, subtree=subtree, keep=keep, compact_after=compact_after)  # type: ignore[arg-type]


def _ages(store: HistorianStore, table: Table) -> dict[str, list[int]]:
    data = everything(store, table)
    name_column, ts_column = data.column(0).to_pylist(), data.column("ts").cast(pa.int64())
    found: dict[str, list[int]] = {}
    for name, ts in zip(name_column, ts_column.to_pylist(), strict=True):
        found.setdefault(name, []).append((NOW_US - ts) // HOUR_US)
    return {name: sorted(ages) for name, ages in found.items()}


def _cutoff(age_us: int) -> int:
    return (NOW_US - age_us) * 1000


def test_a_name_several_rules_govern_keeps_the_longest(store: HistorianStore) -> None:
    fill(store, Table.RAW, STAMPS)
    rules = [_rule("raw", "#", "1d"), _rule("raw", "acme/berlin/#", "30d")]
    actions = plan(rules, store, NOW_NS)
    assert actions == [
        RetentionAction(ActionKind.DELETE, Table.RAW, "#", (MUNICH,), 0, _cutoff(DAY_US)),
        RetentionAction(
            ActionKind.DELETE, Table.RAW, "acme/berlin/#", (BERLIN,), 0, _cutoff(30 * DAY_US)
        ),
    ]
    report = apply(actions, store)
    assert (report.deleted, report.error) == (3, None)
    assert _ages(store, Table.RAW) == {BERLIN: [1, 48], MUNICH: [1]}


def test_names_no_rule_matches_are_kept(store: HistorianStore) -> None:
    fill(store, Table.RAW, STAMPS)
    apply(plan([_rule("raw", "acme/berlin/#", "1d")], store, NOW_NS), store)
    assert _ages(store, Table.RAW) == {BERLIN: [1], MUNICH: [1, 48, 960]}


def test_one_catch_all_rule_deletes_over_every_name(store: HistorianStore) -> None:
    fill(store, Table.PROCESSED, STAMPS)
    actions = plan([_rule("processed", "#", "7d")], store, NOW_NS)
    assert [a.names for a in actions] == [None]
    assert apply(actions, store).deleted == 2
    assert _ages(store, Table.PROCESSED) == {BERLIN: [1, 48], MUNICH: [1, 48]}


def test_kpis_and_records_are_governed_by_their_names(store: HistorianStore) -> None:
    fill(store, Table.KPIS, STAMPS)
    fill(store, Table.RECORDS, STAMPS)
    rules = [_rule("kpis", "oee/acme/berlin/#", "1d"), _rule("records", "erp/#", "3d")]
    report = apply(plan(rules, store, NOW_NS), store)
    assert report.deleted == 2 + 1
    assert _ages(store, Table.KPIS) == {KPI_NAMES[0]: [1], KPI_NAMES[1]: [1, 48, 960]}
    assert _ages(store, Table.RECORDS) == {DATASETS[0]: [1, 48], DATASETS[1]: [1, 48, 960]}


def test_rollups_are_retained_by_bucket_start(store: HistorianStore) -> None:
    fill(store, Table.ROLLUPS, STAMPS)
    assert apply(plan([_rule("rollups", "#", "3d")], store, NOW_NS), store).deleted == 2
    assert store.count(Table.ROLLUPS.layer) == 4


def test_many_names_are_deleted_in_slices(store: HistorianStore) -> None:
    tags = [f"site/area/line/cell/m-{i:04d}/temp" for i in range(NAMES_PER_CALL + 20)]
    loaded = [rows(Table.RAW, tag, STAMPS, msg_id=10 * i) for i, tag in enumerate(tags)]
    store.load(Table.RAW, pa.concat_tables(loaded))
    fill(store, Table.RAW, STAMPS)
    caught_up(store)
    rules = [_rule("raw", "#", "1d"), _rule("raw", "acme/#", "30d")]
    report = apply(plan(rules, store, NOW_NS), store)
    assert report.deleted == 2 * len(tags) + 2
    assert store.count() == len(tags) + 4


def test_compaction_resumes_where_the_last_run_stopped(
    store: HistorianStore, tmp_path: Path
) -> None:
    fill(store, Table.RAW, STAMPS)
    rules = [_rule("raw", "#", "30d", compact_after="1d")]
    marks = CompactionMarks.load(tmp_path / "retention-state.json")
    first = plan(rules, store, NOW_NS, marks=marks)
    assert [(a.kind, a.start_ns, a.end_ns) for a in first] == [
        (ActionKind.DELETE, 0, _cutoff(30 * DAY_US)),
        (ActionKind.COMPACT, 0, _cutoff(DAY_US)),
    ]
    assert apply(first, store, marks=marks).compacted == 2  # the 2-day-old rows

    later = NOW_NS + 3600 * NS_PER_S
    reloaded = CompactionMarks.load(tmp_path / "retention-state.json")
    second = plan(rules, store, later, marks=reloaded)
    compact = [a for a in second if a.kind is ActionKind.COMPACT]
    assert [(a.start_ns, a.end_ns) for a in compact] == [
        (_cutoff(DAY_US), later - 86400 * NS_PER_S)
    ]
    assert apply(second, store, marks=reloaded).compacted == 0
    assert _ages(store, Table.RAW) == {BERLIN: [1, 48], MUNICH: [1, 48]}


def test_compaction_follows_the_most_eager_rule(store: HistorianStore) -> None:
    fill(store, Table.RAW, STAMPS)
    rules = [
        _rule("raw", "#", "60d", compact_after="7d"),
        _rule("raw", "acme/munich/#", "30d", "1d"),
    ]
    compacts = [a for a in plan(rules, store, NOW_NS) if a.kind is ActionKind.COMPACT]
    assert [(a.subtree, a.names, a.end_ns) for a in compacts] == [
        ("#", (BERLIN,), _cutoff(7 * DAY_US)),
        ("acme/munich/#", (MUNICH,), _cutoff(DAY_US)),
    ]


def test_a_run_stops_at_a_storage_failure_and_says_so(store: HistorianStore) -> None:
    fill(store, Table.RAW, STAMPS)
    actions = plan([_rule("raw", "#", "1d")], store, NOW_NS)
    store.close()
    report = apply(actions, store)
    assert report.outcomes == ()
    assert report.error is not None and "not open" in report.error
    assert report.summary().endswith(f"stopped: {report.error}")
    store.open()
    assert store.count() == 6


def test_processed_rows_outlive_their_raw_rows_under_their_own_rules(
    store: HistorianStore,
) -> None:
    fill(store, Table.RAW, STAMPS)
    fill(store, Table.PROCESSED, STAMPS)
    rules = [
        _rule("raw", "#", "1m"),
        _rule("processed", "acme/berlin/#", "1d"),
        _rule("processed", "acme/munich/#", "30d"),
    ]
    apply(plan(rules, store, NOW_NS), store)
    assert store.count() == 0
    assert _ages(store, Table.PROCESSED) == {BERLIN: [1], MUNICH: [1, 48]}
    again = plan(rules, store, NOW_NS + 3 * DAY_US * 1000)
    assert [a.names for a in again if a.table is Table.PROCESSED] == [(BERLIN,), (MUNICH,)]
    apply(again, store)
    assert _ages(store, Table.PROCESSED) == {MUNICH: [1, 48]}


def test_raw_rows_the_refiner_has_not_reached_are_kept(store: HistorianStore) -> None:
    fill(store, Table.RAW, STAMPS)
    store.load(Table.RAW, rows(Table.RAW, NAMES[0], [STAMPS[0]], msg_id=77))
    before = store.count()
    report = apply(plan([_rule("raw", "#", "1d")], store, NOW_NS), store)
    assert (report.deleted, store.count()) == (0, before)
    caught_up(store)
    assert apply(plan([_rule("raw", "#", "1d")], store, NOW_NS), store).deleted > 0
