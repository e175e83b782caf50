"""Swagger UI and ReDoc render in a real browser with nothing but this server (offline), under their CSP."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from finsync.api.app import create_app
from tests.conftest import built, make_settings
from tests.fakes.server import serve_here

if TYPE_CHECKING:
    from playwright.async_api import Browser

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture
async def base(sqlite_database: str, tmp_path: Path) -> AsyncIterator[str]:
    """The docs do not depend on the database: SQLite only."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    async with (
        built(make_settings(sqlite_database, tmp_path)) as container,
        serve_here(create_app(container=container), sock) as url,
    ):
        yield url


@pytest.mark.parametrize(("page_path", "rendered"), [("/docs", ".swagger-ui .info .title"), ("/redoc", "h1")])
async def test_docs_render_from_this_server_alone(
    browser: Browser, base: str, page_path: str, rendered: str
) -> None:
    elsewhere: list[str] = []
    problems: list[str] = []
    context = await browser.new_context()  # its own cache: nothing left by the other page
    try:
        page = await context.new_page()

        async def only_this_server(route: object) -> None:  # nothing leaves the machine
            request = route.request  # type: ignore[attr-defined]
            if request.url.startswith(base):
                await route.continue_()  # type: ignore[attr-defined]
            else:
                elsewhere.append(request.url)
                await route.abort()  # type: ignore[attr-defined]

        await page.route("**/*", only_this_server)
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        await page.goto(base + page_path)
        await page.wait_for_selector(rendered, timeout=20_000)
        assert "finsync" in await page.inner_text(rendered)
    finally:
        await context.close()
    assert elsewhere == []  # before: Swagger UI came from a CDN, and an offline server showed a blank page
    # ReDoc's "API docs by Redocly" footer links a logo on Redocly's CDN: the CSP blocks it (nothing
    # is requested, see above) and the page is complete without it.
    assert [p for p in problems if "cdn.redoc.ly/redoc/logo-mini.svg" not in p] == []
