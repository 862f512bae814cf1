"""`werk iam audit`: query the audit log, or export it to a CSV or JSON-lines file."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn

from werk.cli.client import api_get, api_stream
from werk.cli.errors import one_line_errors
from werk.cli.iam_common import JsonOpt, console, err, parse_when, principal, show
from werk.cli.uns import ApiOpt, api_url
from werk.core.errors import ValidationFailed

_FORMATS: Final = {".csv": "csv", ".jsonl": "jsonl"}
_ID_LENGTH: Final = 32

SinceOpt = Annotated[
    str, typer.Option("--since", help="from this time: ISO 8601 or a duration back (1h, 7d)")
]
UntilOpt = Annotated[
    str | None, typer.Option("--until", help="before this time: ISO 8601 or a duration back")
]
ActionOpt = Annotated[
    str | None, typer.Option("--action", help="e.g. auth.login, iam.user.create, http.denied")
]
OutcomeOpt = Annotated[str | None, typer.Option("--outcome", help="ok, denied, failed or error")]
ActorOpt = Annotated[str | None, typer.Option("--actor", help="principal name or id")]
ExportOpt = Annotated[
    Path | None,
    typer.Option("--export", help="write every matching event to FILE.csv or FILE.jsonl"),
]


def register(app: typer.Typer) -> None:
    """Add `werk iam audit` to `werk iam`."""
    app.command("audit")(audit_command)


@one_line_errors
def audit_command(
    since: SinceOpt = "24h",
    until: UntilOpt = None,
    action: ActionOpt = None,
    outcome: OutcomeOpt = None,
    actor: ActorOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="events to show")] = 100,
    after_seq: Annotated[
        int | None, typer.Option("--after-seq", help="continue after this event number")
    ] = None,
    export: ExportOpt = None,
    api: ApiOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show audit events (oldest first), or export every matching one with --export."""
    base = api_url(api)
    filters = _filters(base, since, until, action, outcome, actor)
    if export is not None:
        _export(base, export, filters)
        return
    page = api_get(base, "/iam/audit", {**filters, "limit": limit, "after_seq": after_seq})
    show(page["items"], _COLUMNS, title="audit events", as_json=json)
    if page["next_after_seq"] is not None and not json:
        console.print(f"more events: add --after-seq {page['next_after_seq']}", highlight=False)


_COLUMNS = [
    ("seq", lambda e: e["seq"]),
    ("time (UTC)", lambda e: e["ts"]),
    ("actor", lambda e: e["actor_name"]),
    ("action", lambda e: e["action"]),
    ("target", lambda e: e["target"]),
    ("outcome", lambda e: e["outcome"]),
    ("status", lambda e: e["status"] or ""),
    ("from", lambda e: e["ip"]),
]


def _filters(
    base: str,
    since: str,
    until: str | None,
    action: str | None,
    outcome: str | None,
    actor: str | None,
) -> dict[str, Any]:
    given: dict[str, Any] = {
        "since": parse_when(since).isoformat(),
        "until": parse_when(until).isoformat() if until else None,
        "action": action,
        "outcome": outcome,
        "actor_id": _actor_id(base, actor) if actor else None,
    }
    return {k: v for k, v in given.items() if v is not None}


def _actor_id(base: str, actor: str) -> str:
    is_id = len(actor) == _ID_LENGTH and all(c in "0123456789abcdef" for c in actor)
    return actor if is_id else str(principal(base, actor)["id"])


def _export(base: str, target: Path, filters: dict[str, Any]) -> None:
    fmt = _FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise ValidationFailed(
            f"export to a .csv or .jsonl file, not {target.name!r}", code="bad_export_format"
        )
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        written = _download(base, partial, {**filters, "format": fmt})
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    console.print(
        f"exported {_count(target, fmt)} events ({written:,} bytes) to {target}", highlight=False
    )


def _download(base: str, partial: Path, params: dict[str, Any]) -> int:
    columns = (SpinnerColumn(), TextColumn("exporting audit events"), BarColumn(),
               DownloadColumn())  # fmt: skip
    written = 0
    with (
        api_stream(base, "/iam/audit/export", params) as response,
        partial.open("wb") as out,
        Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress,
    ):
        task = progress.add_task("export", total=None)
        for chunk in response.iter_bytes():
            out.write(chunk)
            written += len(chunk)
            progress.update(task, completed=written)
    return written


def _count(path: Path, fmt: str) -> int:
    with path.open(newline="", encoding="utf-8") as handle:
        if fmt == "jsonl":
            return sum(1 for line in handle if line.strip())
        return max(0, sum(1 for _ in csv.reader(handle)) - 1)
