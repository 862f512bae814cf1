"""Authentication routes: OAuth2 token and revocation, JWKS, the caller, cookie login and
logout; and under /iam the credentials, signing keys and the audit log.

The token endpoint speaks OAuth2 (RFC 6749): a form-encoded body, JSON answers, and on
failure the RFC's error body (`{"error": "invalid_grant", ...}`) instead of problem+json,
so standard OAuth2 clients understand it. Every answer that carries a secret is sent with
`Cache-Control: no-store`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse, StreamingResponse

from werk.core.access import PUBLIC, caller, requires
from werk.core.errors import Forbidden, NotFound, TooManyAttempts, Unauthenticated
from werk.iam.authn import TokenPair
from werk.iam.bootstrap import SYSTEM
from werk.iam.http import SESSION_COOKIE, authenticated, client_ip
from werk.iam.permissions import ALL, AUDIT_READ, IAM_ADMIN, IAM_READ
from werk.iam.schemas import (
    OAUTH_ERRORS,
    AuditPage,
    GrantRead,
    LoginRequest,
    LoginResult,
    MeRead,
    OAuthError,
    SigningKeyRotated,
    TokenResponse,
    problems,
)
from werk.iam.scopes import Principal
from werk.iam.service import Iam
from werk.iam.views import AuditVerification, CredentialView, SigningKeyView

ADMIN_PROBLEMS: Final = problems(401, 403, 404, 409)

router = APIRouter(prefix="/auth", tags=["auth"])
# Included by `werk.iam.admin_router` under /iam: credentials, signing keys, audit log.
security_router = APIRouter(responses=ADMIN_PROBLEMS)

NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
GRANT_TYPES: Final = ("password", "client_credentials", "refresh_token")


def iam(request: Request) -> Iam:
    """The IAM service of the running app."""
    return request.app.state.iam  # type: ignore[no-any-return]


def principal(request: Request) -> Principal:
    """The authenticated caller as a principal."""
    found = caller(request)
    if not isinstance(found, Principal):
        raise Forbidden("this needs a werk principal", code="not_a_principal")
    return found


READ: Final = [requires(IAM_READ)]
ADMIN: Final = [requires(IAM_ADMIN)]
AUDIT: Final = [requires(AUDIT_READ)]
NO_CONTENT: Final = status.HTTP_204_NO_CONTENT
EXPORT_TYPES: Final = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}

IamDep = Annotated[Iam, Depends(iam)]
Id = Annotated[str, Path(min_length=1, max_length=64)]
IdFilter = Annotated[str | None, Query(min_length=1, max_length=64)]
PrincipalDep = Annotated[Principal, Depends(principal)]
FormField = Annotated[str | None, Form(max_length=4096)]


class OAuthFailure(Exception):
    """An OAuth2 error response to send (RFC 6749 section 5.2)."""

    def __init__(self, error: str, description: str, status_code: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status_code = error, description, status_code


@router.post(
    "/token",
    response_model=TokenResponse,
    summary="OAuth2 token endpoint",
    responses=OAUTH_ERRORS,
    dependencies=[requires(PUBLIC)],
)
def token(
    request: Request,
    service: IamDep,
    grant_type: FormField = None,
    username: FormField = None,
    password: FormField = None,
    client_id: FormField = None,
    client_secret: FormField = None,
    refresh_token: FormField = None,
    scope: FormField = None,
) -> JSONResponse:
    """Issue tokens: grant_type password, client_credentials or refresh_token.

    A requested `scope` is accepted and ignored: tokens carry the principal's grants, and
    the answer's `scope` names the permissions they give.
    """
    form = {"username": username, "password": password, "refresh_token": refresh_token}
    try:
        pair = _grant(
            service, request, grant_type, form, _client(request, client_id, client_secret)
        )
    except OAuthFailure as failure:
        return _oauth_error(failure)
    except TooManyAttempts as exc:
        headers = {"Retry-After": str(exc.retry_after_s)}
        return _oauth_error(OAuthFailure(exc.code, exc.message, 429), headers)
    return JSONResponse(_token_body(pair), headers=NO_STORE)


def _grant(
    service: Iam,
    request: Request,
    grant_type: str | None,
    form: dict[str, str | None],
    client: tuple[str, str] | None,
) -> TokenPair:
    ip = client_ip(request)
    if grant_type == "password":
        username, password = _needed(form, "username"), _needed(form, "password")
        with _failing("invalid_grant"):
            return service.authn.issue(
                service.authn.login_password(username, password, ip=ip), ip=ip
            )
    if grant_type == "client_credentials":
        if client is None:
            raise OAuthFailure("invalid_client", "client_id and client_secret are needed", 401)
        with _failing("invalid_client", 401):
            return service.authn.client_credentials(*client, ip=ip)
    if grant_type == "refresh_token":
        with _failing("invalid_grant"):
            return service.authn.refresh(_needed(form, "refresh_token"), ip=ip)
    if grant_type is None:
        raise OAuthFailure("invalid_request", "grant_type is missing")
    raise OAuthFailure("unsupported_grant_type", f"grant_type must be one of {GRANT_TYPES}")


@contextmanager
def _failing(error: str, status_code: int = 400) -> Iterator[None]:
    """Turn an authentication failure into the OAuth2 error `error`."""
    try:
        yield
    except (Unauthenticated, Forbidden) as exc:
        raise OAuthFailure(error, exc.message, status_code) from exc


def _needed(form: dict[str, str | None], name: str) -> str:
    value = form.get(name)
    if not value:
        raise OAuthFailure("invalid_request", f"{name} is missing")
    return value


def _client(
    request: Request, client_id: str | None, client_secret: str | None
) -> tuple[str, str] | None:
    """Client credentials from HTTP Basic (RFC 6749 section 2.3.1) or the form."""
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise OAuthFailure("invalid_client", "malformed Basic credentials", 401) from exc
        name, sep, secret = decoded.partition(":")
        if not sep:
            raise OAuthFailure("invalid_client", "malformed Basic credentials", 401)
        return unquote(name), unquote(secret)
    if client_id and client_secret:
        return client_id, client_secret
    return None


def _oauth_error(failure: OAuthFailure, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": failure.error, "error_description": failure.description}
    extra = {"WWW-Authenticate": 'Basic realm="werk"'} if failure.status_code == 401 else {}
    return JSONResponse(
        body, status_code=failure.status_code, headers={**NO_STORE, **extra, **(headers or {})}
    )


def _token_body(pair: TokenPair) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": pair.access_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "scope": pair.scope,
    }
    if pair.refresh_token:
        body["refresh_token"] = pair.refresh_token
    return body


@router.post(
    "/revoke",
    status_code=status.HTTP_200_OK,
    summary="Revoke a token (RFC 7009)",
    responses={400: {"model": OAuthError}},
    dependencies=[requires(PUBLIC)],
)
def revoke(
    service: IamDep,
    token: Annotated[str | None, Form(max_length=8192)] = None,
    token_type_hint: FormField = None,
) -> Response:
    """Revoke an access or refresh token; an unknown token is no error (RFC 7009 2.2).

    Holding a token is the right to revoke it, so no client authentication is asked for.
    """
    if not token:
        return _oauth_error(OAuthFailure("invalid_request", "token is missing"))
    service.authn.revoke(token)
    return Response(status_code=status.HTTP_200_OK, headers=NO_STORE)


@router.get("/jwks", summary="Token verification keys", dependencies=[requires(PUBLIC)])
def jwks(service: IamDep, response: Response) -> dict[str, Any]:
    """The public keys that verify werk's access tokens, as a JWK set."""
    response.headers["Cache-Control"] = "public, max-age=60"
    found: dict[str, Any] = service.authn.jwks()
    return found


@router.get("/me", response_model=MeRead, summary="The caller", dependencies=[authenticated()])
def me(request: Request, service: IamDep, who: PrincipalDep, response: Response) -> MeRead:
    """Who the caller is: principal, organisation, grants and effective permissions."""
    response.headers["Cache-Control"] = "no-store"
    return describe(service, who, getattr(request.state, "csrf", None))


def describe(service: Iam, who: Principal, csrf: str | None = None) -> MeRead:
    """The `MeRead` of a principal, with its own directory record and organisation."""
    try:  # anyone may see themselves and their organisation, whatever their grants
        record = service.directory.get_principal(SYSTEM, who.id)
        org = service.directory.get_org(SYSTEM, who.org_id)
    except NotFound:
        record, org = None, None
    return MeRead(
        id=who.id, name=who.name, kind=str(who.kind), org_id=who.org_id,
        org_kind=str(who.org_kind), auth_method=who.auth_method,
        credential_id=who.credential_id, sparkplug=who.sparkplug, principal=record, org=org,
        grants=[GrantRead.of(g) for g in who.grants],
        permissions=[p for p in ALL if who.allows(p)], csrf_token=csrf,
    )  # fmt: skip


@router.post(
    "/login",
    response_model=LoginResult,
    summary="Log in with a password (cookie session)",
    dependencies=[requires(PUBLIC)],
    responses=problems(401, 429),
)
def login(body: LoginRequest, request: Request, service: IamDep) -> JSONResponse:
    """Check the password and open a session: the cookie is HttpOnly, SameSite=Lax."""
    ip = client_ip(request)
    who = service.authn.login_password(body.username, body.password, ip=ip)
    agent = request.headers.get("user-agent", "")[:512]
    session = service.authn.open_session(who, ip=ip, user_agent=agent)
    result = LoginResult(
        me=describe(service, session.principal, session.csrf),
        csrf_token=session.csrf,
        expires_at=session.expires_at,
    )
    response = JSONResponse(result.model_dump(mode="json"), headers=NO_STORE)
    set_session_cookie(response, request, session.cookie, session.expires_at)
    return response


def set_session_cookie(response: Response, request: Request, value: str, expires: datetime) -> None:
    """Set the session cookie: HttpOnly, SameSite=Lax, Secure when the request is https."""
    max_age = max(0, int((expires - datetime.now(UTC)).total_seconds()))
    response.set_cookie(
        SESSION_COOKIE, value, max_age=max_age, path="/", httponly=True, samesite="lax",
        secure=request.url.scheme == "https",
    )  # fmt: skip


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Log out",
    dependencies=[authenticated()],
    responses=problems(401, 403),
)
def logout(request: Request, service: IamDep) -> Response:
    """End the cookie session, or revoke the bearer access token, that made this request."""
    kind, credential = getattr(request.state, "credential", ("", ""))
    if kind == "session":
        service.authn.close_session(credential)
    elif kind == "bearer" and not credential.startswith("wk_"):
        service.authn.revoke(credential)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


@security_router.get(
    "/principals/{principal_id}/credentials", response_model=list[CredentialView],
    summary="Refresh-token families and web sessions", dependencies=READ,
)  # fmt: skip
def list_credentials(
    principal_id: Id, service: IamDep, actor: PrincipalDep
) -> list[CredentialView]:
    """The principal's live refresh-token families and web sessions."""
    return service.authn.list_credentials(actor, principal_id)


@security_router.post(
    "/credentials/{credential_id}/revoke", status_code=NO_CONTENT,
    summary="Revoke a refresh-token family or web session", dependencies=ADMIN,
)  # fmt: skip
def revoke_credential(credential_id: Id, service: IamDep, actor: PrincipalDep) -> Response:
    """Revoke one refresh-token family or web session."""
    service.authn.revoke_credential(actor, credential_id)
    return Response(status_code=NO_CONTENT)


@security_router.get(
    "/signing-keys", response_model=list[SigningKeyView], summary="Signing keys",
    dependencies=READ,
)  # fmt: skip
def signing_keys(service: IamDep, actor: PrincipalDep) -> list[SigningKeyView]:
    """The keys that sign and verify access tokens (public parts only)."""
    return service.authn.signing_keys(actor)


@security_router.post(
    "/signing-keys/rotate", response_model=SigningKeyRotated,
    summary="Rotate the signing key", dependencies=ADMIN,
)  # fmt: skip
def rotate_signing_key(service: IamDep, actor: PrincipalDep) -> SigningKeyRotated:
    """Sign with a new key from now on; tokens signed before stay valid until they expire."""
    return SigningKeyRotated(kid=service.authn.rotate_signing_key(actor))


Since = Annotated[datetime | None, Query(description="ISO 8601, inclusive")]
Until = Annotated[datetime | None, Query(description="ISO 8601, exclusive")]
Action = Annotated[str | None, Query(min_length=1, max_length=64, description="e.g. auth.login")]
Outcome = Literal["ok", "denied", "failed", "error"]
Seq = Annotated[int | None, Query(ge=0, le=2**63 - 1, description="an event's seq")]


@security_router.get("/audit", response_model=AuditPage, summary="Audit events", dependencies=AUDIT)
def audit(
    service: IamDep,
    actor: PrincipalDep,
    action: Action = None,
    outcome: Outcome | None = None,
    actor_id: IdFilter = None,
    since: Since = None,
    until: Until = None,
    after_seq: Seq = None,
    before_seq: Seq = None,
    newest_first: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    """Audit events the caller may see, in `seq` order, from a cursor on."""
    items = service.audit.query(
        actor, action=action, outcome=outcome, actor_id=actor_id, since=since, until=until,
        after_seq=after_seq, before_seq=before_seq, newest_first=newest_first, limit=limit,
    )  # fmt: skip
    cursor = items[-1].seq if len(items) == limit else None
    if newest_first:
        return AuditPage(items=items, next_after_seq=None, next_before_seq=cursor)
    return AuditPage(items=items, next_after_seq=cursor, next_before_seq=None)


@security_router.get(
    "/audit/verify", response_model=AuditVerification, summary="Check the audit hash chain",
    dependencies=AUDIT,
)  # fmt: skip
def verify_audit(service: IamDep, actor: PrincipalDep) -> AuditVerification:
    """Walk the whole hash chain; only readers of every organisation's audit log."""
    if not actor.org_wide(AUDIT_READ):
        raise Forbidden("the whole chain is for readers of every organisation", code="forbidden")
    return service.audit.verify()


@security_router.get(
    "/audit/export", summary="Export audit events", dependencies=AUDIT,
    response_class=StreamingResponse,
    responses={200: {"content": {t: {} for t in EXPORT_TYPES.values()}}},
)  # fmt: skip
def export_audit(
    service: IamDep,
    actor: PrincipalDep,
    fmt: Annotated[Literal["csv", "jsonl"], Query(alias="format")] = "jsonl",
    action: Action = None,
    outcome: Outcome | None = None,
    actor_id: IdFilter = None,
    since: Since = None,
    until: Until = None,
) -> StreamingResponse:
    """Every audit event the caller may see matching the filters, streamed as CSV or JSON lines."""
    lines = service.audit.export(
        actor, fmt=fmt, action=action, outcome=outcome, actor_id=actor_id, since=since,
        until=until,
    )  # fmt: skip
    disposition = f'attachment; filename="werk-audit.{fmt}"'
    return StreamingResponse(
        lines, media_type=EXPORT_TYPES[fmt], headers={"Content-Disposition": disposition}
    )
