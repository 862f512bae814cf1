"""Brute-force protection over HTTP: lockout per user and per client address, 429 + Retry-After."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tests.integration.iam.api_support import API, Account, Werk, started_werk

MAX_FAILURES = 3
LOCKOUT_S = 60
TOKEN = f"{API}/auth/token"
LOGIN = f"{API}/auth/login"


@pytest.fixture(scope="module")
def werk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Werk]:
    """One werk for the module that locks after a few failures."""
    with started_werk(
        tmp_path_factory.mktemp("werk"), login_max_failures=MAX_FAILURES, login_lockout_s=LOCKOUT_S
    ) as started:
        yield started


def from_address(werk: Werk, ip: str) -> TestClient:
    """A client of the running app that connects from `ip`."""
    return TestClient(werk.client.app, client=(ip, 40000))


def grant(account: Account, password: str | None = None) -> dict[str, str]:
    password = password if password is not None else str(account.password)
    return {"grant_type": "password", "username": account.name, "password": password}


def test_a_locked_account_answers_429_with_retry_after_even_to_the_right_password(
    werk: Werk,
) -> None:
    user = werk.account(werk.operator_org)
    client = from_address(werk, "192.0.2.10")
    for _ in range(MAX_FAILURES):
        response = client.post(TOKEN, data=grant(user, "wrong password!!"))
        assert (response.status_code, response.json()["error"]) == (400, "invalid_grant")
    response = client.post(TOKEN, data=grant(user))
    assert response.status_code == 429
    assert response.json()["error"] == "too_many_attempts"
    assert 0 < int(response.headers["retry-after"]) <= LOCKOUT_S
    other_address = from_address(werk, "192.0.2.11")
    response = other_address.post(LOGIN, json={"username": user.name, "password": user.password})
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "too_many_attempts"
    assert int(response.headers["retry-after"]) > 0
    locks = werk.audit("auth.locked")
    assert any(e["target"] == user.name for e in locks)
    denied = werk.audit("auth.login", outcome="denied")
    assert any(e["target"] == user.name and e["ip"] == "192.0.2.11" for e in denied)


def test_an_api_key_still_works_while_the_password_is_locked(werk: Werk) -> None:
    user = werk.account(werk.operator_org, [("viewer", ("#",), "own")])
    client = from_address(werk, "192.0.2.20")
    for _ in range(MAX_FAILURES + 1):
        client.post(LOGIN, json={"username": user.name, "password": "wrong password!!"})
    assert (
        client.post(LOGIN, json={"username": user.name, "password": user.password}).status_code
        == 429
    )
    assert client.get(f"{API}/auth/me", headers=user.headers).status_code == 200


def test_one_address_trying_many_users_is_throttled(werk: Werk) -> None:
    attacker = from_address(werk, "192.0.2.30")
    victims = [werk.account(werk.operator_org) for _ in range(7)]  # 14 failures > 4 x 3
    statuses = []
    for victim in victims:
        for _ in range(MAX_FAILURES - 1):  # stays under each user's own limit
            statuses.append(
                attacker.post(TOKEN, data=grant(victim, "guess-guess-guess")).status_code
            )
    assert statuses[-1] == 429
    assert 429 in statuses and statuses[0] == 400
    blocked = attacker.post(TOKEN, data=grant(victims[0]))
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    elsewhere = from_address(werk, "192.0.2.31")
    assert elsewhere.post(TOKEN, data=grant(victims[0])).status_code == 200


def test_unknown_users_are_throttled_like_known_ones(werk: Werk) -> None:
    client = from_address(werk, "192.0.2.40")
    data = {"grant_type": "password", "username": "nobody-at-all", "password": "guess-guess"}
    statuses = [client.post(TOKEN, data=data).status_code for _ in range(MAX_FAILURES + 1)]
    assert statuses == [400] * MAX_FAILURES + [429]
