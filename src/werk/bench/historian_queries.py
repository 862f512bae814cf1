"""Query latency of a loaded historian: last values, a day of minutes, a month of hours.

Each query runs once untimed (so the first timing is not a cold start), then `repeat`
times with a random tag and day per repetition, or fewer when its time budget runs out;
quantiles are nearest-rank.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from werk.bench.plant import DAY_NS, PlantShape
from werk.historian.layers import Layer
from werk.historian.store import HistorianStore

MINUTE_NS: Final = 60 * 10**9
HOUR_NS: Final = 3_600 * 10**9
MONTH_TAGS: Final = 100

Query = Callable[[], int]


@dataclass(frozen=True, slots=True)
class QueryLatency:
    """Latencies of one query over its repetitions, and the rows it returned."""

    name: str
    layer: Layer
    samples_ms: tuple[float, ...]
    rows: int

    def quantile(self, q: float) -> float:
        """Nearest-rank quantile in ms."""
        ordered = sorted(self.samples_ms)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    def as_dict(self) -> dict[str, Any]:
        """Plain figures for JSON."""
        return {
            "name": self.name,
            "layer": str(self.layer),
            "repetitions": len(self.samples_ms),
            "p50_ms": self.quantile(0.5),
            "p99_ms": self.quantile(0.99),
            "max_ms": self.quantile(1.0),
            "rows": self.rows,
        }


QUERY_TITLES: Final = {
    "last": "(a) last value of {tags:,} tags",
    "day_minutes": "(b) 1-min buckets over 24 h, one tag",
    "month_hours": "(c) hourly buckets over {days} days, {month_tags} tags",
}


class QueryBench:
    """The query set of the benchmark against one loaded store."""

    def __init__(
        self, store: HistorianStore, shape: PlantShape, business_days: range, seed: int
    ) -> None:
        self._store = store
        self._shape = shape
        self._tags = shape.tag_paths()
        self._business_days = business_days
        self._rng = random.Random(seed)

    def plan(self) -> list[tuple[str, Layer]]:
        """Every (query, layer) this bench measures, in order."""
        return [
            ("last", Layer.RAW),
            ("day_minutes", Layer.RAW),
            ("day_minutes", Layer.BUSINESS),
            ("month_hours", Layer.RAW),
            ("month_hours", Layer.BUSINESS),
        ]

    def measure(
        self, name: str, layer: Layer, repeat: int, budget_s: float, tick: Callable[[], None]
    ) -> QueryLatency:
        """Time random instances of one query after one untimed run.

        Stops after `repeat` repetitions, or earlier once `budget_s` is spent (at least one).
        """
        self._instance(name, layer)()
        samples: list[float] = []
        rows = 0
        deadline = time.perf_counter() + budget_s
        while len(samples) < repeat and (not samples or time.perf_counter() < deadline):
            query = self._instance(name, layer)
            started = time.perf_counter()
            rows = query()
            samples.append((time.perf_counter() - started) * 1000.0)
            tick()
        return QueryLatency(name, layer, tuple(samples), rows)

    def _instance(self, name: str, layer: Layer) -> Query:
        if name == "last":
            return lambda: len(self._store.last(self._tags, layer=layer))
        if name == "day_minutes":
            return self._day_minutes(layer)
        return self._month_hours(layer)

    def _day_minutes(self, layer: Layer) -> Query:
        tag = self._rng.choice(self._tags)
        days = self._business_days if layer is Layer.BUSINESS else range(self._shape.days)
        start = self._shape.start_ns + self._rng.choice(days) * DAY_NS
        return lambda: len(self._store.buckets(tag, start, start + DAY_NS, MINUTE_NS, layer=layer))

    def _month_hours(self, layer: Layer) -> Query:
        tags = self._rng.sample(self._tags, min(MONTH_TAGS, len(self._tags)))
        start, end = self._shape.start_ns, self._shape.end_ns
        store = self._store

        def run() -> int:
            return sum(len(store.buckets(t, start, end, HOUR_NS, layer=layer)) for t in tags)

        return run
