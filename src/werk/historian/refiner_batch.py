"""One refinement pass: raw rows of whole write batches into processed rows and rollup keys."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

import numpy as np

from werk.core.errors import ValidationFailed
from werk.historian.layers import ROLLUP_WIDTHS_S, Flag, ProcessedColumns, RollupKey
from werk.historian.models import RawColumns
from werk.historian.quality import TagState, adjust_quality, evaluate_groups
from werk.historian.quality_kernels import IntArray
from werk.historian.refiner_memory import Known, TagMemory, Tail, late_flags
from werk.historian.rules import QualityRule, RuleSet
from werk.historian.store import HistorianStore
from werk.historian.units import Converter, converter

TagUnits = Callable[[str], str | None]

_NS_PER_S: Final = 1_000_000_000
_NEVER: Final = np.iinfo(np.int64).min
_FLAG_NAMES: Final = tuple((int(f), str(f.name).lower()) for f in Flag)


@dataclass(slots=True)
class Refinement:
    """What one pass produced, and what the memory learns once it is stored."""

    rows: ProcessedColumns
    keys: list[RollupKey]
    changes: dict[str, Known] = field(default_factory=dict)
    forget: set[str] = field(default_factory=set)
    violations: dict[str, dict[str, int]] = field(default_factory=dict)


def conversion(
    tag: str, rule: QualityRule, tag_units: TagUnits | None
) -> tuple[Converter | None, bool]:
    """How to bring the tag's values into the rule's unit; True when that is impossible.

    The unit the tag publishes (when known) wins over the rule's `unit`.
    """
    target = rule.target_unit
    published = tag_units(tag) if tag_units is not None else None
    source = published or rule.unit
    if target is None or source is None:
        return None, False
    return _between(source, target)


@lru_cache(maxsize=4096)
def _between(source: str, target: str) -> tuple[Converter | None, bool]:
    try:
        return converter(source, target), False
    except ValidationFailed:
        return None, True


def rollup_keys(tags: list[str], codes: IntArray, ts: IntArray) -> list[RollupKey]:
    """Every rollup bucket of every width the samples touch (sorted by code, then time)."""
    keys: list[RollupKey] = []
    for width in ROLLUP_WIDTHS_S:
        width_ns = width * _NS_PER_S
        starts = ts // width_ns * width_ns
        new = np.ones(len(ts), dtype=np.bool_)
        new[1:] = (codes[1:] != codes[:-1]) | (starts[1:] != starts[:-1])
        picked = zip(codes[new].tolist(), starts[new].tolist(), strict=True)
        keys.extend(RollupKey(tags[c], width, s) for c, s in picked)
    return keys


def append_tail(rows: ProcessedColumns, tag: str, tail: Tail) -> None:
    """Store a tail sample again, as it is (its flags may have grown)."""
    rows.tag.append(tag)
    rows.ts_ns.append(tail.ts_ns)
    rows.ingest_ns.append(tail.ingest_ns)
    rows.value.append(tail.value)
    rows.text.append(None)
    rows.quality.append(tail.quality)
    rows.msg_id.append(tail.msg_id)
    rows.flags.append(tail.flags)


def respiked(tail: Tail) -> Tail:
    """The tail with `Flag.SPIKE` added and its quality lowered accordingly."""
    flags = tail.flags | int(Flag.SPIKE)
    quality = adjust_quality(np.array([tail.quality], np.uint8), np.array([flags], np.uint16))
    return Tail(tail.ts_ns, tail.ingest_ns, tail.value, int(quality[0]), tail.msg_id, flags)


class BatchPass:
    """Refine the raw rows of some write batches (call `run` once)."""

    def __init__(
        self,
        raw: RawColumns,
        rules: RuleSet,
        memory: TagMemory,
        store: HistorianStore,
        tag_units: TagUnits | None,
    ) -> None:
        self._raw = raw
        self._rules = rules
        self._memory = memory
        self._store = store
        self._tag_units = tag_units
        self._extra = ProcessedColumns()
        self._extra_codes: list[int] = []
        self._tail_at: dict[int, int] = {}
        self._replaced: dict[int, set[int]] = {}
        self._done = Refinement(ProcessedColumns(), [])

    def run(self) -> Refinement:
        """Sort, deduplicate, check and assemble; nothing is stored here."""
        if not len(self._raw):
            return self._done
        self._sort()
        self._classify()
        self._flag_late()
        self._convert()
        for code in self._late_codes():
            self._late(code)
        self._live()
        self._plain()
        self._assemble()
        return self._done

    def _sort(self) -> None:
        """Order rows by tag and time; of rows with the same (tag, ts) keep the newest."""
        raw = self._raw
        index: dict[str, int] = {}
        codes = np.fromiter((index.setdefault(t, len(index)) for t in raw.tag), np.int64, len(raw))
        ts = np.asarray(raw.ts_ns, dtype=np.int64) // 1000 * 1000
        ingest = np.asarray(raw.ingest_ns, dtype=np.int64)
        order = np.lexsort((ingest, ts, codes))  # stable: the later of equal rows is newer
        codes, ts = codes[order], ts[order]
        newest = np.ones(len(order), dtype=np.bool_)
        newest[:-1] = (codes[1:] != codes[:-1]) | (ts[1:] != ts[:-1])
        self._names = list(index)
        self._order, self._codes, self._ts = order[newest], codes[newest], ts[newest]
        self._ingest = ingest[self._order]
        bounds = np.flatnonzero(np.diff(self._codes)) + 1
        self._starts = np.concatenate(([0], bounds))  # codes number the groups in order
        self._ends = np.concatenate((bounds, [len(self._codes)]))

    def _classify(self) -> None:
        """Values as numbers; rules apply to numeric rows of tags that are not boolean."""
        raw, order = self._raw, self._order
        nothing = np.array(None, dtype=object)
        self._numeric = np.not_equal(np.array(raw.value, dtype=object), nothing)[order]
        self._values = np.array(raw.value, dtype=np.float64)[order]  # None becomes NaN
        boolean = np.array([n in raw.boolean_tags for n in self._names], dtype=np.bool_)
        self._checked = self._numeric & ~boolean[self._codes]
        self._flags = np.zeros(len(order), dtype=np.uint16)
        broken = self._checked & ~np.isfinite(self._values)
        self._flags[broken] = np.uint16(Flag.NOT_FINITE)
        self._checked_codes = np.unique(self._codes[self._checked]).tolist()
        self._rule_of = {c: self._rules.for_tag(self._names[c]) for c in self._checked_codes}

    def _flag_late(self) -> None:
        """Flag samples that arrived after a newer processed sample of their tag.

        A sample older than the tag's newest one that was ingested no later than it is a
        replay of earlier history (an import, say): checked between its neighbours, not late.
        """
        codes = self._checked_codes
        self._memory.load([self._names[c] for c in codes], self._rules)
        newest = np.full(len(self._names), _NEVER, dtype=np.int64)
        arrived = np.full(len(self._names), _NEVER, dtype=np.int64)
        for code in codes:
            known = self._memory[self._names[code]]
            newest[code] = _NEVER if known.state.last_ts is None else known.state.last_ts
            arrived[code] = _NEVER if known.ingest_ns is None else known.ingest_ns
        self._newest, self._arrived = newest, arrived
        self._late_rows = self._checked & (self._ts <= newest[self._codes])
        older = self._late_rows & (self._ts < newest[self._codes])
        self._flags[older & (self._ingest > arrived[self._codes])] |= np.uint16(Flag.LATE)

    def _convert(self) -> None:
        """Bring values into their rule's unit, one array operation per conversion."""
        groups: dict[int, tuple[Converter, list[int]]] = {}
        impossible = np.zeros(len(self._names), dtype=np.bool_)
        for code, rule in self._rule_of.items():
            if rule is None:
                continue
            convert, failed = conversion(self._names[code], rule, self._tag_units)
            impossible[code] = failed
            if convert is not None:
                groups.setdefault(id(convert), (convert, []))[1].append(code)
        for convert, codes in groups.values():
            chosen = np.zeros(len(self._names), dtype=np.bool_)
            chosen[codes] = True
            rows = self._checked & chosen[self._codes]
            with np.errstate(over="ignore", invalid="ignore"):
                self._values[rows] = convert(self._values[rows])
        self._flags[self._checked & impossible[self._codes]] |= np.uint16(Flag.UNIT)

    def _late_codes(self) -> list[int]:
        with_rule = np.array([r is not None for r in self._rule_of.values()], dtype=np.bool_)
        codes = np.array(list(self._rule_of), dtype=np.int64)[with_rule]
        late: list[int] = np.unique(
            self._codes[self._late_rows & np.isin(self._codes, codes)]
        ).tolist()
        return late

    def _late(self, code: int) -> None:
        """Check the late samples of one tag between the stored samples around them."""
        begin, end = int(self._starts[code]), int(self._ends[code])
        rows = begin + np.flatnonzero(self._late_rows[begin:end])
        ts, values = self._ts[rows], self._values[rows]
        rule, tag = self._rule_of[code], self._names[code]
        assert rule is not None
        self._flags[rows] |= late_flags(self._store, tag, rule, ts, values)
        self._replaced[code] = set(ts.tolist())
        if int(ts[-1]) == self._newest[code]:
            self._done.forget.add(tag)  # the newest sample was sent again: read it anew

    def _live(self) -> None:
        """Check the samples after each tag's newest processed one, all tags of a rule at once."""
        live = self._checked & ~self._late_rows
        by_rule: dict[int, tuple[QualityRule, list[int]]] = {}
        for code, rule in self._rule_of.items():
            if rule is not None:
                by_rule.setdefault(id(rule), (rule, []))[1].append(code)
        for rule, codes in by_rule.values():
            chosen = np.zeros(len(self._names), dtype=np.bool_)
            chosen[codes] = True
            rows = np.flatnonzero(live & chosen[self._codes])
            if len(rows):
                self._live_rule(rule, rows)

    def _live_rule(self, rule: QualityRule, rows: IntArray) -> None:
        codes = self._codes[rows]
        firsts = np.flatnonzero(np.diff(codes, prepend=-1))
        group_codes = codes[firsts].tolist()
        known = [self._memory[self._names[c]] for c in group_codes]
        bounds = np.append(firsts, len(rows))
        result = evaluate_groups(
            rule, [k.state for k in known], self._ts[rows], self._values[rows], bounds
        )
        self._flags[rows] |= result.flags
        arrived = self._ingest[rows[bounds[1:] - 1]].tolist()  # of each group's newest row
        for g, code in enumerate(group_codes):
            change = Known(result.states[g], known[g].tail, arrived[g])
            self._done.changes[self._names[code]] = change
        for g in np.flatnonzero(result.spiked_previous).tolist():
            self._respike(group_codes[g], known[g].tail)
        finite = rows[np.isfinite(self._values[rows])]
        last = np.flatnonzero(np.diff(self._codes[finite], append=-1))
        self._tail_at.update(zip(self._codes[finite[last]].tolist(), finite[last].tolist(),
                                 strict=True))  # fmt: skip

    def _respike(self, code: int, tail: Tail | None) -> None:
        """Store the tag's previous newest sample again, now known to be a lone spike."""
        if tail is None or tail.ts_ns in self._replaced.get(code, ()):
            return
        append_tail(self._extra, self._names[code], respiked(tail))
        self._extra_codes.append(code)

    def _plain(self) -> None:
        """Remember the newest sample of tags without a rule (to know what is late)."""
        for code, rule in self._rule_of.items():
            if rule is None:
                last = int(self._ends[code] - 1)
                newest, arrived = int(self._ts[last]), int(self._ingest[last])
                if newest <= self._newest[code]:
                    newest, arrived = int(self._newest[code]), int(self._arrived[code])
                change = Known(TagState(last_ts=newest), None, arrived)
                self._done.changes[self._names[code]] = change

    def _assemble(self) -> None:
        raw, order = self._raw, self._order
        quality = adjust_quality(np.asarray(raw.quality, dtype=np.uint8)[order], self._flags)
        values: list[float | None] = self._values.tolist()
        for i in np.flatnonzero(~self._numeric).tolist():
            values[i] = None
        rows = ProcessedColumns(
            tag=np.array(self._names, dtype=object)[self._codes].tolist(),
            ts_ns=self._ts.tolist(),
            ingest_ns=np.asarray(raw.ingest_ns, dtype=np.int64)[order].tolist(),
            value=values,
            text=np.array(raw.text, dtype=object)[order].tolist(),
            quality=quality.tolist(),
            msg_id=np.asarray(raw.msg_id, dtype=np.int64)[order].tolist(),
            boolean_tags=set(raw.boolean_tags),
            flags=self._flags.tolist(),
        )
        self._tails(rows)
        self._keys()
        self._count()
        _extend(rows, self._extra)
        self._done.rows = rows

    def _tails(self, rows: ProcessedColumns) -> None:
        for code, i in self._tail_at.items():
            tag = self._names[code]
            tail = Tail(rows.ts_ns[i], rows.ingest_ns[i], float(self._values[i]),
                        rows.quality[i], rows.msg_id[i], rows.flags[i])  # fmt: skip
            self._done.changes[tag] = self._done.changes[tag]._replace(tail=tail)

    def _keys(self) -> None:
        numeric = self._numeric
        keys = rollup_keys(self._names, self._codes[numeric], self._ts[numeric])
        extra_codes = np.asarray(self._extra_codes, dtype=np.int64)
        extra = rollup_keys(self._names, extra_codes, np.asarray(self._extra.ts_ns, np.int64))
        if extra:  # the keys of the rows are distinct; a re-stored sample may repeat one
            keys.extend(set(extra) - set(keys))
        self._done.keys = keys

    def _count(self) -> None:
        """Add up the flags per tag and flag name (a spike found later counts once)."""
        flagged = self._flags != 0
        codes, flags = self._codes[flagged], self._flags[flagged]
        counts = self._done.violations
        for bit, name in _FLAG_NAMES:
            hits = np.bincount(codes[(flags & bit) != 0], minlength=len(self._names))
            for code in np.flatnonzero(hits).tolist():
                counts.setdefault(self._names[code], {})[name] = int(hits[code])
        for code in self._extra_codes:
            per_tag = counts.setdefault(self._names[code], {})
            per_tag["spike"] = per_tag.get("spike", 0) + 1


def _extend(rows: ProcessedColumns, extra: ProcessedColumns) -> None:
    rows.tag.extend(extra.tag)
    rows.ts_ns.extend(extra.ts_ns)
    rows.ingest_ns.extend(extra.ingest_ns)
    rows.value.extend(extra.value)
    rows.text.extend(extra.text)
    rows.quality.extend(extra.quality)
    rows.msg_id.extend(extra.msg_id)
    rows.flags.extend(extra.flags)
