"""`werk iam ...`: organisations, users, service accounts and devices, over the API."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from werk.cli import iam_access, iam_audit, iam_keys, iam_reset
from werk.cli.client import api_get, api_patch, api_post, api_put
from werk.cli.errors import one_line_errors
from werk.cli.iam_common import (
    DisplayNameOpt,
    JsonOpt,
    OrgOpt,
    done,
    err,
    org_id,
    org_slugs,
    principal,
    secret_once,
    show,
)
from werk.cli.uns import ApiOpt, api_url
from werk.core.errors import ValidationFailed

iam_app = typer.Typer(
    help="Identity and access: organisations, people, devices, roles, keys, audit.",
    no_args_is_help=True,
)
orgs_app = typer.Typer(
    help="Organisations: the operator and each partner tenant.", no_args_is_help=True
)
iam_app.add_typer(orgs_app, name="orgs")

OrgArg = Annotated[str, typer.Argument(help="organisation slug or id")]
EmailOpt = Annotated[str | None, typer.Option("--email", help="e-mail address")]
PrincipalArg = Annotated[str, typer.Argument(help="name or id", metavar="NAME")]
PasswordStdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="read the password from standard input")
]


@orgs_app.command("list")
@one_line_errors
def orgs_list(api: ApiOpt = None, json: JsonOpt = False) -> None:
    """Show the organisations you may see."""
    rows = api_get(api_url(api), "/iam/orgs")
    keys = ("slug", "name", "kind", "disabled", "created_at", "id")
    columns = [(k.replace("_at", ""), _get(k)) for k in keys]
    show(rows, columns, title="organisations", as_json=json)


@orgs_app.command("create")
@one_line_errors
def orgs_create(
    slug: Annotated[str, typer.Argument(help="short name: a-z, 0-9 and -, e.g. northwind")],
    name: Annotated[str, typer.Option("--name", help="full name, e.g. 'Northwind Traders'")],
    kind: Annotated[str, typer.Option("--kind", help="partner or operator")] = "partner",
    api: ApiOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create an organisation (operator administrators only)."""
    org = api_post(api_url(api), "/iam/orgs", {"slug": slug, "name": name, "kind": kind})
    done(f"created {org['kind']} organisation {org['slug']} ({org['id']})", org, as_json=json)


@orgs_app.command("update")
@one_line_errors
def orgs_update(
    org: OrgArg,
    name: Annotated[str, typer.Option("--name", help="the new full name")],
    api: ApiOpt = None,
    json: JsonOpt = False,
) -> None:
    """Rename an organisation."""
    _org_change(api, org, {"name": name}, "renamed", json)


@orgs_app.command("disable")
@one_line_errors
def orgs_disable(org: OrgArg, api: ApiOpt = None, json: JsonOpt = False) -> None:
    """Disable an organisation: none of its principals can log in or connect."""
    _org_change(api, org, {"disabled": True}, "disabled", json)


@orgs_app.command("enable")
@one_line_errors
def orgs_enable(org: OrgArg, api: ApiOpt = None, json: JsonOpt = False) -> None:
    """Enable a disabled organisation again."""
    _org_change(api, org, {"disabled": False}, "enabled", json)


def _org_change(api: str | None, ref: str, body: dict[str, Any], verb: str, as_json: bool) -> None:
    base = api_url(api)
    changed = api_patch(base, f"/iam/orgs/{org_id(base, ref)}", body)
    done(f"{verb} organisation {changed['slug']}", changed, as_json=as_json)


def _get(key: str) -> Any:
    return lambda row: row.get(key)


def _principal_app(kind: str, path: str, noun: str, help_text: str) -> typer.Typer:
    """The list/update/disable/enable/revoke-all commands every kind of principal has."""
    app = typer.Typer(help=help_text, no_args_is_help=True)

    def list_(org: OrgOpt = None, api: ApiOpt = None, json: JsonOpt = False) -> None:
        base = api_url(api)
        params = {"org_id": org_id(base, org)} if org else None
        _show_principals(base, api_get(base, path, params), f"{noun}s", json)

    def update(
        ref: PrincipalArg,
        display_name: DisplayNameOpt = None,
        email: EmailOpt = None,
        api: ApiOpt = None,
        json: JsonOpt = False,
    ) -> None:
        base = api_url(api)
        target = principal(base, ref, kind)
        given = (("display_name", display_name), ("email", email))
        body = {k: v for k, v in given if v is not None}
        changed = api_patch(base, f"/iam/principals/{target['id']}", body)
        done(f"updated {noun} {changed['name']}", changed, as_json=json)

    def disable(ref: PrincipalArg, api: ApiOpt = None, json: JsonOpt = False) -> None:
        _toggle(api, ref, kind, "disable", json)

    def enable(ref: PrincipalArg, api: ApiOpt = None, json: JsonOpt = False) -> None:
        _toggle(api, ref, kind, "enable", json)

    def revoke_all(ref: PrincipalArg, api: ApiOpt = None) -> None:
        base = api_url(api)
        target = principal(base, ref, kind)
        api_post(base, f"/iam/principals/{target['id']}/revoke-all", {})
        done(f"revoked every token and session of {target['name']}", None, as_json=False)

    list_.__doc__ = f"Show the {noun}s you may see."
    update.__doc__ = f"Change a {noun}'s display name or e-mail."
    disable.__doc__ = f"Disable a {noun}: its tokens, keys and sessions fail on their next use."
    enable.__doc__ = f"Enable a disabled {noun} again."
    revoke_all.__doc__ = f"End every access token, refresh token and web session of a {noun}."
    for verb, command in (("list", list_), ("update", update), ("disable", disable),
                          ("enable", enable), ("revoke-all", revoke_all)):  # fmt: skip
        app.command(verb)(one_line_errors(command))
    return app


def _toggle(api: str | None, ref: str, kind: str, verb: str, as_json: bool) -> None:
    base = api_url(api)
    target = principal(base, ref, kind)
    changed = api_post(base, f"/iam/principals/{target['id']}/{verb}", {})
    done(f"{verb}d {changed['kind']} {changed['name']}", changed, as_json=as_json)


def _show_principals(base: str, rows: list[dict[str, Any]], title: str, as_json: bool) -> None:
    slugs = {} if as_json else org_slugs(base)
    columns = [
        ("name", _get("name")), ("organisation", lambda r: slugs.get(r["org_id"], r["org_id"])),
        ("display name", _get("display_name")), ("e-mail", _get("email")),
        ("sparkplug", lambda r: "/".join(r["sparkplug"]) if r.get("sparkplug") else None),
        ("disabled", _get("disabled")), ("locked until", _get("locked_until")), ("id", _get("id")),
    ]  # fmt: skip
    show(rows, columns, title=title, as_json=as_json)


users_app = _principal_app("user", "/iam/users", "user", "People who log in with a password.")
service_accounts_app = _principal_app(
    "service", "/iam/service-accounts", "service account",
    "Integrations: OAuth2 clients (client credentials) or API-key users.",
)  # fmt: skip
devices_app = _principal_app(
    "device", "/iam/devices", "device",
    "Machines, gateways and Sparkplug edge nodes (MQTT username = device name).",
)  # fmt: skip
iam_app.add_typer(users_app, name="users")
iam_app.add_typer(service_accounts_app, name="service-accounts")
iam_app.add_typer(devices_app, name="devices")


@users_app.command("create")
@one_line_errors
def users_create(
    name: Annotated[str, typer.Argument(help="login name, unique in werk")],
    org: OrgOpt = None,
    display_name: DisplayNameOpt = None,
    email: EmailOpt = None,
    password_stdin: PasswordStdinOpt = False,
    api: ApiOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create a user; without --password-stdin werk generates a password, shown once."""
    base = api_url(api)
    body: dict[str, Any] = {"name": name, "org_id": org_id(base, org),
                            "display_name": display_name or "", "email": email}  # fmt: skip
    if password_stdin:
        body["password"] = _stdin_password()
    created = api_post(base, "/iam/users", body)
    if json:
        done("", created, as_json=True)
        return
    user = created["user"]
    err.print(f"created user {user['name']} ({user['id']})", highlight=False)
    if created.get("password"):
        secret_once(created["password"], "password")


@users_app.command("set-password")
@one_line_errors
def users_set_password(
    ref: Annotated[str, typer.Argument(help="user name or id")],
    password_stdin: PasswordStdinOpt = False,
    api: ApiOpt = None,
) -> None:
    """Set a user's password (at least 12 characters, not containing the user name)."""
    base = api_url(api)
    target = principal(base, ref, "user")
    if password_stdin:
        password = _stdin_password()
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    api_put(base, f"/iam/principals/{target['id']}/password", {"password": password})
    done(f"set the password of {target['name']}", None, as_json=False)


def _stdin_password() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise ValidationFailed("no password on standard input", code="empty_password")
    return password


@service_accounts_app.command("create")
@one_line_errors
def service_accounts_create(
    name: Annotated[str, typer.Argument(help="the OAuth2 client_id, unique in werk")],
    org: OrgOpt = None,
    display_name: DisplayNameOpt = None,
    api: ApiOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create a service account; then give it a role and an API key (its client secret)."""
    base = api_url(api)
    body = {"name": name, "org_id": org_id(base, org), "display_name": display_name or ""}
    made = api_post(base, "/iam/service-accounts", body)
    done(f"created service account {made['name']} ({made['id']})", made, as_json=json)


@devices_app.command("create")
@one_line_errors
def devices_create(
    name: Annotated[str, typer.Argument(help="device name = its MQTT username, unique in werk")],
    org: OrgOpt = None,
    display_name: DisplayNameOpt = None,
    sparkplug: Annotated[
        str | None,
        typer.Option("--sparkplug", help="GROUP/NODE: an edge node's Sparkplug group and node id"),
    ] = None,
    api: ApiOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create a device (or a Sparkplug edge node); then give it a role and an API key."""
    base = api_url(api)
    body: dict[str, Any] = {"name": name, "org_id": org_id(base, org),
                            "display_name": display_name or ""}  # fmt: skip
    if sparkplug is not None:
        group, sep, node = sparkplug.partition("/")
        if not (group and sep and node) or "/" in node:
            raise ValidationFailed(
                "--sparkplug takes GROUP/NODE, e.g. acme/berlin-gw-1", code="bad_sparkplug"
            )
        body |= {"sparkplug_group": group, "sparkplug_node": node}
    made = api_post(base, "/iam/devices", body)
    done(f"created device {made['name']} ({made['id']})", made, as_json=json)


iam_access.register(iam_app)
iam_keys.register(iam_app)
iam_audit.register(iam_app)
iam_reset.register(iam_app)

__all__ = ["iam_app"]
