"""Signing in and out of the web UI: `/login`, `/logout` and the form posts behind them.

The login form posts to `POST /login` without any script: werk checks the password, opens a
web session and sets its cookie (HttpOnly, SameSite=Lax, Secure over https), then returns to
the page the user asked for. Errors come back as a redirect to the form, which never says
whether the user exists.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Final
from urllib.parse import urlencode, urlsplit

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from nicegui import app as nicegui_app
from nicegui import ui
from starlette.concurrency import run_in_threadpool

from werk.core.errors import TooManyAttempts, Unauthenticated
from werk.iam.http import SESSION_COOKIE, client_ip
from werk.iam.router import set_session_cookie
from werk.web.auth import LOGIN_PATH, LOGOUT_PATH, iam_of, open_seat, safe_next
from werk.web.context import WebContext
from werk.web.layout import frame, logout_form

OIDC_LOGIN: Final = "/api/v1/auth/oidc/login"
_USERNAME_MAX: Final = 200
_PASSWORD_MAX: Final = 1024
_AGENT_MAX: Final = 512
_SEE_OTHER: Final = 303


def register(context: WebContext) -> None:
    """Register the login and logout pages and the form posts they send."""

    @ui.page(LOGIN_PATH, title="Sign in · werk")
    async def login(request: Request) -> Response | None:
        target = safe_next(request.query_params.get("next"))
        if await open_seat(context, request, ()) is not None:
            return RedirectResponse(target, status_code=_SEE_OTHER)
        with frame(""):
            _login_card(context, target, _problem(request))
        return None

    @ui.page(LOGOUT_PATH, title="Sign out · werk")
    async def logout(request: Request) -> None:
        seat = await open_seat(context, request, ())
        with frame(""), _card("Sign out"):
            if seat is None:
                ui.label("You are signed out.").props("data-testid=logout-done")
                ui.link("Sign in again", LOGIN_PATH).classes("text-primary")
                return
            ui.label(f"Signed in as {seat.principal.name}.").classes("text-grey-8")
            logout_form(seat.csrf)

    async def submit_login(request: Request) -> Response:
        return await _submit_login(context, request)

    async def submit_logout(request: Request) -> Response:
        return await _submit_logout(context, request)

    # After the pages: registering a page drops every other route on its path.
    nicegui_app.add_api_route(LOGIN_PATH, submit_login, methods=["POST"], include_in_schema=False)
    nicegui_app.add_api_route(LOGOUT_PATH, submit_logout, methods=["POST"], include_in_schema=False)


def _problem(request: Request) -> str:
    wait = request.query_params.get("wait", "")
    if wait.isdecimal():
        return f"Too many failed sign-ins. Try again in {wait_text(int(wait))}."
    if request.query_params.get("failed"):
        return "Wrong username or password."
    return ""


def wait_text(seconds: int) -> str:
    """A wait such as `45 seconds` or `5 minutes`."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


@contextmanager
def _card(title: str) -> Iterator[ui.card]:
    """A narrow card in the middle of the page, under `title`."""
    with (
        ui.column().classes("w-full items-center pt-16"),
        ui.card().classes("w-96 gap-3 p-6").props("flat bordered") as card,
    ):
        ui.label(title).classes("text-2xl font-semibold text-grey-9")
        yield card


def _login_card(context: WebContext, target: str, problem: str) -> None:
    with _card("Sign in to werk"):
        if problem:
            ui.label(problem).classes("text-negative").props("data-testid=login-error")
        with (
            ui.element("form")
            .props(f'method=post action="{LOGIN_PATH}"')
            .classes("w-full column gap-3")
        ):
            hidden = ui.element("input").props("type=hidden name=next")
            hidden.props["value"] = target
            ui.input("Username").props(
                "name=username autocomplete=username autofocus outlined data-testid=login-username"
            ).classes("w-full")
            ui.input("Password", password=True, password_toggle_button=True).props(
                "name=password autocomplete=current-password outlined data-testid=login-password"
            ).classes("w-full")
            ui.button("Sign in", icon="login").props(
                "type=submit unelevated no-caps color=primary data-testid=login-submit"
            ).classes("w-full")
        _single_sign_on(context, target)


def _single_sign_on(context: WebContext, target: str) -> None:
    settings = context.settings
    if not settings.oidc_issuer:
        return
    ui.separator()
    ui.button(f"Sign in with {settings.oidc_label}", icon="key").props(
        f'outline no-caps color=primary tag=a href="{OIDC_LOGIN}?{urlencode({"next": target})}" '
        "data-testid=login-oidc"
    ).classes("w-full")


async def _submit_login(context: WebContext, request: Request) -> Response:
    form = await request.form()
    target = safe_next(str(form.get("next") or "/"))
    username = str(form.get("username") or "").strip()[:_USERNAME_MAX]
    password = str(form.get("password") or "")[:_PASSWORD_MAX]
    if not same_origin(request) or not username or not password:
        return _again(target, failed="1")
    agent = request.headers.get("user-agent", "")[:_AGENT_MAX]
    try:
        cookie, expires = await run_in_threadpool(
            _open_session, context, username, password, client_ip(request), agent
        )
    except TooManyAttempts as exc:
        return _again(target, wait=str(exc.retry_after_s))
    except Unauthenticated:
        return _again(target, failed="1")
    response = RedirectResponse(target, status_code=_SEE_OTHER)
    set_session_cookie(response, request, cookie, expires)
    return response


def _open_session(
    context: WebContext, username: str, password: str, ip: str, agent: str
) -> tuple[str, datetime]:
    authn = iam_of(context).authn
    principal = authn.login_password(username, password, ip=ip)
    session = authn.open_session(principal, ip=ip, user_agent=agent)
    return session.cookie, session.expires_at


def _again(target: str, **problem: str) -> RedirectResponse:
    query = urlencode({"next": target, **problem})
    return RedirectResponse(f"{LOGIN_PATH}?{query}", status_code=_SEE_OTHER)


async def _submit_logout(context: WebContext, request: Request) -> Response:
    form = await request.form()
    seat = await open_seat(context, request, ())
    if seat is not None:
        sent = str(form.get("csrf") or "")
        if not same_origin(request) or not hmac.compare_digest(sent.encode(), seat.csrf.encode()):
            return RedirectResponse("/", status_code=_SEE_OTHER)
        await run_in_threadpool(iam_of(context).authn.close_session, seat.cookie)
    response = RedirectResponse(LOGIN_PATH, status_code=_SEE_OTHER)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax",
        secure=request.url.scheme == "https",
    )  # fmt: skip
    return response


def same_origin(request: Request) -> bool:
    """Whether a form post came from this site (browsers name the page's origin)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")
