"""problem+json (RFC 9457) for every error, in one place."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from werk.core.errors import TooManyAttempts, Unauthenticated, Unavailable, WerkError

_LOGGER = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_S = 5


def problem(
    status: int, code: str, title: str, detail: str, request: Request, **extra: Any
) -> JSONResponse:
    """A problem+json response."""
    body = {
        "type": f"/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


async def _werk_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, WerkError)
    title = type(exc).__name__
    params = {k: v for k, v in exc.params.items() if isinstance(v, str | int | float | bool)}
    response = problem(exc.status, exc.code, title, exc.message, request, params=params)
    if isinstance(exc, Unavailable):
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    elif isinstance(exc, TooManyAttempts):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    elif isinstance(exc, Unauthenticated):
        response.headers["WWW-Authenticate"] = 'Bearer realm="werk"'
    return response


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
    return problem(422, "invalid_request", "Invalid request", detail, request, errors=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return problem(exc.status_code, code, "HTTP error", str(exc.detail), request)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    _LOGGER.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "internal", "Internal error", "an unexpected error occurred", request)


def install(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(WerkError, _werk_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
