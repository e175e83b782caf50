"""RFC 9457 problem+json: one mapping from exception class to status, at the edge only."""

from __future__ import annotations

import functools
import math
import re
from typing import Any
from uuid import UUID

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from finsync.api.wire import UtcDateTime, utc_text
from finsync.domain import errors as e

log = structlog.get_logger(__name__)
PROBLEM = "application/problem+json"
TYPE_BASE = "https://finsync.dev/problems/"

# Codes of the errors the framework raises itself (unparseable bodies, unknown paths and methods).
CODES = {
    400: "malformed-request",
    401: "authentication-failed",
    404: "not-found",
    405: "method-not-allowed",
    413: "content-too-large",
}

# HTTP status per error class. A class without an entry answers like its nearest ancestor that
# has one (its MRO), so the order here means nothing and a new subclass is never unmapped. Its
# problem ``type`` is TYPE_BASE + its ``code`` (inherited too): docs/api.md lists every one, and
# tests/unit/test_problem_types.py fails when a FinsyncError subclass anywhere is not listed.
STATUS: dict[type[e.FinsyncError], int] = {
    e.FinsyncError: 500,
    e.NotFound: 404,
    e.Conflict: 409,
    e.InvalidInput: 422,
    e.AuthenticationFailed: 401,
    e.WrongPassword: 403,
    e.TooManyAttempts: 429,
    e.RegistrationClosed: 403,
    e.ProviderNotAvailable: 422,
    e.ImportRejected: 422,
    e.FileTooLarge: 413,
    e.UnsupportedFormat: 415,
    e.MalformedFile: 422,
    e.ProviderError: 502,
    e.ProviderAuthError: 422,
    e.ScopeError: 422,
    e.RateLimited: 429,
    e.Unavailable: 502,
    e.BadData: 502,
    e.TradingRefused: 403,
    e.InsufficientScope: 403,
    e.BrokerOrderNotFound: 404,
}


def status_of(cls: type[e.FinsyncError]) -> int:
    """The status of the nearest class in ``cls``'s hierarchy that has one."""
    return next(STATUS[c] for c in cls.__mro__ if c in STATUS)


def problem_type(cls: type[e.FinsyncError]) -> str:
    """The stable ``type`` URI clients match on."""
    return TYPE_BASE + cls.code


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(description='Where, e.g. ["query", "date_to"]')
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details. Match on `type` (stable per kind of error); show `detail`."""

    type: str = Field(examples=["https://finsync.dev/problems/not-found"])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(default=None, description="The request path")
    errors: list[ValidationIssue] | None = Field(
        default=None, description="Request validation (422 validation-error): each field and why"
    )
    retry_after: int | None = Field(default=None, description="429: seconds until trying again can work")
    retry_at: UtcDateTime | None = Field(default=None, description="429: when trying again can work")
    connection_id: UUID | None = Field(
        default=None, description="409 already-connected: the connection that already has this login"
    )


def problem(
    status: int,
    code: str,
    title: str,
    detail: str | None,
    request: Request,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    headers = dict(headers or {})
    if "retry_after" in extra:
        extra["retry_after"] = max(1, math.ceil(extra["retry_after"]))
        headers["Retry-After"] = str(extra["retry_after"])
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body | extra, status_code=status, media_type=PROBLEM, headers=headers)


@functools.cache
def _template(path: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(path)))


def allowed_methods(request: Request) -> str | None:
    """The methods the document lists for this path, for a 405's ``Allow`` (RFC 9110)."""
    methods = {
        method.upper()
        for template, operations in request.app.openapi().get("paths", {}).items()
        if _template(template).fullmatch(request.url.path)
        for method in operations
    }
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods)) or None


def responses(*classes: type[e.FinsyncError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for a route, from the domain errors it can raise."""
    out: dict[int | str, dict[str, Any]] = {}
    for cls in classes:
        status = status_of(cls)
        titles = out.get(status, {}).get("description", "").split("; ")
        description = "; ".join(t for t in dict.fromkeys([*titles, cls.title]) if t)
        out[status] = {"model": Problem, "description": description}
    return out


_PROBLEM_REF = "#/components/schemas/Problem"
_VALIDATION_REF = "#/components/schemas/HTTPValidationError"
FRAMEWORK_ERRORS = {
    "400": "The body could not be parsed (malformed JSON or multipart)",
    "401": "Missing, invalid or expired access token",
    "422": "Request validation failed",
    "413": "The body is larger than this server accepts (refused while it streams, before parsing)",
}


def _is_problem(response: dict[str, Any]) -> bool:
    """An error response documented with our Problem, FastAPI's validation error, or nothing."""
    return all(
        media in ("application/json", PROBLEM)
        and content.get("schema", {}).get("$ref", _PROBLEM_REF) in (_PROBLEM_REF, _VALIDATION_REF)
        for media, content in response.get("content", {}).items()
    )


def document_problems(spec: dict[str, Any]) -> dict[str, Any]:
    """Make the OpenAPI document say what the handlers answer: every error is problem+json with
    the Problem schema (FastAPI's own 422 included), every authenticated route can answer 401,
    and every route with a body can answer 400 and 413 (the body limits of api/edge.py)."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(
        ref_template="#/components/schemas/{model}", mode="serialization"
    )
    schemas.update(problem_schema.pop("$defs", {}))
    schemas["Problem"] = problem_schema
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            answers = operation.setdefault("responses", {})
            if operation.get("security"):
                answers.setdefault("401", {"description": FRAMEWORK_ERRORS["401"]})
            if operation.get("requestBody"):
                answers.setdefault("400", {"description": FRAMEWORK_ERRORS["400"]})
                answers.setdefault("413", {"description": FRAMEWORK_ERRORS["413"]})
            for code, answer in answers.items():
                if code.isdigit() and int(code) >= 400 and _is_problem(answer):
                    answer["content"] = {PROBLEM: {"schema": {"$ref": _PROBLEM_REF}}}
                    if code == "422" and answer.get("description") != FRAMEWORK_ERRORS["422"]:
                        known = answer.get("description", "").replace("Validation Error", "")
                        answer["description"] = "; ".join(filter(None, (known, FRAMEWORK_ERRORS["422"])))
                    if code == "401":
                        answer["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
                    if code == "429":
                        seconds = {"description": "Seconds to wait", "schema": {"type": "integer"}}
                        answer["headers"] = {"Retry-After": seconds}
    return spec


def install(app: FastAPI) -> None:
    """Answer every error as problem+json, and document it so."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document_problems(generate())
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(e.FinsyncError)
    async def domain_error(request: Request, exc: e.FinsyncError) -> JSONResponse:
        status = status_of(type(exc))
        extra: dict[str, Any] = {}
        if isinstance(exc, e.TooManyAttempts | e.RateLimited):
            extra["retry_after"] = exc.retry_after
        if isinstance(exc, e.RateLimited) and exc.retry_at is not None:
            extra["retry_at"] = utc_text(exc.retry_at)
        if isinstance(exc, e.AlreadyConnected):
            extra["connection_id"] = str(exc.connection_id)
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
        code = CODES.get(exc.status_code, "http-error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
        return problem(exc.status_code, code, str(exc.detail), str(exc.detail), request, headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path)
        return problem(
            500, "internal-error", "Internal server error", "an unexpected error occurred", request
        )
