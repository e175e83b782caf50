"""RFC 9457 problem+json: one mapping from exception class to status, at the edge only."""

from __future__ import annotations

import math
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from finsync.domain import errors as e

log = structlog.get_logger(__name__)
PROBLEM = "application/problem+json"
TYPE_BASE = "https://finsync.dev/problems/"

# Most specific first: the first matching class wins.
STATUS: list[tuple[type[e.FinsyncError], int]] = [
    (e.NotFound, 404),
    (e.Conflict, 409),
    (e.InvalidInput, 422),
    (e.AuthenticationFailed, 401),
    (e.TooManyAttempts, 429),
    (e.WrongPassword, 403),
    (e.RegistrationClosed, 403),
    (e.ProviderNotAvailable, 422),
    (e.FileTooLarge, 413),
    (e.UnsupportedFormat, 415),
    (e.MalformedFile, 422),
    (e.ImportRejected, 422),
    (e.AuthError, 422),
    (e.ScopeError, 422),
    (e.RateLimited, 429),
    (e.Unavailable, 502),
    (e.BadData, 502),
    (e.ProviderError, 502),
    (e.FinsyncError, 500),
]


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


def problem(
    status: int, code: str, title: str, detail: str | None, request: Request, **extra: Any
) -> JSONResponse:
    body = {
        "type": TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    headers = {}
    if "retry_after" in extra:
        headers["Retry-After"] = str(max(1, math.ceil(extra["retry_after"])))
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body | extra, status_code=status, media_type=PROBLEM, headers=headers)


def status_for(exc: e.FinsyncError) -> int:
    return next(status for cls, status in STATUS if isinstance(exc, cls))


def responses(*classes: type[e.FinsyncError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for a route, from the domain errors it can raise."""
    out: dict[int | str, dict[str, Any]] = {}
    for cls in classes:
        status = next(s for c, s in STATUS if issubclass(cls, c))
        out[status] = {"model": Problem, "description": cls.title, "content": {PROBLEM: {}}}
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(e.FinsyncError)
    async def domain_error(request: Request, exc: e.FinsyncError) -> JSONResponse:
        status = status_for(exc)
        extra: dict[str, Any] = {}
        if isinstance(exc, e.TooManyAttempts | e.RateLimited):
            extra["retry_after"] = exc.retry_after
        if isinstance(exc, e.RateLimited) and exc.retry_at is not None:
            extra["retry_at"] = exc.retry_at.isoformat()
        if status >= 500:
            log.error("request_failed", error_type=exc.code, detail=exc.detail)
        return problem(status, exc.code, exc.title, exc.detail, request, **extra)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Echo where and why, never the submitted values (they may be passwords or keys).
        errors = [{"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]} for err in exc.errors()]
        detail = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in errors)
        return problem(422, "validation-error", "Request validation failed", detail, request, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {
            404: "not-found",
            405: "method-not-allowed",
            401: "authentication-failed",
            413: "content-too-large",
        }.get(exc.status_code, "http-error")
        return problem(exc.status_code, code, str(exc.detail), str(exc.detail), request)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path)
        return problem(
            500, "internal-error", "Internal server error", "an unexpected error occurred", request
        )
