"""`werk iam keys|credentials|signing-keys ...`: API keys, live logins, token signing keys."""

from __future__ import annotations

from typing import Annotated

import typer

from werk.cli.client import api_delete, api_get, api_post
from werk.cli.errors import one_line_errors
from werk.cli.iam_common import (
    JsonOpt,
    done,
    err,
    parse_expiry,
    principal,
    principal_names,
    print_json,
    secret_once,
    show,
)
from werk.cli.uns import ApiOpt, api_url

keys_app = typer.Typer(
    help="API keys of devices, service accounts and users (shown once).", no_args_is_help=True
)
credentials_app = typer.Typer(
    help="Live logins of a principal: refresh-token families and web sessions.",
    no_args_is_help=True,
)
signing_keys_app = typer.Typer(help="The keys that sign access tokens.", no_args_is_help=True)

PrincipalArg = Annotated[str, typer.Argument(help="principal name or id")]


def register(app: typer.Typer) -> None:
    """Add the keys, credentials and signing-keys commands to `werk iam`."""
    app.add_typer(keys_app, name="keys")
    app.add_typer(credentials_app, name="credentials")
    app.add_typer(signing_keys_app, name="signing-keys")


@keys_app.command("list")
@one_line_errors
def keys_list(
    principal_ref: Annotated[
        str | None, typer.Option("--principal", help="only this principal's keys (name or id)")
    ] = None,
    api: ApiOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show API keys (never their secrets)."""
    base = api_url(api)
    params = {"principal_id": principal(base, principal_ref)["id"]} if principal_ref else None
    rows = api_get(base, "/iam/api-keys", params)
    names = {} if json else principal_names(base)
    columns = [
        ("id", lambda r: r["id"]),
        ("principal", lambda r: names.get(r["principal_id"], r["principal_id"])),
        ("name", lambda r: r["name"]),
        ("created", lambda r: r["created_at"]),
        ("expires", lambda r: r["expires_at"] or "never"),
        ("last used", lambda r: r["last_used_at"] or "never"),
        ("revoked", lambda r: r["revoked_at"]),
    ]
    show(rows, columns, title="API keys", as_json=json)


@keys_app.command("create")
@one_line_errors
def keys_create(
    principal_ref: PrincipalArg,
    name: Annotated[str, typer.Option("--name", help="what the key is for, e.g. plc-gateway")],
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="when it stops working: a duration (90d) or ISO 8601"),
    ] = None,
    api: ApiOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create an API key; the key is printed once on stdout, werk keeps only its hash."""
    base = api_url(api)
    owner = principal(base, principal_ref)
    body = {"principal_id": owner["id"], "name": name,
            "expires_at": parse_expiry(expires).isoformat() if expires else None}  # fmt: skip
    created = api_post(base, "/iam/api-keys", body)
    if json:
        print_json(created)
        return
    key = created["key"]
    until = key["expires_at"] or "never"
    err.print(
        f"created API key {key['id']} ({key['name']}) of {owner['kind']} {owner['name']}; "
        f"expires: {until}",
        highlight=False,
    )
    secret_once(created["secret"], "API key")


@keys_app.command("revoke")
@one_line_errors
def keys_revoke(
    key: Annotated[str, typer.Argument(help="the key id (12 hex digits), or the whole key")],
    api: ApiOpt = None,
) -> None:
    """Revoke an API key: it fails on its next use, and its MQTT sessions are dropped."""
    key_id = key.split("_")[1] if key.startswith("wk_") and key.count("_") >= 2 else key
    api_delete(api_url(api), f"/iam/api-keys/{key_id}")
    done(f"revoked API key {key_id}", None, as_json=False)


@credentials_app.command("list")
@one_line_errors
def credentials_list(
    principal_ref: PrincipalArg, api: ApiOpt = None, json: JsonOpt = False
) -> None:
    """Show a principal's live refresh-token families (CLI, API logins) and web sessions."""
    base = api_url(api)
    owner = principal(base, principal_ref)
    rows = api_get(base, f"/iam/principals/{owner['id']}/credentials")
    columns = [
        ("id", lambda r: r["id"]),
        ("kind", lambda r: r["kind"]),
        ("created", lambda r: r["created_at"]),
        ("last used", lambda r: r["last_used_at"]),
        ("expires", lambda r: r["expires_at"]),
        ("revoked", lambda r: r["revoked_at"]),
        ("from", lambda r: r["ip"]),
        ("user agent", lambda r: r.get("user_agent", "")),
    ]
    show(rows, columns, title=f"credentials of {owner['name']}", as_json=json)


@credentials_app.command("revoke")
@one_line_errors
def credentials_revoke(
    credential_id: Annotated[str, typer.Argument(help="id from `werk iam credentials list`")],
    api: ApiOpt = None,
) -> None:
    """Revoke one refresh-token family or web session."""
    api_post(api_url(api), f"/iam/credentials/{credential_id}/revoke", {})
    done(f"revoked credential {credential_id}", None, as_json=False)


_SIGNING_COLUMNS = [
    ("kid", lambda r: r["kid"]),
    ("algorithm", lambda r: r["algorithm"]),
    ("signs new tokens", lambda r: r["active"]),
    ("created", lambda r: r["created_at"]),
    ("retired", lambda r: r["retired_at"]),
]


@signing_keys_app.command("list")
@one_line_errors
def signing_keys_list(api: ApiOpt = None, json: JsonOpt = False) -> None:
    """Show the token signing keys (public parts only)."""
    rows = api_get(api_url(api), "/iam/signing-keys")
    show(rows, _SIGNING_COLUMNS, title="signing keys", as_json=json)


@signing_keys_app.command("rotate")
@one_line_errors
def signing_keys_rotate(api: ApiOpt = None, json: JsonOpt = False) -> None:
    """Sign with a new key from now on; tokens signed before stay valid until they expire."""
    base = api_url(api)
    rotated = api_post(base, "/iam/signing-keys/rotate", {})
    done(f"new tokens are signed with key {rotated['kid']}", rotated, as_json=json)
    if not json:
        show(
            api_get(base, "/iam/signing-keys"),
            _SIGNING_COLUMNS,
            title="signing keys",
            as_json=False,
        )
