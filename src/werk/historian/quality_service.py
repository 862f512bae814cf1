"""Data quality: the rules in force (kept in a TOML file), violations and missing data."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from werk.core.clock import NS_PER_S, now_ns, to_datetime
from werk.core.errors import Unavailable
from werk.historian.quality_schemas import (
    MissingTag,
    QualityReport,
    RefinerStatus,
    ReprocessResult,
    TagViolations,
)
from werk.historian.refiner import Refiner
from werk.historian.rules import QualityRule, RuleSet


class QualityService:
    """The quality rules of the processed layer and what the refiner found with them."""

    def __init__(self, path: Path, *, clock: Callable[[], int] = now_ns) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._rules = RuleSet.load(path) if path.exists() else RuleSet()
        self.refiner: Refiner | None = None

    def rule_set(self) -> RuleSet:
        """The rules in force (the refiner asks for them before each batch)."""
        with self._lock:
            return self._rules

    def rules(self) -> list[QualityRule]:
        """The rules in force, in matching order."""
        return list(self.rule_set().rules)

    def replace(self, rules: list[QualityRule]) -> list[QualityRule]:
        """Put a new rule set in force and keep it in the rules file."""
        new = RuleSet(rules)
        with self._lock:
            new.save(self.path)
            self._rules = new
        return list(new.rules)

    def report(self) -> QualityReport:
        """Refiner status, violations per tag since start, and tags gone silent."""
        refiner = self._refiner()
        stats = refiner.stats()
        status = RefinerStatus(
            running=stats.running,
            refined_through=stats.mark,
            newest_batch=stats.newest_batch,
            refined_samples=stats.refined,
            last_error=stats.last_error,
        )
        violations = [
            TagViolations(tag=tag, counts=counts, total=sum(counts.values()))
            for tag, counts in stats.violations.items()
        ]
        violations.sort(key=lambda v: (-v.total, v.tag))
        return QualityReport(
            status=status,
            violations=violations,
            missing=self.missing(),
            since=to_datetime(stats.since_ns),
        )

    def missing(self) -> list[MissingTag]:
        """Tags whose newest sample is older than their rule's stale limit."""
        now = self._clock()
        return [
            MissingTag(
                tag=tag, last_ts=to_datetime(ts), stale_s=stale_s, silent_s=(now - ts) / NS_PER_S
            )
            for tag, ts, stale_s in self._refiner().missing(now)
        ]

    def reprocess(self, tags: str, start_ns: int, end_ns: int) -> ReprocessResult:
        """Refine stored raw samples of a range again with the rules in force."""
        done = self._refiner().reprocess(tags, start_ns, end_ns)
        return ReprocessResult(tags=done.tags, samples=done.samples)

    def _refiner(self) -> Refiner:
        if self.refiner is None:
            raise Unavailable("the refiner is not running", code="refiner_not_running")
        return self.refiner
