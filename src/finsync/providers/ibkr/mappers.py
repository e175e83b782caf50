"""IBKR Flex statement (ibflex's typed objects) → finsync records. Pure: no I/O, exact Decimals.

One ``FlexStatement`` per IBKR account. IBKR accounts hold several currencies: the account's
currency is its base currency (``AccountInformation.currency``), its balance is in that
currency, and each currency's cash (``CashReport``) is a cash holding of its own. Positions
are valued in their trading currency by IBKR; a holding's ``market_value`` is converted to
base with IBKR's own ``fxRateToBase``, and its prices stay in the trading currency
(``price_currency``). Ids are IBKR's ``transactionID`` (``tradeID`` when absent), so a
re-sync of an overlapping statement rewrites nothing.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from ibflex import Types, enums

from finsync.domain.enums import (
    AccountType,
    AssetType,
    TransactionStatus,
    TransactionSubtype,
    TransactionType,
)
from finsync.domain.errors import BadData
from finsync.domain.records import ProviderAccount, ProviderHolding, ProviderTransaction

INSTITUTION = "Interactive Brokers"
BASE_SUMMARY = "BASE_SUMMARY"  # CashReport's total row, in the base currency
# IBKR stamps statements in US Eastern time.
EASTERN = ZoneInfo("America/New_York")
T, S = TransactionType, TransactionSubtype

_ASSETS: dict[enums.AssetClass, AssetType] = {
    enums.AssetClass.STOCK: AssetType.EQUITY,
    enums.AssetClass.OPTION: AssetType.OPTION,
    enums.AssetClass.FUTUREOPTION: AssetType.OPTION,
    enums.AssetClass.WARRANT: AssetType.OPTION,
    enums.AssetClass.BOND: AssetType.BOND,
    enums.AssetClass.BILL: AssetType.BOND,
    enums.AssetClass.MUTUALFUND: AssetType.FUND,
    enums.AssetClass.CRYPTOCURRENCY: AssetType.CRYPTO,
    enums.AssetClass.CASH: AssetType.CASH,
}
_CASH_KINDS: dict[enums.CashAction, tuple[TransactionType, TransactionSubtype]] = {
    enums.CashAction.DIVIDEND: (T.INCOME, S.DIVIDEND),
    enums.CashAction.PAYMENTINLIEU: (T.INCOME, S.DIVIDEND),
    enums.CashAction.WHTAX: (T.TAX, S.TAX),
    enums.CashAction.BROKERINTRCVD: (T.INCOME, S.INTEREST),
    enums.CashAction.BONDINTRCVD: (T.INCOME, S.INTEREST),
    enums.CashAction.BROKERINTPAID: (T.FEE, S.INTEREST),
    enums.CashAction.BONDINTPAID: (T.FEE, S.INTEREST),
    enums.CashAction.FEES: (T.FEE, S.FEE),
    enums.CashAction.ADVISORFEES: (T.FEE, S.FEE),
    enums.CashAction.COMMADJ: (T.FEE, S.FEE),
}
# Corporate actions that change a holding's share count without a trade.
_SPLITS = frozenset(
    {
        enums.Reorg.FORWARDSPLIT,
        enums.Reorg.REVERSESPLIT,
        enums.Reorg.FORWARDSPLITISSUE,
        enums.Reorg.CONTRACTSPLIT,
        enums.Reorg.STOCKDIV,
    }
)


def _currency(value: str | None, what: str) -> str:
    code = (value or "").strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise BadData(f"ibkr: {what} has no currency")
    return code


def _level(value: str | None) -> str:
    return (value or "").upper()


# Rows a person would see once. IBKR adds roll-ups when a query asks for them: open positions
# by LOT beside their SUMMARY, trades by ORDER/SYMBOL_SUMMARY/CLOSED_LOT beside each EXECUTION,
# cash and corporate-action SUMMARY rows beside their DETAIL.
def _position_row(level: str | None) -> bool:
    return _level(level) != "LOT"


def _trade_row(level: str | None) -> bool:
    return _level(level) in ("", "EXECUTION")


def _detail_row(level: str | None) -> bool:
    return _level(level) != "SUMMARY"


def _mine(account_id: str, item_account: str | None) -> bool:
    return item_account in (None, "", account_id)


def base_currency(stmt: Types.FlexStatement) -> str:
    """Account Information's currency; else the currency IBKR values at rate 1; else the only
    cash currency. A query without Account Information and several currencies is unreadable."""
    info = stmt.AccountInformation
    if info is not None and info.currency:
        return _currency(info.currency, "AccountInformation")
    for currency, rate in _printed_rates(stmt):
        if rate == 1 and currency:
            return _currency(currency, "a statement row")
    cash = {c.currency for c in stmt.CashReport if c.currency and c.currency != BASE_SUMMARY}
    if len(cash) == 1:
        return _currency(cash.pop(), "CashReport")
    raise BadData(
        f"ibkr: the statement of {stmt.accountId} does not say its base currency; tick "
        "Account Information (Currency) in the Flex query"
    )


def _printed_rates(stmt: Types.FlexStatement) -> list[tuple[str | None, Decimal | None]]:
    """(currency, fxRateToBase) of every row that prints one; positions last (the latest rate)."""
    rows: list[tuple[str | None, Decimal | None]] = [(c.currency, c.fxRateToBase) for c in stmt.Trades]
    rows += [(c.currency, c.fxRateToBase) for c in stmt.CashTransactions]
    return rows + [(p.currency, p.fxRateToBase) for p in stmt.OpenPositions]


def rates_to_base(stmt: Types.FlexStatement, base: str) -> dict[str, Decimal]:
    """Currency → its rate to base on the statement's last day: ConversionRates when the query
    has them, else the rates IBKR printed on positions and rows."""
    rates: dict[str, Decimal] = {base: Decimal(1)}
    # The latest printed rate wins: rows in date order (stable), positions (the last day) last.
    dated = [(_when(t.tradeDate, t.reportDate), t.currency, t.fxRateToBase) for t in stmt.Trades]
    dated += [(_when(c.dateTime, c.reportDate), c.currency, c.fxRateToBase) for c in stmt.CashTransactions]
    dated.sort(key=lambda row: row[0] or date.min)
    for _, currency, rate in dated + [(None, p.currency, p.fxRateToBase) for p in stmt.OpenPositions]:
        if currency and rate:
            rates[currency] = rate
    latest: dict[str, tuple[date, Decimal]] = {}
    for conv in stmt.ConversionRates:
        if not (conv.toCurrency == base and conv.fromCurrency and conv.rate and conv.reportDate):
            continue
        if conv.fromCurrency not in latest or latest[conv.fromCurrency][0] <= conv.reportDate:
            latest[conv.fromCurrency] = (conv.reportDate, conv.rate)
    rates.update({cur: rate for cur, (_, rate) in latest.items()})
    rates[base] = Decimal(1)
    return rates


def _generated_at(stmt: Types.FlexStatement) -> datetime | None:
    when = stmt.whenGenerated
    if when is None:
        return None
    return (when.replace(tzinfo=EASTERN) if when.tzinfo is None else when).astimezone(UTC)


def map_account(stmt: Types.FlexStatement) -> ProviderAccount:
    """Balance: IBKR's own total in base (Equity Summary) when the query has it, else cash plus
    positions in base; ``cash_value`` is the CashReport's base-currency total."""
    if not stmt.accountId:
        raise BadData("ibkr: a statement without an accountId")
    base = base_currency(stmt)
    rates = rates_to_base(stmt, base)
    mine = stmt.accountId
    report = [c for c in stmt.CashReport if _mine(mine, c.accountId)]  # as ``holdings`` reads them
    cash = next((c.endingCash for c in report if c.currency == BASE_SUMMARY), None)
    if cash is None:
        rows = [c for c in report if c.currency and c.endingCash is not None]
        if rows and all(c.currency in rates for c in rows):
            cash = sum((c.endingCash * rates[c.currency or ""] for c in rows if c.endingCash), Decimal(0))
    positions = [p for p in stmt.OpenPositions if _position_row(p.levelOfDetail) and _mine(mine, p.accountId)]
    invested: Decimal | None = Decimal(0)
    for position in positions:
        value = _value_in_base(position, rates)
        invested = None if value is None or invested is None else invested + value
    equity = [
        e
        for e in stmt.EquitySummaryInBase
        if e.total is not None and e.reportDate is not None and _mine(mine, e.accountId)
    ]
    balance = max(equity, key=lambda e: e.reportDate or date.min).total if equity else None
    if balance is None and cash is not None and invested is not None:
        balance = cash + invested
    info = stmt.AccountInformation
    alias = (info.acctAlias if info is not None else None) or ""
    return ProviderAccount(
        provider_account_id=stmt.accountId,
        name=f"IBKR {alias or stmt.accountId}",
        type=AccountType.BROKERAGE,
        currency=base,
        institution=INSTITUTION,
        balance=balance,
        cash_value=cash,
        holdings_value=invested,
        balance_at=_generated_at(stmt),
        raw={
            "accountId": stmt.accountId,
            "fromDate": stmt.fromDate.isoformat(),
            "toDate": stmt.toDate.isoformat(),
            "period": stmt.period,
            "currencies": sorted({c.currency or "" for c in stmt.CashReport} - {"", BASE_SUMMARY}),
        },
    )


def _value_in_base(position: Types.OpenPosition, rates: dict[str, Decimal]) -> Decimal | None:
    if position.positionValueInBase is not None:
        return position.positionValueInBase
    if position.positionValue is None:
        return None
    rate = position.fxRateToBase or rates.get(position.currency or "")
    return None if rate is None else position.positionValue * rate


def _asset(category: enums.AssetClass | None, sub: str | None) -> AssetType:
    if category is enums.AssetClass.STOCK and (sub or "").upper() == "ETF":
        return AssetType.ETF
    return _ASSETS.get(category, AssetType.OTHER) if category is not None else AssetType.OTHER


def map_position(position: Types.OpenPosition, base: str, rates: dict[str, Decimal]) -> ProviderHolding:
    """A position: prices (and cost) in its trading currency, values in base when IBKR gives a
    rate (else in the trading currency, said by ``currency``)."""
    if position.position is None or not position.symbol:
        raise BadData("ibkr: an open position without symbol or quantity")
    trading = _currency(position.currency, f"position {position.symbol}")
    quantity = position.position
    if position.side is enums.LongShort.SHORT and quantity > 0:
        quantity = -quantity
    rate = position.fxRateToBase or rates.get(trading)
    in_base = rate is not None
    value = _value_in_base(position, rates) if in_base else position.positionValue
    pnl = position.fifoPnlUnrealized
    if pnl is not None and in_base and rate is not None:
        pnl = pnl * rate
    return ProviderHolding(
        symbol=position.symbol,
        quantity=quantity,
        currency=base if in_base else trading,
        price_currency=trading,
        position_key=f"conid:{position.conid}" if position.conid else None,
        name=position.description,
        isin=position.isin or None,
        cusip=position.cusip or None,
        asset_type=_asset(position.assetCategory, position.subCategory),
        average_cost=position.costBasisPrice if position.costBasisPrice is not None else position.openPrice,
        current_price=position.markPrice,
        market_value=value,
        unrealized_pnl=pnl,
        raw={"conid": position.conid, "assetCategory": _enum(position.assetCategory),
             "multiplier": _text(position.multiplier), "fxRateToBase": _text(position.fxRateToBase)},
    )  # fmt: skip


def map_cash(row: Types.CashReportCurrency, base: str, rates: dict[str, Decimal]) -> ProviderHolding:
    """One currency's cash (IBKR's ``endingCash``) as a cash holding: its amount in that
    currency, valued in base when the rate is known."""
    currency = _currency(row.currency, "a CashReport row")
    amount = row.endingCash if row.endingCash is not None else Decimal(0)
    rate = rates.get(currency)
    return ProviderHolding(
        symbol=currency,
        quantity=amount,
        currency=base if rate is not None else currency,
        price_currency=currency,
        position_key=f"cash:{currency}",
        name=f"{currency} cash",
        asset_type=AssetType.CASH,
        average_cost=Decimal(1),
        current_price=Decimal(1),
        market_value=amount * rate if rate is not None else amount,
        raw={"currency": currency, "endingSettledCash": _text(row.endingSettledCash)},
    )


def holdings(stmt: Types.FlexStatement) -> list[ProviderHolding]:
    base = base_currency(stmt)
    rates = rates_to_base(stmt, base)
    positions = [
        map_position(p, base, rates)
        for p in stmt.OpenPositions
        if _position_row(p.levelOfDetail) and _mine(stmt.accountId, p.accountId)
    ]
    cash = [
        map_cash(c, base, rates)
        for c in stmt.CashReport
        if c.currency and c.currency != BASE_SUMMARY and _mine(stmt.accountId, c.accountId)
    ]
    return positions + [c for c in cash if c.quantity != 0]


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _enum(value: enums.EnumType | None) -> str | None:
    return None if value is None else str(value.value)


def _day(when: datetime | date | None, fallback: date | None, what: str) -> date:
    if isinstance(when, datetime):
        return when.date()
    if isinstance(when, date):
        return when
    if fallback is not None:
        return fallback
    raise BadData(f"ibkr: {what} has no date")


def _when(when: datetime | date | None, fallback: date | None) -> date | None:
    """The day ``_day`` gives a row, or None where it has none (``_day`` then refuses it)."""
    return when.date() if isinstance(when, datetime) else when if isinstance(when, date) else fallback


def map_trade(trade: Types.Trade) -> ProviderTransaction:
    """A fill: ``amount`` is IBKR's ``netCash`` (proceeds with commission and taxes, money in +,
    out -) in the trade's currency; ``fees`` the commission. An FX conversion (asset class
    CASH, symbol ``EUR.USD``) is a trade of the pair: quantity in the first currency, amount in
    the second."""
    ident = trade.transactionID or trade.tradeID
    if not ident:
        raise BadData("ibkr: a trade without transactionID or tradeID")
    side = trade.buySell
    if side is None:
        raise BadData(f"ibkr: trade {ident} has no buySell")
    buy = side in (enums.BuySell.BUY, enums.BuySell.CANCELBUY)
    cancelled = side in (enums.BuySell.CANCELBUY, enums.BuySell.CANCELSELL) or (
        trade.transactionType in (enums.TradeType.TRADECANCEL, enums.TradeType.FRACSHARECANCEL)
    )
    currency = _currency(trade.currency, f"trade {ident}")
    quantity = abs(trade.quantity) if trade.quantity is not None else None
    commission = trade.ibCommission or Decimal(0)
    same = (trade.ibCommissionCurrency or currency) == currency
    net = trade.netCash
    if net is None:
        net = (trade.proceeds or Decimal(0)) + (commission if same else 0) + (trade.taxes or Decimal(0))
    fx = trade.assetCategory is enums.AssetClass.CASH
    verb = "Buy" if buy else "Sell"
    what = f"{verb} {quantity} {trade.symbol}"
    if fx:
        what = f"FX conversion: {what[0].lower()}{what[1:]}"
    return ProviderTransaction(
        provider_transaction_id=f"trade:{ident}",
        type=T.TRADE,
        subtype=S.BUY if buy else S.SELL,
        amount=net,
        currency=currency,
        transaction_date=_day(trade.tradeDate, trade.reportDate, f"trade {ident}"),
        settlement_date=trade.settleDateTarget,
        status=TransactionStatus.CANCELLED if cancelled else TransactionStatus.SETTLED,
        symbol=trade.symbol,
        quantity=quantity,
        unit_price=trade.tradePrice,
        fees=-commission if same and commission else None,
        description=what,
        raw={"tradeID": trade.tradeID, "transactionID": trade.transactionID, "conid": trade.conid,
             "assetCategory": _enum(trade.assetCategory), "multiplier": _text(trade.multiplier),
             "ibCommission": _text(trade.ibCommission), "ibCommissionCurrency": trade.ibCommissionCurrency},
    )  # fmt: skip


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode()).hexdigest()[:24]


def map_cash_transaction(item: Types.CashTransaction, occurrence: int = 0) -> ProviderTransaction:
    """Dividends, withholding tax, interest, fees, deposits and withdrawals, signed as IBKR
    signs them. Rows without ``transactionID`` (old statements) get a content digest plus an
    occurrence index."""
    if item.amount is None:
        raise BadData("ibkr: a cash transaction without an amount")
    currency = _currency(item.currency, "a cash transaction")
    when = _day(item.dateTime, item.reportDate or item.settleDate, "a cash transaction")
    if item.type is enums.CashAction.DEPOSITWITHDRAW:
        kind = (T.TRANSFER, S.DEPOSIT if item.amount >= 0 else S.WITHDRAWAL)
    else:
        kind = _CASH_KINDS.get(item.type, (T.OTHER, S.OTHER)) if item.type is not None else (T.OTHER, S.OTHER)
    ident = item.transactionID or "h:" + _digest(
        _enum(item.type), when, item.amount, currency, item.conid, item.description, occurrence
    )
    return ProviderTransaction(
        provider_transaction_id=f"cash:{ident}",
        type=kind[0],
        subtype=kind[1],
        amount=item.amount,
        currency=currency,
        transaction_date=when,
        settlement_date=item.settleDate,
        symbol=item.symbol or None,
        description=item.description or _enum(item.type),
        raw={"type": _enum(item.type), "transactionID": item.transactionID, "conid": item.conid},
    )


def map_corporate_action(action: Types.CorporateAction, occurrence: int = 0) -> ProviderTransaction:
    """Splits (forward, reverse, stock dividends) are ``other/split`` with the signed change in
    shares as ``quantity``; other reorganisations are ``other/other`` and keep their text."""
    currency = _currency(action.currency, "a corporate action")
    when = _day(action.dateTime, action.reportDate, "a corporate action")
    split = action.type in _SPLITS
    ident = action.transactionID or "h:" + _digest(
        action.actionID, action.conid, when, action.quantity, action.description, occurrence
    )
    return ProviderTransaction(
        provider_transaction_id=f"ca:{ident}",
        type=T.OTHER,
        subtype=S.SPLIT if split else S.OTHER,
        amount=action.amount or action.proceeds or Decimal(0),
        currency=currency,
        transaction_date=when,
        symbol=action.symbol or None,
        quantity=action.quantity,
        description=action.actionDescription or action.description or _enum(action.type),
        raw={"type": _enum(action.type), "actionID": action.actionID, "conid": action.conid,
             "transactionID": action.transactionID},
    )  # fmt: skip


def _occurrences(keys: Iterable[object]) -> list[int]:
    """For each item, how many identical items came before it (ids for rows without one)."""
    seen: Counter[object] = Counter()
    out = []
    for key in keys:
        out.append(seen[key])
        seen[key] += 1
    return out


def transactions(stmt: Types.FlexStatement) -> list[ProviderTransaction]:
    """Every dated money or share movement of the statement's account, detail rows only."""
    mine = stmt.accountId
    trades = [map_trade(t) for t in stmt.Trades if _trade_row(t.levelOfDetail) and _mine(mine, t.accountId)]
    cash_rows = [
        c for c in stmt.CashTransactions if _detail_row(c.levelOfDetail) and _mine(mine, c.accountId)
    ]
    # Occurrences are counted on what the digest of a row without transactionID reads (its
    # day, not its time): two identical rows on one day at different times stay two rows.
    cash_keys = [
        (
            c.type,
            _when(c.dateTime, c.reportDate or c.settleDate),
            c.amount,
            c.currency,
            c.conid,
            c.description,
        )
        for c in cash_rows
    ]
    cash = [map_cash_transaction(c, n) for c, n in zip(cash_rows, _occurrences(cash_keys), strict=True)]
    actions = [a for a in stmt.CorporateActions if _detail_row(a.levelOfDetail) and _mine(mine, a.accountId)]
    action_keys = [
        (a.actionID, a.conid, _when(a.dateTime, a.reportDate), a.quantity, a.description) for a in actions
    ]
    corporate = [map_corporate_action(a, n) for a, n in zip(actions, _occurrences(action_keys), strict=True)]
    return trades + cash + corporate
