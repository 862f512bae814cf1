"""`werk bench auth`: what authentication costs per request, alone and inside a served request.

Two measurements in one run:

- **verification**: microseconds per `Authenticator.verify` on a fresh database with the
  bootstrap admin: a new access token (signature checked), a repeated one (verified-token
  cache), and an API key (cached key record, constant-time hash comparison);
- **overhead**: requests/s of one cheap handler served by the real app, mounted once as
  PUBLIC and once behind `uns:read`, called anonymously and with a bearer JWT or API key.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import sessionmaker

from werk.bench.auth_http import HttpOptions, Variant, measure_http
from werk.bench.auth_load import LoadResult
from werk.bench.machine import MachineInfo, machine_info
from werk.core.db import create_db_engine, upgrade_schema
from werk.core.errors import Unavailable
from werk.core.settings import Settings

__all__ = ["AUTH_QUICK", "AuthBenchConfig", "AuthReport", "render_auth", "run_auth_bench"]


@dataclass(frozen=True, slots=True)
class AuthBenchConfig:
    """Sizes of one run."""

    verifications: int = 20_000
    seconds: float = 5.0
    rounds: int = 3
    connections: int = 16


AUTH_QUICK: Final = AuthBenchConfig(verifications=500, seconds=1.0, rounds=1, connections=8)


@dataclass(frozen=True, slots=True)
class HttpFigure:
    """One request variant's figures over all its rounds."""

    variant: str
    requests: int
    failures: int
    seconds: float
    per_second: float
    p50_ms: float
    p99_ms: float


@dataclass(slots=True)
class AuthReport:
    """Everything `werk bench auth` measured."""

    machine: MachineInfo
    config: AuthBenchConfig
    verification_us: dict[str, float] = field(default_factory=dict)
    http: list[HttpFigure] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain figures for JSON."""
        return {
            "machine": self.machine.describe(),
            "config": {k: getattr(self.config, k) for k in AuthBenchConfig.__slots__},
            "verification_us": self.verification_us,
            "http": [{k: getattr(h, k) for k in HttpFigure.__slots__} for h in self.http],
        }


def run_auth_bench(config: AuthBenchConfig, console: Console) -> AuthReport:
    """Measure verification in this process, then the served overhead against a child werk."""
    report = AuthReport(machine=machine_info(), config=config)
    console.print(f"[dim]verifying credentials {config.verifications:,} times each[/dim]")
    report.verification_us = measure_tokens(config.verifications)
    options = HttpOptions(config.seconds, config.rounds, config.connections)
    with console.status("driving the API") as status:
        results = measure_http(options, lambda text: status.update(f"driving the API: {text}"))
    report.http = [_figure(variant, result) for variant, result in results]
    return report


def _figure(variant: Variant, result: LoadResult) -> HttpFigure:
    return HttpFigure(
        variant=variant.name, requests=result.requests, failures=result.failures,
        seconds=result.seconds, per_second=result.per_second,
        p50_ms=result.percentile_ms(0.5), p99_ms=result.percentile_ms(0.99),
    )  # fmt: skip


def measure_tokens(n: int) -> dict[str, float]:
    """Microseconds per verification on a fresh database with the bootstrap admin."""
    from werk.iam.authn_bench import measure_verification
    from werk.iam.bootstrap import ADMIN_NAME, SYSTEM, ensure_admin
    from werk.iam.service import Iam

    with tempfile.TemporaryDirectory(prefix="werk-bench-auth-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        engine = create_db_engine(settings.relational_url)
        try:
            upgrade_schema(engine)
            iam = Iam(sessionmaker(engine, expire_on_commit=False), settings)
            ensure_admin(iam)
            admin_id = iam.directory.find_by_name(ADMIN_NAME)
            admin = iam.directory.load_principal(admin_id) if admin_id else None
            if admin is None:
                raise Unavailable("the bench database has no admin", code="bench_auth")
            _view, key = iam.directory.create_api_key(SYSTEM, principal_id=admin.id, name="bench")
            return measure_verification(iam.authn, admin, n, api_key=key)
        finally:
            engine.dispose()


_VERIFY_ROWS: Final = (
    ("jwt_issue_us", "sign a new access token (JWT, Ed25519)"),
    ("jwt_uncached_us", "verify a new access token (signature checked)"),
    ("jwt_cached_us", "verify a repeated access token (verified-token cache)"),
    ("api_key_us", "verify an API key (key id lookup, sha256, constant-time compare)"),
)


def render_auth(report: AuthReport, console: Console) -> None:
    """Print the figures as tables."""
    console.print(f"[dim]{report.machine.describe()}[/dim]")
    verify = Table("credential check (in process)", "µs per call", title="Token verification")
    for key, label in _VERIFY_ROWS:
        if key in report.verification_us:
            verify.add_row(label, f"{report.verification_us[key]:,.1f}")
    console.print(verify)
    console.print(_http_table(report))
    for line in _overhead_lines(report.http):
        console.print(line, highlight=False)


def _http_table(report: AuthReport) -> Table:
    c = report.config
    title = (f"Served requests: one cheap handler, {c.connections} keep-alive connections, "
             f"{c.rounds} x {c.seconds:g} s per variant, variants alternating")  # fmt: skip
    table = Table("variant", "requests/s", "vs public", "p50 ms", "p99 ms", "failed", title=title)
    base = report.http[0].per_second if report.http else 0.0
    for h in report.http:
        ratio = f"{h.per_second / base:.1%}" if base else ""
        table.add_row(h.variant, f"{h.per_second:,.0f}", ratio, f"{h.p50_ms:.2f}",
                      f"{h.p99_ms:.2f}", str(h.failures))  # fmt: skip
    return table


def _overhead_lines(http: list[HttpFigure]) -> list[str]:
    """Server time added per request: the difference of the inverse rates."""
    if len(http) < 2 or not all(h.per_second for h in http):
        return []
    public = http[0]
    return [
        f"{h.variant}: {(1 / h.per_second - 1 / public.per_second) * 1e6:+,.0f} µs per request "
        "over the public route (the server is saturated, so 1/rate is its time per request)"
        for h in http[1:]
    ]
