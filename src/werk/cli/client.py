"""A small REST client the CLI uses to talk to a running werk, with credentials.

Every request carries one credential, first found of: an API key in `WERK_API_KEY`, an
access token in `WERK_TOKEN`, or the login `werk login` stored for the server (refreshed
when its access token has expired). Refusals become one line that says what to do;
secrets never appear in messages.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from werk.cli.credentials import (
    StoredLogin,
    load_login,
    locked,
    login_from_token_response,
    save_login,
)
from werk.core.errors import (
    Forbidden,
    TooManyAttempts,
    Unauthenticated,
    Unavailable,
    WerkError,
)

API_KEY_ENV: Final = "WERK_API_KEY"
TOKEN_ENV: Final = "WERK_TOKEN"
_TIMEOUT_S: Final = 10.0
_LOGIN_AGAIN: Final = "log in again with `werk login`"


class ApiError(WerkError):
    """The API answered with a problem."""


@dataclass(slots=True)
class Credential:
    """The credential a request carries, and where it came from."""

    source: str  # "api_key", "token", "login" or "none"
    secret: str | None = field(default=None, repr=False)
    login: StoredLogin | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header, empty without a credential."""
        return {"Authorization": f"Bearer {self.secret}"} if self.secret else {}


def api_get(base_url: str, path: str, params: dict[str, Any] | None = None) -> Any:
    """GET a JSON resource from the API; raise with the problem's detail on error."""
    return _request("GET", base_url, path, params=_given(params))


def api_post(base_url: str, path: str, body: Any) -> Any:
    """POST JSON to the API."""
    return _request("POST", base_url, path, json=body)


def api_put(base_url: str, path: str, body: Any) -> Any:
    """PUT JSON to the API."""
    return _request("PUT", base_url, path, json=body)


def api_patch(base_url: str, path: str, body: Any) -> Any:
    """PATCH JSON to the API."""
    return _request("PATCH", base_url, path, json=body)


def api_delete(base_url: str, path: str) -> Any:
    """DELETE a resource."""
    return _request("DELETE", base_url, path)


@contextmanager
def api_stream(
    base_url: str, path: str, params: dict[str, Any] | None = None
) -> Iterator[httpx.Response]:
    """GET a streamed response (large exports); raise before yielding on error."""
    credential = current_credential(base_url)
    url = _url(base_url, path)
    with httpx.Client(timeout=httpx.Timeout(_TIMEOUT_S, read=60.0)) as http:
        try:
            with http.stream(
                "GET", url, params=_given(params), headers=credential.headers
            ) as response:
                if response.is_error:
                    response.read()
                    raise _refusal(response, credential)
                yield response
        except httpx.HTTPError as exc:
            raise _unreachable(base_url, exc) from exc


def token_request(base_url: str, form: dict[str, str]) -> dict[str, Any]:
    """POST an OAuth2 form to the token endpoint; map its errors to one line."""
    response = _send("POST", base_url, "/auth/token", {}, data=form)
    if response.status_code == 429:
        raise _too_many(response)
    if response.is_error:
        raise Unauthenticated(
            _oauth_error(response, form.get("grant_type", "")), code="login_failed"
        )
    body: dict[str, Any] = response.json()
    return body


def revoke_token(base_url: str, token: str) -> None:
    """Revoke a refresh or access token (RFC 7009: unknown tokens are not an error)."""
    response = _send("POST", base_url, "/auth/revoke", {}, data={"token": token})
    if response.is_error and response.status_code != 400:
        raise _refusal(response, Credential("none"))


def current_credential(base_url: str) -> Credential:
    """The credential for `base_url`, refreshing a stored login whose token expired."""
    key = os.environ.get(API_KEY_ENV)
    if key:
        return Credential("api_key", key)
    token = os.environ.get(TOKEN_ENV)
    if token:
        return Credential("token", token)
    login = load_login(base_url)
    if login is None:
        return Credential("none")
    if login.expired:
        login = refresh_login(base_url, login)
    return Credential("login", login.access_token, login)


def mqtt_login(base_url: str) -> tuple[str, str] | None:
    """MQTT username and password from `WERK_API_KEY`: its principal's name and the key."""
    key = os.environ.get(API_KEY_ENV)
    if not key:
        return None
    me = api_get(base_url, "/auth/me")
    return str(me["name"]), key


def refresh_login(base_url: str, stale: StoredLogin) -> StoredLogin:
    """Trade the stored refresh token for new tokens (once, under the file lock)."""
    with locked():
        login = load_login(base_url) or stale
        if login.access_token != stale.access_token and not login.expired:
            return login  # another command refreshed it meanwhile
        if not login.refresh_token:
            raise Unauthenticated(f"your login has expired; {_LOGIN_AGAIN}", code="login_expired")
        form = {"grant_type": "refresh_token", "refresh_token": login.refresh_token}
        try:
            body = token_request(base_url, form)
        except Unauthenticated as exc:
            raise Unauthenticated(
                f"your login has ended ({exc.message}); {_LOGIN_AGAIN}", code="login_expired"
            ) from exc
        fresh = login_from_token_response(login.username, body)
        save_login(base_url, fresh)
        return fresh


def _request(method: str, base_url: str, path: str, **kwargs: Any) -> Any:
    credential = current_credential(base_url)
    response = _send(method, base_url, path, credential.headers, **kwargs)
    if response.status_code == 401 and credential.login is not None:
        # a token revoked or expired early: one refresh, then one retry
        fresh = refresh_login(base_url, credential.login)
        credential = Credential("login", fresh.access_token, fresh)
        response = _send(method, base_url, path, credential.headers, **kwargs)
    if response.is_error:
        raise _refusal(response, credential)
    if response.status_code == 204 or not response.content:
        return None
    return response.json()


def _send(
    method: str, base_url: str, path: str, headers: dict[str, str], **kwargs: Any
) -> httpx.Response:
    try:
        return httpx.request(
            method, _url(base_url, path), headers=headers, timeout=_TIMEOUT_S, **kwargs
        )
    except httpx.HTTPError as exc:
        raise _unreachable(base_url, exc) from exc


def _given(params: dict[str, Any] | None) -> dict[str, Any] | None:
    """The query parameters that have a value (httpx would send None as empty)."""
    return None if params is None else {k: v for k, v in params.items() if v is not None}


def _url(base_url: str, path: str) -> str:
    return f"{base_url.rstrip('/')}/api/v1{path}"


def _unreachable(base_url: str, exc: httpx.HTTPError) -> Unavailable:
    return Unavailable(
        f"cannot reach werk at {base_url} ({type(exc).__name__}: {exc}); "
        "is `werk run` or `werk demo` running?"
    )


def _refusal(response: httpx.Response, credential: Credential) -> WerkError:
    status = response.status_code
    if status == 401:
        return _unauthenticated(response, credential)
    if status == 403:
        return Forbidden(f"not allowed: {_detail(response)}", code="forbidden")
    if status == 429:
        return _too_many(response)
    return ApiError(f"HTTP {status}: {_detail(response)}", code="api_error", status=status)


def _unauthenticated(response: httpx.Response, credential: Credential) -> Unauthenticated:
    detail = _detail(response)
    messages = {
        "none": "this werk needs credentials: run `werk login`, "
        f"or set {API_KEY_ENV} (an API key) or {TOKEN_ENV} (an access token)",
        "api_key": f"werk refused the API key in {API_KEY_ENV}: {detail}",
        "token": f"werk refused the access token in {TOKEN_ENV}: {detail}",
        "login": f"werk refused your login ({detail}); {_LOGIN_AGAIN}",
    }
    return Unauthenticated(messages[credential.source], code="unauthenticated")


def _too_many(response: httpx.Response) -> TooManyAttempts:
    wait = _retry_after(response)
    detail, hint = _detail(response), f"try again in {wait} s"
    text = detail if "try again" in detail else "; ".join(p for p in (detail, hint) if p)
    return TooManyAttempts(
        f"too many attempts: {text}", code="too_many_attempts", retry_after_s=wait
    )


def _retry_after(response: httpx.Response) -> int:
    try:
        return max(1, int(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if not isinstance(body, dict):
        return str(body)[:200]
    return str(body.get("detail") or body.get("error_description") or body.get("title") or "")


def _oauth_error(response: httpx.Response, grant: str) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if grant == "password" and error == "invalid_grant":
        return "wrong username or password, or the account is disabled"
    if error == "invalid_client":
        return "the client id or secret was not accepted"
    return _detail(response) or str(error or f"HTTP {response.status_code}")
