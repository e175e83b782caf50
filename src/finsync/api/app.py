"""FastAPI app factory: everything is built in the lifespan, nothing at import."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from finsync import __version__
from finsync.api import errors
from finsync.api.routers import auth, callbacks, connections, data, health, imports, providers
from finsync.bootstrap import Container, build, configure_logging
from finsync.config import Settings

log = structlog.get_logger(__name__)
API_PREFIX = "/api/v1"

DESCRIPTION = """
finsync aggregates your brokers, banks and statement files into one deduplicated model.

* Authenticate with `POST /api/v1/auth/token` (OAuth2 password form), then send
  `Authorization: Bearer <access_token>`.
* Money is a decimal **string** plus an ISO-4217 `currency`; positive amounts are money in.
* Lists are keyset-paginated: pass `next_cursor` back as `cursor`.
* Errors are RFC 9457 `application/problem+json` with a stable `type` per kind.
"""


class RequestIdMiddleware:
    """Binds a request id to every log line of the request and echoes it as ``X-Request-ID``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
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


def create_app(
    settings: Settings | None = None,
    container: Container | None = None,
    *,
    with_worker: bool = False,
    **build_options: Any,
) -> FastAPI:
    """``with_worker``: also run one job worker in this process (PostgreSQL, single-box
    installs); on SQLite jobs always run in the serving process."""
    settings = container.settings if container else (settings or Settings())
    configure_logging(settings.log_format.value, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = container is None
        app.state.container = container or build(settings, **build_options)
        c: Container = app.state.container
        await c.start_jobs()
        worker = asyncio.create_task(c.run_worker()) if with_worker and not c.settings.is_sqlite else None
        log.info("finsync_started", version=__version__, database=c.engine.dialect.name)
        try:
            yield
        finally:
            if worker is not None:
                worker.cancel()
                await asyncio.gather(worker, return_exceptions=True)
            if owned:
                await c.aclose()

    app = FastAPI(
        title="finsync",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url="/docs",
        redoc_url="/redoc",
        license_info={"name": "MIT", "identifier": "MIT"},
    )
    if container is not None:  # pre-built (tests, embedding): usable without running the lifespan
        app.state.container = container
    app.add_middleware(RequestIdMiddleware)
    errors.install(app)
    app.include_router(health.router)
    for module in (auth, providers, callbacks, connections, data, imports):
        app.include_router(module.router, prefix=API_PREFIX)
    return app


def create_app_with_worker() -> FastAPI:
    """``finsync serve --with-worker``: the API plus one in-process job worker."""
    settings = Settings()
    pool = settings.job_pool_size + min(settings.worker_concurrency, 16) + 3  # the worker's jobs too
    return create_app(settings.model_copy(update={"job_pool_size": pool}), with_worker=True)
