"""The UNS routes through a caller's scope: a plant sees, publishes and reads its own tags."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import wait_until
from tests.integration.scoped_support import as_, grant, install, principal

from werk.core.clock import now_ns
from werk.uns import quarantine
from werk.uns.quarantine import Rejected

PLANT1 = "acme/plant1/press/line-1/cell-1"
PLANT2 = "acme/plant2/press/line-1/cell-1"
TAGS = [f"{PLANT1}/temp", f"{PLANT1}/speed", f"{PLANT2}/temp"]
SCOPE = ("acme/plant1/#",)


@pytest.fixture
def plant(client: TestClient) -> TestClient:
    """Tags in two plants, quarantined messages of both and of no place; scoped callers."""
    install(
        client.app,  # type: ignore[arg-type]
        principal("p1", grant("uns:read", "uns:publish", "quarantine:read", namespace=SCOPE)),
        principal("historian-only", grant("history:read:*")),
    )
    for tag in TAGS:
        assert client.post("/api/v1/publish", json={"tag": tag, "value": 1.5}).status_code == 202
    wait_until(lambda: client.get("/api/v1/values").json()["total"] == len(TAGS))
    rejected = [
        Rejected(now_ns(), f"uns/v1/{PLANT1}/_value/temp", b"{", "bad_json", "p1"),
        Rejected(now_ns(), f"uns/v1/{PLANT2}/_value/temp", b"{", "bad_json", "p2"),
        Rejected(now_ns(), f"uns/v1/{PLANT2}/_batch", b"[]", "bad_batch", "p2 batch"),
        Rejected(now_ns(), "uns/v1/acme/oops", b"1", "bad_topic", "nowhere"),
    ]
    with client.app.state.sessions() as session:  # type: ignore[attr-defined]
        quarantine.add_rejected(session=session, rejected=rejected)
        session.commit()
    return client


def _get(client: TestClient, who: str, path: str, **params: Any) -> Any:
    answer = client.get(f"/api/v1{path}", params=params, headers=as_(who))
    assert answer.status_code == 200, answer.text
    return answer.json()


def _tags(tree: dict[str, Any]) -> list[str]:
    return tree["tags"] + [t for child in tree["children"] for t in _tags(child)]


def test_lists_keep_only_tags_in_scope_and_count_only_those(plant: TestClient) -> None:
    assert sorted(_tags(_get(plant, "admin", "/namespace"))) == sorted(TAGS)
    assert sorted(_tags(_get(plant, "p1", "/namespace"))) == sorted(TAGS[:2])
    assert _get(plant, "p1", "/namespace", prefix="acme/plant2") == {
        "name": "plant2", "path": "acme/plant2", "children": [], "tags": [],
    }  # fmt: skip
    found = _get(plant, "p1", "/namespace/search", q="temp")
    assert ([t["path"] for t in found["items"]], found["total"]) == ([TAGS[0]], 1)
    values = _get(plant, "p1", "/values", filter="acme/#")
    assert (sorted(t["path"] for t in values["items"]), values["total"]) == (sorted(TAGS[:2]), 2)
    assert _get(plant, "admin", "/values", filter="acme/#")["total"] == 3


def test_a_tag_outside_the_scope_does_not_exist(plant: TestClient) -> None:
    assert _get(plant, "p1", f"/tags/{TAGS[0]}")["path"] == TAGS[0]
    hidden = plant.get(f"/api/v1/tags/{TAGS[2]}", headers=as_("p1"))
    missing = plant.get(f"/api/v1/tags/{PLANT1}/nothing", headers=as_("p1"))
    assert (hidden.status_code, hidden.json()["code"]) == (404, "not_found")
    assert missing.status_code == 404
    refused = plant.get("/api/v1/namespace", headers=as_("historian-only"))
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    assert plant.get("/api/v1/namespace", headers=as_("anonymous")).status_code == 401


def test_publishing_is_limited_to_the_scope(plant: TestClient) -> None:
    def publish(tag: str) -> Any:
        return plant.post("/api/v1/publish", json={"tag": tag, "value": 2}, headers=as_("p1"))

    assert publish(f"{PLANT1}/new").status_code == 202
    refused = publish(f"{PLANT2}/new")
    assert (refused.status_code, refused.json()["code"]) == (403, "out_of_scope")
    wait_until(lambda: plant.get(f"/api/v1/tags/{PLANT1}/new").status_code == 200)
    assert plant.get(f"/api/v1/tags/{PLANT2}/new").status_code == 404


def test_quarantine_shows_records_of_places_in_scope(plant: TestClient) -> None:
    every = _get(plant, "admin", "/quarantine")
    assert (every["total"], every["reasons"]) == (
        4,
        {"bad_json": 2, "bad_batch": 1, "bad_topic": 1},
    )
    mine = _get(plant, "p1", "/quarantine")
    assert [r["detail"] for r in mine["items"]] == ["p1"]
    assert (mine["total"], mine["reasons"]) == (1, {"bad_json": 1})
    assert _get(plant, "p1", "/quarantine", reason="bad_topic") == {
        "items": [], "total": 0, "reasons": {"bad_json": 1},
    }  # fmt: skip
    ids = {r["detail"]: r["id"] for r in every["items"]}
    assert _get(plant, "p1", f"/quarantine/{ids['p1']}")["topic"].endswith("/_value/temp")
    for hidden in ("p2", "p2 batch", "nowhere"):
        for suffix in ("", "/payload"):
            answer = plant.get(f"/api/v1/quarantine/{ids[hidden]}{suffix}", headers=as_("p1"))
            assert answer.status_code == 404


def test_health_tells_anonymous_callers_only_the_status(plant: TestClient) -> None:
    brief = plant.get("/api/v1/health", headers=as_("anonymous")).json()
    assert brief == {"status": "ok", "components": {"ingest": "ok", "storage": "ok"}}
    assert _get(plant, "p1", "/health") == brief
    full = _get(plant, "admin", "/health")
    assert full["tags"] == len(TAGS) and full["ingest"]["running"] is True
    assert {"version", "broker", "stored_samples", "historian"} <= set(full)
