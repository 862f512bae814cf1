"""`werk bench auth`: what authentication costs per request, alone and inside a served request.

Two measurements in one run:

- **verification**: microseconds per `Authenticator.verify` on a fresh database with the
  bootstrap admin: a new access token (signature checked), a repeated one (verified-token
  cache), and an API key (cached key record, constant-time hash comparison);
- **overhead**: requests/s of one cheap handler served by the real app, mounted once as
  PUBLIC and once behind `uns:read`, called anonymously and with a bearer JWT or API key.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import sessionmaker

from werk.bench.auth_asgi import measure_asgi
from werk.bench.auth_http import VARIANTS, HttpOptions, Variant, measure_http
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
    asgi_requests: int = 5_000
    seconds: float = 3.0
    rounds: int = 6
    connections: int = 16


AUTH_QUICK: Final = AuthBenchConfig(
    verifications=500, asgi_requests=300, seconds=1.0, rounds=1, connections=8
)


@dataclass(frozen=True, slots=True)
class HttpFigure:
    """One request variant's figures over all its rounds."""

    variant: str
    requests: int
    failures: int
    seconds: float
    per_second: float
    vs_public: float
    cpu_us_per_request: float
    p50_ms: float
    p99_ms: float


@dataclass(slots=True)
class AuthReport:
    """Everything `werk bench auth` measured."""

    machine: MachineInfo
    config: AuthBenchConfig
    verification_us: dict[str, float] = field(default_factory=dict)
    asgi_us: dict[str, float] = field(default_factory=dict)
    http: list[HttpFigure] = field(default_factory=list)
    load_average: tuple[float, float] = (0.0, 0.0)

    def as_dict(self) -> dict[str, Any]:
        """Plain figures for JSON."""
        return {
            "machine": self.machine.describe(),
            "config": {k: getattr(self.config, k) for k in AuthBenchConfig.__slots__},
            "verification_us": self.verification_us,
            "asgi_us": self.asgi_us,
            "http": [{k: getattr(h, k) for k in HttpFigure.__slots__} for h in self.http],
            "load_average": {"start": self.load_average[0], "end": self.load_average[1]},
        }


def run_auth_bench(config: AuthBenchConfig, console: Console) -> AuthReport:
    """Measure verification in this process, then the served overhead against a child werk."""
    report = AuthReport(machine=machine_info(), config=config)
    started_load = os.getloadavg()[0]
    console.print(f"[dim]verifying credentials {config.verifications:,} times each[/dim]")
    report.verification_us = measure_tokens(config.verifications)
    with console.status(f"{config.asgi_requests:,} requests per variant through the app"):
        variants = [(v.name, v.path, v.credential) for v in VARIANTS]
        report.asgi_us = measure_asgi(config.asgi_requests, variants)
    options = HttpOptions(config.seconds, config.rounds, config.connections)
    with console.status("driving the API") as status:
        results = measure_http(options, lambda text: status.update(f"driving the API: {text}"))
    public = results[0][1]
    report.http = [_figure(variant, rounds, public) for variant, rounds in results]
    report.load_average = (started_load, os.getloadavg()[0])
    return report


def _figure(variant: Variant, rounds: list[LoadResult], public: list[LoadResult]) -> HttpFigure:
    """Medians over the rounds; the ratio compares each round with the public one beside it."""
    total = LoadResult()
    for result in rounds:
        total.merge(result)
    ratios = [
        r.per_second / p.per_second for r, p in zip(rounds, public, strict=True) if p.per_second
    ]
    return HttpFigure(
        variant=variant.name, requests=total.requests, failures=total.failures,
        seconds=total.seconds, per_second=statistics.median(r.per_second for r in rounds),
        vs_public=statistics.median(ratios) if ratios else 0.0,
        cpu_us_per_request=statistics.median(r.cpu_us_per_request for r in rounds),
        p50_ms=total.percentile_ms(0.5), p99_ms=total.percentile_ms(0.99),
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
    start, end = report.load_average
    console.print(
        f"[dim]{report.machine.describe()}; load average {start:.1f} at start, "
        f"{end:.1f} at end[/dim]"
    )
    verify = Table("credential check (in process)", "µs per call", title="Token verification")
    for key, label in _VERIFY_ROWS:
        if key in report.verification_us:
            verify.add_row(label, f"{report.verification_us[key]:,.1f}")
    console.print(verify)
    console.print(_asgi_table(report))
    console.print(_http_table(report))
    for line in _overhead_lines(report.http):
        console.print(line, highlight=False)


def _asgi_table(report: AuthReport) -> Table:
    title = (f"One request through the app in process (ASGI, no sockets), "
             f"{report.config.asgi_requests:,} per variant, interleaved")  # fmt: skip
    table = Table("variant", "µs per request (median)", "vs public", title=title)
    public = next(iter(report.asgi_us.values()), 0.0)
    for name, us in report.asgi_us.items():
        table.add_row(name, f"{us:,.0f}", f"{us - public:+,.0f} µs")
    return table


def _http_table(report: AuthReport) -> Table:
    c = report.config
    title = (f"Served requests: one cheap handler, {c.connections} keep-alive connections, "
             f"{c.rounds} rounds of {c.seconds:g} s per variant, variants alternating; "
             "medians over the rounds")  # fmt: skip
    table = Table("variant", "requests/s", "vs public", "server CPU µs/request", "p50 ms",
                  "p99 ms", "failed", title=title)  # fmt: skip
    for h in report.http:
        table.add_row(h.variant, f"{h.per_second:,.0f}", f"{h.vs_public:.1%}",
                      f"{h.cpu_us_per_request:,.0f}", f"{h.p50_ms:.2f}", f"{h.p99_ms:.2f}",
                      str(h.failures))  # fmt: skip
    return table


def _overhead_lines(http: list[HttpFigure]) -> list[str]:
    """What authentication adds per request, in server CPU time (robust on a busy machine)."""
    if len(http) < 2 or not http[0].cpu_us_per_request:
        return []
    public = http[0].cpu_us_per_request
    return [
        f"{h.variant}: {h.cpu_us_per_request - public:+,.0f} µs of server CPU per request "
        f"({h.cpu_us_per_request / public - 1:+.1%}) over the public route"
        for h in http[1:]
    ]
