"""`werk data ...` on real DuckDB historians in temporary data directories."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import Result
from tests.integration.historian.lifecycle_support import NAMES, US_PER_S, fill
from typer.testing import CliRunner

from werk.cli.data import data_app
from werk.core.clock import now_ns
from werk.core.settings import get_settings
from werk.historian import DuckDBStore
from werk.historian.layers import Table

DAY_US = 86400 * US_PER_S
RULES = """
[[retention]]
table = "raw"
subtree = "acme/berlin/#"
keep = "7d"
compact_after = "1h"
"""


@pytest.fixture(autouse=True)
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "werk.toml"
    path.write_text(RULES)
    monkeypatch.setenv("WERK_CONFIG", str(path))
    monkeypatch.delenv("WERK_HISTORIAN_URL", raising=False)
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "werk"
    store = DuckDBStore(directory / "historian.duckdb")
    store.open()
    now_us = now_ns() // 1000
    fill(store, Table.RAW, [now_us - 10 * DAY_US, now_us - DAY_US, now_us - 120 * US_PER_S])
    store.close()
    return directory


def _werk(*args: str | Path) -> Result:
    return CliRunner().invoke(data_app, [str(a) for a in args], env={"COLUMNS": "200"})


def _count(data_dir: Path) -> int:
    store = DuckDBStore(data_dir / "historian.duckdb")
    store.open()
    try:
        return store.count()
    finally:
        store.close()


def test_export_then_import_into_another_historian(data_dir: Path, tmp_path: Path) -> None:
    file = tmp_path / "raw.parquet"
    exported = _werk("export", "raw", file, "--data-dir", data_dir)
    assert exported.exit_code == 0, exported.output
    assert f"exported 6 raw rows to {file}" in exported.output
    other = tmp_path / "other"
    imported = _werk("import", file, "--data-dir", other)
    assert imported.exit_code == 0, imported.output
    assert f"imported 6 raw rows from {file}: 6 added, 0 already stored" in imported.output
    again = _werk("import", file, "--data-dir", other)
    assert "0 added, 6 already stored" in again.output
    assert _count(other) == 6


def test_export_of_a_subtree_since_an_age(data_dir: Path, tmp_path: Path) -> None:
    file = tmp_path / "munich.parquet"
    result = _werk(
        "export", "raw", file, "--subtree", "acme/munich/#", "--start", "2d", "--data-dir", data_dir
    )
    assert result.exit_code == 0, result.output
    data = pq.read_table(file)
    assert data.num_rows == 2
    assert set(data.column("tag").to_pylist()) == {NAMES[1]}


def test_export_with_names_and_an_iso_range(data_dir: Path, tmp_path: Path) -> None:
    file = tmp_path / "one.parquet"
    result = _werk(
        "export", "raw", file, "--names", NAMES[0], "--start", "2000-01-01T00:00:00Z",
        "--end", "2200-01-01", "--data-dir", data_dir,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert pq.read_table(file).num_rows == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--names", "a", "--subtree", "#"], "error: give --names or --subtree, not both"),
        (["--start", "yesterday"], "error: 'yesterday' is neither an ISO 8601 time nor an age"),
        (["--start", "1d", "--end", "2d"], "error: --start must be before --end"),
        (["--subtree", "oee/#"], "error: the raw table has no names in 'oee/#'"),
    ],
)
def test_bad_export_options_fail_in_one_line(
    data_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result = _werk("export", "raw", tmp_path / "x.parquet", *args, "--data-dir", data_dir)
    assert result.exit_code == 1
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "x.parquet").exists()


def test_export_without_a_historian_says_where_it_looked(tmp_path: Path) -> None:
    result = _werk("export", "raw", tmp_path / "x.parquet", "--data-dir", tmp_path / "none")
    assert result.exit_code == 1
    assert f"error: no historian at {tmp_path / 'none' / 'historian.duckdb'}" in result.stderr


def test_import_of_a_file_that_is_not_parquet(data_dir: Path, tmp_path: Path) -> None:
    file = tmp_path / "orders.csv"
    file.write_text("id,qty\n1,2\n")
    result = _werk("import", file, "--data-dir", data_dir)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {file} is not a Parquet file")
    assert _count(data_dir) == 6


def test_retention_shows_the_plan_and_applies_it(data_dir: Path) -> None:
    preview = _werk("retention", "--data-dir", data_dir)
    assert preview.exit_code == 0, preview.output
    assert "acme/berlin/#" in preview.output and "7d" in preview.output
    assert "delete" in preview.output and "compact" in preview.output
    assert _count(data_dir) == 6
    applied = _werk("retention", "--apply", "--data-dir", data_dir)
    assert applied.exit_code == 0, applied.output
    assert "retention: deleted 1 rows, compacted 1 rows in 1 ranges" in applied.output
    assert _count(data_dir) == 5
    assert (data_dir / "retention-state.json").exists()


def test_retention_without_rules(data_dir: Path, config: Path) -> None:
    config.write_text("")
    get_settings.cache_clear()
    result = _werk("retention", "--data-dir", data_dir)
    assert result.exit_code == 0
    assert "no retention rules: every row is kept" in result.output


def test_a_rule_keeping_seconds_is_refused(data_dir: Path, config: Path) -> None:
    config.write_text(RULES.replace('keep = "7d"', 'keep = "30s"'))
    get_settings.cache_clear()
    result = _werk("retention", "--data-dir", data_dir)
    assert result.exit_code == 1
    assert "keeps 30s; a rule must keep at least 1m" in result.stderr


def test_compact_a_range(data_dir: Path) -> None:
    result = _werk("compact", "raw", "--end", "1h", "--data-dir", data_dir)
    assert result.exit_code == 0, result.output
    assert "compacted raw [1970-01-01T00:00:00.000Z" in result.output
    assert ": 4 rows kept" in result.output
    assert _count(data_dir) == 6


def test_a_historian_a_running_werk_holds_is_refused(data_dir: Path, tmp_path: Path) -> None:
    holder = (
        "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
        "sys.stdin.read()"
    )
    file = data_dir / "historian.duckdb"
    with subprocess.Popen(
        [sys.executable, "-c", holder, str(file)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as process:  # fmt: skip
        assert process.stdout is not None and process.stdout.readline() == "held\n"
        result = _werk("export", "raw", tmp_path / "x.parquet", "--data-dir", data_dir)
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)
    assert result.exit_code == 1
    squeezed = "".join(result.stderr.split())  # rich wraps at the terminal width
    expected = (
        f"error: the historian {file} is in use by process {process.pid} (a running werk?); "
        "use that server's API (/api/v1/data/...) or stop it first"
    )
    assert squeezed == "".join(expected.split())
