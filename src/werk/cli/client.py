"""A small REST client the CLI uses to talk to a running werk."""

from __future__ import annotations

from typing import Any

import httpx

from werk.core.errors import Unavailable, WerkError


class ApiError(WerkError):
    """The API answered with a problem."""


def api_get(base_url: str, path: str, params: dict[str, Any] | None = None) -> Any:
    """GET a JSON resource from the API; raise with the problem's detail on error."""
    return _request("GET", base_url, path, params=params)


def api_post(base_url: str, path: str, body: Any) -> Any:
    """POST JSON to the API."""
    return _request("POST", base_url, path, json=body)


def api_put(base_url: str, path: str, body: Any) -> Any:
    """PUT JSON to the API."""
    return _request("PUT", base_url, path, json=body)


def _request(method: str, base_url: str, path: str, **kwargs: Any) -> Any:
    url = f"{base_url.rstrip('/')}/api/v1{path}"
    try:
        response = httpx.request(method, url, timeout=10.0, **kwargs)
    except httpx.HTTPError as exc:
        raise Unavailable(
            f"cannot reach werk at {base_url} ({exc}); is `werk run` or `werk demo` running?"
        ) from exc
    if response.is_error:
        raise ApiError(_problem_detail(response), code="api_error", status=response.status_code)
    return response.json()


def _problem_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    return f"HTTP {response.status_code}: {body.get('detail') or body.get('title')}"
