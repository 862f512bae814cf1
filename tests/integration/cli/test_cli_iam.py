"""`werk login`, `werk whoami`, `werk iam ...` against a running werk."""

from __future__ import annotations

import csv
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import Result
from sqlalchemy.orm import sessionmaker
from tests.conftest import LiveServer, make_settings, wait_until
from typer.testing import CliRunner

from werk.cli.client import mqtt_login
from werk.cli.main import app
from werk.cli.server import _print_banner as print_banner
from werk.cli.server import console as server_console
from werk.core.db import create_db_engine, upgrade_schema
from werk.core.settings import Settings
from werk.iam.bootstrap import ensure_admin
from werk.iam.service import Iam
from werk.runtime import Runtime
from werk.uns.broker import BrokerAddress
from werk.uns.mqtt import Publisher

KEY = re.compile(r"wk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


@dataclass
class Werk:
    """A running werk and its administrator's password."""

    server: LiveServer
    admin_password: str

    @property
    def url(self) -> str:
        """Base URL of the API."""
        return self.server.url


def first_admin(settings: Settings) -> str:
    """Create werk's first administrator in the data directory; return its password."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_db_engine(settings.relational_url)
    try:
        upgrade_schema(engine)
        first = ensure_admin(Iam(sessionmaker(engine, expire_on_commit=False), settings))
    finally:
        engine.dispose()
    assert first is not None
    return first.password


def start(settings: Settings) -> tuple[LiveServer, str]:
    """A werk whose administrator's password is known."""
    password = first_admin(settings)
    return LiveServer(settings).__enter__(), password


@pytest.fixture(scope="module")
def werk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Werk]:
    data = tmp_path_factory.mktemp("werk") / "data"
    server, password = start(make_settings(data, mqtt_allow_anonymous=False))
    try:
        yield Werk(server, password)
    finally:
        server.__exit__(None, None, None)


def cli(
    werk: Werk,
    credentials: Path,
    *args: str,
    input: str | None = None,
    key: str | None = None,
) -> Result:
    """Run `werk ...` in-process with its own credentials file, as a user would."""
    env = {"WERK_CREDENTIALS": str(credentials), "WERK_API_KEY": key, "WERK_TOKEN": None,
           "COLUMNS": "250"}  # fmt: skip
    return CliRunner().invoke(app, [*args, "--api", werk.url], input=input, env=env)


def login(werk: Werk, credentials: Path, username: str, password: str) -> Result:
    """`werk login` with the password on stdin."""
    return cli(
        werk, credentials, "login", "-u", username, "--password-stdin", input=password + "\n"
    )


def stored(credentials: Path, werk: Werk) -> dict[str, Any]:
    """The login the credentials file holds for `werk`."""
    entry: dict[str, Any] = orjson.loads(credentials.read_bytes())[werk.url]
    return entry


def as_admin(werk: Werk, tmp_path: Path, *args: str, input: str | None = None) -> Result:
    """A command run with the administrator's API key."""
    return cli(werk, tmp_path / "admin.json", *args, input=input, key=werk.server.key)


def make_user(werk: Werk, tmp_path: Path, name: str, role: str | None = None) -> str:
    """Create a user with a generated password (and a role); return the password."""
    made = as_admin(werk, tmp_path, "iam", "users", "create", name)
    assert made.exit_code == 0, made.output
    if role is not None:
        bound = as_admin(werk, tmp_path, "iam", "bindings", "create", "--role", role,
                         "--principal", name)  # fmt: skip
        assert bound.exit_code == 0, bound.output
    return made.stdout.strip()


def test_login_whoami_logout(werk: Werk, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials.json"
    anonymous = cli(werk, credentials, "whoami")
    assert anonymous.exit_code == 1
    assert "run `werk login`" in anonymous.stderr

    wrong = login(werk, credentials, "admin", "not-the-password")
    assert wrong.exit_code == 1 and "wrong username or password" in wrong.stderr

    logged_in = login(werk, credentials, "admin", werk.admin_password)
    assert logged_in.exit_code == 0, logged_in.output
    assert werk.admin_password not in logged_in.output
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    refresh_token = stored(credentials, werk)["refresh_token"]

    me = cli(werk, credentials, "whoami")
    assert me.exit_code == 0, me.output
    assert "admin (user) of organisation operator, via `werk login`" in me.stdout

    out = cli(werk, credentials, "logout")
    assert out.exit_code == 0 and "logged out" in out.stdout
    assert werk.url not in orjson.loads(credentials.read_bytes())
    reused = httpx.post(f"{werk.url}/api/v1/auth/token", timeout=10,
                        data={"grant_type": "refresh_token", "refresh_token": refresh_token})  # fmt: skip
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert cli(werk, credentials, "whoami").exit_code == 1


def test_revoked_access_token_is_refreshed_once(werk: Werk, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials.json"
    assert login(werk, credentials, "admin", werk.admin_password).exit_code == 0
    before = stored(credentials, werk)
    httpx.post(f"{werk.url}/api/v1/auth/revoke", data={"token": before["access_token"]}, timeout=10)

    me = cli(werk, credentials, "whoami")
    assert me.exit_code == 0, me.output
    after = stored(credentials, werk)
    assert after["access_token"] != before["access_token"]
    assert after["refresh_token"] != before["refresh_token"]


def test_revoked_login_asks_to_log_in_again(werk: Werk, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials.json"
    assert login(werk, credentials, "admin", werk.admin_password).exit_code == 0
    entry = stored(credentials, werk)
    httpx.post(f"{werk.url}/api/v1/auth/revoke", data={"token": entry["refresh_token"]}, timeout=10)
    httpx.post(f"{werk.url}/api/v1/auth/revoke", data={"token": entry["access_token"]}, timeout=10)

    me = cli(werk, credentials, "whoami")
    assert me.exit_code == 1
    (line,) = me.stderr.strip().splitlines()
    assert line.startswith("error: your login has ended (")
    assert line.endswith("; log in again with `werk login`")


def test_expired_access_token_is_refreshed(tmp_path: Path) -> None:
    # 30 s is the shortest lifetime; the CLI renews a token 30 s before it expires,
    # so with it every command has to refresh first.
    settings = make_settings(tmp_path / "data", access_token_ttl_s=30)
    server, password = start(settings)
    try:
        werk, credentials = Werk(server, password), tmp_path / "credentials.json"
        assert login(werk, credentials, "admin", password).exit_code == 0
        tokens = [stored(credentials, werk)["access_token"]]
        for _ in range(2):
            me = cli(werk, credentials, "whoami")
            assert me.exit_code == 0, me.output
            tokens.append(stored(credentials, werk)["access_token"])
        assert len(set(tokens)) == 3
    finally:
        server.__exit__(None, None, None)


def test_missing_permission_is_one_line(werk: Werk, tmp_path: Path) -> None:
    password = make_user(werk, tmp_path, "viewer-vera", role="viewer")
    credentials = tmp_path / "vera.json"
    assert login(werk, credentials, "viewer-vera", password).exit_code == 0

    listed = cli(werk, credentials, "iam", "users", "list")
    assert listed.exit_code == 1
    assert listed.stderr.strip().splitlines() == [
        "error: not allowed: this needs the permission 'iam:read'"
    ]
    created = cli(werk, credentials, "iam", "orgs", "create", "evil", "--name", "Evil")
    assert created.exit_code == 1 and "'iam:admin'" in created.stderr


def test_lockout_says_how_long_to_wait(werk: Werk, tmp_path: Path) -> None:
    make_user(werk, tmp_path, "locked-lars")
    credentials = tmp_path / "lars.json"
    for _ in range(werk.server.settings.login_max_failures):
        assert login(werk, credentials, "locked-lars", "wrong password!").exit_code == 1
    locked = login(werk, credentials, "locked-lars", "wrong password!")
    assert locked.exit_code == 1
    (line,) = locked.stderr.strip().splitlines()
    assert re.search(r"too many attempts: .*; try again in \d+ s$", line), line


def test_users_create_and_list(werk: Werk, tmp_path: Path) -> None:
    created = as_admin(werk, tmp_path, "iam", "users", "create", "ursula",
                       "--display-name", "Ursula", "--email", "ursula@example.com")  # fmt: skip
    assert created.exit_code == 0, created.output
    password = created.stdout.strip()
    assert len(password) >= 12 and "shown only once" in created.stderr

    listed = as_admin(werk, tmp_path, "iam", "users", "list", "--json")
    users = {u["name"]: u for u in orjson.loads(listed.stdout)}
    assert users["ursula"]["email"] == "ursula@example.com"
    assert users["ursula"]["disabled"] is False
    table = as_admin(werk, tmp_path, "iam", "users", "list", "--org", "operator")
    assert "ursula" in table.stdout and "Ursula" in table.stdout and password not in table.stdout

    assert login(werk, tmp_path / "u.json", "ursula", password).exit_code == 0
    disabled = as_admin(werk, tmp_path, "iam", "users", "disable", "ursula")
    assert disabled.exit_code == 0 and "disabled user ursula" in disabled.stdout
    assert cli(werk, tmp_path / "u.json", "whoami").exit_code == 1


def test_keys_create_shows_the_key_once(werk: Werk, tmp_path: Path) -> None:
    made = as_admin(werk, tmp_path, "iam", "devices", "create", "press-7")
    assert made.exit_code == 0, made.output
    bound = as_admin(werk, tmp_path, "iam", "bindings", "create", "--role", "device",
                     "--principal", "press-7", "-n", "acme/berlin/press-7/#")  # fmt: skip
    assert bound.exit_code == 0, bound.output

    created = as_admin(werk, tmp_path, "iam", "keys", "create", "press-7", "--name", "plc",
                       "--expires", "30d")  # fmt: skip
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert KEY.fullmatch(key)
    assert "shown only once" in created.stderr and key not in created.stderr

    listed = as_admin(werk, tmp_path, "iam", "keys", "list", "--principal", "press-7")
    key_id = key.split("_")[1]
    assert key_id in listed.stdout and key not in listed.stdout
    me = cli(werk, tmp_path / "none.json", "whoami", key=key)
    assert "press-7 (device) of organisation operator" in me.stdout  # no iam:read needed

    assert as_admin(werk, tmp_path, "iam", "keys", "revoke", key_id).exit_code == 0
    refused = cli(werk, tmp_path / "none.json", "whoami", key=key)
    assert refused.exit_code == 1 and "refused the API key in WERK_API_KEY" in refused.stderr


def test_signing_keys_rotate(werk: Werk, tmp_path: Path) -> None:
    before = as_admin(werk, tmp_path, "iam", "signing-keys", "list", "--json")
    assert before.exit_code == 0, before.output
    old = {k["kid"] for k in orjson.loads(before.stdout)}
    rotated = as_admin(werk, tmp_path, "iam", "signing-keys", "rotate")
    assert rotated.exit_code == 0, rotated.output
    kid = rotated.stdout.split("signed with key ")[1].split()[0]
    assert kid not in old and kid in rotated.stdout.split("signing keys", 1)[1]
    as_json = as_admin(werk, tmp_path, "iam", "signing-keys", "rotate", "--json")
    assert as_json.exit_code == 0, as_json.output
    newest = orjson.loads(as_json.stdout)["kid"]
    after = orjson.loads(as_admin(werk, tmp_path, "iam", "signing-keys", "list", "--json").stdout)
    assert {k["kid"]: k["active"] for k in after}[newest] is True
    assert {kid, *old} <= {k["kid"] for k in after}  # older keys still verify tokens


def test_audit_export(werk: Werk, tmp_path: Path) -> None:
    make_user(werk, tmp_path, "audited-anna")
    csv_file, jsonl_file = tmp_path / "out.csv", tmp_path / "out.jsonl"

    exported = as_admin(werk, tmp_path, "iam", "audit", "--since", "1h",
                        "--action", "iam.user.create", "--export", str(csv_file))  # fmt: skip
    assert exported.exit_code == 0, exported.output
    with csv_file.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["action"] for r in rows} == {"iam.user.create"}
    assert "audited-anna" in {r["target"] for r in rows}
    assert f"exported {len(rows)} events" in exported.stdout

    as_admin(werk, tmp_path, "iam", "audit", "--export", str(jsonl_file), "--outcome", "ok")
    events = [orjson.loads(line) for line in jsonl_file.read_bytes().splitlines()]
    assert events and all(e["outcome"] == "ok" for e in events)
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)

    bad = as_admin(werk, tmp_path, "iam", "audit", "--export", str(tmp_path / "out.xlsx"))
    assert bad.exit_code == 1 and ".csv or .jsonl" in bad.stderr


def test_reset_admin_on_a_stopped_server(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    server, old_password = start(settings)
    server.__exit__(None, None, None)

    reset = CliRunner().invoke(app, ["iam", "reset-admin", "--data-dir", str(settings.data_dir)])
    assert reset.exit_code == 0, reset.output
    new_password = reset.stdout.strip()
    assert new_password and new_password != old_password and "shown only once" in reset.stderr

    missing = CliRunner().invoke(app, ["iam", "reset-admin", "--data-dir", str(tmp_path / "no")])
    assert missing.exit_code == 1 and "no werk database" in missing.stderr

    with LiveServer(settings) as restarted:
        werk, credentials = Werk(restarted, new_password), tmp_path / "credentials.json"
        assert login(werk, credentials, "admin", old_password).exit_code == 1
        assert login(werk, credentials, "admin", new_password).exit_code == 0


def banner(runtime: Runtime) -> str:
    """What `werk run` prints once the runtime serves."""
    with server_console.capture() as captured:
        print_banner(runtime, demo=False)
    return captured.get()


def test_first_start_prints_the_admin_password_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # one banner line per fact
    settings = make_settings(tmp_path / "data")
    first = Runtime(settings)
    first.start()
    try:
        shown = banner(first)
        assert first.iam is not None
    finally:
        first.stop()
    password = re.search(r"user admin, password (\S+)", shown)
    assert password is not None, shown
    assert "werk login --api" in shown and "--username admin" in shown

    again = Runtime(settings)
    again.start()
    try:
        assert again.iam is not None
        assert again.iam.authn.login_password("admin", password.group(1), ip="127.0.0.1")
        later = banner(again)
    finally:
        again.stop()
    assert password.group(1) not in later
    assert f"werk iam reset-admin --data-dir {settings.data_dir.resolve()}" in later


def test_an_api_key_logs_in_to_mqtt(
    werk: Werk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = "acme/berlin/pressing/line-1/cell-1/press-9"
    as_admin(werk, tmp_path, "iam", "devices", "create", "press-9")
    as_admin(werk, tmp_path, "iam", "bindings", "create", "--role", "device",
             "--principal", "press-9", "-n", f"{node}/#")  # fmt: skip
    key = as_admin(werk, tmp_path, "iam", "keys", "create", "press-9", "--name", "plc").stdout
    monkeypatch.setenv("WERK_API_KEY", key.strip())

    login = mqtt_login(werk.url)
    assert login == ("press-9", key.strip())
    s = werk.server.settings
    address = BrokerAddress("127.0.0.1", s.mqtt5_port, mqtt5=True, username=login[0],
                            password=login[1])  # fmt: skip
    with Publisher(address, role="cli") as publisher:
        publisher.publish(f"uns/v1/{node}/_value/force", b'{"value": 812.5}', qos=1)
    wait_until(lambda: werk.server.runtime.namespace.find(f"{node}/force") is not None)


def test_tail_outside_the_scope_is_refused_in_one_line(werk: Werk, tmp_path: Path) -> None:
    node = "acme/berlin/pressing/line-1/cell-1/press-11"
    as_admin(werk, tmp_path, "iam", "devices", "create", "press-11")
    as_admin(werk, tmp_path, "iam", "bindings", "create", "--role", "edge-node",
             "--principal", "press-11", "-n", f"{node}/#")  # fmt: skip
    made = as_admin(werk, tmp_path, "iam", "keys", "create", "press-11", "--name", "tail")
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()
    broker = ("--broker", f"mqtt://127.0.0.1:{werk.server.settings.mqtt5_port}")
    own = cli(werk, tmp_path / "none.json", "uns", "tail", f"{node}/#", "--timeout", "0.5",
              *broker, key=key)  # fmt: skip
    assert own.exit_code == 0, own.output
    assert own.stdout.startswith("tailing")
    other = cli(werk, tmp_path / "none.json", "uns", "tail", "acme/hamburg/#", "--timeout", "5",
                *broker, key=key)  # fmt: skip
    assert other.exit_code == 1 and other.stdout == ""
    assert other.stderr.strip().count("\n") == 0
    assert "refused the subscription to uns/v1/acme/hamburg/#" in other.stderr
