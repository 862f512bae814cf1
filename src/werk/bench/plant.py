"""A synthetic plant for the historian benchmark: raw write batches built cheaply with numpy.

Every tag samples once per period (its stamps staggered across the period), values are a
random walk with two decimals, and each message carries `per_message` tags of one tick
with its own 63-bit id and ingest stamp. Batches are time-major: batch k holds the ticks
k * ticks_per_batch onwards of every tag. The columns that never change (tag paths,
quality, text) are built once and shared; stamps and values are numpy arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from werk.core.errors import ValidationFailed
from werk.historian.models import RawColumns

DAY_NS: Final = 86_400 * 10**9
_INGEST_DELAY_NS: Final = 40_000_000  # a message lands 40 ms after its newest sample
_I63: Final = 2**63 - 1

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class PlantShape:
    """How many tags sample how often over which span, and how rows are grouped."""

    points: int
    end_ns: int
    tags: int = 1_000
    days: int = 30
    per_message: int = 100
    batch_points: int = 100_000

    def __post_init__(self) -> None:
        if self.tags < 1 or self.points < self.tags:
            raise ValidationFailed(
                f"the plant needs at least one point per tag ({self.tags} tags, "
                f"{self.points} points)",
                code="bench_points",
            )
        if self.days < 1 or self.per_message < 1 or self.end_ns % DAY_NS:
            raise ValidationFailed("the plant needs whole days ending at midnight UTC")

    @property
    def ticks(self) -> int:
        """Samples per tag."""
        return self.points // self.tags

    @property
    def total(self) -> int:
        """Points actually written (a whole number of ticks)."""
        return self.ticks * self.tags

    @property
    def start_ns(self) -> int:
        """The first stamp (midnight UTC, `days` before the end)."""
        return self.end_ns - self.days * DAY_NS

    @property
    def period_ns(self) -> int:
        """Time between two samples of one tag (whole microseconds)."""
        return (self.days * DAY_NS // self.ticks) // 1000 * 1000

    @property
    def ticks_per_batch(self) -> int:
        """Ticks of every tag in one write batch."""
        return max(1, min(self.ticks, self.batch_points // self.tags))

    @property
    def batches(self) -> int:
        """Write batches the plant yields."""
        return -(-self.ticks // self.ticks_per_batch)

    def tag_path(self, index: int) -> str:
        """The path of tag `index` (an ISA-95 like hierarchy of ten tags per machine)."""
        return f"bench/site/area-{index // 250}/line-{index // 50 % 5}/m-{index // 10 % 5}/t{index}"

    def tag_paths(self) -> list[str]:
        """Every tag of the plant."""
        return [self.tag_path(i) for i in range(self.tags)]


class SyntheticPlant:
    """Yields the write batches of a `PlantShape`, each as `RawColumns`."""

    def __init__(self, shape: PlantShape, seed: int = 4) -> None:
        self.shape = shape
        self._rng = np.random.default_rng(seed)
        tags = shape.tags
        self._level = self._rng.uniform(0.0, 500.0, tags)
        self._step = self._rng.uniform(0.01, 0.5, tags)
        self._offsets = np.arange(tags, dtype=np.int64) * (shape.period_ns // tags) // 1000 * 1000
        rows = shape.ticks_per_batch * tags
        self._paths = shape.tag_paths() * shape.ticks_per_batch
        self._zeros = [0] * rows
        self._nones: list[str | None] = [None] * rows
        self._message_of_tag = np.arange(tags) // shape.per_message
        self._messages_per_tick = int(self._message_of_tag[-1]) + 1

    def __iter__(self) -> Iterator[RawColumns]:
        shape = self.shape
        for first in range(0, shape.ticks, shape.ticks_per_batch):
            yield self._batch(first, min(shape.ticks_per_batch, shape.ticks - first))

    def _batch(self, first_tick: int, ticks: int) -> RawColumns:
        rows = ticks * self.shape.tags
        ticks_ns = self.shape.start_ns + (first_tick + np.arange(ticks, dtype=np.int64)) * (
            self.shape.period_ns
        )
        stamps = (ticks_ns[:, None] + self._offsets[None, :]).ravel()
        return RawColumns(
            tag=self._paths[:rows],
            ts_ns=stamps.tolist(),
            ingest_ns=self._ingest(ticks_ns).tolist(),
            value=self._walk(ticks).tolist(),
            text=self._nones[:rows],
            quality=self._zeros[:rows],
            msg_id=self._message_ids(ticks).tolist(),
        )

    def _walk(self, ticks: int) -> npt.NDArray[np.float64]:
        steps = self._rng.standard_normal((ticks, self.shape.tags)) * self._step
        walk = self._level + np.cumsum(steps, axis=0)
        self._level = walk[-1]
        return np.round(walk, 2).ravel()

    def _message_ids(self, ticks: int) -> IntArray:
        per_tick = self._messages_per_tick
        ids = self._rng.integers(1, _I63, size=ticks * per_tick, dtype=np.int64)
        index = np.arange(ticks)[:, None] * per_tick + self._message_of_tag[None, :]
        per_row: IntArray = ids[index.ravel()]
        return per_row

    def _ingest(self, ticks_ns: IntArray) -> IntArray:
        newest = self._offsets[np.minimum(self._message_end(), self.shape.tags - 1)]
        per_row = newest[None, :] + _INGEST_DELAY_NS
        return (ticks_ns[:, None] + per_row).ravel()

    def _message_end(self) -> IntArray:
        """Index of the last tag in each tag's message (the message's newest sample)."""
        per = self.shape.per_message
        return (self._message_of_tag * per + per - 1).astype(np.int64)
