"""`werk login`, `werk logout`, `werk whoami`: the CLI's own login at a werk server."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from werk.cli.client import (
    API_KEY_ENV,
    TOKEN_ENV,
    api_get,
    current_credential,
    revoke_token,
    token_request,
)
from werk.cli.credentials import (
    credentials_path,
    forget_login,
    locked,
    login_from_token_response,
    save_login,
)
from werk.cli.errors import one_line_errors
from werk.cli.uns import ApiOpt, api_url
from werk.core.errors import Unavailable, ValidationFailed

console = Console()
err = Console(stderr=True)

UsernameOpt = Annotated[str | None, typer.Option("--username", "-u", help="your user name")]
PasswordStdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="read the password from standard input")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


@one_line_errors
def login_command(
    username: UsernameOpt = None, password_stdin: PasswordStdinOpt = False, api: ApiOpt = None
) -> None:
    """Log in with user name and password; the tokens are kept for later commands."""
    base = api_url(api)
    name = username or typer.prompt("Username")
    password = _read_password(password_stdin)
    form = {"grant_type": "password", "username": name, "password": password}
    body = token_request(base, form)
    login = login_from_token_response(name, body)
    with locked():
        save_login(base, login)
    minutes = round(float(body.get("expires_in", 0)) / 60)
    console.print(
        f"logged in to {base} as {escape(name)} (access token valid {minutes} min, "
        f"renewed automatically; stored in {credentials_path()})",
        highlight=False,
    )
    _warn_environment()


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True)
    if not password:
        raise ValidationFailed("the password is empty", code="empty_password")
    return password


def _warn_environment() -> None:
    for variable in (API_KEY_ENV, TOKEN_ENV):
        if variable in os.environ:
            err.print(f"note: {variable} is set and takes precedence over this login")


@one_line_errors
def logout_command(api: ApiOpt = None) -> None:
    """Revoke the stored login at the server and forget it here."""
    base = api_url(api)
    with locked():
        login = forget_login(base)
    if login is None:
        console.print(f"not logged in to {base}")
        return
    try:
        for token in (login.refresh_token, login.access_token):
            if token:
                revoke_token(base, token)
    except Unavailable:
        err.print(f"{base} is unreachable: the login was forgotten here but not revoked there")
        raise typer.Exit(1) from None
    console.print(f"logged out of {base} as {escape(login.username)}", highlight=False)


@one_line_errors
def whoami_command(api: ApiOpt = None, json: JsonOpt = False) -> None:
    """Show who the CLI acts as: principal, organisation, roles and their scopes."""
    base = api_url(api)
    me: dict[str, Any] = api_get(base, "/auth/me")
    if json:
        typer.echo(orjson.dumps(me, option=orjson.OPT_INDENT_2).decode())
        return
    source = current_credential(base).source
    console.print(_identity_line(_with_org(me), source), highlight=False)
    grants = me.get("grants") or []
    if grants:
        console.print(_grants_table(grants))


_SOURCES = {
    "api_key": f"API key from {API_KEY_ENV}",
    "token": f"access token from {TOKEN_ENV}",
    "login": "`werk login`",
}


def _identity_line(me: dict[str, Any], source: str) -> str:
    via = _SOURCES.get(source, source)
    name, kind, org = escape(str(me["name"])), me["kind"], escape(str(me["org"]))
    return f"{name} ({kind}) of organisation {org}, via {via}"


def _with_org(me: dict[str, Any]) -> dict[str, Any]:
    """`me` with the slug of the caller's own organisation (its id when werk has none)."""
    org = me.get("org") or {}
    return {**me, "org": org.get("slug") or me["org_id"]}


def _grants_table(grants: list[dict[str, Any]]) -> Table:
    table = Table("role", "permissions", "namespace", "layers", "organisations")
    for g in grants:
        layers = g["layers"]
        table.add_row(
            escape(g["role"]),
            ", ".join(g["permissions"]),
            escape(", ".join(g["namespace"])),
            "all" if layers is None else ", ".join(layers),
            "all" if g["org"] == "any" else "own",
        )
    return table
