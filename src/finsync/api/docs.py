"""API documentation served by finsync itself: Swagger UI and ReDoc work on an offline server.

The assets come from the ``fastapi-offline`` package (Swagger UI 5 and ReDoc 2, as released on
npm), mounted under ``/docs/assets``. Pages load no inline script, so the docs CSP can forbid it.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from finsync.api.routing import add_routes

ASSETS = Path(fastapi_offline.__file__).parent / "static"
DOCS, REDOC, INIT = "/docs", "/redoc", "/docs/init.js"
OPENAPI = "/openapi.json"
DOC_PAGES = frozenset({DOCS, REDOC})

SWAGGER_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="{root}/docs/assets/swagger-ui.css">
<link rel="icon" href="{root}/docs/assets/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{root}/docs/assets/swagger-ui-bundle.js"></script>
<script src="{root}{init}"></script>
</body>
</html>
"""

SWAGGER_INIT = """window.ui = SwaggerUIBundle({{
  url: {openapi},
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  deepLinking: true,
  showExtensions: true,
  validatorUrl: null
}});
"""


def install(app: FastAPI, *, api_prefix: str, docs_enabled: bool) -> None:
    """``/`` (an index of links), ``/openapi.json`` and, unless disabled, ``/docs`` and ``/redoc``."""
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def index(request: Request) -> dict[str, Any]:
        root = request.scope.get("root_path", "")
        return {
            "name": app.title,
            "version": app.version,
            "api": f"{root}{api_prefix}",
            "openapi": f"{root}{OPENAPI}",
            "docs": f"{root}{DOCS}" if docs_enabled else None,
            "redoc": f"{root}{REDOC}" if docs_enabled else None,
            "health": f"{root}/health/ready",
            "liveness": f"{root}/health/live",
        }

    @router.get(OPENAPI)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    if docs_enabled:

        @router.get(DOCS)
        async def swagger_ui(request: Request) -> HTMLResponse:
            root = html.escape(request.scope.get("root_path", ""))
            page = SWAGGER_PAGE.format(title=html.escape(f"{app.title} API"), root=root, init=INIT)
            return HTMLResponse(page)

        @router.get(INIT)
        async def swagger_init(request: Request) -> Response:
            url = f"{request.scope.get('root_path', '')}{OPENAPI}"
            script = SWAGGER_INIT.format(openapi=json.dumps(url))  # a JS string literal
            return Response(script, media_type="text/javascript")

        @router.get(REDOC)
        async def redoc(request: Request) -> HTMLResponse:
            root = request.scope.get("root_path", "")
            return get_redoc_html(
                openapi_url=f"{root}{OPENAPI}",
                title=f"{app.title} API",
                redoc_js_url=f"{root}/docs/assets/redoc.standalone.js",
                redoc_favicon_url=f"{root}/docs/assets/favicon.png",
                with_google_fonts=False,
            )

        app.mount("/docs/assets", StaticFiles(directory=ASSETS), name="docs-assets")
    add_routes(app, router)
