"""Process-wide tuning applied by the entry points that run the platform."""

from __future__ import annotations

import gc
from typing import Final

# Ingest allocates many short-lived objects (payload models, samples, rows); with the
# default generation-0 threshold of 700 the cyclic collector runs thousands of times a
# second and costs about a fifth of the ingest CPU (measured with `werk bench ingest`).
# Reference counting frees these objects anyway; the collector only matters for cycles.
GC_THRESHOLDS: Final = (50_000, 20, 100)


def tune_gc() -> None:
    """Raise the cyclic garbage collector's thresholds for a high-allocation service."""
    gc.set_threshold(*GC_THRESHOLDS)
