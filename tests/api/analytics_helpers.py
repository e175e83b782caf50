"""Fixtures for analytics API tests: a container whose clock the test moves, FX fixings, syncs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from finsync.bootstrap import Container
from finsync.domain.entities import User
from finsync.domain.enums import SyncTrigger
from finsync.domain.market import FxFixing, PriceBar
from finsync.providers.registry import ProviderRegistry
from tests.api.helpers import register_and_login
from tests.conftest import api_client, built, make_settings
from tests.factories import seed_connection
from tests.fakes.memory import MemoryProviders


@dataclass
class SettableNow:
    """A `Now` the test moves by hand (analytics read "today")."""

    now: datetime = field(default_factory=lambda: datetime(2024, 4, 5, 18, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def at(self, day: date, hour: int = 18) -> None:
        self.now = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


@dataclass
class World:
    client: httpx.AsyncClient
    container: Container
    clock: SettableNow
    bank: MemoryProviders
    headers: dict[str, str] = field(default_factory=dict)
    user: User | None = None
    connection_id: UUID | None = None

    async def login(self, email: str = "ada@example.com") -> None:
        self.headers = await register_and_login(self.client, email)
        async with self.container.uow() as uow:
            self.user = await uow.users.get_by_email(email)
        assert self.user is not None
        self.connection_id = (await seed_connection(self.container, self.user)).id

    async def sync(self, day: date | None = None) -> None:
        if day is not None:
            self.clock.at(day)
        assert self.user is not None
        assert self.connection_id is not None
        run = await self.container.sync.request(self.connection_id, self.user.id, SyncTrigger.MANUAL)
        await self.container.jobs.drain()
        async with self.container.uow() as uow:
            stored = await uow.sync_runs.get(run.id)
        assert stored is not None
        assert stored.status.value == "succeeded", stored

    async def get(self, path: str, **params: Any) -> Any:
        r = await self.client.get(f"/api/v1{path}", headers=self.headers, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    async def fixings(self, rates: dict[date, dict[str, str]]) -> None:
        async with self.container.uow() as uow:
            await uow.market.save_fixings(
                [FxFixing(c, d, Decimal(r), "ecb") for d, per in rates.items() for c, r in per.items()]
            )
            await uow.commit()

    async def prices(self, key: str, symbol: str, bars: dict[date, str], currency: str) -> None:
        from finsync.domain.market import Instrument

        async with self.container.uow() as uow:
            instrument = await uow.market.add_instrument(
                Instrument(key=key, symbol=symbol, currency=currency)
            )
            await uow.market.save_prices(
                instrument.id, [PriceBar(d, Decimal(c), currency, "yahoo") for d, c in bars.items()]
            )
            await uow.commit()

    async def account_id(self, provider_account_id: str) -> str:
        accounts = (await self.get("/accounts"))["items"]
        return str(next(a["id"] for a in accounts if a["provider_account_id"] == provider_account_id))


def days(start: date, count: int) -> list[date]:
    return [start + timedelta(days=i) for i in range(count)]


@pytest.fixture(name="world")
async def world_fixture(
    database_url: str, tmp_path: Path, registry: ProviderRegistry, memory_providers: MemoryProviders
) -> AsyncIterator[World]:
    clock = SettableNow()
    settings = make_settings(database_url, tmp_path)
    async with built(settings, registry=registry, clock=clock) as container, api_client(container) as client:
        yield World(client, container, clock, memory_providers)
