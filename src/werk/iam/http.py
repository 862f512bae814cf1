"""How HTTP requests authenticate, and the audit trail of API writes and refusals.

Credentials are read in a fixed order: `Authorization: Bearer <access token or wk_ key>`,
then `X-API-Key: wk_...`, then the `werk_session` cookie. The first one present decides:
a credential that is malformed, expired or revoked fails the request with a precise code,
and werk never falls back silently to another one. A cookie session is open to cross-site
request forgery, so unsafe methods with a cookie must echo the session's CSRF token in
`X-CSRF-Token`.

The audit middleware records every unsafe API request (`http.write`) and every 401/403
(`http.denied`) without reading bodies. The client address is the socket peer: behind a
reverse proxy run uvicorn with `--forwarded-allow-ips=<proxy address>` so the peer is the
client the proxy saw (uvicorn then trusts that proxy's `X-Forwarded-For`, and its
`X-Forwarded-Proto`, which makes the session cookie `Secure` behind a TLS proxy).
"""

from __future__ import annotations

import hmac
import threading
import time
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import anyio.to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.params import Depends as DependsParam
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from werk.core.access import PERMISSION_ATTRIBUTE, caller
from werk.core.errors import Forbidden, Unauthenticated
from werk.iam.scopes import Principal
from werk.iam.secrets import is_api_key

if TYPE_CHECKING:
    from werk.iam.service import Iam

__all__ = [
    "AUTHENTICATED",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "AuditMiddleware",
    "authenticate",
    "authenticated",
    "client_ip",
    "install",
]

SESSION_COOKIE: Final = "werk_session"
CSRF_HEADER: Final = "X-CSRF-Token"
API_KEY_HEADER: Final = "X-API-Key"
# A pseudo-permission every authenticated principal holds (me, logout).
AUTHENTICATED: Final = "authenticated"
UNSAFE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_API_PATHS: Final = "/api/"
_DENIED: Final = frozenset({401, 403})
_UNAUTHENTICATED: Final = 401


def install(app: FastAPI) -> None:
    """Authenticate the app's requests with IAM and audit its writes and refusals."""
    app.state.authenticator = authenticate
    app.add_middleware(AuditMiddleware)


def authenticated() -> DependsParam:
    """The dependency of routes any authenticated principal may call."""

    def check(request: Request) -> None:
        caller(request)

    setattr(check, PERMISSION_ATTRIBUTE, AUTHENTICATED)
    declared: DependsParam = Depends(check)
    return declared


def authenticate(request: Request) -> Principal | None:
    """The principal behind the request's credentials; None when it carries none."""
    iam: Iam | None = getattr(request.app.state, "iam", None)
    if iam is None:
        return None
    authorization = request.headers.get("authorization")
    if authorization is not None:
        return _bearer(iam, request, authorization)
    api_key = request.headers.get(API_KEY_HEADER)
    if api_key is not None:
        return _api_key(iam, request, api_key)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie is not None:
        return _session(iam, request, cookie)
    return None


def client_ip(request: Request) -> str:
    """The socket peer's address (the proxy's client when uvicorn trusts the proxy)."""
    return request.client.host if request.client is not None else ""


def _bearer(iam: Iam, request: Request, header: str) -> Principal:
    scheme, _, credential = header.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or " " in credential:
        raise Unauthenticated(
            "the Authorization header must be 'Bearer <access token or API key>'",
            code="bad_authorization",
        )
    request.state.credential = ("bearer", credential)
    return iam.authn.verify(credential)


def _api_key(iam: Iam, request: Request, key: str) -> Principal:
    key = key.strip()
    if not is_api_key(key):
        raise Unauthenticated("X-API-Key must carry a werk API key (wk_...)", code="bad_api_key")
    request.state.credential = ("api_key", key)
    return iam.authn.verify(key)


def _session(iam: Iam, request: Request, cookie: str) -> Principal:
    principal, csrf = iam.authn.verify_session(cookie)
    if request.method in UNSAFE_METHODS:
        echoed = request.headers.get(CSRF_HEADER, "")
        if not echoed or not hmac.compare_digest(echoed.encode(), csrf.encode()):
            raise Forbidden(
                f"a request with the session cookie must send the {CSRF_HEADER} header",
                code="csrf_failed",
            )
    request.state.credential = ("session", cookie)
    request.state.csrf = csrf
    return principal


class AuditMiddleware:
    """Record unsafe API requests and refusals in the audit log; bodies stay unread."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.anonymous = AnonymousDenials()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; afterwards audit it when it wrote or was refused."""
        if scope["type"] != "http" or not str(scope["path"]).startswith(_API_PATHS):
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})  # shared with request.state: the caller lands here
        status = 0

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except Exception:
            await self._audit(scope, status or 500)
            raise
        await self._audit(scope, status)

    async def _audit(self, scope: Scope, status: int) -> None:
        method = str(scope["method"])
        if status not in _DENIED and method not in UNSAFE_METHODS:
            return
        iam: Iam | None = getattr(scope["app"].state, "iam", None)
        if iam is None:
            return
        event = _event(scope, method, status)
        if event["actor"] is None and status == _UNAUTHENTICATED:
            repeats = self.anonymous.count(event["ip"])
            if repeats is None:
                return  # counted; reported with the next event from this address
            event["detail"]["earlier_denials"] = repeats
        await anyio.to_thread.run_sync(partial(iam.audit.record, **event))


class AnonymousDenials:
    """At most one audit event per address and minute for anonymous requests refused a 401.

    Without credentials anyone can cause a 401; an event each would let them grow the
    audit log without bound. The suppressed ones are counted into the next event.
    """

    def __init__(self, window_s: float = 60.0, max_addresses: int = 10_000) -> None:
        self._window_s = window_s
        self._max = max_addresses
        self._seen: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def count(self, ip: str) -> int | None:
        """None to suppress this denial; else how many were suppressed before it."""
        now = time.monotonic()
        with self._lock:
            started, suppressed = self._seen.get(ip, (-self._window_s, 0))
            if now - started < self._window_s:
                self._seen[ip] = (started, suppressed + 1)
                return None
            if len(self._seen) >= self._max:
                self._seen.clear()
            self._seen[ip] = (now, 0)
            return suppressed


def _event(scope: Scope, method: str, status: int) -> dict[str, Any]:
    found = scope.get("state", {}).get("caller")
    actor = found if isinstance(found, Principal) else None
    client = scope.get("client")
    return {
        "action": "http.denied" if status in _DENIED else "http.write",
        "outcome": _outcome(status),
        "actor": actor,
        "target": str(scope["path"]),
        "status": status,
        "ip": str(client[0]) if client else "",
        "user_agent": _header(scope, b"user-agent"),
        "detail": {"method": method},
    }


def _outcome(status: int) -> str:
    if status in _DENIED:
        return "denied"
    if status >= 500:
        return "error"
    return "failed" if status >= 400 else "ok"


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")[:512]
    return ""
