"""Retention rules, subtree filters and compaction marks, without a store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from werk.core.errors import StorageUnavailable, ValidationFailed
from werk.core.filters import matches
from werk.core.settings import RetentionRule, Settings
from werk.historian.layers import Table
from werk.historian.lifecycle import (
    ActionKind,
    ActionOutcome,
    CompactionMarks,
    ResolvedRule,
    RetentionAction,
    RetentionReport,
    check_rules,
    check_subtree,
)

_LEVEL = st.sampled_from(["acme", "berlin", "line-1", "temp", "+", "#", "", "a+", "x#y"])


@given(st.lists(_LEVEL, min_size=1, max_size=5))
def test_subtree_filters_follow_the_mqtt_wildcard_rules(levels: list[str]) -> None:
    subtree = "/".join(levels)
    hash_last = "#" not in levels[:-1]
    whole = all(lv in ("+", "#") or ("+" not in lv and "#" not in lv) for lv in levels)
    if subtree and hash_last and whole:
        assert check_subtree(subtree) == subtree
        return
    with pytest.raises(ValidationFailed) as caught:
        check_subtree(subtree)
    assert caught.value.code == "bad_filter"
    assert repr(subtree) in str(caught.value)


@pytest.mark.parametrize(
    ("subtree", "name", "expected"),
    [
        ("#", "oee", True),
        ("acme/berlin/#", "acme/berlin", True),
        ("acme/berlin/#", "acme/berlin/line-1/cell-1/cnc-1/temp", True),
        ("acme/berlin/#", "acme/berliner/x", False),
        ("acme/+/machining/#", "acme/munich/machining/line-2/t", True),
        ("acme/berlin", "acme/berlin/line-1", False),
        ("orders", "orders", True),
    ],
)
def test_subtree_examples(subtree: str, name: str, expected: bool) -> None:
    assert matches(subtree, name) is expected


def _rule(table: str = "raw", subtree: str = "#", keep: str = "30d", **more: str) -> RetentionRule:
    return RetentionRule(table=table, subtree=subtree, keep=keep, **more)  # type: ignore[arg-type]


def test_rules_resolve_to_seconds() -> None:
    resolved = check_rules([_rule(keep="7d", compact_after="1h"), _rule("kpis", keep="1m")])
    assert resolved == [
        ResolvedRule(Table.RAW, "#", 7 * 86400.0, 3600.0),
        ResolvedRule(Table.KPIS, "#", 60.0, None),
    ]


@pytest.mark.parametrize("keep", ["59s", "30s", "59999ms", "0.5m"])
def test_a_rule_keeping_less_than_a_minute_is_refused(keep: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_rules([_rule(keep="30d"), _rule(subtree="acme/#", keep=keep)])
    assert caught.value.code == "retention_too_short"
    assert str(caught.value) == (
        f"retention rule 2 (raw 'acme/#') keeps {keep}; a rule must keep at least 1m"
    )


def test_compact_after_must_be_shorter_than_keep() -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_rules([_rule(keep="7d", compact_after="7d")])
    assert caught.value.code == "compact_after_keep"
    assert "compacts after 7d but keeps only 7d" in str(caught.value)


def test_two_rules_for_the_same_table_and_subtree_are_refused() -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_rules([_rule(keep="7d"), _rule("kpis", keep="7d"), _rule(keep="9d")])
    assert caught.value.code == "duplicate_retention_rule"
    assert "retention rule 3 (raw '#')" in str(caught.value)


def test_a_bad_subtree_filter_is_refused() -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_rules([_rule(subtree="acme/#/berlin")])
    assert caught.value.code == "bad_filter"


def test_zero_durations_are_refused() -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_rules([_rule(keep="7d", compact_after="0s")])
    assert caught.value.code == "bad_duration"
    assert str(caught.value).startswith("retention rule 1 (raw '#') compact_after:")


def test_rules_come_from_werk_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "werk.toml"
    config.write_text(
        '[[retention]]\ntable = "raw"\nsubtree = "acme/berlin/#"\nkeep = "30d"\n'
        'compact_after = "1d"\n\n[[retention]]\ntable = "rollups"\nkeep = "3650d"\n'
    )
    monkeypatch.setenv("WERK_CONFIG", str(config))
    resolved = check_rules(Settings().retention)
    assert [(r.table, r.subtree, r.keep_s) for r in resolved] == [
        (Table.RAW, "acme/berlin/#", 30 * 86400.0),
        (Table.ROLLUPS, "#", 3650 * 86400.0),
    ]


def test_marks_persist_across_loads(tmp_path: Path) -> None:
    path = tmp_path / "state" / "retention-state.json"
    marks = CompactionMarks.load(path)
    assert marks.get(Table.RAW, "acme/#") == 0
    marks.set(Table.RAW, "acme/#", 1_700_000_000_000_000_000)
    again = CompactionMarks.load(path)
    assert again.get(Table.RAW, "acme/#") == 1_700_000_000_000_000_000
    assert again.get(Table.PROCESSED, "acme/#") == 0
    assert json.loads(path.read_text())["version"] == 1


def test_an_unreadable_state_file_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "retention-state.json"
    path.write_text("{not json")
    assert CompactionMarks.load(path).get(Table.RAW, "#") == 0


def test_an_unwritable_state_file_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    marks = CompactionMarks.load(blocker / "retention-state.json")
    with pytest.raises(StorageUnavailable) as caught:
        marks.set(Table.RAW, "#", 1)
    assert caught.value.code == "retention_state"


def test_report_summary_counts_deleted_and_compacted_rows() -> None:
    delete = RetentionAction(ActionKind.DELETE, Table.RAW, "#", None, 0, 10)
    compact = RetentionAction(ActionKind.COMPACT, Table.RAW, "#", ("a",), 0, 5)
    report = RetentionReport(
        0, 1.5, (ActionOutcome(delete, 7, 1.0), ActionOutcome(compact, 3, 0.5)), "down"
    )
    assert (report.deleted, report.compacted) == (7, 3)
    assert report.summary() == (
        "retention: deleted 7 rows, compacted 3 rows in 1 ranges, 2 actions in 1.50 s; "
        "stopped: down"
    )
