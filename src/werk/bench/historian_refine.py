"""The refine phase of the historian bench: the real refiner, catching up with the raw layer."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from werk.bench.historian_report import RefineFigures
from werk.bench.plant import DAY_NS, PlantShape
from werk.core.settings import Settings
from werk.historian.layers import ProcessedColumns
from werk.historian.refiner import Refiner
from werk.historian.rules import QualityRule, RuleSet
from werk.historian.store import HistorianStore

_BATCH_ROWS: Final[int] = Settings.model_fields["refine_batch_rows"].default
_MAX_STEPS_PER_SAMPLE: Final = 4.0  # the plant's largest step is 0.5; 4 is over 8 sigma


def bench_rules(shape: PlantShape) -> RuleSet:
    """One rule on every tag of the plant: valid range, largest rate, longest silence."""
    period_s = shape.period_ns / 1e9
    rule = QualityRule(
        tags="bench/#", name="bench plant", min=-1_000.0, max=1_500.0,
        max_rate=_MAX_STEPS_PER_SAMPLE / period_s, stale_s=3 * period_s,
    )  # fmt: skip
    return RuleSet([rule])


def refine_all(
    store: HistorianStore, shape: PlantShape, first_day: int, update: Callable[[int, int], None]
) -> RefineFigures:
    """Refine every write batch from `first_day` of the span on; time the refiner alone.

    Batches before `first_day` are passed over by moving the refinement mark with an
    empty refinement, so the refiner starts where the subset starts.
    """
    skipped = _batches_before(shape, first_day)
    if skipped:
        store.refine(ProcessedColumns(), [], skipped)
    rules = bench_rules(shape)
    refiner = Refiner(store, lambda: rules, interval_s=1.0, batch_rows=_BATCH_ROWS)
    expected = max(0, shape.total - skipped * shape.ticks_per_batch * shape.tags)
    refined, started = 0, time.perf_counter()
    while rows := refiner.run_once():
        refined += rows
        update(refined, expected)
    seconds = time.perf_counter() - started
    return RefineFigures(refined, seconds, first_day, shape.days)


def _batches_before(shape: PlantShape, first_day: int) -> int:
    """Whole write batches whose every tick lies before `first_day` (batches count from 1)."""
    first_tick = -(-first_day * DAY_NS // shape.period_ns)
    return min(first_tick // shape.ticks_per_batch, shape.batches)
