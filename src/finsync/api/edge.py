"""The HTTP edge, outside everything else: request ids, access log, security headers, body limits.

These wrap the whole application (error handlers included), so every response — a 500, a
404, a 413 sent before routing — carries the request id and the security headers, and is
logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass

import orjson
import structlog
from starlette._utils import (
    get_route_path,  # the function the router itself matches with (as FastAPI imports it)
)
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from finsync.api.errors import PROBLEM, TYPE_BASE

log = structlog.get_logger("finsync.access")

# After a 413, read and drop this much of the refused body (at most) before the connection
# closes: closing on unread data makes the kernel reset the connection, and a client still
# sending would lose the answer (nginx calls this a lingering close).
LINGER_BYTES = 16 * 1024 * 1024
LINGER_SECONDS = 1.0

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI and ReDoc: own scripts only (no inline script), inline styles, ReDoc's blob worker.
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class RequestIdMiddleware:
    """Binds a request id to every log line of the request and echoes it as ``X-Request-ID``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get("x-request-id", "")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")


class AccessLog:
    """One structured line per request, in the configured format (uvicorn's own access log is off).

    The query string is logged raw; the redaction processor masks secret-looking parameters
    (OAuth ``code`` and ``state``, tokens, keys, GoCardless ``ref`` …) before anything is written.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            client = scope.get("client")
            log.info(
                "http_request",
                method=scope["method"],
                path=scope["path"],
                query=scope.get("query_string", b"").decode("latin-1"),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                client=client[0] if client else None,
            )


class SecurityHeaders:
    """nosniff, no referrer, no framing, a CSP; ``no-store`` on API responses (tokens and
    credentials among them, RFC 6749 §5.1 — and financial data has no business in caches)."""

    def __init__(self, app: ASGIApp, *, api_prefix: str, docs_pages: frozenset[str]) -> None:
        self.app = app
        self.api_prefix = api_prefix
        self.docs_pages = docs_pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = get_route_path(scope)  # the router's own: less any ASGI root_path
        csp = DOCS_CSP if path in self.docs_pages else API_CSP
        no_store = path.startswith(self.api_prefix)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("x-content-type-options", "nosniff")
                headers.setdefault("referrer-policy", "no-referrer")
                headers.setdefault("x-frame-options", "DENY")
                headers.setdefault("content-security-policy", csp)
                if no_store:
                    headers["cache-control"] = "no-store"
                    headers["pragma"] = "no-cache"
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass(frozen=True, slots=True)
class Limit:
    bytes: int
    code: str = "content-too-large"
    title: str = "Request body too large"
    what: str = "the request body"


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streaming body crosses its limit (FastAPI re-raises it)."""

    def __init__(self, limit: Limit) -> None:
        super().__init__(413, f"{limit.what} exceeds the limit of {limit.bytes:,} bytes")
        self.limit = limit


class BodyLimit:
    """Request-body limits enforced before routing, authentication or parsing.

    A declared ``Content-Length`` over the limit is answered 413 at once, nothing read; any
    other body is counted as it streams and refused the moment it crosses the limit. Either
    way the answer goes out first; then a little of the rest is drained (``linger``) so the
    client can read it. ``routes`` gives (method, path) its own limit (uploads); every other
    body gets ``default``.
    """

    def __init__(self, app: ASGIApp, *, default: Limit, routes: dict[tuple[str, str], Limit]) -> None:
        self.app = app
        self.default = default
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.routes.get((scope["method"], get_route_path(scope).rstrip("/")), self.default)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit.bytes:
            await send_problem(scope, send, BodyTooLarge(limit), receive)
            return
        seen, started, refused = 0, False, False

        async def counted_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit.bytes:
                    refused = bool(message.get("more_body", False))  # more is on its way: linger
                    raise BodyTooLarge(limit)
            return message

        async def noting_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            if refused and message["type"] == "http.response.body" and not message.get("more_body"):
                await finish_lingering(send, message, receive)
                return
            await send(message)

        try:
            await self.app(scope, counted_receive, noting_send)
        except BodyTooLarge as exc:  # raised where no handler turned it into a response
            if started:
                raise
            await send_problem(scope, send, exc, receive if refused else None)


async def finish_lingering(send: Send, last: Message, receive: Receive) -> None:
    """Send the answer's last bytes, drain a little of the refused body, then end the response
    (the server closes the connection as it ends: ``Connection: close``)."""
    await send({**last, "more_body": True})
    await linger(receive)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def linger(receive: Receive) -> None:
    """Drop up to LINGER_BYTES of what is still coming, for at most LINGER_SECONDS."""
    drained = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(LINGER_SECONDS):
            while drained < LINGER_BYTES:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return
                drained += len(message.get("body", b""))


async def send_problem(scope: Scope, send: Send, exc: BodyTooLarge, receive: Receive | None) -> None:
    body = orjson.dumps(
        {
            "type": TYPE_BASE + exc.limit.code,
            "title": exc.limit.title,
            "status": 413,
            "detail": exc.detail,
            "instance": scope["path"],
        }
    )
    # The rest of the body is never read (but for a short linger): the server closes the connection.
    headers = [(b"content-type", PROBLEM.encode()), (b"content-length", str(len(body)).encode())]
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    if receive is None:
        await send({"type": "http.response.body", "body": body})
    else:
        await finish_lingering(send, {"type": "http.response.body", "body": body}, receive)
