"""`werk bench ...`: benchmarks that print figures (not pass/fail tests)."""

from __future__ import annotations

import typer

bench_app = typer.Typer(help="Benchmarks that print measured figures.", no_args_is_help=True)
