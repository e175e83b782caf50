"""refresh_market_data(day): store new FX fixings and the closes of every held instrument.

A plain use case (the daily job calls it, as do the CLI and tests): it fetches from the
configured sources in fallback order, and commits what each step fetched, so a source
that fails half-way leaves what was already stored. New instruments get their history
backfilled from the first day they were held (or ``backfill_days`` back).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

import structlog

from finsync.domain.analytics_ports import HeldSecurity
from finsync.domain.entities import utcnow
from finsync.domain.enums import AssetType
from finsync.domain.errors import ProviderError
from finsync.domain.market import (
    FxFixing,
    Instrument,
    MarketSources,
    PriceSource,
    fixing_days,
    instrument_key,
    last_fixing_day,
)
from finsync.domain.ports import Now, UnitOfWorkFactory

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class InstrumentResult:
    key: str
    symbol: str
    source: str | None = None
    stored: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RefreshReport:
    day: date
    fx_source: str | None = None
    fx_stored: int = 0
    fx_errors: list[str] = field(default_factory=list)
    fx_missing: list[date] = field(default_factory=list)  # TARGET working days asked for, no fixing
    instruments: list[InstrumentResult] = field(default_factory=list)

    @property
    def unpriced(self) -> list[str]:
        return [r.key for r in self.instruments if r.source is None and r.errors]


def _instrument(held: HeldSecurity) -> Instrument:
    try:
        asset_type = AssetType(held.asset_type)
    except ValueError:
        asset_type = AssetType.OTHER
    return Instrument(
        key=instrument_key(held.isin, held.cusip, held.symbol),
        symbol=held.symbol,
        isin=held.isin,
        cusip=held.cusip,
        name=held.name,
        asset_type=asset_type,
        currency=held.currency,
    )


def _missing_fixings(fixings: list[FxFixing], start: date, end: date) -> list[date]:
    """TARGET working days of ``start..end`` the source gave no fixing for (not published yet,
    or missing at the source): said, since later days would silently reuse an earlier rate."""
    got = {f.day for f in fixings}
    return [day for day in fixing_days(start, end) if day not in got]


class MarketDataService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        sources: Callable[[date], MarketSources],
        backfill_days: int = 365,
        clock: Now = utcnow,
    ) -> None:
        self._uow = uow
        self._sources = sources
        self._backfill = timedelta(days=backfill_days)
        self._clock = clock

    async def refresh_market_data(self, day: date | None = None) -> RefreshReport:
        """FX fixings up to ``day`` (default: today, UTC), then closes of held instruments."""
        day = day or self._clock().date()
        report = RefreshReport(day=day)
        sources = self._sources(day)
        try:
            await self._refresh_fx(sources, day, report)
            await self._refresh_prices(sources, day, report)
        finally:
            await sources.aclose()
        log.info(
            "market_data_refreshed",
            day=day.isoformat(),
            fx_source=report.fx_source,
            fx_stored=report.fx_stored,
            fx_missing=len(report.fx_missing),
            instruments=len(report.instruments),
            unpriced=len(report.unpriced),
        )
        return report

    async def _refresh_fx(self, sources: MarketSources, day: date, report: RefreshReport) -> None:
        async with self._uow() as uow:
            latest = await uow.market.latest_fixing_day()
        # Nothing to ask for when the last fixing on or before ``day`` is already stored
        # (weekends and TARGET holidays have none).
        if latest is not None and latest >= last_fixing_day(day):
            return
        start = latest + timedelta(days=1) if latest is not None else day - self._backfill
        for source in sources.fx:  # fallback order: the first that answers wins
            try:
                fixings = await source.fixings(start, day)
            except ProviderError as exc:
                report.fx_errors.append(f"{source.name}: {exc.detail}")
                continue
            async with self._uow() as uow:
                report.fx_stored = await uow.market.save_fixings(fixings)
                await uow.commit()
            report.fx_source = source.name
            report.fx_missing = _missing_fixings(fixings, start, day)
            if report.fx_missing:
                log.warning(
                    "fx_fixings_missing",
                    source=source.name,
                    days=len(report.fx_missing),
                    first=report.fx_missing[0].isoformat(),
                    last=report.fx_missing[-1].isoformat(),
                )
            return

    async def _refresh_prices(self, sources: MarketSources, day: date, report: RefreshReport) -> None:
        async with self._uow() as uow:
            held = await uow.market.held_securities()
        for security in held:
            async with self._uow() as uow:
                instrument = await uow.market.add_instrument(_instrument(security))
                latest = await uow.market.latest_price_day(instrument.id)
                await uow.commit()
            if latest is not None:
                start = latest + timedelta(days=1)
            else:  # a new instrument: backfill from when it was first held
                start = min(security.first_day or day, day - self._backfill)
            result = InstrumentResult(key=instrument.key, symbol=instrument.symbol)
            report.instruments.append(result)
            if start > day:
                continue
            await self._price(sources.prices, instrument, start, day, result, known=latest is not None)

    async def _price(
        self,
        chain: list[PriceSource],
        instrument: Instrument,
        start: date,
        day: date,
        result: InstrumentResult,
        *,
        known: bool,
    ) -> None:
        """The first source that prices the instrument wins. A known instrument with no new
        closes (a weekend, a holiday) is up to date, not a failure."""
        for source in chain:
            if not source.handles(instrument):
                continue
            try:
                symbol = await source.symbol_for(instrument)
                if symbol is None:
                    result.errors.append(f"{source.name}: no symbol for {instrument.key}")
                    continue
                bars = await source.history(symbol, start, day)
            except ProviderError as exc:  # rate limited, down, or bad data: try the next source
                result.errors.append(f"{source.name}: {exc.detail}")
                continue
            if not bars and known and instrument.symbols.get(source.name) == symbol:
                result.source = source.name
                return
            if not bars:
                result.errors.append(f"{source.name}: no prices for {symbol}")
                continue
            instrument.symbols[source.name] = symbol
            instrument.currency = bars[-1].currency
            if instrument.backfilled_from is None or start < instrument.backfilled_from:
                instrument.backfilled_from = start
            async with self._uow() as uow:
                result.stored = await uow.market.save_prices(instrument.id, bars)
                await uow.market.save_instrument(instrument)
                await uow.commit()
            result.source = source.name
            return
