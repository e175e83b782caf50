"""Fixtures for the OAuth / bank-link flows: fake Schwab and GoCardless on loopback, one virtual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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

CLIENT_URL = "https://client.example.test/connected"


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
