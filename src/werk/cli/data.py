"""`werk data ...`: export, import, retention and compaction of the local historian."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table as RichTable

from werk.cli.errors import one_line_errors
from werk.core.clock import NS_PER_S, from_datetime, iso, now_ns
from werk.core.errors import Conflict, NotFound, StorageUnavailable, ValidationFailed
from werk.core.settings import Settings, get_settings
from werk.historian.layers import Table

if TYPE_CHECKING:
    from werk.historian.lifecycle import RetentionReport
    from werk.historian.lifecycle_worker import PlannedAction
    from werk.historian.store import HistorianStore

data_app = typer.Typer(
    help="Export, import, retention and compaction of the historian (not while werk runs "
    "on the same DuckDB file).",
    no_args_is_help=True,
)
console = Console()
_progress_console = Console(stderr=True)

ALL_START_NS: Final = 0
ALL_END_NS: Final = from_datetime(datetime(2200, 1, 1, tzinfo=UTC))
_LOCK_PID: Final = re.compile(r"PID (\d+)")

TableArg = Annotated[Table, typer.Argument(help="raw, processed, rollups, kpis or records")]
StartOpt = Annotated[
    str | None,
    typer.Option("--start", help="ISO 8601 time, or an age such as 7d [the oldest row]"),
]
EndOpt = Annotated[
    str | None, typer.Option("--end", help="ISO 8601 time, or an age such as 1h [everything]")
]
NamesOpt = Annotated[
    str | None,
    typer.Option("--names", help="comma-separated tag paths, KPI names or dataset names"),
]
SubtreeOpt = Annotated[
    str | None, typer.Option("--subtree", help="MQTT-style filter over names, e.g. acme/berlin/#")
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="data directory [WERK_DATA_DIR or ./.werk]")
]


@data_app.command("export")
@one_line_errors
def export_command(
    table: TableArg,
    file: Annotated[Path, typer.Argument(help="Parquet file to write")],
    start: StartOpt = None,
    end: EndOpt = None,
    names: NamesOpt = None,
    subtree: SubtreeOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Export a range of a table to a Parquet file (zstd, with werk metadata)."""
    from werk.historian.exchange import export

    start_ns, end_ns = time_range(start, end)
    with open_local_store(_settings(data_dir), must_exist=True) as store:
        selected = _names(store, table, names, subtree)
        with _bar(f"export {table.value}") as progress:
            report = export(store, table, start_ns, end_ns, file, names=selected, progress=progress)
    console.print(
        f"exported {report.rows:,} {table.value} rows to {file} ({_size(report.bytes)}) "
        f"in {report.seconds:.1f} s, {report.rows_per_s:,.0f} rows/s",
        highlight=False,
    )


@data_app.command("import")
@one_line_errors
def import_command(
    file: Annotated[Path, typer.Argument(help="Parquet file written by `werk data export`")],
    table: Annotated[
        Table | None,
        typer.Option("--table", help="table of a file without werk metadata"),
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Import a Parquet file; rows the historian already holds are skipped."""
    from werk.historian.exchange import import_, open_parquet

    open_parquet(file)  # a foreign file fails before the historian is touched
    with (
        open_local_store(_settings(data_dir), must_exist=False) as store,
        _bar(f"import {file.name}") as progress,
    ):
        report = import_(store, file, table=table, progress=progress)
    console.print(
        f"imported {report.rows:,} {report.table.value} rows from {file}: {report.added:,} "
        f"added, {report.skipped:,} already stored, in {report.seconds:.1f} s, "
        f"{report.rows_per_s:,.0f} rows/s",
        highlight=False,
    )


@data_app.command("retention")
@one_line_errors
def retention_command(
    apply_now: Annotated[bool, typer.Option("--apply", help="run retention now")] = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Show the retention rules and what the next run would do (or run it with --apply)."""
    from werk.historian.lifecycle_worker import RetentionWorker

    settings = _settings(data_dir)
    if not settings.retention:
        console.print("no retention rules: every row is kept (see docs/data-lifecycle.md)")
        return
    console.print(rules_table(settings))
    with open_local_store(settings, must_exist=True) as store:
        worker = RetentionWorker.from_settings(settings, store)
        if not apply_now:
            console.print(plan_table(worker.preview()))
            return
        report = worker.run_now()
    console.print(report_table(report))
    if report.error is not None:
        raise StorageUnavailable(report.summary())
    console.print(report.summary(), highlight=False)


@data_app.command("compact")
@one_line_errors
def compact_command(
    table: TableArg,
    start: StartOpt = None,
    end: EndOpt = None,
    names: NamesOpt = None,
    subtree: SubtreeOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Rewrite a range of a table sorted by name and time, without exact duplicates."""
    import time

    start_ns, end_ns = time_range(start, end)
    with open_local_store(_settings(data_dir), must_exist=True) as store:
        selected = _names(store, table, names, subtree)
        clock = time.perf_counter()
        kept = store.compact(table, start_ns, end_ns, selected)
    console.print(
        f"compacted {table.value} [{iso(start_ns)}, {iso(end_ns)}): {kept:,} rows kept "
        f"in {time.perf_counter() - clock:.1f} s",
        highlight=False,
    )


# -- times, names and settings -----------------------------------------------------------


def time_range(start: str | None, end: str | None) -> tuple[int, int]:
    """Nanosecond bounds from the options; none given means every row."""
    now = now_ns()
    start_ns = ALL_START_NS if start is None else parse_moment(start, now)
    end_ns = ALL_END_NS if end is None else parse_moment(end, now)
    if start_ns >= end_ns:
        raise ValidationFailed("--start must be before --end", code="bad_range")
    return start_ns, end_ns


def parse_moment(text: str, now: int) -> int:
    """An ISO 8601 time (naive means UTC) or an age such as 7d, in epoch ns."""
    from werk.historian.service import parse_duration

    try:
        return from_datetime(datetime.fromisoformat(text.strip()))
    except ValueError:
        pass
    try:
        return now - round(parse_duration(text) * NS_PER_S)
    except ValidationFailed as exc:
        raise ValidationFailed(
            f"{text!r} is neither an ISO 8601 time nor an age such as 30m, 7d",
            code="bad_time",
        ) from exc


def _names(
    store: HistorianStore, table: Table, names: str | None, subtree: str | None
) -> list[str] | None:
    from werk.historian.lifecycle import names_in_subtree

    if names is not None and subtree is not None:
        raise ValidationFailed("give --names or --subtree, not both", code="names_and_subtree")
    if names is not None:
        listed = [n.strip() for n in names.split(",") if n.strip()]
        if not listed:
            raise ValidationFailed("--names lists no name", code="no_names")
        return listed
    if subtree is None:
        return None
    found = names_in_subtree(store, table, subtree)
    if not found:
        raise NotFound(f"the {table.value} table has no names in {subtree!r}", code="no_names")
    return found


def _size(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def _settings(data_dir: Path | None) -> Settings:
    settings = get_settings()
    if data_dir is None:
        return settings
    return Settings.model_validate({**settings.model_dump(), "data_dir": data_dir})


# -- the store -----------------------------------------------------------------------------


@contextmanager
def open_local_store(settings: Settings, *, must_exist: bool) -> Iterator[HistorianStore]:
    """Open the configured historian directly; refuse a DuckDB file a running werk holds."""
    from werk.historian.backends import store_for

    file = duckdb_file(settings)
    if must_exist and file is not None and not file.exists():
        raise NotFound(
            f"no historian at {file}; give --data-dir or set WERK_HISTORIAN_URL",
            code="no_historian",
        )
    store = store_for(settings.historian_url, settings.historian_file)
    try:
        store.open()
    except StorageUnavailable as exc:
        locked = _locked(exc, file)
        if locked is None:
            raise
        raise locked from exc
    try:
        yield store
    finally:
        store.close()


def duckdb_file(settings: Settings) -> Path | None:
    """The DuckDB file of the configured historian (None for PostgreSQL or in memory)."""
    url = settings.historian_url
    if url is None or not url.strip():
        return settings.historian_file
    if urlsplit(url).scheme.lower() != "duckdb":
        return None
    target = url.split("://", 1)[1]
    return None if target == ":memory:" else Path(target)


def _locked(exc: StorageUnavailable, file: Path | None) -> Conflict | None:
    text = f"{exc} {exc.__cause__ or ''}"
    if file is None or "lock" not in text.lower():
        return None
    pid = _LOCK_PID.search(text)
    holder = f"process {pid.group(1)}" if pid else "another process"
    return Conflict(
        f"the historian {file} is in use by {holder} (a running werk?); use that server's "
        "API (/api/v1/data/...) or stop it first",
        code="historian_in_use",
    )


@contextmanager
def _bar(description: str) -> Iterator[Callable[[int, int], None]]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=_progress_console, transient=True) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


# -- tables ----------------------------------------------------------------------------


def rules_table(settings: Settings) -> RichTable:
    """The configured retention rules."""
    table = RichTable("table", "subtree", "keep", "compact after", title="retention rules")
    for rule in settings.retention:
        table.add_row(rule.table, rule.subtree, rule.keep, rule.compact_after or "")
    return table


def plan_table(planned: list[PlannedAction]) -> RichTable:
    """What the next run would delete and compact."""
    table = RichTable(
        "action", "table", "subtree", "names", "from", "before", "rows in range",
        title="next run (rows in range count every name of the table)",
    )  # fmt: skip
    for p in planned:
        a = p.action
        names = "all" if a.names is None else str(len(a.names))
        start = "" if a.start_ns == 0 else iso(a.start_ns)
        table.add_row(
            a.kind, a.table, a.subtree, names, start, iso(a.end_ns), f"{p.rows_in_range:,}"
        )
    if not planned:
        table.caption = "nothing to do"
    return table


def report_table(report: RetentionReport) -> RichTable:
    """What a retention run did."""
    table = RichTable("action", "table", "subtree", "before", "rows", "seconds")
    for o in report.outcomes:
        a = o.action
        table.add_row(a.kind, a.table, a.subtree, iso(a.end_ns), f"{o.rows:,}", f"{o.seconds:.2f}")
    return table
