"""refresh_market_data against fake sources on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from finsync.application.valuation import Prices, load_book
from finsync.bootstrap import Container
from finsync.cli import app
from finsync.domain.enums import AccountType, AssetType, SyncTrigger
from finsync.domain.jobs import JobRegistry, Periodic
from finsync.domain.market import is_fixing_day
from finsync.infrastructure.jobs import InProcessJobQueue
from finsync.infrastructure.jobs.procrastinate_queue import ProcrastinateJobQueue
from finsync.providers.registry import ProviderRegistry
from tests.conftest import built, make_settings
from tests.factories import account, holding, seed_connection, seed_user
from tests.fakes.clock import VirtualClock
from tests.fakes.market import MarketStore, YahooSeries, business_days, create_app, settings_for
from tests.fakes.memory import MemoryProviders
from tests.fakes.server import serve

pytestmark = pytest.mark.integration
TODAY = date(2024, 4, 5)  # a Friday; Easter 2024 (29 March - 1 April) had no fixings
NOW = datetime(2024, 4, 5, 18, 0, tzinfo=UTC)
START = date(2024, 1, 2)


def fill(store: MarketStore) -> MarketStore:
    for i, day in enumerate(d for d in business_days(START, TODAY) if is_fixing_day(d)):
        store.fixings[day] = {"USD": str(Decimal("1.08") + Decimal(i) / 10000), "GBP": "0.8550"}
    trading = business_days(START, TODAY)
    store.yahoo_search["GB00BH4HKS39"] = "VOD.L"
    store.yahoo["VOD.L"] = YahooSeries(
        "GBp", {d: 70.0 + i / 100 for i, d in enumerate(trading)}, "Europe/London", 0, 8
    )
    store.yahoo["AAPL"] = YahooSeries("USD", {d: 170.0 + i for i, d in enumerate(trading)})
    store.tiingo["aapl"] = {d: str(170 + i) for i, d in enumerate(trading)}
    store.alphavantage["AAPL"] = {d: str(170 + i) for i, d in enumerate(trading)}
    store.coins = [
        {"id": "bitcoin", "symbol": "btc", "name": "Bitcoin"},
        {"id": "wrapped-bitcoin", "symbol": "wbtc"},
    ]
    start_ms = int(datetime.combine(START, datetime.min.time(), UTC).timestamp() * 1000)
    store.coingecko["bitcoin"] = [
        (start_ms + i * 86_400_000, 42000.0 + i) for i in range((TODAY - START).days + 1)
    ]
    return store


@pytest.fixture
def market() -> Iterator[tuple[MarketStore, str]]:
    store = fill(MarketStore())
    with serve(create_app(store)) as url:
        yield store, url


async def _build(
    database_url: str, tmp_path: Path, registry: ProviderRegistry, url: str, **overrides: Any
) -> AsyncIterator[Container]:
    settings = make_settings(database_url, tmp_path, **settings_for(url, **overrides))
    async with built(
        settings, registry=registry, clock=lambda: NOW, market_options={"clock": VirtualClock()}
    ) as c:
        yield c


@pytest.fixture
async def container(
    database_url: str, tmp_path: Path, registry: ProviderRegistry, market: tuple[MarketStore, str]
) -> AsyncIterator[Container]:
    async for c in _build(database_url, tmp_path, registry, market[1]):
        yield c


async def hold(container: Container, bank: MemoryProviders) -> None:
    """A user whose brokerage holds a London listing (by ISIN), a US ticker and bitcoin."""
    user = await seed_user(container)
    connection = await seed_connection(container, user)
    bank.accounts = [account("isa", type=AccountType.ISA, currency="GBP", balance=Decimal("5000"))]
    bank.holdings = {
        "isa": [
            holding("VOD", isin="GB00BH4HKS39", currency="GBP", quantity=Decimal("100")),
            holding("AAPL", currency="USD", asset_type=AssetType.EQUITY, quantity=Decimal("2")),
            holding(
                "BTC", currency="USD", asset_type=AssetType.CRYPTO, quantity=Decimal("0.5"), name="Bitcoin"
            ),
        ]
    }
    await container.sync.request(connection.id, user.id, SyncTrigger.MANUAL)
    await container.jobs.drain()


async def test_refresh_stores_fixings_and_backfills_held_instruments(
    container: Container, market: tuple[MarketStore, str], memory_providers: MemoryProviders
) -> None:
    store, _ = market
    await hold(container, memory_providers)
    report = await container.market_data.refresh_market_data(TODAY)
    assert report.fx_source == "ecb"
    assert store.requests["ecb:eurofxref-hist.xml"] == 1  # a first run backfills from the full history
    assert report.fx_stored == 2 * len(store.fixings)
    assert {r.key: r.source for r in report.instruments} == {
        "isin:GB00BH4HKS39": "yahoo",
        "ticker:AAPL": "yahoo",
        "ticker:BTC": "coingecko",
    }
    async with container.uow() as uow:
        book = await load_book(uow, TODAY)
        prices = await Prices.load(uow, {r.key for r in report.instruments}, TODAY)
    good_friday = book.rate("USD", "EUR", date(2024, 3, 29))
    assert good_friday is not None
    assert good_friday.day == date(2024, 3, 28)
    vod = prices.close("isin:GB00BH4HKS39", TODAY)
    assert vod is not None
    assert (vod.currency, vod.day) == ("GBP", TODAY)
    assert (
        vod.close == Decimal(str(70.0 + (len(business_days(START, TODAY)) - 1) / 100)) / 100
    )  # pence → pounds
    assert prices.instruments["isin:GB00BH4HKS39"].symbols == {"yahoo": "VOD.L"}
    assert prices.close("ticker:BTC", TODAY) is not None

    # The same day again: nothing new to fetch, nothing asked.
    before = sum(store.requests.values())
    again = await container.market_data.refresh_market_data(TODAY)
    assert sum(store.requests.values()) == before
    assert again.fx_stored == 0
    # The next business day asks for what is new only (the 90-day or daily file).
    store.fixings[TODAY + timedelta(days=3)] = {"USD": "1.0900", "GBP": "0.8600"}
    later = await container.market_data.refresh_market_data(TODAY + timedelta(days=3))
    assert later.fx_stored == 2
    assert store.requests["ecb:eurofxref-hist.xml"] == 1
    assert store.requests["ecb:eurofxref-daily.xml"] == 1  # Monday alone: the daily file


async def _fixing_days(container: Container) -> set[date]:
    async with container.uow() as uow:
        return {d for _, d, _ in await uow.market.fixings(TODAY, START)}


async def test_a_missed_fixing_day_is_fetched_by_the_next_refresh(
    container: Container, market: tuple[MarketStore, str]
) -> None:
    """Thursday's run did not happen: Friday's refresh needs Thursday and Friday, which the
    daily file (Friday only) does not hold."""
    store, _ = market
    await container.market_data.refresh_market_data(date(2024, 4, 3))
    report = await container.market_data.refresh_market_data(TODAY)
    assert (report.fx_source, report.fx_errors, report.fx_missing) == ("ecb", [], [])
    assert report.fx_stored == 4
    assert {date(2024, 4, 4), TODAY} <= await _fixing_days(container)
    assert store.requests["ecb:eurofxref-daily.xml"] == 0


async def test_a_refresh_of_a_past_day_stores_that_days_fixing(
    container: Container, market: tuple[MarketStore, str]
) -> None:
    """``--day`` a past day: the daily file holds a later day, so the 90-day file is read."""
    store, _ = market
    await container.market_data.refresh_market_data(date(2024, 4, 2))
    report = await container.market_data.refresh_market_data(date(2024, 4, 3))
    assert report.fx_stored == 2
    assert date(2024, 4, 3) in await _fixing_days(container)
    assert store.requests["ecb:eurofxref-hist-90d.xml"] == 1


async def test_a_working_day_without_a_fixing_is_reported_a_holiday_is_not(
    container: Container, market: tuple[MarketStore, str]
) -> None:
    store, _ = market
    await container.market_data.refresh_market_data(date(2024, 3, 27))
    del store.fixings[date(2024, 4, 2)]  # missing at the source
    report = await container.market_data.refresh_market_data(date(2024, 4, 3))
    # Good Friday 29 March and Easter Monday 1 April are TARGET holidays: no fixing expected.
    assert report.fx_missing == [date(2024, 4, 2)]
    assert report.fx_stored == 2 * 2  # 28 March and 3 April


@pytest.fixture
async def fallback(
    database_url: str, tmp_path: Path, registry: ProviderRegistry, market: tuple[MarketStore, str]
) -> AsyncIterator[Container]:
    overrides = {"market_fx_sources": "ecb,frankfurter", "market_price_sources": "yahoo,alphavantage,tiingo"}
    async for c in _build(database_url, tmp_path, registry, market[1], **overrides):
        yield c


async def test_failing_sources_fall_back_in_order(
    fallback: Container, market: tuple[MarketStore, str], memory_providers: MemoryProviders
) -> None:
    store, _ = market
    await hold(fallback, memory_providers)
    store.fail("ecb:eurofxref-hist.xml", 500, times=4)  # every retry fails
    store.fail("yahoo:chart", 429, times=20)  # rate limited past its retries
    store.av_limited = True  # HTTP 200 with a note: a rate limit, not an empty series
    report = await fallback.market_data.refresh_market_data(TODAY)
    assert report.fx_source == "frankfurter"
    assert report.fx_errors
    assert report.fx_errors[0].startswith("ecb:")
    aapl = next(r for r in report.instruments if r.key == "ticker:AAPL")
    assert aapl.source == "tiingo"
    assert [e.split(":")[0] for e in aapl.errors] == ["yahoo", "alphavantage"]
    assert "rate limit" in aapl.errors[1]
    crypto = next(r for r in report.instruments if r.key == "ticker:BTC")
    assert crypto.source is None  # no crypto source configured: unpriced, and said so
    assert "ticker:BTC" in report.unpriced


async def test_alpha_vantage_leaves_a_listing_not_in_usd_to_other_sources(
    fallback: Container, market: tuple[MarketStore, str], memory_providers: MemoryProviders
) -> None:
    """Alpha Vantage's daily series states no currency (London's is in pence): a GBP holding is
    never priced from it as USD, however the chain falls back."""
    store, _ = market
    store.alphavantage["TSCO.LON"] = {d: "290.5" for d in store.tiingo["aapl"]}
    user = await seed_user(fallback)
    connection = await seed_connection(fallback, user)
    isa = account("isa", type=AccountType.ISA, currency="GBP", balance=Decimal("5000"))
    memory_providers.accounts = [isa]
    memory_providers.holdings = {"isa": [holding("TSCO.LON", currency="GBP", quantity=Decimal("100"))]}
    await fallback.sync.request(connection.id, user.id, SyncTrigger.MANUAL)
    await fallback.jobs.drain()
    store.fail("yahoo:chart", 429, times=20)
    report = await fallback.market_data.refresh_market_data(TODAY)
    (tesco,) = report.instruments
    assert (tesco.source, tesco.stored) == (None, 0)
    assert [e.split(":")[0] for e in tesco.errors] == ["yahoo"]
    assert store.requests["alphavantage"] == 0
    async with fallback.uow() as uow:
        (instrument,) = await uow.market.instruments()
        assert (await uow.market.closes([instrument.id], TODAY)).get(instrument.id, []) == []


def test_cli_refresh_runs_the_use_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, market: tuple[MarketStore, str]
) -> None:
    store, url = market
    monkeypatch.setenv("FINSYNC_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'finsync.db'}")
    monkeypatch.setenv("FINSYNC_DATA_DIR", str(tmp_path / "var"))
    for name, value in settings_for(url).items():
        monkeypatch.setenv(f"FINSYNC_{name.upper()}", str(value))
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    result = runner.invoke(app, ["market-data", "refresh", "--day", TODAY.isoformat()])
    assert result.exit_code == 0, result.output
    assert f"{2 * len(store.fixings)} FX fixing(s) from ecb" in result.output
    # The fake's history starts in 2024, the year's backfill asks from 6 April 2023 on (then
    # Good Friday and Easter Monday, TARGET holidays, have no fixing to miss).
    assert "fx: no fixing for working day(s) 2023-04-06, 2023-04-11, " in result.output
    bad = runner.invoke(app, ["market-data", "refresh", "--day", "yesterday"])
    assert bad.exit_code == 2


SLOT = datetime(2024, 4, 4, 16, 30, tzinfo=UTC)  # a day before the container's clock (NOW)


class Timer:
    """A virtual clock for the in-process periodic loop; a sleep past ``stop`` parks for good."""

    def __init__(self, start: datetime, stop: datetime) -> None:
        self.now, self.stop = start, stop
        self.parked = asyncio.Event()

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if self.now + timedelta(seconds=seconds) > self.stop:
            self.parked.set()
            await asyncio.Event().wait()
        self.now += timedelta(seconds=seconds)
        await asyncio.sleep(0)


def _daily(container: Container) -> Periodic:
    daily = next(p for p in container.job_types.periodic if p.name == "refresh_market_data")
    assert (daily.cron, daily.seconds) == ("30 16 * * *", None)  # daily at 16:30 UTC
    return daily


async def _aapl_close_day(container: Container) -> date | None:
    async with container.uow() as uow:
        prices = await Prices.load(uow, {"ticker:AAPL"}, TODAY)
    close = prices.close("ticker:AAPL", TODAY)
    return None if close is None else close.day


async def test_the_daily_market_data_job_runs_in_process_at_its_time(
    container: Container, memory_providers: MemoryProviders
) -> None:
    """SQLite's in-process loop (here on either database): it waits for 16:30 and refreshes
    the day of that slot, not the day the refresh happens to read on the clock."""
    await hold(container, memory_providers)
    registry = JobRegistry()
    registry.periodic.append(_daily(container))
    timer = Timer(SLOT - timedelta(minutes=1), stop=SLOT + timedelta(minutes=1))
    queue = InProcessJobQueue(registry, clock=timer.clock, sleep=timer.sleep)
    queue.start()
    try:
        await asyncio.wait_for(timer.parked.wait(), 60)
    finally:
        await queue.aclose()
    assert timer.now >= SLOT  # not before its time
    assert await _aapl_close_day(container) == SLOT.date()


async def test_the_daily_market_data_job_is_a_procrastinate_periodic_task(
    container: Container, memory_providers: MemoryProviders
) -> None:
    if not isinstance(container.jobs, ProcrastinateJobQueue):
        pytest.skip("procrastinate runs the jobs on PostgreSQL only")
    await hold(container, memory_providers)
    container.jobs.register(periodic=True)
    crons = {key: task.cron for key, task in container.jobs.app.periodic_registry.periodic_tasks.items()}
    assert crons[("periodic.refresh_market_data", "refresh_market_data")] == _daily(container).cron
    # What procrastinate's periodic deferrer does at 16:30: defer the task with that timestamp.
    task = container.jobs.app.tasks["periodic.refresh_market_data"]
    await task.defer_async(timestamp=int(SLOT.timestamp()))
    await container.jobs.drain()
    assert await _aapl_close_day(container) == SLOT.date()
