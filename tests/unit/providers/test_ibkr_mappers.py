"""IBKR Flex statement → records: the fixture written from IBKR's documented format (two
accounts, USD and EUR, stocks, an ETF, an option, an FX conversion, cash transactions, a split)
through defusedxml + ibflex and the mappers; hostile and odd statements; the daily schedule."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time
from decimal import Decimal

import pytest
from defusedxml import ElementTree
from ibflex import Types

from finsync.domain.enums import AssetType, TransactionStatus, TransactionSubtype, TransactionType
from finsync.domain.errors import BadData
from finsync.domain.schedule import SyncSchedule
from finsync.providers.ibkr import METADATA, mappers
from finsync.providers.ibkr.client import FlexFailure, error_for, failure_of, read_statement
from finsync.providers.spec import CredentialField
from tests.fakes.ibkr import fixture

D = Decimal


Statements = dict[str, Types.FlexStatement]


@pytest.fixture(scope="module")
def statements() -> Statements:
    return {s.accountId: s for s in read_statement(fixture("statement.xml")).FlexStatements}


def _main(statements: Statements) -> Types.FlexStatement:
    return statements["U1111111"]


def test_one_account_per_statement_in_its_base_currency(statements: Statements) -> None:
    main = mappers.map_account(_main(statements))
    assert (main.provider_account_id, main.name, main.currency) == ("U1111111", "IBKR Main", "USD")
    assert main.balance == D("36246.74")  # IBKR's own total in base, the latest report date
    assert main.cash_value == D("8063.50")  # the CashReport's BASE_SUMMARY row
    assert main.holdings_value == D("11575") + D("13500") + D("2368") * D("1.0550") + D("610")
    assert main.balance_at == datetime(2026, 11, 28, 10, 10, 42, tzinfo=UTC)  # 05:10:42 New York
    euro = mappers.map_account(statements["U2222222"])
    assert (euro.name, euro.currency) == ("IBKR U2222222", "EUR")
    assert euro.balance == D("3077") + D("2100")  # no NAV section: cash plus positions


def test_positions_keep_trading_currency_prices_and_base_values(statements: Statements) -> None:
    held = {h.symbol: h for h in mappers.holdings(_main(statements))}
    assert sorted(held) == ["AAPL", "AAPL  261218C00250000", "EUR", "NVDA", "USD", "VWCE"]  # no LOT rows
    etf = held["VWCE"]
    assert (etf.asset_type, etf.currency, etf.price_currency) == (AssetType.ETF, "USD", "EUR")
    assert (etf.quantity, etf.current_price, etf.average_cost) == (D("20"), D("118.40"), D("110.5625"))
    assert etf.market_value == D("2368") * D("1.0550")
    assert etf.unrealized_pnl == D("156.75") * D("1.0550")
    assert (etf.isin, etf.position_key) == ("IE00BK5BQT80", "conid:128831206")
    option = held["AAPL  261218C00250000"]
    assert (option.asset_type, option.quantity, option.market_value) == (AssetType.OPTION, D(1), D(610))
    assert option.raw["multiplier"] == "100"
    assert held["AAPL"].asset_type is AssetType.EQUITY
    assert held["AAPL"].cusip == "037833100"


def test_each_currency_of_cash_is_a_cash_holding(statements: Statements) -> None:
    held = {h.symbol: h for h in mappers.holdings(_main(statements))}
    eur, usd = held["EUR"], held["USD"]
    assert (eur.asset_type, eur.quantity, eur.price_currency) == (AssetType.CASH, D("289.60"), "EUR")
    assert (eur.currency, eur.market_value) == ("USD", D("289.60") * D("1.0550"))  # latest rate
    assert (usd.quantity, usd.currency, usd.market_value) == (D("7757.97"), "USD", D("7757.97"))
    assert eur.position_key == "cash:EUR"


def test_trades_with_commissions_as_fees_and_fx_conversions(statements: Statements) -> None:
    txns = {t.provider_transaction_id: t for t in mappers.transactions(_main(statements))}
    aapl = txns["trade:2911000003"]
    assert (aapl.type, aapl.subtype, aapl.amount, aapl.currency) == (
        TransactionType.TRADE, TransactionSubtype.BUY, D("-9011"), "USD",
    )  # fmt: skip
    assert (aapl.quantity, aapl.unit_price, aapl.fees) == (D("50"), D("180.2"), D("1"))
    assert (aapl.transaction_date, aapl.settlement_date) == (date(2026, 3, 10), date(2026, 3, 11))
    etf = txns["trade:2911000004"]
    assert (etf.amount, etf.currency, etf.fees) == (D("-2211.25"), "EUR", D("1.25"))
    fx = txns["trade:2911000001"]
    assert (fx.symbol, fx.quantity, fx.amount, fx.currency) == ("EUR.USD", D("2500"), D("-2714.5"), "USD")
    assert fx.description == "FX conversion: buy 2500 EUR.USD"
    option = txns["trade:2911000005"]
    assert (option.amount, option.fees, option.quantity) == (D("-520.70"), D("0.70"), D("1"))
    assert not [
        t for t in txns if t.startswith("trade:") and txns[t].raw["tradeID"] is None
    ]  # ORDER row left out


def test_cash_transactions_by_kind(statements: Statements) -> None:
    txns = {t.provider_transaction_id: t for t in mappers.transactions(_main(statements))}
    kinds = {
        key: (t.type, t.subtype, t.amount, t.currency) for key, t in txns.items() if key.startswith("cash:")
    }
    assert kinds == {
        "cash:2911000101": (TransactionType.TRANSFER, TransactionSubtype.DEPOSIT, D("30000"), "USD"),
        "cash:2911000102": (TransactionType.INCOME, TransactionSubtype.DIVIDEND, D("13"), "USD"),
        "cash:2911000103": (TransactionType.TAX, TransactionSubtype.TAX, D("-1.95"), "USD"),
        "cash:2911000104": (TransactionType.INCOME, TransactionSubtype.INTEREST, D("4.12"), "USD"),
        "cash:2911000105": (TransactionType.INCOME, TransactionSubtype.INTEREST, D("0.85"), "EUR"),
        "cash:2911000106": (TransactionType.FEE, TransactionSubtype.FEE, D("-10"), "USD"),
        "cash:2911000107": (TransactionType.TRANSFER, TransactionSubtype.WITHDRAWAL, D("-500"), "USD"),
    }  # the SUMMARY row is left out
    assert txns["cash:2911000102"].symbol == "AAPL"
    assert txns["cash:2911000102"].transaction_date == date(2026, 5, 15)


def test_a_split_is_recorded_with_the_change_in_shares(statements: Statements) -> None:
    (split,) = [
        t for t in mappers.transactions(_main(statements)) if t.provider_transaction_id.startswith("ca:")
    ]
    assert (split.type, split.subtype, split.symbol, split.quantity) == (
        TransactionType.OTHER, TransactionSubtype.SPLIT, "NVDA", D("90"),
    )  # fmt: skip
    assert (split.amount, split.transaction_date) == (D(0), date(2026, 6, 7))
    assert "SPLIT 10 FOR 1" in (split.description or "")


def test_multi_account_rows_stay_with_their_account(statements: Statements) -> None:
    euro = statements["U2222222"]
    assert {t.provider_transaction_id for t in mappers.transactions(euro)} == {
        "trade:2922000001", "cash:2922000101",
    }  # fmt: skip
    assert [h.symbol for h in mappers.holdings(euro)] == ["ASML", "EUR"]


def _statement(body: str, *, info: str = '<AccountInformation accountId="U9" currency="GBP" />') -> bytes:
    return (
        '<FlexQueryResponse queryName="q" type="AF"><FlexStatements count="1">'
        '<FlexStatement accountId="U9" fromDate="2026-01-01" toDate="2026-01-31" period="Custom" '
        f'whenGenerated="2026-02-01;01:00:00">{info}{body}</FlexStatement></FlexStatements></FlexQueryResponse>'
    ).encode()


def test_rows_without_ids_get_stable_digests_and_occurrences() -> None:
    row = (
        '<CashTransaction accountId="U9" currency="GBP" description="Fee" dateTime="2026-01-05" '
        'amount="-1" type="Other Fees" levelOfDetail="DETAIL" />'
    )
    (stmt,) = read_statement(_statement(f"<CashTransactions>{row}{row}</CashTransactions>")).FlexStatements
    first = [t.provider_transaction_id for t in mappers.transactions(stmt)]
    again = [t.provider_transaction_id for t in mappers.transactions(stmt)]
    assert first == again
    assert len(set(first)) == 2
    assert all(key.startswith("cash:h:") for key in first)


def test_cancelled_trades_keep_their_side_and_say_cancelled() -> None:
    row = (
        '<Trade accountId="U9" currency="GBP" assetCategory="STK" symbol="VOD" transactionID="7" '
        'tradeID="8" tradeDate="2026-01-06" quantity="-100" tradePrice="0.7" proceeds="-70" '
        'ibCommission="-3" ibCommissionCurrency="GBP" netCash="-73" buySell="BUY (Ca.)" '
        'transactionType="TradeCancel" levelOfDetail="EXECUTION" />'
    )
    (stmt,) = read_statement(_statement(f"<Trades>{row}</Trades>")).FlexStatements
    (trade,) = mappers.transactions(stmt)
    assert (trade.subtype, trade.status, trade.quantity) == (
        TransactionSubtype.BUY, TransactionStatus.CANCELLED, D(100),
    )  # fmt: skip


def test_account_values_count_only_the_statements_own_rows() -> None:
    """Rows of another account are left out of the balance as they are out of the holdings."""
    body = (
        '<CashReport><CashReportCurrency accountId="U9" currency="GBP" endingCash="100" />'
        '<CashReportCurrency accountId="U8" currency="GBP" endingCash="5000" /></CashReport>'
        '<OpenPositions><OpenPosition accountId="U9" currency="GBP" symbol="VOD" position="10" '
        'markPrice="1" positionValue="10" fxRateToBase="1" levelOfDetail="SUMMARY" />'
        '<OpenPosition accountId="U8" currency="GBP" symbol="BP" position="100" markPrice="5" '
        'positionValue="500" fxRateToBase="1" levelOfDetail="SUMMARY" /></OpenPositions>'
    )
    (stmt,) = read_statement(_statement(body)).FlexStatements
    account = mappers.map_account(stmt)
    held = mappers.holdings(stmt)
    assert sum(h.market_value or 0 for h in held if h.asset_type is not AssetType.CASH) == D(10)
    assert (account.cash_value, account.holdings_value, account.balance) == (D(100), D(10), D(110))


def test_base_currency_needs_account_information_when_cash_is_in_several_currencies() -> None:
    cash = (
        '<CashReport><CashReportCurrency accountId="U9" currency="EUR" endingCash="1" />'
        '<CashReportCurrency accountId="U9" currency="USD" endingCash="2" /></CashReport>'
    )
    (stmt,) = read_statement(_statement(cash, info="")).FlexStatements
    with pytest.raises(BadData, match="tick Account Information"):
        mappers.map_account(stmt)
    (single,) = read_statement(
        _statement(cash.replace('currency="USD"', 'currency="EUR"'), info="")
    ).FlexStatements
    assert mappers.map_account(single).currency == "EUR"


def test_unknown_sections_and_attributes_are_skipped() -> None:
    body = '<NewSection2027><NewRow a="1" /></NewSection2027><Trades /><CashReport />'
    (stmt,) = read_statement(_statement(body.replace("<Trades />", ""))).FlexStatements
    assert mappers.transactions(stmt) == []


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "not well-formed"),
        (b"<a>", "not well-formed"),
        (b'<!DOCTYPE x [<!ENTITY e "x">]><FlexQueryResponse/>', "DTD"),
        (b"<FlexStatementResponse/>", "<FlexStatementResponse> where a FlexQueryResponse"),
        (
            b'<FlexQueryResponse queryName="q" type="AF"><FlexStatements count="3"/></FlexQueryResponse>',
            "count",
        ),
        (_statement('<OpenPositions><OpenPosition currency="XYZ" /></OpenPositions>'), "Unknown currency"),
    ],
)
def test_unreadable_statements_are_bad_data(body: bytes, words: str) -> None:
    with pytest.raises(BadData, match=words):
        read_statement(body)


def test_error_answers_are_read_from_the_body() -> None:
    ok = ElementTree.fromstring("<FlexStatementResponse><Status>Success</Status></FlexStatementResponse>")
    assert failure_of(ok) is None
    warn = ElementTree.fromstring(
        "<FlexStatementResponse><Status>Warn</Status><ErrorCode>1019</ErrorCode>"
        "<ErrorMessage>Statement generation in progress.</ErrorMessage></FlexStatementResponse>"
    )
    failure = failure_of(warn)
    assert failure is not None
    assert (failure.code, failure.message) == ("1019", "Statement generation in progress.")
    other = error_for(FlexFailure("1020", "Invalid request or unable to validate request."))
    assert other.detail == (
        "IBKR Flex Web Service error (IBKR error 1020: Invalid request or unable to validate request.)"
    )


def test_ibkr_syncs_daily_after_the_close_of_business_update() -> None:
    schedule = METADATA.sync_schedule
    assert (schedule.default_minutes, schedule.daily_after) == (1440, time(4, 0))
    # Synced at 10:00 UTC: next after tomorrow's 04:00, within the 30-minute daily jitter.
    at = schedule.next_at(datetime(2026, 3, 2, 10, 0, tzinfo=UTC), None, rand=lambda: 0.5)
    assert at == datetime(2026, 3, 3, 4, 15, tzinfo=UTC)
    # Synced at 03:00 (before today's update): the same day's 04:00, not tomorrow's.
    early = schedule.next_at(datetime(2026, 3, 2, 3, 0, tzinfo=UTC), None, rand=lambda: 0.0)
    assert early == datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
    # A person's 2-day interval still lands after the update time.
    two = schedule.next_at(datetime(2026, 3, 2, 10, 0, tzinfo=UTC), 2880, rand=lambda: 0.0)
    assert two == datetime(2026, 3, 4, 4, 0, tzinfo=UTC)
    assert SyncSchedule(default_minutes=90, daily_after=time(4)).problems()


def test_an_expiry_field_must_be_optional_not_secret_and_single() -> None:
    fields = {f.name: f for f in METADATA.credential_fields}
    assert fields["token_expires_on"].expiry
    assert not fields["token"].expiry
    bad = (CredentialField(name="expires", label="Expires", expiry=True),)  # secret and required
    meta = replace(METADATA, credential_fields=bad)
    assert "at most one expiry credential field, not secret and not required" in meta.problems()


def test_rows_without_ids_on_one_day_at_different_times_stay_distinct() -> None:
    """Two identical fees on one day at different times are two rows, not one (their digest
    is taken on the day, so the occurrence must count per day too)."""
    row = (
        '<CashTransaction accountId="U9" currency="GBP" description="Fee" dateTime="2026-01-05;{t}" '
        'amount="-1" type="Other Fees" levelOfDetail="DETAIL" />'
    )
    action = (
        '<CorporateAction accountId="U9" currency="GBP" symbol="VOD" conid="1" actionID="5" '
        'description="VOD SPLIT" dateTime="2026-01-05;{t}" quantity="10" type="FS" '
        'levelOfDetail="DETAIL" />'
    )
    times = ("10:00:00", "14:30:00")
    body = (
        "<CorporateActions>" + "".join(action.format(t=t) for t in times) + "</CorporateActions>"
        "<CashTransactions>" + "".join(row.format(t=t) for t in times) + "</CashTransactions>"
    )
    (stmt,) = read_statement(_statement(body)).FlexStatements
    ids = [t.provider_transaction_id for t in mappers.transactions(stmt)]
    assert len(ids) == 4
    assert len(set(ids)) == 4


def test_cash_without_conversion_rates_is_valued_at_the_latest_printed_rate() -> None:
    """Without ConversionRates or a position in the currency, a currency's rate is the one IBKR
    printed last in time, whatever section printed it."""
    body = (
        '<CashReport><CashReportCurrency accountId="U9" currency="EUR" endingCash="100" /></CashReport>'
        '<Trades><Trade accountId="U9" currency="EUR" fxRateToBase="0.85" assetCategory="STK" '
        'symbol="SAP" transactionID="1" tradeDate="2026-01-20" quantity="1" tradePrice="10" '
        'netCash="-10" buySell="BUY" levelOfDetail="EXECUTION" /></Trades>'
        '<CashTransactions><CashTransaction accountId="U9" currency="EUR" fxRateToBase="0.95" '
        'dateTime="2026-01-02" amount="110" type="Deposits/Withdrawals" transactionID="2" '
        'levelOfDetail="DETAIL" /></CashTransactions>'
    )
    (stmt,) = read_statement(_statement(body)).FlexStatements
    (cash,) = mappers.holdings(stmt)
    assert (cash.currency, cash.market_value) == ("GBP", D("85.00"))
