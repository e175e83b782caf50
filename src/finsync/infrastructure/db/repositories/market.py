"""Market data store (FX fixings, instruments, prices) and each account's holding history."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from finsync.domain.analytics_ports import HeldSecurity, PositionSpan
from finsync.domain.entities import Account, new_id, utcnow
from finsync.domain.enums import AssetType
from finsync.domain.market import FxFixing, Instrument, PriceBar, instrument_key
from finsync.domain.records import ProviderHolding
from finsync.infrastructure.db.analytics_tables import FxRateRow, HoldingHistoryRow, InstrumentRow, PriceRow
from finsync.infrastructure.db.mapping import column_text
from finsync.infrastructure.db.repositories.accounts import position_keys
from finsync.infrastructure.db.tables import HoldingRow

fx_rates = FxRateRow.__table__  # type: ignore[attr-defined]
instruments = InstrumentRow.__table__  # type: ignore[attr-defined]
prices = PriceRow.__table__  # type: ignore[attr-defined]
history = HoldingHistoryRow.__table__  # type: ignore[attr-defined]
holdings = HoldingRow.__table__  # type: ignore[attr-defined]
_CHUNK = 2_000


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """INSERT with ON CONFLICT support for the session's database."""
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return module.insert(table)


def _instrument(row: Any) -> Instrument:
    return Instrument(
        id=row["id"],
        key=row["key"],
        symbol=row["symbol"],
        isin=row["isin"],
        cusip=row["cusip"],
        exchange=row["exchange"],
        name=row["name"],
        asset_type=AssetType(row["asset_type"]),
        currency=row["currency"],
        symbols=dict(row["symbols"] or {}),
        backfilled_from=row["backfilled_from"],
    )


class SqlMarketRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def save_fixings(self, fixings: Sequence[FxFixing]) -> int:
        """Upsert by (currency, day): the ECB corrects a published rate now and then."""
        if not fixings:
            return 0
        now = utcnow()
        rows = {(f.currency, f.day): f for f in fixings}
        params = [
            {"currency": c, "day": d, "rate": f.rate, "source": f.source, "fetched_at": now}
            for (c, d), f in rows.items()
        ]
        stmt = dialect_insert(self._s, fx_rates)
        stmt = stmt.on_conflict_do_update(
            index_elements=["currency", "day"],
            set_={"rate": stmt.excluded.rate, "source": stmt.excluded.source, "fetched_at": now},
        )
        for start in range(0, len(params), _CHUNK):
            await self._s.execute(stmt, params[start : start + _CHUNK])
        return len(params)

    async def fixings(
        self, until: date, since: date | None = None, currencies: Collection[str] | None = None
    ) -> list[tuple[str, date, Decimal]]:
        f = fx_rates.c
        only = [] if currencies is None else [f.currency.in_(sorted(currencies))]
        stmt = select(f.currency, f.day, f.rate).where(f.day <= until, *only)
        if since is not None:
            last_before = (
                select(f.currency, func.max(f.day).label("day"))
                .where(f.day < since, *only)
                .group_by(f.currency)
            ).subquery()
            carried = select(f.currency, f.day, f.rate).join(
                last_before, and_(f.currency == last_before.c.currency, f.day == last_before.c.day)
            )
            both = stmt.where(f.day >= since).union_all(carried)
            return [(c, d, r) for c, d, r in (await self._s.execute(both)).all()]
        return [(c, d, r) for c, d, r in (await self._s.execute(stmt)).all()]

    async def latest_fixing_day(self) -> date | None:
        day: date | None = (await self._s.execute(select(func.max(fx_rates.c.day)))).scalar()
        return day

    async def instruments(self) -> list[Instrument]:
        rows = (await self._s.execute(select(instruments).order_by(instruments.c.key))).mappings()
        return [_instrument(r) for r in rows]

    async def add_instrument(self, instrument: Instrument) -> Instrument:
        values = {
            "id": instrument.id,
            "key": instrument.key,
            "symbol": column_text(instrument.symbol, 64) or "?",
            "isin": instrument.isin,
            "cusip": instrument.cusip,
            "exchange": instrument.exchange,
            "name": column_text(instrument.name, 300),
            "asset_type": instrument.asset_type.value,
            "currency": instrument.currency,
            "symbols": instrument.symbols,
            "backfilled_from": instrument.backfilled_from,
        }
        stmt = (
            dialect_insert(self._s, instruments).values(values).on_conflict_do_nothing(index_elements=["key"])
        )
        await self._s.execute(stmt)
        row = (
            (await self._s.execute(select(instruments).where(instruments.c.key == instrument.key)))
            .mappings()
            .one()
        )
        return _instrument(row)

    async def save_instrument(self, instrument: Instrument) -> None:
        await self._s.execute(
            update(instruments)
            .where(instruments.c.id == instrument.id)
            .values(
                symbols=instrument.symbols,
                currency=instrument.currency,
                backfilled_from=instrument.backfilled_from,
            )
        )

    async def save_prices(self, instrument_id: UUID, bars: Sequence[PriceBar]) -> int:
        """Upsert closes by day: a later fetch of the same day (a corrected close) wins."""
        if not bars:
            return 0
        params = [
            {
                "instrument_id": instrument_id,
                "day": b.day,
                "close": b.close,
                "currency": b.currency,
                "source": b.source,
                "adjusted": b.adjusted,
            }
            for b in {b.day: b for b in bars}.values()
        ]
        # One multi-row statement per chunk, not an executemany (one statement per row): the
        # holding-value triggers recompute the holders' accounts once per statement.
        for start in range(0, len(params), _CHUNK):
            stmt = dialect_insert(self._s, prices).values(params[start : start + _CHUNK])
            stmt = stmt.on_conflict_do_update(
                index_elements=["instrument_id", "day"],
                set_={c: stmt.excluded[c] for c in ("close", "currency", "source", "adjusted")},
            )
            await self._s.execute(stmt)
        return len(params)

    async def latest_price_day(self, instrument_id: UUID) -> date | None:
        stmt = select(func.max(prices.c.day)).where(prices.c.instrument_id == instrument_id)
        day: date | None = (await self._s.execute(stmt)).scalar()
        return day

    async def closes(
        self, instrument_ids: Sequence[UUID], until: date, since: date | None = None
    ) -> dict[UUID, list[PriceBar]]:
        """Closes per instrument up to ``until``; from ``since`` on plus the last one before it."""
        found: dict[UUID, list[PriceBar]] = {i: [] for i in instrument_ids}
        if not instrument_ids:
            return found
        p = prices.c
        columns = (p.instrument_id, p.day, p.close, p.currency, p.source, p.adjusted)
        ids = list(instrument_ids)
        rows: list[Any] = []
        stmt = select(*columns).where(p.instrument_id.in_(ids), p.day <= until)
        if since is not None:
            stmt = stmt.where(p.day >= since)
            floor = (
                select(p.instrument_id, func.max(p.day).label("day"))
                .where(p.instrument_id.in_(ids), p.day < since)
                .group_by(p.instrument_id)
                .subquery()
            )
            carried = select(*columns).join(
                floor, and_(p.instrument_id == floor.c.instrument_id, p.day == floor.c.day)
            )
            rows += (await self._s.execute(carried)).all()
        rows += (await self._s.execute(stmt.order_by(p.day))).all()
        for iid, day, close, currency, source, adjusted in sorted(rows, key=lambda r: r[1]):
            found[iid].append(PriceBar(day, close, currency, source, adjusted))
        return found

    async def held_securities(self) -> list[HeldSecurity]:
        """Distinct securities in current holdings and recorded history, with the first day held."""
        h, hh = holdings.c, history.c
        current = select(h.isin, h.cusip, h.symbol, h.asset_type, h.currency, h.name).distinct()
        first = {
            key: day
            for key, day in (
                await self._s.execute(
                    select(hh.instrument_key, func.min(hh.valid_from)).group_by(hh.instrument_key)
                )
            ).all()
        }
        found: dict[str, HeldSecurity] = {}
        for isin, cusip, symbol, asset_type, currency, name in (await self._s.execute(current)).all():
            key = instrument_key(isin, cusip, symbol)
            if key not in found:
                found[key] = HeldSecurity(isin, cusip, symbol, asset_type, currency, name, first.get(key))
        return list(found.values())


class SqlPositionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def record(self, account: Account, incoming: Sequence[ProviderHolding], day: date) -> int:
        """Close what changed and open what is new; an older day than the history's is ignored
        (a statement uploaded out of order cannot rewrite what came after it)."""
        hh = history.c
        stmt = select(history).where(hh.account_id == account.id, hh.valid_to.is_(None))
        open_rows = {r["position_key"]: r for r in (await self._s.execute(stmt)).mappings()}
        if any(r["valid_from"] > day for r in open_rows.values()):
            return 0
        quantities: dict[str, tuple[ProviderHolding, Decimal]] = {}
        keys = position_keys([r.position_key or r.isin or r.cusip or r.symbol for r in incoming])
        for record, key in zip(incoming, keys, strict=True):
            quantities[key] = (record, record.quantity)
        written = 0
        for key, row in open_rows.items():
            held = quantities.get(key)
            if held is not None and held[1] == row["quantity"]:
                quantities.pop(key)
                continue
            if row["valid_from"] == day:  # changed again the same day: that day's row is replaced
                await self._s.execute(history.delete().where(hh.id == row["id"]))
            else:
                await self._s.execute(update(history).where(hh.id == row["id"]).values(valid_to=day))
            written += 1
        rows = [
            {
                "id": new_id(),
                "user_id": account.user_id,
                "account_id": account.id,
                "position_key": key,
                "instrument_key": instrument_key(record.isin, record.cusip, record.symbol),
                "symbol": column_text(record.symbol, 64) or "?",
                "currency": record.currency,
                "asset_type": record.asset_type.value,
                "quantity": quantity,
                "valid_from": day,
                "valid_to": None,
            }
            for key, (record, quantity) in quantities.items()
            if quantity != 0
        ]
        for start in range(0, len(rows), _CHUNK // 2):  # multi-row statements, as in save_prices
            await self._s.execute(history.insert().values(rows[start : start + _CHUNK // 2]))
        return written + len(rows)

    async def spans(self, user_id: UUID, account_ids: Sequence[UUID] | None = None) -> list[PositionSpan]:
        hh = history.c
        stmt = select(history).where(hh.user_id == user_id)
        if account_ids is not None:
            stmt = stmt.where(hh.account_id.in_(list(account_ids)))
        rows = (await self._s.execute(stmt.order_by(hh.account_id, hh.valid_from))).mappings()
        return [
            PositionSpan(
                account_id=r["account_id"],
                position_key=r["position_key"],
                instrument_key=r["instrument_key"],
                symbol=r["symbol"],
                currency=r["currency"],
                quantity=r["quantity"],
                valid_from=r["valid_from"],
                valid_to=r["valid_to"],
            )
            for r in rows
        ]
