"""Fixtures for the OAuth / bank-link flows: fake Schwab and GoCardless on loopback, one virtual clock."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from finsync.bootstrap import Container
from tests.conftest import api_client, built, make_settings
from tests.fakes.clock import VirtualClock
from tests.fakes.gocardless import SECRET_ID, SECRET_KEY, FakeGoCardless
from tests.fakes.gocardless import with_sample_data as gocardless_sample
from tests.fakes.schwab import APP_KEY, APP_SECRET, FakeSchwab
from tests.fakes.schwab import with_sample_data as schwab_sample
from tests.fakes.server import serve

if TYPE_CHECKING:
    from playwright.async_api import Browser

CLIENT_URL = "https://client.example.test/connected"
CHROMIUM = os.environ.get("FINSYNC_CHROMIUM", "/usr/bin/chromium")
# Flags from this workplace's notes: no sandbox as root, and no background traffic to the closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for a module's browser tests (launching it costs about a second of
    CPU); each test opens its own context in it, with no cookies or storage from another."""
    if shutil.which(CHROMIUM) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Chromium not found at {CHROMIUM}; .ci/run installs Debian's chromium package")
        pytest.skip("Chromium not installed (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def schwab(vclock: VirtualClock) -> Iterator[tuple[FakeSchwab, str]]:
    fake = schwab_sample(FakeSchwab(vclock))
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def gocardless(vclock: VirtualClock) -> Iterator[tuple[FakeGoCardless, str]]:
    fake = gocardless_sample(FakeGoCardless(vclock))
    with serve(fake.app) as url:
        yield fake, url


def redirect_settings(schwab_url: str, gocardless_url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "schwab_auth_url": f"{schwab_url}/v1/oauth",
        "schwab_api_url": f"{schwab_url}/trader/v1",
        "schwab_app_key": APP_KEY,
        "schwab_app_secret": APP_SECRET,
        "gocardless_url": f"{gocardless_url}/api/v2",
        "gocardless_secret_id": SECRET_ID,
        "gocardless_secret_key": SECRET_KEY,
        "provider_timeout_seconds": 5.0,
    } | overrides


def clock_of(vclock: VirtualClock) -> Callable[[], datetime]:
    return lambda: datetime.fromtimestamp(vclock.now(), UTC)


@pytest.fixture
def redirect_overrides() -> dict[str, Any]:
    """Tests override settings (e.g. the client redirect URL) by redefining this fixture."""
    return {}


@pytest.fixture
async def flows(
    database_url: str,
    tmp_path: Path,
    vclock: VirtualClock,
    schwab: tuple[FakeSchwab, str],
    gocardless: tuple[FakeGoCardless, str],
    redirect_overrides: dict[str, Any],
) -> AsyncIterator[tuple[httpx.AsyncClient, Container]]:
    settings = make_settings(
        database_url,
        tmp_path,
        public_url="http://testserver",
        **redirect_settings(schwab[1], gocardless[1], **redirect_overrides),
    )
    options = {"clock": clock_of(vclock), "adapter_options": {"clock": vclock}}
    async with built(settings, **options) as container, api_client(container) as client:
        yield client, container
