"""The exchange modules: credentials named as ccxt names them, one small module each, and the
pure mappers from ccxt's unified records."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import ccxt.async_support as ccxt
import pytest

from finsync.domain.enums import AssetType, TransactionStatus, TransactionSubtype, TransactionType
from finsync.domain.fx import Rate, RateBook
from finsync.providers.ccxt import EXCHANGES, mappers
from finsync.providers.ccxt.adapter import _fiats
from finsync.providers.ccxt.limits import banned_until
from finsync.providers.common import Wire

pytestmark = pytest.mark.unit
WIRE = Wire("test")


@pytest.mark.parametrize("module", EXCHANGES, ids=lambda m: m.EXCHANGE.slug)
async def test_credential_fields_are_exactly_what_ccxt_requires(module: object) -> None:
    exchange = module.EXCHANGE  # type: ignore[attr-defined]
    instance = getattr(ccxt, exchange.ccxt_id)()
    try:
        required = {name for name, needed in instance.requiredCredentials.items() if needed}
    finally:
        await instance.close()
    assert {f.name for f in exchange.credentials} == required
    assert {f.name for f in module.METADATA.credential_fields} == required | {"quote_currency"}  # type: ignore[attr-defined]
    assert all(f.secret for f in exchange.credentials if f.name != "apiKey")


def test_the_six_exchanges_have_the_slugs_people_look_for() -> None:
    assert sorted(m.METADATA.slug for m in EXCHANGES) == [
        "binance",
        "coinbase",
        "gateio",
        "htx",
        "kraken",
        "okx",
    ]


def test_holdings_value_assets_and_keep_the_quote_currency_as_cash() -> None:
    totals = {"BTC": "0.5", "USDT": "10", "EUR": "100", "PEPE": "5", "DOGE": "0"}
    prices = {"BTC": Decimal("55000"), "USDT": Decimal("0.92")}
    held, cash, value, unpriced = mappers.holdings(WIRE, totals, "EUR", prices)
    assert cash == Decimal(100)
    assert value == Decimal("27500.0") + Decimal("9.20")
    assert unpriced == ["PEPE"]
    by = {h.symbol: h for h in held}
    assert set(by) == {"BTC", "USDT", "PEPE"}
    assert by["BTC"].asset_type is AssetType.CRYPTO
    assert by["PEPE"].market_value is None
    assert by["USDT"].price_currency == "EUR"


def test_a_fiat_balance_in_another_currency_is_a_cash_holding() -> None:
    held, *_ = mappers.holdings(WIRE, {"GBP": "5"}, "USD", {"GBP": Decimal("1.25")})
    assert held[0].asset_type is AssetType.CASH


def test_an_asset_priced_in_another_fiat_is_converted_at_its_reference_rate() -> None:
    """GBP quote on an exchange quoting EUR: the EUR price stays the holding's price (its
    ``price_currency``), the value is in GBP at the cross rate through EUR of the last fixing."""
    book = RateBook.of(
        [("GBP", date(2025, 10, 10), Decimal("0.8700")), ("USD", date(2025, 10, 10), Decimal("1.16"))]
    )
    rate = book.rate("EUR", "GBP", date(2025, 10, 12))
    assert rate is not None
    totals = {"BTC": "0.5", "GBP": "20", "PEPE": "3", "DOGE": "1"}
    in_fiat = {
        "BTC": mappers.FiatPrice(Decimal("55500"), "EUR", rate),
        "DOGE": mappers.FiatPrice(Decimal("0.2"), "EUR", None),
    }
    held, cash, value, unpriced = mappers.holdings(WIRE, totals, "GBP", {}, in_fiat)
    by = {h.symbol: h for h in held}
    btc = by["BTC"]
    assert (btc.currency, btc.price_currency, btc.current_price) == ("GBP", "EUR", Decimal(55500))
    assert btc.market_value == Decimal("24142.5")  # 0.5 * 55500 * 0.87
    assert btc.raw["value_conversion"] == {
        "rate": "0.8700000000",
        "rate_date": "2025-10-10",
        "source": "ECB reference rate",
    }
    doge = by["DOGE"]  # priced, but no rate stored yet: no value, and not "unpriced" either
    assert (doge.price_currency, doge.current_price, doge.market_value) == ("EUR", Decimal("0.2"), None)
    assert (cash, value, unpriced) == (Decimal(20), Decimal("24142.5"), ["PEPE"])


def test_a_price_in_the_quote_currency_wins_over_one_in_another_fiat() -> None:
    rate = Rate("EUR", "USD", Decimal("1.16"), date(2025, 10, 10))
    held, *_ = mappers.holdings(
        WIRE,
        {"BTC": "1"},
        "USD",
        {"BTC": Decimal(64000)},
        {"BTC": mappers.FiatPrice(Decimal(55500), "EUR", rate)},
    )
    assert (held[0].price_currency, held[0].market_value) == ("USD", Decimal(64000))
    assert "value_conversion" not in held[0].raw


def test_the_fiat_to_price_in_is_eur_first_then_the_one_with_most_markets() -> None:
    def market(base: str, quote: str) -> dict[str, str]:
        return {"base": base, "quote": quote}

    markets = {
        "BTC/TRY": market("BTC", "TRY"),
        "ETH/TRY": market("ETH", "TRY"),
        "BTC/BRL": market("BTC", "BRL"),
        "EUR/USDT": market("EUR", "USDT"),
        "BTC/USDT": market("BTC", "USDT"),
        "USDT/ARS": market("USDT", "ARS"),  # no ECB rate: never a currency to convert from
    }
    assert _fiats(markets, "USD") == ["EUR", "TRY", "BRL"]
    assert _fiats(markets, "EUR") == ["TRY", "BRL"]


def test_a_sell_gives_the_quote_asset_and_keeps_a_fee_in_another_asset() -> None:
    item = {
        "id": "9",
        "symbol": "ETH/USDT",
        "side": "sell",
        "amount": "2",
        "price": "3000",
        "cost": "6000",
        "timestamp": 1_700_000_000_000,
        "fee": {"cost": "0.01", "currency": "BNB"},
        "info": {"big": "x"},
    }
    trade = mappers.trade(WIRE, item)
    assert (trade.type, trade.subtype) == (TransactionType.TRADE, TransactionSubtype.SELL)
    assert trade.amount == Decimal(6000)
    assert trade.currency == "USDT"
    assert trade.quantity == Decimal(-2)
    assert trade.fees is None
    assert trade.raw["fee"] == {"cost": "0.01", "currency": "BNB"}
    assert "info" not in trade.raw
    assert "fee 0.01 BNB" in (trade.description or "")


def test_a_trade_side_finsync_does_not_know_is_refused() -> None:
    with pytest.raises(ValueError, match="side"):
        mappers.trade(WIRE, {"id": "1", "symbol": "A/B", "side": "", "amount": "1", "timestamp": 0})


def test_transfers_carry_status_and_network_fee() -> None:
    out = mappers.transfer(
        WIRE,
        {
            "id": "w1",
            "type": "withdrawal",
            "currency": "ETH",
            "amount": "1.5",
            "status": "pending",
            "timestamp": 1_700_000_000_000,
            "fee": {"cost": "0.002", "currency": "ETH"},
            "network": "ERC20",
        },
    )
    assert out.subtype is TransactionSubtype.TRANSFER_OUT
    assert out.amount == Decimal("-1.5")
    assert out.status is TransactionStatus.PENDING
    assert out.fees == Decimal("0.002")
    assert "ERC20" in (out.description or "")


def test_only_reward_ledger_entries_are_income() -> None:
    types = frozenset({"staking", "reward"})
    reward = {
        "id": "L1",
        "type": "staking",
        "currency": "DOT.S",
        "amount": "0.3",
        "timestamp": 0,
        "direction": "in",
    }
    trade = dict(reward, id="L2", type="trade")
    earn = dict(reward, id="L3", type="other", info={"type": "reward"})
    assert mappers.ledger_income(WIRE, trade, types) is None
    income = mappers.ledger_income(WIRE, reward, types)
    assert income is not None
    assert (income.type, income.currency) == (TransactionType.INCOME, "DOT.S")
    assert mappers.ledger_income(WIRE, earn, types) is not None


def test_a_stated_ban_end_is_read_in_milliseconds_or_seconds() -> None:
    assert banned_until("Way too much request weight used; IP banned until 1732900000000.") == 1_732_900_000.0
    assert banned_until("banned until 1732900000") == 1_732_900_000.0
    assert banned_until("Too many requests") is None
