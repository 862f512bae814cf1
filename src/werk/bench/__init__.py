"""Benchmarks that print measured figures (not pass/fail timing tests)."""

from werk.bench.ingest import QUICK, IngestBenchConfig, run_ingest_bench
from werk.bench.report import IngestReport, render

__all__ = ["QUICK", "IngestBenchConfig", "IngestReport", "render", "run_ingest_bench"]
