"""Mosquitto's files: the `$7$` hash, the text werk writes, atomic replacement, reload."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.conftest import make_settings, wait_until

from werk.core.errors import BrokerUnavailable, ValidationFailed
from werk.core.settings import Settings
from werk.iam.models import ApiKeyRecord
from werk.iam.mosquitto import MosquittoEntry, MosquittoFiles, mosquitto_hash, newest_key
from werk.iam.permissions import BUILTIN_ROLES
from werk.iam.scopes import Grant, OrgKind, Principal, PrincipalKind, Scope

PRESS = "acme/berlin/machining/line-1/cell-1/press-7"
# Written by `mosquitto_passwd -b -c pw alice secret123` (Mosquitto 2.0.11).
PASSWD_LINE = (
    "alice:$7$101$fj/DR/lVm4WfFXPE$4nQsvIfwWD9SHHfMoYMbfVJSVDhEpvo8dQlCYH60pFlW3NO6bKJdRm2p"
    "UfEVy5qR/KlR84u1PiTyQoTIH0QifA=="
)


def device(name: str, namespace: str = f"{PRESS}/#", role: str = "device") -> Principal:
    grant = Grant(role, frozenset(BUILTIN_ROLES[role][1]), Scope(namespace=(namespace,)))
    return Principal(f"id-{name}", PrincipalKind.DEVICE, name, "org", OrgKind.OPERATOR, (grant,))


def files_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "mosquitto_password_file": tmp_path / "passwd",
        "mosquitto_acl_file": tmp_path / "acl",
        "broker_url": "mqtt://werk-internal:s3cret@127.0.0.1:1883",
    }
    values.update(overrides)
    return make_settings(tmp_path / "data", **values)


def test_the_hash_matches_what_mosquitto_passwd_writes() -> None:
    name, hashed = PASSWD_LINE.split(":", 1)
    salt = base64.b64decode(hashed.split("$")[3])
    assert f"{name}:{mosquitto_hash('secret123', salt=salt)}" == PASSWD_LINE


@given(st.text(min_size=1, max_size=80).filter(lambda s: "\x00" not in s))
def test_the_hash_has_mosquittos_shape_and_a_fresh_salt(password: str) -> None:
    hashed = mosquitto_hash(password)
    _, seven, iterations, salt, digest = hashed.split("$")
    assert (seven, iterations) == ("7", "101")
    assert len(base64.b64decode(salt)) == 12
    expected = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), 101, 64)
    assert base64.b64decode(digest) == expected
    assert mosquitto_hash(password) != hashed


def key(created_at: datetime, name: str, **times: datetime) -> ApiKeyRecord:
    return ApiKeyRecord(id=name, created_at=created_at, mosquitto_hash=name, **times)


def test_the_newest_key_neither_revoked_nor_expired_is_chosen() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    old = key(now - timedelta(days=9), "old")
    revoked = key(now - timedelta(days=1), "revoked", revoked_at=now)
    expired = key(now - timedelta(days=2), "expired", expires_at=now)
    later = key(now - timedelta(days=3), "later", expires_at=now + timedelta(hours=1))
    assert newest_key([old, revoked, expired, later], now) is later
    assert newest_key([old, revoked], now) is old
    assert newest_key([revoked, expired], now) is None


def test_the_files_name_each_user_with_its_hash_and_topics(tmp_path: Path) -> None:
    files = MosquittoFiles(files_settings(tmp_path))
    entries = [MosquittoEntry(device("press-7"), mosquitto_hash("k1"))]
    passwords = files.password_text(entries).splitlines()
    assert passwords[0].startswith("#")
    assert passwords[1].startswith("werk-internal:$7$101$")
    assert passwords[2] == f"press-7:{entries[0].password_hash}"
    acl = files.acl_text(entries)
    assert "user werk-internal\ntopic readwrite #\ntopic read $SYS/#\n" in acl
    block = acl.split("user press-7\n")[1].splitlines()
    assert f"topic write uns/v1/{PRESS}/_value/+" in block
    assert f"topic write uns/v1/{PRESS}/_batch" in block
    assert not any("_cmd" in line or line.startswith("topic read") for line in block)
    assert "pattern" not in acl


def test_a_filter_both_read_and_written_is_one_readwrite_line(tmp_path: Path) -> None:
    files = MosquittoFiles(files_settings(tmp_path, broker_url=None))
    edge = device("edge", role="edge-node")
    acl = files.acl_text([MosquittoEntry(edge, mosquitto_hash("k"))])
    assert f"topic readwrite uns/v1/{PRESS}/_value/+\n" in acl
    assert f"topic read uns/v1/{PRESS}/#\n" in acl
    assert "werk-internal" not in acl


def test_names_mosquitto_cannot_take_are_left_out(tmp_path: Path) -> None:
    files = MosquittoFiles(files_settings(tmp_path))
    entries = [
        MosquittoEntry(device(name), mosquitto_hash("k"))
        for name in ("a:b", "#c", " d", "werk-internal", "ok", "ok")
    ]
    entries.append(MosquittoEntry(device("viewer", role="auditor"), mosquitto_hash("k")))
    users = [line.split(":")[0] for line in files.password_text(entries).splitlines()[1:]]
    assert users == ["werk-internal", "ok"]
    assert files.acl_text(entries).count("user ok\n") == 1


def test_files_are_required(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as caught:
        MosquittoFiles(make_settings(tmp_path))
    assert caught.value.code == "mosquitto_files_missing"


def test_write_replaces_both_files_keeping_their_mode(tmp_path: Path) -> None:
    marker = tmp_path / "reloaded"
    command = f"{sys.executable} -c \"open('{marker}', 'a').write('x')\""
    settings = files_settings(tmp_path, mosquitto_reload_command=command)
    settings.mosquitto_acl_file.write_text("stale")  # type: ignore[union-attr]
    os.chmod(settings.mosquitto_acl_file, 0o640)  # type: ignore[arg-type]
    files = MosquittoFiles(settings)
    files.write([MosquittoEntry(device("press-7"), mosquitto_hash("k"))])
    password_file, acl_file = settings.mosquitto_password_file, settings.mosquitto_acl_file
    assert password_file is not None and acl_file is not None
    assert password_file.stat().st_mode & 0o777 == 0o600
    assert acl_file.stat().st_mode & 0o777 == 0o640
    assert "user press-7" in acl_file.read_text()
    assert marker.read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acl", "passwd", "reloaded"]


def test_a_failing_reload_command_is_one_clear_error(tmp_path: Path) -> None:
    command = f"{sys.executable} -c \"import sys; sys.exit('broker says no')\""
    files = MosquittoFiles(files_settings(tmp_path, mosquitto_reload_command=command))
    with pytest.raises(BrokerUnavailable, match="exited with 1: broker says no") as caught:
        files.write([])
    assert caught.value.code == "mosquitto_reload_failed"
    assert (tmp_path / "passwd").exists()


def test_a_missing_pid_file_is_one_clear_error(tmp_path: Path) -> None:
    files = MosquittoFiles(files_settings(tmp_path, mosquitto_pid_file=tmp_path / "none.pid"))
    with pytest.raises(BrokerUnavailable, match="pid file") as caught:
        files.reload()
    assert caught.value.code == "mosquitto_reload_failed"


def test_reload_sends_sighup_to_the_pid_in_the_pid_file(tmp_path: Path) -> None:
    hups = tmp_path / "hups"
    script = (
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGHUP, lambda *_: open({str(hups)!r}, 'a').write('h'))\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        (tmp_path / "m.pid").write_text(f"{child.pid}\n")
        files = MosquittoFiles(files_settings(tmp_path, mosquitto_pid_file=tmp_path / "m.pid"))
        files.reload()
        assert wait_until(lambda: hups.exists() and hups.read_text() == "h")
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
