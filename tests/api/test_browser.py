"""A real browser (headless Debian Chromium, driven by Playwright) through each consent flow:
finsync served on loopback → provider consent page → click Allow → back on finsync's callback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from finsync.api.app import create_app
from finsync.bootstrap import Container
from finsync.providers.http import http_transport
from tests.api.conftest import clock_of, redirect_settings
from tests.api.helpers import register_and_login
from tests.conftest import built, make_settings
from tests.fakes.clock import VirtualClock
from tests.fakes.enablebanking import APPLICATION_ID, INSTITUTION, FakeEnableBanking, new_key
from tests.fakes.enablebanking import with_sample_data as enablebanking_sample
from tests.fakes.gocardless import SANDBOX, FakeGoCardless
from tests.fakes.schwab import FakeSchwab
from tests.fakes.server import serve, serve_here

if TYPE_CHECKING:
    from playwright.async_api import Browser

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture(scope="module")
def enablebanking_key() -> tuple[bytes, Any]:
    return new_key()


@pytest.fixture
def enablebanking(
    vclock: VirtualClock, enablebanking_key: tuple[bytes, Any], tmp_path: Path
) -> Iterator[dict[str, str]]:
    """A fake Enable Banking and the settings pointing finsync at it (key file included)."""
    key_path = tmp_path / f"{APPLICATION_ID}.pem"
    key_path.write_bytes(enablebanking_key[0])
    fake = enablebanking_sample(FakeEnableBanking(vclock, enablebanking_key[1]))
    with serve(fake.app) as url:
        yield {
            "enablebanking_url": url,
            "enablebanking_application_id": APPLICATION_ID,
            "enablebanking_key_path": str(key_path),
        }


@pytest.fixture
async def live(
    database_url: str,
    tmp_path: Path,
    vclock: VirtualClock,
    schwab: tuple[FakeSchwab, str],
    gocardless: tuple[FakeGoCardless, str],
    enablebanking: dict[str, str],
) -> AsyncIterator[tuple[str, Container]]:
    """finsync itself on a real loopback port, in this event loop, so the browser can reach it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = make_settings(
        database_url,
        tmp_path,
        public_url=base,
        **redirect_settings(schwab[1], gocardless[1]),
        **enablebanking,
    )
    async with (
        built(settings, clock=clock_of(vclock), adapter_options={"clock": vclock}) as container,
        serve_here(create_app(container=container), sock),
    ):
        yield base, container


async def click_allow(browser: Browser, url: str) -> tuple[str, str]:
    """Follow the authorization URL in a fresh browser context, press Allow, return the final URL
    and page text."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(url)
        async with page.expect_navigation(url="**/api/v1/connections/callback/**"):
            await page.click("#allow")
        await page.wait_for_selector("#title")
        return page.url, await page.inner_text("body")
    finally:
        await context.close()


async def _connect_in_browser(
    browser: Browser, base: str, container: Container, client: httpx.AsyncClient, body: dict[str, Any]
) -> tuple[dict[str, str], str]:
    headers = await register_and_login(client)
    r = await client.post("/api/v1/connections", headers=headers, json=body)
    assert r.status_code == 201, r.text
    final_url, text = await click_allow(browser, r.json()["authorization_url"])
    assert final_url.startswith(f"{base}/api/v1/connections/callback/{body['provider']}")
    assert "Connected — you can close this window" in text
    await container.jobs.drain()
    return headers, r.json()["id"]


async def test_schwab_in_a_real_browser(browser: Browser, live: tuple[str, Container]) -> None:
    base, container = live
    async with httpx.AsyncClient(transport=http_transport(), base_url=base) as client:
        headers, cid = await _connect_in_browser(browser, base, container, client, {"provider": "schwab"})
        conn = (await client.get(f"/api/v1/connections/{cid}", headers=headers)).json()
        assert conn["status"] == "active", conn
        accounts = (await client.get("/api/v1/accounts", headers=headers)).json()["items"]
        assert len(accounts) == 2
        assert (await client.get("/api/v1/holdings", headers=headers)).json()["items"]
        assert (await client.get("/api/v1/transactions", headers=headers)).json()["items"]
        snaps = (
            await client.get(f"/api/v1/accounts/{accounts[0]['id']}/balance-snapshots", headers=headers)
        ).json()
        assert len(snaps["items"]) == 1


async def test_gocardless_in_a_real_browser(browser: Browser, live: tuple[str, Container]) -> None:
    base, container = live
    body = {"provider": "gocardless", "options": {"institution_id": SANDBOX}}
    async with httpx.AsyncClient(transport=http_transport(), base_url=base) as client:
        headers, cid = await _connect_in_browser(browser, base, container, client, body)
        conn = (await client.get(f"/api/v1/connections/{cid}", headers=headers)).json()
        assert conn["status"] == "active", conn
        assert conn["expires_at"]
        accounts = (await client.get("/api/v1/accounts", headers=headers)).json()["items"]
        assert {a["currency"] for a in accounts} == {"GBP", "EUR"}
        assert (await client.get("/api/v1/transactions", headers=headers)).json()["items"]
        snaps = (
            await client.get(f"/api/v1/accounts/{accounts[0]['id']}/balance-snapshots", headers=headers)
        ).json()
        assert len(snaps["items"]) == 1


async def test_enablebanking_in_a_real_browser(browser: Browser, live: tuple[str, Container]) -> None:
    """Enable Banking's bank login (POST /auth → bank page → ?code=&state=) in Chromium."""
    base, container = live
    body = {"provider": "enablebanking", "options": {"institution_id": INSTITUTION}}
    async with httpx.AsyncClient(transport=http_transport(), base_url=base) as client:
        headers, cid = await _connect_in_browser(browser, base, container, client, body)
        conn = (await client.get(f"/api/v1/connections/{cid}", headers=headers)).json()
        assert conn["status"] == "active", conn
        assert conn["expires_at"]
        accounts = (await client.get("/api/v1/accounts", headers=headers)).json()["items"]
        assert sorted(a["type"] for a in accounts) == ["checking", "credit_card"]
        assert (await client.get("/api/v1/transactions", headers=headers)).json()["items"]
