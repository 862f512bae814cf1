"""`werk sources ...` against a werk API served over real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker
from tests.conftest import free_port, wait_until
from tests.integration import scoped_support
from typer.testing import CliRunner, Result

from werk.api import problems
from werk.cli.sources import sources_app
from werk.historian import HistorianStore
from werk.sources import build_sources
from werk.sources.router import router

SOURCES = """
[[sources]]
name = "erp-orders"
kind = "file"
dataset = "orders"
path = "drop/*.csv"
columns = { "Order No" = "order_id" }
"""
CSV = (
    "Order No,line,customer_id,sku,quantity,status,ordered_at\n"
    "SO-1,1,C-7,BRK-200,12,open,2026-05-01T08:30:00Z\n"
    "SO-2,1,C-7,BRK-200,twelve,open,2026-05-01T08:30:00Z\n"
)


@pytest.fixture
def api(tmp_path: Path, store: HistorianStore, sessions: sessionmaker[Session]) -> Iterator[str]:
    (tmp_path / "drop").mkdir()
    (tmp_path / "drop" / "orders.csv").write_text(CSV)
    (tmp_path / "sources.toml").write_text(SOURCES)
    runner = build_sources(sources_file=tmp_path / "sources.toml", store=store, sessions=sessions)
    app = FastAPI()
    problems.install(app)
    app.include_router(router, prefix="/api/v1")
    app.state.sources = runner
    scoped_support.install(app)
    runner.start()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _up(url))
    yield url
    server.should_exit = True
    thread.join(10)
    runner.stop()


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v1/datasets", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def werk_sources(api: str, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(
        sources_app, [*args, "--api", api], input=stdin, env={"COLUMNS": "250"}
    )


def test_run_list_records(api: str) -> None:
    ran = werk_sources(api, "run", "erp-orders")
    assert ran.exit_code == 0, ran.stderr
    assert "erp-orders: ok in" in ran.stdout
    assert "read 2 rows, 1 accepted, 1 rejected (quarantined), 1 new records" in ran.stdout

    listed = werk_sources(api, "list")
    assert listed.exit_code == 0, listed.stderr
    orders_line = next(line for line in listed.stdout.splitlines() if "│ orders" in line)
    assert "order_id+line" in orders_line and orders_line.rstrip("│ ").endswith("1")
    assert "erp-orders" in listed.stdout and "on demand" in listed.stdout

    records = werk_sources(api, "records", "orders")
    assert records.exit_code == 0, records.stderr
    assert "orders: 1 records" in records.stdout and "SO-1" in records.stdout
    assert "2026-05-01T08:30:00Z" in records.stdout


def test_push_reports_each_rejected_row(api: str, tmp_path: Path) -> None:
    rows = [
        {"customer_id": "C-1", "name": "Acme", "updated_at": "2026-05-01T00:00:00Z"},
        {"customer_id": "C-2", "name": "Beta", "updated_at": "someday"},
    ]
    (tmp_path / "customers.json").write_text(orjson.dumps(rows).decode())
    pushed = werk_sources(api, "push", "customers", str(tmp_path / "customers.json"))
    assert pushed.exit_code == 0, pushed.stderr
    assert "customers: 2 rows, 1 accepted (1 new), 1 rejected" in pushed.stdout
    assert "row 1: bad_datetime: field 'updated_at': 'someday' is not a date and time" in (
        pushed.stdout
    )
    from_stdin = werk_sources(api, "push", "customers", "-", stdin=orjson.dumps(rows[:1]).decode())
    assert "1 accepted (0 new)" in from_stdin.stdout


def test_mistakes_are_one_line_errors(api: str, tmp_path: Path) -> None:
    unknown = werk_sources(api, "run", "nope")
    assert (unknown.exit_code, unknown.stderr.strip()) == (1, "error: HTTP 404: no source 'nope'")
    (tmp_path / "bad.json").write_text("[{")
    bad = werk_sources(api, "push", "orders", str(tmp_path / "bad.json"))
    assert bad.exit_code == 1 and bad.stderr.startswith("error: ")
    assert "is not JSON" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    down = werk_sources(f"http://127.0.0.1:{free_port()}", "list")
    assert down.exit_code == 1 and "cannot reach werk" in down.stderr
