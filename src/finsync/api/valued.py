"""``?currency=`` for the data routes: accounts, holdings and net worth converted, rate alongside."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from finsync.api.analytics_schemas import (
    AccountCountedElsewhere,
    AccountReachOut,
    AccountRef,
    AccountValued,
    AccountWorthOut,
    ConvertedOut,
    CurrencyTotalValued,
    HoldingValued,
    NetWorthValued,
    ValueConversionOut,
)
from finsync.application.preferences import check_currency
from finsync.application.valuation import (
    Converted,
    Prices,
    convert,
    duplicates,
    load_book,
    value_holdings,
)
from finsync.bootstrap import Container
from finsync.domain.entities import Account, Holding, User
from finsync.domain.market import instrument_key
from finsync.domain.ports import UnitOfWork
from finsync.domain.records import VALUE_CONVERSION

_LOOKBACK = timedelta(days=14)


def _out(c: Converted | None) -> ConvertedOut | None:
    return (
        None
        if c is None
        else ConvertedOut(amount=c.amount, currency=c.currency, rate=c.rate, rate_date=c.rate_date)
    )


async def accounts_in(
    uow: UnitOfWork, container: Container, accounts: Sequence[Account], currency: str | None
) -> list[AccountValued]:
    out = [AccountValued.model_validate(a, from_attributes=True) for a in accounts]
    if any(a.iban is not None for a in accounts):
        found = await duplicates(uow, accounts[0].user_id, container.clock())
        for account_out in out:
            account_out.duplicate_of = found.live_of.get(account_out.id)
            account_out.also_reached_through = [
                AccountReachOut(account_id=p.account_id, connection_id=p.connection_id, provider=p.provider)
                for p in found.peers.get(account_out.id, [])
            ]
    if currency is None:
        return out
    target = await check_currency(uow, currency)
    day = container.clock().date()
    book = await load_book(uow, day, day - _LOOKBACK, {a.currency for a in accounts} | {target})
    for valued, account in zip(out, accounts, strict=True):
        if account.balance is not None:
            valued.converted = _out(convert(book, account.balance, account.currency, target, day))
    return out


async def holdings_in(
    uow: UnitOfWork, container: Container, holdings: Sequence[Holding], currency: str | None
) -> list[HoldingValued]:
    out = [HoldingValued.model_validate(h, from_attributes=True) for h in holdings]
    for valued, holding in zip(out, holdings, strict=True):
        conversion = holding.raw.get(VALUE_CONVERSION)
        if isinstance(conversion, dict):
            valued.value_conversion = ValueConversionOut.model_validate(conversion)
    if currency is None:
        return out
    target = await check_currency(uow, currency)
    day = container.clock().date()
    prices = await Prices.load(
        uow, {instrument_key(h.isin, h.cusip, h.symbol) for h in holdings}, day, day - _LOOKBACK
    )
    currencies = {h.currency for h in holdings} | {target}
    currencies |= {bars[-1].currency for bars in prices.bars.values() if bars}
    book = await load_book(uow, day, day - _LOOKBACK, currencies)
    for valued, v in zip(out, value_holdings(holdings, prices, book, target, day), strict=True):
        valued.valuation_source = v.price_source
        valued.valuation_price = v.price
        valued.valuation_price_currency = v.price_currency
        valued.valuation_date = v.price_date
        valued.converted = _out(v.value)
    return out


def _ref(account: Account) -> AccountRef:
    return AccountRef(
        id=account.id,
        name=account.name,
        type=account.type.value,
        currency=account.currency,
        connection_id=account.connection_id,
    )


async def net_worth(
    uow: UnitOfWork, container: Container, user: User, currency: str | None
) -> NetWorthValued:
    target = None if currency is None else await check_currency(uow, currency)
    worth = await container.net_worth.current(uow, user, target)
    shadowed = {a.id for a, _ in worth.counted_elsewhere}
    totals = (await uow.accounts.totals_by_currency(user.id, shadowed)).totals
    return NetWorthValued(
        as_of=container.clock(),
        totals=[CurrencyTotalValued(currency=t.currency, total=t.total, accounts=t.accounts) for t in totals],
        currency=worth.currency,
        total=worth.total,
        assets=worth.assets,
        liabilities=worth.liabilities,
        accounts=[
            AccountWorthOut(
                account_id=w.account.id,
                name=w.account.name,
                type=w.account.type.value,
                category=w.category,
                provider=w.account.provider,
                currency=w.account.currency,
                value=ConvertedOut(
                    amount=w.value.amount,
                    currency=w.value.currency,
                    rate=w.value.rate,
                    rate_date=w.value.rate_date,
                ),
                valued_by=w.valued_by,
            )
            for w in worth.accounts
        ],
        by_category=worth.by_category,
        by_provider=worth.by_provider,
        accounts_without_balance=[_ref(a) for a in worth.without_balance],
        accounts_without_rate=[_ref(a) for a in worth.without_rate],
        accounts_counted_elsewhere=[
            AccountCountedElsewhere(**_ref(a).model_dump(), duplicate_of=live)
            for a, live in worth.counted_elsewhere
        ],
    )
