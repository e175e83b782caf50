"""Every fake provider at once, on loopback, behind one app: for tests that walk the main flows.

``World`` holds the API client, the container and the fake servers' stores; its helpers drive
the flows the way a client does (connect, consent in the "browser", wait for the sync).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from finsync.bootstrap import Container
from tests.api.conftest import clock_of, redirect_settings
from tests.api.wire import WireCheck
from tests.conftest import SHARED, app_for, built, make_settings
from tests.fakes.alpaca import AlpacaStore
from tests.fakes.alpaca import create_app as alpaca_app
from tests.fakes.clock import VirtualClock
from tests.fakes.consent import submit_consent
from tests.fakes.gocardless import SANDBOX, FakeGoCardless
from tests.fakes.gocardless import with_sample_data as gocardless_sample
from tests.fakes.schwab import FakeSchwab
from tests.fakes.schwab import with_sample_data as schwab_sample
from tests.fakes.server import serve
from tests.fakes.trading212 import Trading212Store
from tests.fakes.trading212 import create_app as t212_app

T212_KEY, T212_SECRET = "fake-t212-key-for-tests", "fake-t212-secret-for-tests"
ALPACA_ID, ALPACA_SECRET = "fake-alpaca-key-id", "fake-alpaca-secret-key"
T212 = {
    "provider": "trading212",
    "environment": "live",
    "credentials": {"api_key": T212_KEY, "api_secret": T212_SECRET},
}
ALPACA = {
    "provider": "alpaca",
    "environment": "paper",
    "credentials": {"key_id": ALPACA_ID, "secret_key": ALPACA_SECRET},
}
SCHWAB: dict[str, Any] = {"provider": "schwab"}
BANK: dict[str, Any] = {"provider": "gocardless", "options": {"institution_id": SANDBOX}}
OFX = SHARED / "fixtures" / "ofx"


@dataclass
class World:
    client: httpx.AsyncClient
    container: Container
    clock: VirtualClock
    t212: Trading212Store
    alpaca: AlpacaStore
    schwab: FakeSchwab
    gocardless: FakeGoCardless
    wire: WireCheck

    async def connect(self, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        """Create a connection (consenting in the browser for redirect providers); wait for its sync."""
        r = await self.client.post("/api/v1/connections", headers=headers, json=body)
        assert r.status_code == 201, r.text
        created = dict(r.json())
        if created["authorization_url"]:
            location = urlsplit(await submit_consent(created["authorization_url"]))
            r = await self.client.get(f"{location.path}?{location.query}")
            assert r.status_code == 200, r.text
        await self.container.jobs.drain()
        return created

    async def upload(self, headers: dict[str, str], name: str) -> dict[str, Any]:
        files = {"file": (name, (OFX / name).read_bytes(), "application/x-ofx")}
        r = await self.client.post("/api/v1/imports", headers=headers, files=files)
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def all(self, headers: dict[str, str], path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a list endpoint, following the cursors."""
        items: list[dict[str, Any]] = []
        query: dict[str, Any] = {"limit": 500, **params}
        while True:
            r = await self.client.get(path, headers=headers, params=query)
            assert r.status_code == 200, r.text
            items += r.json()["items"]
            if not r.json()["next_cursor"]:
                return items
            query = {**query, "cursor": r.json()["next_cursor"]}


@asynccontextmanager
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    """The app on ``database_url`` with Trading 212, Alpaca, Schwab and GoCardless fakes."""
    clock = VirtualClock()
    t212, alpaca = Trading212Store(), AlpacaStore()
    t212.seed(clock.now(), orders=12, dividends=3, transactions=3)
    t212.add_position("AAPL_US_EQ", "15.5", "170.25", "185.5", fx="0.79", currency="USD", in_pies="3")
    alpaca.seed(clock.now(), fills=6, others=6)
    alpaca.add_position("AAPL", "13", "170.10", "187.43")
    schwab, gocardless = schwab_sample(FakeSchwab(clock)), gocardless_sample(FakeGoCardless(clock))
    with _served(clock, t212, alpaca, schwab, gocardless) as (t212_url, alpaca_url, schwab_url, bank_url):
        settings = make_settings(
            database_url,
            tmp_path,
            public_url="http://testserver",
            trading212_live_url=t212_url,
            alpaca_paper_url=alpaca_url,
            **redirect_settings(schwab_url, bank_url, provider_timeout_seconds=2.0),
        )
        options = {"clock": clock_of(clock), "adapter_options": {"clock": clock}}
        wire = WireCheck()
        async with built(settings, **options) as container:
            with app_for(container) as app:
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app),
                    base_url="http://testserver",
                    event_hooks={"response": [wire]},
                ) as client:
                    yield World(client, container, clock, t212, alpaca, schwab, gocardless, wire)


@contextmanager
def _served(
    clock: VirtualClock, t212: Trading212Store, alpaca: AlpacaStore, schwab: FakeSchwab, bank: FakeGoCardless
) -> Iterator[tuple[str, str, str, str]]:
    with ExitStack() as stack:
        yield (
            stack.enter_context(serve(t212_app(clock, api_key=T212_KEY, api_secret=T212_SECRET, store=t212))),
            stack.enter_context(
                serve(alpaca_app(clock, key_id=ALPACA_ID, secret_key=ALPACA_SECRET, store=alpaca))
            ),
            stack.enter_context(serve(schwab.app)),
            stack.enter_context(serve(bank.app)),
        )
