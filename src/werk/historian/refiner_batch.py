"""One refinement pass: raw rows of whole write batches into processed rows and rollup keys."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from werk.core.errors import ValidationFailed
from werk.historian.layers import ROLLUP_WIDTHS_S, Flag, ProcessedColumns, RollupKey
from werk.historian.models import RawColumns
from werk.historian.quality import IntArray, TagState, adjust_quality, evaluate
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
        self._done = Refinement(ProcessedColumns(), [])

    def run(self) -> Refinement:
        """Sort, deduplicate, check and assemble; nothing is stored here."""
        if not len(self._raw):
            return self._done
        self._sort()
        self._classify()
        self._flag_late()
        for code in np.unique(self._codes[self._checked]).tolist():
            rule = self._rules.for_tag(self._names[code])
            if rule is None:
                self._plain(code)
            else:
                self._tag(code, rule)
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
        bounds = np.flatnonzero(np.diff(self._codes)) + 1
        self._starts = np.concatenate(([0], bounds))
        self._ends = np.concatenate((bounds, [len(self._codes)]))

    def _classify(self) -> None:
        """Values as numbers; rules apply to numeric rows of tags that are not boolean."""
        raw, src = self._raw, self._order.tolist()
        objects = [raw.value[i] for i in src]
        self._numeric = np.fromiter((v is not None for v in objects), np.bool_, len(src))
        self._values = np.array(objects, dtype=np.float64)
        boolean = np.array([n in raw.boolean_tags for n in self._names], dtype=np.bool_)
        self._checked = self._numeric & ~boolean[self._codes]
        self._flags = np.zeros(len(src), dtype=np.uint16)
        broken = self._checked & ~np.isfinite(self._values)
        self._flags[broken] = np.uint16(Flag.NOT_FINITE)

    def _flag_late(self) -> None:
        """Flag samples older than the newest processed sample of their tag."""
        codes = np.unique(self._codes[self._checked]).tolist()
        self._memory.load([self._names[c] for c in codes], self._rules)
        newest = np.full(len(self._names), _NEVER, dtype=np.int64)
        for code in codes:
            last = self._memory[self._names[code]].state.last_ts
            newest[code] = _NEVER if last is None else last
        self._newest = newest
        late = self._checked & (self._ts < newest[self._codes])
        self._flags[late] |= np.uint16(Flag.LATE)

    def _tag(self, code: int, rule: QualityRule) -> None:
        """Convert and check the numeric rows of one tag that has a rule."""
        tag = self._names[code]
        begin, end = int(self._starts[code]), int(self._ends[code])  # codes number the groups
        rows = begin + np.flatnonzero(self._checked[begin:end])
        convert, impossible = conversion(tag, rule, self._tag_units)
        if convert is not None:
            with np.errstate(over="ignore", invalid="ignore"):
                self._values[rows] = convert(self._values[rows])
        if impossible:
            self._flags[rows] |= np.uint16(Flag.UNIT)
        ts = self._ts[rows]
        split = int(np.searchsorted(ts, self._newest[code], side="right"))
        if split:
            self._late(tag, rule, rows[:split])
        if split < len(rows):
            self._live(code, rule, rows[split:], replaced=set(ts[:split].tolist()))

    def _plain(self, code: int) -> None:
        """Remember the newest sample of a tag without a rule (to know what is late)."""
        newest = max(int(self._ts[self._ends[code] - 1]), int(self._newest[code]))
        self._done.changes[self._names[code]] = Known(TagState(last_ts=newest), None)

    def _late(self, tag: str, rule: QualityRule, rows: IntArray) -> None:
        ts, values = self._ts[rows], self._values[rows]
        self._flags[rows] |= late_flags(self._store, tag, rule, ts, values)
        if int(ts[-1]) == self._newest[self._codes[rows[0]]]:
            self._done.forget.add(tag)  # the newest sample was sent again: read it anew

    def _live(self, code: int, rule: QualityRule, rows: IntArray, replaced: set[int]) -> None:
        tag = self._names[code]
        known = self._memory[tag]
        result = evaluate(rule, known.state, self._ts[rows], self._values[rows])
        self._flags[rows] |= result.flags
        tail = known.tail
        if result.spiked_previous and tail is not None and tail.ts_ns not in replaced:
            append_tail(self._extra, tag, respiked(tail))
            self._extra_codes.append(code)
        finite = rows[np.isfinite(self._values[rows])]
        if len(finite):
            self._tail_at[code] = int(finite[-1])
        self._done.changes[tag] = Known(result.state, tail)

    def _assemble(self) -> None:
        raw, src = self._raw, self._order.tolist()
        quality = np.asarray(raw.quality, dtype=np.uint8)[self._order]
        quality = adjust_quality(quality, self._flags)
        values: list[float | None] = self._values.tolist()
        for i in np.flatnonzero(~self._numeric).tolist():
            values[i] = None
        codes = self._codes.tolist()
        rows = ProcessedColumns(
            tag=[self._names[c] for c in codes],
            ts_ns=self._ts.tolist(),
            ingest_ns=[raw.ingest_ns[i] for i in src],
            value=values,
            text=[raw.text[i] for i in src],
            quality=quality.tolist(),
            msg_id=[raw.msg_id[i] for i in src],
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
            self._done.changes[tag] = Known(self._done.changes[tag].state, tail)

    def _keys(self) -> None:
        numeric = self._numeric
        keys = rollup_keys(self._names, self._codes[numeric], self._ts[numeric])
        extra_codes = np.asarray(self._extra_codes, dtype=np.int64)
        keys.extend(rollup_keys(self._names, extra_codes, np.asarray(self._extra.ts_ns, np.int64)))
        self._done.keys = list(dict.fromkeys(keys))

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
