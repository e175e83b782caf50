"""FastAPI app factory: everything is built in the lifespan, nothing at import."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import structlog
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from finsync import __version__
from finsync.api import docs, errors
from finsync.api.edge import (
    AccessLog,
    BodyLimit,
    BodyTooLarge,
    Limit,
    RequestIdMiddleware,
    SecurityHeaders,
)
from finsync.api.fastlane import FastLane
from finsync.api.routers import (
    analytics,
    auth,
    callbacks,
    connections,
    data,
    health,
    import_mappings,
    imports,
    labels,
    me,
    providers,
    trading,
    webhooks,
)
from finsync.api.routing import add_routes
from finsync.bootstrap import Container, build, configure_logging
from finsync.config import Settings
from finsync.gcpause import freeze_startup_heap

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


MULTIPART_ALLOWANCE = 64 * 1024  # boundaries and part headers around an upload's file


class FinsyncAPI(FastAPI):
    """FastAPI whose edge middleware wraps the whole stack, error handlers included."""

    edge: Callable[[ASGIApp], ASGIApp] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        app = super().build_middleware_stack()
        return self.edge(app) if self.edge is not None else app


def edge_stack(settings: Settings) -> Callable[[ASGIApp], ASGIApp]:
    """Outermost first: client address (trusted proxies only), request id, access log,
    security headers, body limits — all before routing, authentication or parsing."""
    upload = Limit(
        settings.upload_limit_bytes + MULTIPART_ALLOWANCE,
        code="file-too-large",
        title="File too large",
        what="the upload",
    )

    def wrap(app: ASGIApp) -> ASGIApp:
        app = BodyLimit(
            app,
            default=Limit(settings.body_limit_bytes),
            routes={("POST", f"{API_PREFIX}/imports"): upload},
        )
        app = SecurityHeaders(app, api_prefix=API_PREFIX, docs_pages=docs.DOC_PAGES)
        app = RequestIdMiddleware(AccessLog(app))
        if settings.trusted_proxies:
            proxied = ProxyHeadersMiddleware(cast(Any, app), trusted_hosts=settings.trusted_proxies)
            app = cast(ASGIApp, proxied)
        return app

    return wrap


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
        if owned:  # a server process (``finsync serve``), not an app around a caller's container
            freeze_startup_heap()
        log.info("finsync_started", version=__version__, database=c.engine.dialect.name)
        try:
            yield
        finally:
            if worker is not None:
                worker.cancel()
                await asyncio.gather(worker, return_exceptions=True)
            if owned:
                await c.aclose()

    app = FinsyncAPI(
        title="finsync",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
        license_info={"name": "MIT", "identifier": "MIT"},
    )
    app.edge = edge_stack(settings)
    if container is not None:  # pre-built (tests, embedding): usable without running the lifespan
        app.state.container = container
    app.add_middleware(FastLane, prefix=API_PREFIX)  # first: CORS, added next, wraps it
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["Retry-After", "X-Request-ID", "Location"],
            max_age=600,
        )
    errors.install(app)

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        response = errors.problem(413, exc.limit.code, exc.limit.title, exc.detail, request)
        response.headers["Connection"] = "close"  # the rest of the body is never read
        return response

    docs.install(app, api_prefix=API_PREFIX, docs_enabled=settings.docs_enabled)
    add_routes(app, health.router)
    routers = (
        auth,
        providers,
        callbacks,
        connections,
        data,
        imports,
        import_mappings,
        me,
        analytics,
        labels,
        webhooks,
        trading,
    )
    for module in routers:
        add_routes(app, module.router, API_PREFIX)
    return app


def create_app_with_worker() -> FastAPI:
    """``finsync serve --with-worker``: the API plus one in-process job worker."""
    settings = Settings()
    pool = settings.job_pool_size + min(settings.worker_concurrency, 16) + 3  # the worker's jobs too
    return create_app(settings.model_copy(update={"job_pool_size": pool}), with_worker=True)
