"""What the refiner knows of each tag's stored processed samples, read lazily from the store."""

from __future__ import annotations

import math
from typing import Final, NamedTuple

import numpy as np

from werk.historian.layers import Layer
from werk.historian.models import Point
from werk.historian.quality import FlagArray, TagState, evaluate, evaluate_between, resume
from werk.historian.quality_kernels import FloatArray, IntArray
from werk.historian.rules import QualityRule, RuleSet
from werk.historian.store import HistorianStore

_LOAD_CHUNK: Final = 5000
_STORED_LIMIT: Final = 20_000


class Tail(NamedTuple):
    """The newest finite processed sample of a tag as stored (to flag it again later)."""

    ts_ns: int
    ingest_ns: int
    value: float
    quality: int
    msg_id: int
    flags: int


class Known(NamedTuple):
    """A tag's rule state, newest finite sample, and when its newest sample arrived."""

    state: TagState
    tail: Tail | None
    ingest_ns: int | None = None


class TagMemory:
    """Per-tag `Known` of the newest processed samples; filled from the store on first use."""

    def __init__(self, store: HistorianStore) -> None:
        self._store = store
        self._known: dict[str, Known] = {}

    def __getitem__(self, tag: str) -> Known:
        return self._known[tag]

    def load(self, tags: list[str], rules: RuleSet) -> None:
        """Read what is stored for the tags not known yet."""
        missing = [t for t in tags if t not in self._known]
        for i in range(0, len(missing), _LOAD_CHUNK):
            chunk = missing[i : i + _LOAD_CHUNK]
            newest = {t.tag: t.point for t in self._store.last(chunk, layer=Layer.PROCESSED)}
            for tag in chunk:
                self._known[tag] = known_after(
                    self._store, tag, rules.for_tag(tag), newest.get(tag)
                )

    def update(self, changes: dict[str, Known], forget: set[str]) -> None:
        """Take the outcome of a stored refinement; `forget` is read again when needed."""
        self._known.update(changes)
        for tag in forget:
            self._known.pop(tag, None)

    def forget(self, tags: list[str] | None = None) -> None:
        """Drop what is known of `tags` (of every tag with None)."""
        if tags is None:
            self._known.clear()
        for tag in tags or ():
            self._known.pop(tag, None)


def numeric(value: bool | float | str | None) -> float | None:
    """A stored value as a number, None for text and nulls."""
    if value is None or isinstance(value, str):
        return None
    return float(value)


def known_after(
    store: HistorianStore, tag: str, rule: QualityRule | None, point: Point | None
) -> Known:
    """The state after a stored processed sample (the empty state for None)."""
    if point is None:
        return Known(TagState(), None)
    value = numeric(point.value)
    if value is None:
        return Known(TagState(last_ts=point.ts_ns), None, point.ingest_ns)
    before = None
    if rule is not None and rule.spike is not None and math.isfinite(value):
        prior = store.previous(tag, point.ts_ns)
        before = None if prior is None else numeric(prior.value)
    state = resume(rule, point.ts_ns, value, point.flags, before)
    if not math.isfinite(value):
        return Known(state, None, point.ingest_ns)
    tail = Tail(point.ts_ns, point.ingest_ns, value, point.quality, point.msg_id, point.flags)
    return Known(state, tail, point.ingest_ns)


def needs_neighbours(rule: QualityRule) -> bool:
    """Whether the rule looks at the samples around each one."""
    around = (rule.max_rate, rule.flatline_s, rule.stale_s, rule.spike)
    return any(x is not None for x in around)


def late_flags(
    store: HistorianStore, tag: str, rule: QualityRule, ts: IntArray, values: FloatArray
) -> FlagArray:
    """Rule flags of late samples, evaluated between the stored samples around them."""
    if not needs_neighbours(rule):
        return evaluate(rule, TagState(), ts, values).flags
    found = np.zeros(len(ts), dtype=np.uint16)
    _cluster(store, tag, rule, ts, values, found, 0, len(ts))
    return found


def _cluster(
    store: HistorianStore,
    tag: str,
    rule: QualityRule,
    ts: IntArray,
    values: FloatArray,
    found: FlagArray,
    lo: int,
    hi: int,
) -> None:
    """Evaluate late samples lo..hi merged with the stored ones among them (halving big spans)."""
    first, last = int(ts[lo]), int(ts[hi - 1])
    limit = max(_STORED_LIMIT, 2 * (hi - lo))
    stored = store.points(tag, first, last + 1, limit + 1, layer=Layer.PROCESSED)
    if len(stored) > limit and hi - lo > 1:
        middle = (lo + hi) // 2
        _cluster(store, tag, rule, ts, values, found, lo, middle)
        _cluster(store, tag, rule, ts, values, found, middle, hi)
        return
    mine_ts, mine_values = ts[lo:hi], values[lo:hi]
    replaced = set(mine_ts.tolist())
    kept = [(p.ts_ns, v) for p in stored if (v := numeric(p.value)) is not None]
    kept = [(t, v) for t, v in kept if t not in replaced]
    all_ts = np.concatenate((np.asarray([t for t, _ in kept], dtype=np.int64), mine_ts))
    all_values = np.concatenate((np.asarray([v for _, v in kept], dtype=np.float64), mine_values))
    mine = np.concatenate((np.zeros(len(kept), dtype=np.bool_), np.ones(hi - lo, dtype=np.bool_)))
    order = np.argsort(all_ts, kind="stable")
    before = known_after(store, tag, rule, store.previous(tag, first)).state
    after = stored_after(store, tag, last)
    result = evaluate_between(rule, before, all_ts[order], all_values[order], after)
    found[lo:hi] = result.flags[mine[order]]


def stored_after(store: HistorianStore, tag: str, ts_ns: int) -> tuple[int, float] | None:
    """Time and number of the oldest processed sample after `ts_ns`, if numeric."""
    point = store.next_after(tag, ts_ns)
    value = None if point is None else numeric(point.value)
    return None if point is None or value is None else (point.ts_ns, value)
