"""What the browser tests share: the fed tags, an API handle, logins and screenshots."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import httpx
from playwright.sync_api import Browser, BrowserContext, Page

from werk.iam.http import SESSION_COOKIE

CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMIUM_ARGS: Final = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS: Final = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"

CELL: Final = "acme/berlin/machining/line-1/cell-1"
SPEED: Final = f"{CELL}/cnc-1/spindle.speed"
TEMP: Final = f"{CELL}/cnc-1/motor.temp"
STATE: Final = f"{CELL}/cnc-1/state"
TORQUE: Final = "acme/berlin/machining/line-1/cell-2/robot-1/joint.torque"
BAD_TOPIC: Final = f"uns/v1/{CELL}/cnc-1/_value/temp"
IAM: Final = "/api/v1/iam"


@dataclass(frozen=True, slots=True)
class WerkApi:
    """A running werk as its users reach it: web address, MQTT port and REST API."""

    url: str
    mqtt_port: int
    http: httpx.Client

    def publish(self, tag: str, value: float | str, unit: str | None = None) -> None:
        """Publish one value through the REST API."""
        body: dict[str, Any] = {"tag": tag, "value": value}
        if unit is not None:
            body["unit"] = unit
        self.http.post("/api/v1/publish", json=body).raise_for_status()

    def value_of(self, tag: str) -> Any:
        """The tag's last-known value, or None while werk has not seen it."""
        response = self.http.get(f"/api/v1/tags/{tag}")
        return response.json()["value"] if response.status_code == 200 else None

    def stored(self, tag: str) -> int:
        """How many samples of the tag the historian holds."""
        response = self.http.get(f"/api/v1/history/{tag}", params={"layer": "raw"})
        return len(response.json()["points"]) if response.status_code == 200 else 0

    def quarantined(self) -> int:
        """How many messages werk rejected."""
        return int(self.http.get("/api/v1/quarantine").json()["total"])


@dataclass(frozen=True, slots=True)
class Person:
    """A user the tests sign in as."""

    id: str
    name: str
    password: str
    org_id: str


def org_id(api: WerkApi, slug: str, *, kind: str = "partner") -> str:
    """The id of the organisation `slug`, made (as the administrator) when it is missing."""
    for org in _get(api, "/orgs"):
        if org["slug"] == slug:
            return str(org["id"])
    made = _post(api, "/orgs", {"slug": slug, "name": slug.capitalize(), "kind": kind})
    return str(made["id"])


def make_user(
    api: WerkApi,
    name: str,
    *,
    org: str,
    role: str,
    namespace: tuple[str, ...] = ("#",),
    org_scope: str = "own",
) -> Person:
    """A user with a built-in role in a scope; an existing one gets a new password."""
    org_of = org_id(api, org, kind="operator" if org == "operator" else "partner")
    password = f"pw-{secrets.token_urlsafe(18)}"
    found = next((u for u in _get(api, "/users") if u["name"] == name), None)
    if found is not None:
        user_id = str(found["id"])
        api.http.put(f"{IAM}/principals/{user_id}/password", json={"password": password})
        _post(api, f"/principals/{user_id}/enable", None)
        return Person(user_id, name, password, org_of)
    user = _post(api, "/users", {"org_id": org_of, "name": name, "password": password})["user"]
    role_id = next(r["id"] for r in _get(api, "/roles") if r["builtin"] and r["name"] == role)
    binding = {
        "role_id": role_id, "principal_id": user["id"], "namespace": list(namespace),
        "org_scope": org_scope,
    }  # fmt: skip
    _post(api, "/bindings", binding)
    return Person(str(user["id"]), name, password, org_of)


def _get(api: WerkApi, path: str) -> Any:
    response = api.http.get(f"{IAM}{path}")
    response.raise_for_status()
    return response.json()


def _post(api: WerkApi, path: str, body: dict[str, Any] | None) -> Any:
    response = api.http.post(f"{IAM}{path}", json=body)
    response.raise_for_status()
    return response.json() if response.content else None


def login(page: Page, url: str, username: str, password: str, *, next_path: str = "/") -> None:
    """Sign in through the login form and wait for the page it returns to."""
    page.goto(f"{url}/login?{urlencode({'next': next_path})}")
    page.get_by_test_id("login-username").fill(username)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(re.compile(re.escape(f"{url}{next_path}") + "$"))


def session_cookie(url: str, username: str, password: str) -> str:
    """A web session's cookie, from the login form's post (no browser needed)."""
    response = httpx.post(
        f"{url}/login", data={"username": username, "password": password}, timeout=10.0
    )
    assert response.status_code == 303, response.text
    cookie = response.cookies.get(SESSION_COOKIE)
    assert cookie, f"{username} could not sign in: {response.headers.get('location')}"
    return cookie


def sign_in(context: BrowserContext, url: str, username: str, password: str) -> str:
    """Give a browser context a logged-in session; returns its cookie."""
    cookie = session_cookie(url, username, password)
    context.add_cookies(
        [{"name": SESSION_COOKIE, "value": cookie, "url": url, "httpOnly": True, "sameSite": "Lax"}]
    )
    return cookie


def fresh_tab(browser: Browser) -> Iterator[Page]:
    """A tab of a browser profile of its own: no cookies, nobody signed in."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    yield tab
    context.close()


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot to artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
