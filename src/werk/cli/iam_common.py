"""What the `werk iam ...` commands share: options, output, and finding objects by name."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from werk.cli.client import api_get
from werk.core.errors import NotFound, ValidationFailed
from werk.historian.service import parse_duration

console = Console()
err = Console(stderr=True)

_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
OrgOpt = Annotated[
    str | None, typer.Option("--org", help="organisation slug or id [your own organisation]")
]
DisplayNameOpt = Annotated[str | None, typer.Option("--display-name", help="a readable name")]


def print_json(value: Any) -> None:
    """Print `value` as indented JSON on stdout."""
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def show(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[tuple[str, Callable[[dict[str, Any]], Any]]],
    *,
    title: str,
    as_json: bool,
) -> None:
    """Print `rows` as a table of `columns` (header, cell getter), or as JSON."""
    if as_json:
        print_json(list(rows))
        return
    if not rows:
        console.print(f"no {title}")
        return
    cells = [[cell(getter(row)) for _, getter in columns] for row in rows]
    table = Table(title=title)
    (first, _), *rest = columns
    # The first column names the row (an id, a name, a key id): it is kept whole on one
    # line, however narrow the terminal, so it can be read and copied; the others wrap.
    table.add_column(first, no_wrap=True, min_width=max(len(first), *(len(c[0]) for c in cells)))
    for header, _ in rest:
        table.add_column(header)
    for row_cells in cells:
        table.add_row(*(escape(text) for text in row_cells))
    console.print(table)


def cell(value: Any) -> str:
    """A value as table text: lists joined, None empty, times shortened to seconds."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value)
    text = str(value)
    if _TIMESTAMP.match(text):
        return text[:19].replace("T", " ")
    return text


def done(message: str, value: Any, *, as_json: bool) -> None:
    """Report a change: JSON of the answer, or one line."""
    if as_json:
        print_json(value)
    else:
        console.print(message, highlight=False)


def find(
    base: str, path: str, ref: str, *, keys: Iterable[str], what: str, org_id: str | None = None
) -> dict[str, Any]:
    """The one object at `path` whose id or one of `keys` equals `ref` (in `org_id`, if given)."""
    items: list[dict[str, Any]] = api_get(base, path)
    by_id = [i for i in items if i.get("id") == ref]
    if by_id:
        return by_id[0]
    found = [
        i for i in items
        if any(i.get(k) == ref for k in keys) and (org_id is None or i.get("org_id") == org_id)
    ]  # fmt: skip
    if not found:
        raise NotFound(f"no {what} {ref!r} that you may see", code="not_found")
    if len(found) > 1:
        orgs = ", ".join(sorted(str(i.get("org_id")) for i in found))
        raise ValidationFailed(
            f"{len(found)} {what}s are called {ref!r} (organisations {orgs}); pass --org or the id",
            code="ambiguous",
        )
    return found[0]


def org_id(base: str, ref: str | None) -> str | None:
    """The id of the organisation with slug or id `ref`; None for None."""
    if ref is None:
        return None
    return str(find(base, "/iam/orgs", ref, keys=("slug",), what="organisation")["id"])


def principal(base: str, ref: str, kind: str | None = None) -> dict[str, Any]:
    """The principal named (or with id) `ref`, checked to be of `kind` when given."""
    found = find(base, "/iam/principals", ref, keys=("name",), what="principal")
    if kind is not None and found["kind"] != kind:
        raise ValidationFailed(f"{ref!r} is a {found['kind']}, not a {kind}", code="wrong_kind")
    return found


def org_slugs(base: str) -> dict[str, str]:
    """Organisation id to slug, for readable tables."""
    return {o["id"]: o["slug"] for o in api_get(base, "/iam/orgs")}


def principal_names(base: str) -> dict[str, str]:
    """Principal id to name, for readable tables."""
    return {p["id"]: p["name"] for p in api_get(base, "/iam/principals")}


def parse_when(text: str) -> datetime:
    """A time given as ISO 8601 or as a duration back from now (`15m`, `24h`, `7d`)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(text))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_expiry(text: str) -> datetime:
    """A future time given as ISO 8601 or as a duration from now (`90d`)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return datetime.now(UTC) + timedelta(seconds=parse_duration(text))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def secret_once(secret: str, what: str) -> None:
    """Print a secret alone on stdout, and on stderr that it is shown this once."""
    typer.echo(secret)
    err.print(
        f"[yellow]warning:[/yellow] this {what} is shown only once; store it now "
        "(werk keeps only a hash of it)",
        highlight=False,
    )
