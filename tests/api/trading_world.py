"""One trading test world: a user on the real databases, with fake Trading 212 and Alpaca in
process (each at its own host, behind a transport that can lose answers), on one virtual clock."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from finsync.bootstrap import Container
from tests.api.conftest import clock_of
from tests.api.helpers import PASSWORD, register_and_login
from tests.conftest import api_client, built, make_settings
from tests.fakes.alpaca import AlpacaStore
from tests.fakes.alpaca import create_app as alpaca_app
from tests.fakes.clock import VirtualClock
from tests.fakes.faults import Chooser, FaultyTransport, HostRouter
from tests.fakes.trading212 import Trading212Store
from tests.fakes.trading212 import create_app as t212_app

T212_KEY, T212_SECRET = "fake-t212-key-for-tests", "fake-t212-secret-for-tests"
ALPACA_ID, ALPACA_SECRET = "fake-alpaca-key-id", "fake-alpaca-secret-key"


@dataclass
class World:
    client: httpx.AsyncClient
    container: Container
    clock: VirtualClock
    t212: Trading212Store
    alpaca: AlpacaStore
    wire: FaultyTransport
    headers: dict[str, str]

    async def connect(self, provider: str, environment: str) -> tuple[str, str]:
        """A connection and its (synced) account: (connection id, account id)."""
        credentials = (
            {"api_key": T212_KEY, "api_secret": T212_SECRET}
            if provider == "trading212"
            else {"key_id": ALPACA_ID, "secret_key": ALPACA_SECRET}
        )
        body = {"provider": provider, "environment": environment, "credentials": credentials}
        r = await self.client.post("/api/v1/connections", headers=self.headers, json=body)
        assert r.status_code == 201, r.text
        connection = r.json()["id"]
        await self.container.jobs.drain()
        r = await self.client.get(
            "/api/v1/accounts", headers=self.headers, params={"connection_id": connection}
        )
        assert r.status_code == 200, r.text
        return connection, r.json()["items"][0]["id"]

    async def enable(self, connection: str, **limits: Any) -> httpx.Response:
        body = {"trading": {"enabled": True, **limits}, "password": PASSWORD}
        return await self.client.patch(f"/api/v1/connections/{connection}", headers=self.headers, json=body)

    async def order(
        self, account: str, key: str, headers: dict[str, str] | None = None, **fields: Any
    ) -> httpx.Response:
        body = {"symbol": "AAPL_US_EQ", "side": "buy", "type": "market", "quantity": "1"} | fields
        return await self.client.post(
            f"/api/v1/accounts/{account}/orders",
            headers=(headers or self.headers) | {"Idempotency-Key": key},
            json=body,
        )


@asynccontextmanager
async def trading_world(
    database_url: str, tmp_path: Path, choose: Chooser = lambda request: None, **settings: Any
) -> AsyncIterator[World]:
    clock = VirtualClock()
    # Hosts of their own: rate budgets are per process, host and key, and must not carry one
    # world's (virtual) time into the next.
    t212_host, alpaca_host = f"t212-{uuid.uuid4().hex[:8]}.test", f"alpaca-{uuid.uuid4().hex[:8]}.test"
    t212, alpaca = Trading212Store(), AlpacaStore()
    t212.add_position("AAPL_US_EQ", "10", "170.25", "185.5", currency="USD")  # its last price
    router = HostRouter(
        {
            t212_host: t212_app(clock, api_key=T212_KEY, api_secret=T212_SECRET, store=t212),
            alpaca_host: alpaca_app(clock, key_id=ALPACA_ID, secret_key=ALPACA_SECRET, store=alpaca),
        }
    )
    wire = FaultyTransport(router, choose)
    config = make_settings(
        database_url,
        tmp_path,
        trading212_demo_url=f"http://{t212_host}",
        trading212_live_url=f"http://{t212_host}",
        alpaca_paper_url=f"http://{alpaca_host}",
        alpaca_live_url=f"http://{alpaca_host}",
        **settings,
    )
    options = {"clock": clock, "transport": wire}
    async with (
        built(config, adapter_options=options, clock=clock_of(clock)) as container,
        api_client(container) as client,
    ):
        headers = await register_and_login(client)
        yield World(client, container, clock, t212, alpaca, wire, headers)
