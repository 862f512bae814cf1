"""Web login through an external OpenID Connect provider: start and callback."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse

from werk.core.access import PUBLIC, requires
from werk.core.errors import NotFound, WerkError
from werk.iam.http import client_ip
from werk.iam.oidc import OidcClient
from werk.iam.oidc_users import provision
from werk.iam.router import set_session_cookie
from werk.iam.service import Iam

router = APIRouter(
    prefix="/auth/oidc",
    tags=["auth"],
    responses={404: {"description": "single sign-on is not configured (`oidc_disabled`)"}},
)

_FOUND: Final = 303
Text = Annotated[str, Query(min_length=1, max_length=4096)]


def _client(request: Request) -> OidcClient:
    found: OidcClient | None = getattr(request.app.state, "oidc", None)
    if found is None:
        iam: Iam = request.app.state.iam
        found = OidcClient(iam.settings)
        request.app.state.oidc = found
    if not found.enabled:
        raise NotFound("single sign-on is not configured", code="oidc_disabled")
    return found


def safe_next(value: str | None) -> str:
    """A same-site path to go to after login; anything else becomes `/`."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


@router.get("/login", summary="Log in through the OpenID provider", dependencies=[requires(PUBLIC)])
def oidc_login(request: Request, next: str | None = None) -> RedirectResponse:
    """Send the browser to the provider's login page."""
    redirect_uri = str(request.url_for("oidc_callback"))
    url = _client(request).authorization_url(redirect_uri, safe_next(next))
    return RedirectResponse(url, status_code=_FOUND)


@router.get(
    "/callback",
    name="oidc_callback",
    summary="Finish a login at the OpenID provider",
    dependencies=[requires(PUBLIC)],
)
def oidc_callback(request: Request, code: Text, state: Text) -> RedirectResponse:
    """Verify the provider's answer, open a web session and go where the user wanted."""
    iam: Iam = request.app.state.iam
    ip, agent = client_ip(request), request.headers.get("user-agent", "")
    try:
        who = _client(request).finish(code, state)
        principal_id = provision(iam.sessions, iam.settings, who)
        principal = iam.directory.load_principal(principal_id)
        if principal is None:
            raise NotFound("this account is disabled", code="principal_disabled")
    except WerkError as exc:
        iam.audit.record(action="auth.oidc_login", outcome="failed", target=exc.code, ip=ip)
        raise
    session = iam.authn.open_session(
        principal.with_credential(None, "oidc"), ip=ip, user_agent=agent
    )
    iam.audit.record(action="auth.oidc_login", outcome="ok", actor=principal, ip=ip)
    response = RedirectResponse(who.next_path, status_code=_FOUND)
    set_session_cookie(response, request, session.cookie, session.expires_at)
    return response
