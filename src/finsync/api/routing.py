"""Routes added to the app itself, not behind ``include_router``'s per-request wrappers."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute


def add_routes(app: FastAPI, router: APIRouter, prefix: str = "") -> None:
    """``router``'s routes as the app's own, under ``prefix`` (as ``include_router`` did before
    FastAPI 0.16x). ``include_router`` now keeps each router behind a wrapper that every request
    walks, router after router, counting routes and matching the chosen router's twice: about
    0.25 ms of CPU for a route in the last router, more than the whole of ``/health/live``.
    Here a request tries each route's regex once, in the same order."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"{route!r}: only API routes are flattened; mount it on the app")
        app.add_api_route(
            prefix + route.path,
            route.endpoint,
            response_model=route.response_model,
            status_code=route.status_code,
            tags=list(route.tags),
            dependencies=list(route.dependencies),
            summary=route.summary,
            description=route.description,
            response_description=route.response_description,
            responses=dict(route.responses),
            deprecated=route.deprecated,
            methods=sorted(route.methods or ()),
            response_model_include=route.response_model_include,
            response_model_exclude=route.response_model_exclude,
            response_model_by_alias=route.response_model_by_alias,
            response_model_exclude_unset=route.response_model_exclude_unset,
            response_model_exclude_defaults=route.response_model_exclude_defaults,
            response_model_exclude_none=route.response_model_exclude_none,
            include_in_schema=route.include_in_schema and router.include_in_schema,
            response_class=route.response_class,
            name=route.name,
            operation_id=route.operation_id,
            openapi_extra=route.openapi_extra,
        )
