"""Who may open which page: every page declares its permission, and its socket stays checked.

Pages register with `guarded_page(context, path, permission)` instead of `ui.page`. Opening
one without a valid session cookie redirects to the login page (`/login?next=<path>`); a
principal without the permission sees a 403 page. The page's session is kept with its
NiceGUI client as a `Seat`, so page code filters what it shows with
`current_seat().principal.allows(P, path=...)`.

An open page talks to werk over a socket. The session is checked again when that socket
connects, on every event it carries, and by a sweep over the open pages, so a revoked
session or a disabled principal stops receiving data and is sent back to the login page.
Opening a page and each event the user causes restart the session's idle time; the sweep
only checks, so a page left open and unused is sent to the login page once the session
has been idle for `session_idle_s`, like any other.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from nicegui import Client, core, ui
from nicegui import app as nicegui_app
from socketio.exceptions import (  # type: ignore[import-untyped]
    ConnectionRefusedError as SocketRefused,
)
from starlette.concurrency import run_in_threadpool

from werk.core.errors import Unauthenticated, Unavailable
from werk.iam.http import SESSION_COOKIE
from werk.iam.models import OrgRecord
from werk.iam.scopes import Principal, filter_within
from werk.web.context import WebContext
from werk.web.layout import VIEWER_KEY, empty_state, frame

if TYPE_CHECKING:
    from werk.iam.service import Iam

__all__ = [
    "LOGIN_PATH",
    "LOGOUT_PATH",
    "Seat",
    "current_seat",
    "everywhere",
    "guarded_page",
    "iam_of",
    "install",
    "login_url",
    "open_seat",
    "refresh_seat",
    "safe_next",
    "seat_of",
    "send_to_login",
]

_LOGGER = logging.getLogger(__name__)

LOGIN_PATH: Final = "/login"
LOGOUT_PATH: Final = "/logout"
SWEEP_S: Final = 2.0
# The browser's NiceGUI script reloads the page when a connection fails with this message.
_REFUSED: Final = "Implicit handshake failed"
_SOCKET_NAMESPACE: Final = "/"

Permission = str | tuple[str, ...]
PageBuilder = Callable[..., Any]
SocketHandler = Callable[..., Any]


@dataclass(slots=True)
class Seat:
    """The session an open page was built for, kept with the page's NiceGUI client."""

    cookie: str
    principal: Principal
    csrf: str
    needs: tuple[str, ...]
    org_name: str = ""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def permits(self) -> bool:
        """Whether the principal holds one of the permissions the page needs (if any)."""
        return not self.needs or any(self.principal.allows(p) for p in self.needs)


def iam_of(context: WebContext) -> Iam:
    """The identity and access service of the running app."""
    found: Iam | None = getattr(context.app.state, "iam", None)
    if found is None:
        raise Unavailable("identity and access management is not running", code="iam_unavailable")
    return found


def current_seat() -> Seat:
    """The seat of the page being built or handled; refuse a page that has none."""
    seat = seat_of(ui.context.client)
    if seat is None:
        raise Unauthenticated("this page was opened without a login", code="no_session")
    return seat


def seat_of(client: Client) -> Seat | None:
    """The seat of a NiceGUI client; None for public pages such as the login."""
    found = client.storage.get(VIEWER_KEY)
    return found if isinstance(found, Seat) else None


def everywhere(principal: Principal, permission: str) -> bool:
    """Whether the principal holds `permission` over the whole namespace."""
    return any(filter_within("#", f) for f in principal.namespace_filters(permission))


def safe_next(value: str | None) -> str:
    """`value` when it is a path on this site, else `/`: logins never redirect elsewhere."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return "/"
    if "\\" in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path in (LOGIN_PATH, LOGOUT_PATH):
        return "/"
    return value


def login_url(next_path: str) -> str:
    """The login page that returns to `next_path` afterwards."""
    target = safe_next(next_path)
    return LOGIN_PATH if target == "/" else f"{LOGIN_PATH}?{urlencode({'next': target})}"


def asked_path(request: Request) -> str:
    """The path and query the browser asked for."""
    query = request.url.query
    return f"{request.url.path}?{query}" if query else request.url.path


def guarded_page(
    context: WebContext, path: str, permission: Permission, *, title: str | None = None
) -> Callable[[PageBuilder], PageBuilder]:
    """Register a page that needs a login and one of the permissions in `permission`."""
    needs = (permission,) if isinstance(permission, str) else tuple(permission)

    def decorate(build: PageBuilder) -> PageBuilder:
        parameters = inspect.signature(build, eval_str=True).parameters
        takes_request = "request" in parameters

        async def guarded(request: Request, **kwargs: Any) -> Response | None:
            seat = await open_seat(context, request, needs)
            if seat is None:
                return RedirectResponse(login_url(asked_path(request)), status_code=303)
            if not seat.permits():
                seat.needs = ()  # the 403 page itself needs only the login
                ui.context.client.storage[VIEWER_KEY] = seat
                _forbidden(needs)
                return None
            ui.context.client.storage[VIEWER_KEY] = seat
            result = build(request=request, **kwargs) if takes_request else build(**kwargs)
            if inspect.isawaitable(result):
                await result
            return None

        guarded.__signature__ = _page_signature(parameters)  # type: ignore[attr-defined]
        ui.page(path, title=title)(guarded)
        return build

    return decorate


def _page_signature(parameters: Any) -> inspect.Signature:
    request = inspect.Parameter(
        "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request
    )
    rest = [p for name, p in parameters.items() if name != "request"]
    return inspect.Signature([request, *rest])


async def open_seat(context: WebContext, request: Request, needs: tuple[str, ...]) -> Seat | None:
    """The seat of the request's session cookie; None without a valid session."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie or getattr(context.app.state, "iam", None) is None:
        return None
    try:
        return await run_in_threadpool(_load_seat, context, cookie, needs)
    except Unauthenticated:
        return None


def _load_seat(context: WebContext, cookie: str, needs: tuple[str, ...]) -> Seat:
    principal, csrf = iam_of(context).authn.verify_session(cookie)
    return Seat(cookie, principal, csrf, needs, org_name=_org_name(context, principal.org_id))


def _org_name(context: WebContext, org_id: str) -> str:
    # Shown to every user, also to those who may not read the organisations themselves.
    with context.sessions() as session:
        org = session.get(OrgRecord, org_id)
        return org.name if org is not None else ""


def _forbidden(needs: tuple[str, ...]) -> None:
    ui.status_code(403)
    ui.page_title("Not allowed · werk")
    with frame(""):
        empty_state(
            "lock",
            "You may not open this page",
            f"It needs the permission {' or '.join(needs)}. "
            "An administrator of your organisation can grant it.",
            "forbidden",
        )


async def refresh_seat(context: WebContext, seat: Seat, *, touch: bool = True) -> bool:
    """Check the seat's session again; keep the fresh principal when it still may.

    `touch`: the user did something, so the session's idle time restarts.
    """
    verify = iam_of(context).authn.verify_session
    try:
        principal, _ = await run_in_threadpool(lambda: verify(seat.cookie, touch=touch))
    except Unauthenticated:
        return False
    seat.principal = principal
    return seat.permits()


def send_to_login(client: Client) -> None:
    """Reload a page whose session ended: the reload lands on the login page."""
    with client:
        ui.navigate.reload()


def install(context: WebContext) -> None:
    """Check the sockets of guarded pages, and sweep open pages for ended sessions."""
    handlers: dict[str, SocketHandler] = core.sio.handlers[_SOCKET_NAMESPACE]
    gate = _SocketGate(context, dict(handlers))
    core.sio.on("connect", gate.connect)
    core.sio.on("handshake", gate.handshake)
    core.sio.on("event", gate.event)
    nicegui_app.timer(SWEEP_S, gate.sweep)


@dataclass(frozen=True, slots=True)
class _SocketGate:
    """NiceGUI's socket handlers, each behind a check of the page's session."""

    context: WebContext
    original: dict[str, SocketHandler]

    async def connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        """Refuse a socket whose page's session ended; the browser then reloads."""
        if not await self._allowed(_query_client_id(environ), environ):
            raise SocketRefused(_REFUSED)
        await self._call("connect", sid, environ, auth)

    async def handshake(self, sid: str, data: dict[str, Any]) -> bool:
        """Refuse the handshake of a page whose session ended."""
        environ = core.sio.get_environ(sid) or {}
        if not await self._allowed(str(data.get("client_id", "")), environ):
            return False
        return bool(await self._call("handshake", sid, data))

    async def event(self, sid: str, msg: dict[str, Any]) -> None:
        """Pass on an event only while the page's session is valid."""
        client = Client.instances.get(str(msg.get("client_id", "")))
        seat = seat_of(client) if client is not None else None
        if client is None or seat is None:
            await self._call("event", sid, msg)
            return
        # One lock per page keeps its events in the order the browser sent them.
        async with seat.lock:
            if await refresh_seat(self.context, seat):
                await self._call("event", sid, msg)
            else:
                send_to_login(client)

    async def sweep(self) -> None:
        """Send every open page whose session ended to the login page."""
        for client in list(Client.instances.values()):
            seat = seat_of(client)
            if seat is None or not client.has_socket_connection:
                continue
            async with seat.lock:
                if not await refresh_seat(self.context, seat, touch=False):
                    _LOGGER.info("session of %s ended: closing its page", seat.principal.name)
                    send_to_login(client)

    async def _allowed(self, client_id: str, environ: dict[str, Any]) -> bool:
        client = Client.instances.get(client_id)
        seat = seat_of(client) if client is not None else None
        if seat is None:
            return True
        if _environ_cookie(environ) != seat.cookie:
            return False
        async with seat.lock:
            return await refresh_seat(self.context, seat)

    async def _call(self, name: str, *args: Any) -> Any:
        result = self.original[name](*args)
        if inspect.isawaitable(result):
            return await result
        return result


def _query_client_id(environ: dict[str, Any]) -> str:
    query = parse_qs(str(environ.get("QUERY_STRING", "")))
    return query.get("client_id", [""])[0]


def _environ_cookie(environ: dict[str, Any]) -> str | None:
    cookies: SimpleCookie = SimpleCookie()
    cookies.load(str(environ.get("HTTP_COOKIE", "")))
    morsel = cookies.get(SESSION_COOKIE)
    return morsel.value if morsel is not None else None
