"""Retention and compaction per table and namespace subtree.

A retention rule names a table, an MQTT-style filter over the names the table holds (tag
paths, KPI names or dataset names), how long rows are kept and, optionally, after which
age rows are compacted. A name several rules govern keeps the longest `keep` and is
compacted by the rule with the shortest `compact_after`. Names no rule matches are kept.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from werk.core.clock import NS_PER_S, now_ns
from werk.core.errors import StorageUnavailable, TopicError, ValidationFailed
from werk.core.filters import check_levels, matches
from werk.core.settings import RetentionRule
from werk.historian.layers import Table
from werk.historian.service import parse_duration
from werk.historian.store import HistorianStore

_LOGGER = logging.getLogger(__name__)

MIN_KEEP_S: Final = 60.0
NAMES_PER_CALL: Final = 500  # bounds the size of one delete/compact statement
_STATE_VERSION: Final = 1


class ActionKind(StrEnum):
    """What a retention action does."""

    DELETE = "delete"
    COMPACT = "compact"


@dataclass(frozen=True, slots=True)
class ResolvedRule:
    """A checked retention rule with its durations in seconds."""

    table: Table
    subtree: str
    keep_s: float
    compact_after_s: float | None


@dataclass(frozen=True, slots=True)
class RetentionAction:
    """Delete or compact rows of [start, end) of some names of one table.

    `names` None means every name of the table; `subtree` is the filter of the rule the
    action comes from.
    """

    kind: ActionKind
    table: Table
    subtree: str
    names: tuple[str, ...] | None
    start_ns: int
    end_ns: int


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """What one action did: rows deleted, or rows kept by a compaction."""

    action: RetentionAction
    rows: int
    seconds: float


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """The result of one retention run; `error` says why it stopped early."""

    started_ns: int
    seconds: float
    outcomes: tuple[ActionOutcome, ...]
    error: str | None = None

    @property
    def deleted(self) -> int:
        """Rows the run deleted."""
        return sum(o.rows for o in self.outcomes if o.action.kind is ActionKind.DELETE)

    @property
    def compacted(self) -> int:
        """Rows the run rewrote by compaction."""
        return sum(o.rows for o in self.outcomes if o.action.kind is ActionKind.COMPACT)

    def summary(self) -> str:
        """One line for the log and the command line."""
        ranges = sum(1 for o in self.outcomes if o.action.kind is ActionKind.COMPACT)
        line = (
            f"retention: deleted {self.deleted} rows, compacted {self.compacted} rows "
            f"in {ranges} ranges, {len(self.outcomes)} actions in {self.seconds:.2f} s"
        )
        return line if self.error is None else f"{line}; stopped: {self.error}"


# -- subtree filters -------------------------------------------------------------------


def check_subtree(subtree: str) -> str:
    """Validate an MQTT-style filter over names (``#`` last, ``+`` a whole level)."""
    try:
        return check_levels(subtree)
    except TopicError as exc:
        raise ValidationFailed(
            f"subtree filter {subtree!r}: {exc.message}", code="bad_filter"
        ) from exc


def table_names(store: HistorianStore, table: Table) -> list[str]:
    """The names a table's rows carry: tag paths, KPI names or dataset names."""
    if table is Table.KPIS:
        return store.kpi_names()
    if table is Table.RECORDS:
        return sorted(store.datasets())
    return store.tag_paths()


def names_in_subtree(store: HistorianStore, table: Table, subtree: str) -> list[str]:
    """The names of a table that lie in a subtree."""
    check_subtree(subtree)
    return [n for n in table_names(store, table) if matches(subtree, n)]


# -- rules -----------------------------------------------------------------------------


def check_rules(rules: Sequence[RetentionRule]) -> list[ResolvedRule]:
    """Resolve rules, refusing filters, durations and duplicates that cannot work."""
    resolved: list[ResolvedRule] = []
    seen: set[tuple[Table, str]] = set()
    for number, rule in enumerate(rules, start=1):
        where = f"retention rule {number} ({rule.table} {rule.subtree!r})"
        one = _resolve(rule, where)
        if (one.table, one.subtree) in seen:
            raise ValidationFailed(
                f"{where} repeats the table and subtree of an earlier rule; merge them",
                code="duplicate_retention_rule",
            )
        seen.add((one.table, one.subtree))
        resolved.append(one)
    return resolved


def _resolve(rule: RetentionRule, where: str) -> ResolvedRule:
    check_subtree(rule.subtree)
    keep_s = _duration(rule.keep, where, "keep")
    if keep_s < MIN_KEEP_S:
        raise ValidationFailed(
            f"{where} keeps {rule.keep}; a rule must keep at least 1m",
            code="retention_too_short",
            keep=rule.keep,
        )
    compact_s = (
        None
        if rule.compact_after is None
        else _duration(rule.compact_after, where, "compact_after")
    )
    if compact_s is not None and compact_s >= keep_s:
        raise ValidationFailed(
            f"{where} compacts after {rule.compact_after} but keeps only {rule.keep}; "
            "compact_after must be shorter than keep",
            code="compact_after_keep",
        )
    return ResolvedRule(Table(rule.table), rule.subtree, keep_s, compact_s)


def _duration(text: str, where: str, what: str) -> float:
    try:
        return parse_duration(text)
    except ValidationFailed as exc:
        raise ValidationFailed(f"{where} {what}: {exc.message}", code=exc.code) from exc


# -- compaction watermarks -------------------------------------------------------------


class CompactionMarks:
    """How far each table/subtree is compacted, kept in a small JSON file (or in memory)."""

    def __init__(self, path: Path | None, marks: dict[str, int] | None = None) -> None:
        self.path = path
        self._marks = dict(marks or {})

    @classmethod
    def load(cls, path: Path | None) -> CompactionMarks:
        """Read the marks; an unreadable file starts over (compaction is repeatable)."""
        if path is None or not path.exists():
            return cls(path)
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            marks = {str(k): int(v) for k, v in state["marks"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            _LOGGER.warning(
                "compaction state %s unreadable (%s); compacting from the start", path, exc
            )
            return cls(path)
        return cls(path, marks)

    def get(self, table: Table, subtree: str) -> int:
        """End of the range compacted so far (0 for none)."""
        return self._marks.get(_mark_key(table, subtree), 0)

    def set(self, table: Table, subtree: str, end_ns: int) -> None:
        """Record that rows before `end_ns` are compacted, and persist it."""
        self._marks[_mark_key(table, subtree)] = end_ns
        self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        body = json.dumps({"version": _STATE_VERSION, "marks": self._marks}, indent=1)
        temp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temp.write_text(body, encoding="utf-8")
            os.replace(temp, self.path)
        except OSError as exc:
            raise StorageUnavailable(
                f"cannot write the compaction state {self.path}: {exc}", code="retention_state"
            ) from exc


def _mark_key(table: Table, subtree: str) -> str:
    return f"{table.value} {subtree}"


# -- planning --------------------------------------------------------------------------


def plan(
    rules: Sequence[RetentionRule],
    store: HistorianStore,
    now_ns: int,
    *,
    marks: CompactionMarks | None = None,
) -> list[RetentionAction]:
    """What a retention run does now: every delete first, then every compaction."""
    resolved = check_rules(rules)
    marks = marks or CompactionMarks(None)
    deletes: list[RetentionAction] = []
    compacts: list[RetentionAction] = []
    for table in Table:
        governing = [r for r in resolved if r.table is table]
        if governing:
            table_deletes, table_compacts = _table_plan(table, governing, store, now_ns, marks)
            deletes += table_deletes
            compacts += table_compacts
    return deletes + compacts


def _table_plan(
    table: Table,
    rules: list[ResolvedRule],
    store: HistorianStore,
    now: int,
    marks: CompactionMarks,
) -> tuple[list[RetentionAction], list[RetentionAction]]:
    keepers, compactors = _govern(table, rules, store)
    deletes: list[RetentionAction] = []
    compacts: list[RetentionAction] = []
    for rule in rules:  # actions in the order the rules are configured
        if rule in keepers:
            cutoff = _age_cutoff(now, rule.keep_s)
            deletes.append(
                RetentionAction(ActionKind.DELETE, table, rule.subtree, keepers[rule], 0, cutoff)
            )
        if rule in compactors:
            compacts += _compaction(table, rule, compactors[rule], now, marks)
    return deletes, compacts


def _compaction(
    table: Table,
    rule: ResolvedRule,
    names: tuple[str, ...] | None,
    now: int,
    marks: CompactionMarks,
) -> list[RetentionAction]:
    """The range compacted since the rule's mark, if it is not empty."""
    assert rule.compact_after_s is not None
    start, end = marks.get(table, rule.subtree), _age_cutoff(now, rule.compact_after_s)
    if start >= end:
        return []
    return [RetentionAction(ActionKind.COMPACT, table, rule.subtree, names, start, end)]


_Governed = dict[ResolvedRule, tuple[str, ...] | None]


def _govern(
    table: Table, rules: list[ResolvedRule], store: HistorianStore
) -> tuple[_Governed, _Governed]:
    """Which rule decides keep, and which compaction, for each name of the table."""
    if len(rules) == 1 and rules[0].subtree == "#":
        only = rules[0]
        return {only: None}, ({only: None} if only.compact_after_s is not None else {})
    keep: dict[ResolvedRule, list[str]] = {}
    compact: dict[ResolvedRule, list[str]] = {}
    for name in table_names(store, table):
        matching = [r for r in rules if matches(r.subtree, name)]
        if not matching:
            continue
        keep.setdefault(max(matching, key=lambda r: r.keep_s), []).append(name)
        eager = [r for r in matching if r.compact_after_s is not None]
        if eager:
            compact.setdefault(min(eager, key=lambda r: r.compact_after_s or 0.0), []).append(name)
    return _frozen(keep), _frozen(compact)


def _frozen(groups: dict[ResolvedRule, list[str]]) -> _Governed:
    return {rule: tuple(sorted(names)) for rule, names in groups.items()}


def _age_cutoff(now: int, age_s: float) -> int:
    return (now - round(age_s * NS_PER_S)) // 1000 * 1000


def rows_in_range(action: RetentionAction, store: HistorianStore) -> int:
    """Rows of the action's table in its range (all names: an upper bound with names)."""
    return store.estimate(action.table, action.start_ns, action.end_ns)


# -- applying --------------------------------------------------------------------------


def apply(
    actions: Sequence[RetentionAction],
    store: HistorianStore,
    *,
    marks: CompactionMarks | None = None,
) -> RetentionReport:
    """Run the actions in order; stop at the first storage failure and say so."""
    started, clock = now_ns(), time.perf_counter()
    outcomes: list[ActionOutcome] = []
    error = None
    try:
        for action in actions:
            if _deletes_unrefined(action, store):
                _LOGGER.warning(
                    "raw retention waits: the refiner has not reached every raw batch yet"
                )
                continue
            outcomes.append(run_action(action, store))
            if action.kind is ActionKind.COMPACT and marks is not None:
                marks.set(action.table, action.subtree, action.end_ns)
    except StorageUnavailable as exc:
        error = exc.message
    return RetentionReport(started, time.perf_counter() - clock, tuple(outcomes), error)


def _deletes_unrefined(action: RetentionAction, store: HistorianStore) -> bool:
    """Whether deleting raw rows now could take rows the processed layer has not got yet."""
    if action.kind is not ActionKind.DELETE or action.table is not Table.RAW:
        return False
    mark = store.refined_through()
    return store.raw_after(mark, 1).through > mark


def run_action(action: RetentionAction, store: HistorianStore) -> ActionOutcome:
    """Delete or compact the action's rows, a bounded number of names per call."""
    clock = time.perf_counter()
    rows = 0
    for names in _name_slices(action.names):
        if action.kind is ActionKind.DELETE:
            rows += store.delete(action.table, action.end_ns, names)
        else:
            rows += store.compact(action.table, action.start_ns, action.end_ns, names)
    return ActionOutcome(action, rows, time.perf_counter() - clock)


def _name_slices(names: tuple[str, ...] | None) -> Iterator[Sequence[str] | None]:
    if names is None:
        yield None
        return
    for first in range(0, len(names), NAMES_PER_CALL):
        yield names[first : first + NAMES_PER_CALL]
