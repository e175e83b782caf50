"""map_document: accounts, holdings joined with SECLIST, transaction types, signs and ids."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from tests.unit.ofx.conftest import SGML_HEADER

from finsync.domain.enums import (
    AccountType,
    AssetType,
    TransactionStatus,
    TransactionSubtype,
    TransactionType,
)
from finsync.domain.records import ProviderHolding
from finsync.providers.ofx import (
    MappedStatement,
    OfxDocument,
    OfxInvestmentTransaction,
    OfxPosition,
    OfxSecurity,
    OfxStatement,
    OfxTransaction,
    map_document,
    parse_ofx,
)

pytestmark = pytest.mark.unit

T, S = TransactionType, TransactionSubtype
Read = Callable[[str], bytes]
Build = Callable[..., str]
WHEN = datetime(2024, 1, 5, tzinfo=UTC)


def mapped(read: Read, name: str) -> list[MappedStatement]:
    return map_document(parse_ofx(read(name)))


def holdings_of(result: MappedStatement) -> list[ProviderHolding]:
    assert result.holdings is not None, "the statement should list its holdings"
    return result.holdings


def bank_doc(*transactions: OfxTransaction, **statement: object) -> OfxDocument:
    values: dict[str, object] = {"kind": "bank", "account_id": "000111222", "currency": "USD"} | statement
    return OfxDocument(statements=[OfxStatement(transactions=list(transactions), **values)])  # type: ignore[arg-type]


def txn(trntype: str, amount: str, **kwargs: object) -> OfxTransaction:
    return OfxTransaction(kwargs.pop("fitid", "F1"), trntype, WHEN, Decimal(amount), **kwargs)  # type: ignore[arg-type]


# --- accounts ---------------------------------------------------------------------------


def test_bank_account(fixture_bytes: Read) -> None:
    (result,) = mapped(fixture_bytes, "bank_medium.ofx")
    account = result.account
    assert account.provider_account_id == "160000100:12300 000012345678"
    assert account.name == "Checking ••5678"
    assert account.type is AccountType.CHECKING
    assert account.currency == "CAD"
    assert (account.balance, account.available_balance) == (Decimal("382.34"), Decimal("682.34"))
    assert account.balance_at == datetime(2009, 5, 23, 12, 20, 17, tzinfo=UTC)
    assert account.raw["BANKID"] == "160000100"
    assert result.period_start == datetime(2009, 4, 1, tzinfo=UTC)
    assert result.holdings is None  # a bank statement says nothing about holdings


def test_multiple_accounts(fixture_bytes: Read) -> None:
    results = mapped(fixture_bytes, "multiple_accounts2.ofx")
    assert [(r.account.provider_account_id, r.account.type, r.account.balance) for r in results] == [
        ("123:9100", AccountType.CHECKING, Decimal(111)),
        ("123:9200", AccountType.SAVINGS, Decimal(222)),
    ]
    assert {r.institution for r in results} == {"blah"}
    assert {r.institution_fid for r in results} == {"1000"}


@pytest.mark.parametrize(
    ("acct_type", "expected", "label"),
    [
        ("CHECKING", AccountType.CHECKING, "Checking"),
        ("SAVINGS", AccountType.SAVINGS, "Savings"),
        ("MONEYMRKT", AccountType.SAVINGS, "Money market"),
        ("CREDITLINE", AccountType.CREDIT_CARD, "Credit line"),
        (None, AccountType.OTHER, "Bank account"),
    ],
)
def test_bank_account_types(acct_type: str | None, expected: AccountType, label: str) -> None:
    (result,) = map_document(bank_doc(account_type=acct_type, bank_id="026009593"))
    assert result.account.type is expected
    assert result.account.name == f"{label} ••1222"
    assert result.account.provider_account_id == "026009593:000111222"


def test_credit_card_account(fixture_bytes: Read) -> None:
    (result,) = mapped(fixture_bytes, "anzcc.ofx")
    assert result.account.provider_account_id == "1234123412341234"
    assert result.account.type is AccountType.CREDIT_CARD
    assert result.account.name == "Credit card ••1234"
    assert (result.account.currency, result.account.balance) == ("AUD", Decimal("-123.45"))
    (transaction,) = result.transactions
    assert (transaction.amount, transaction.type, transaction.subtype) == (
        Decimal("-5.50"),
        T.TRANSFER,
        S.WITHDRAWAL,
    )


def test_currency_falls_back_to_the_transactions_then_usd(fixture_bytes: Read) -> None:
    (result,) = mapped(fixture_bytes, "ofx-v102-empty-tags.ofx")
    assert result.account.currency == "AUD"  # CURDEF empty; the transaction says AUD
    assert result.account.type is AccountType.OTHER
    (result,) = map_document(bank_doc(txn("DEBIT", "-1"), currency=None))
    assert result.account.currency == "USD"
    assert result.transactions[0].currency == "USD"


def test_foreign_currency_transaction_keeps_its_currency(fixture_bytes: Read) -> None:
    (result,) = mapped(fixture_bytes, "investment_medium.ofx")
    assert result.account.currency == "CAD"
    assert {t.currency for t in result.transactions} == {"USD"}


# --- investment accounts and holdings -----------------------------------------------------


def test_investment_account_and_holdings(fixture_bytes: Read) -> None:
    (result,) = mapped(fixture_bytes, "fidelity.ofx")
    account = result.account
    assert account.type is AccountType.BROKERAGE
    assert account.provider_account_id == "01234567890"
    assert account.institution == "fidelity.com"
    assert account.cash_value == Decimal("18073.98")
    assert account.holdings_value == Decimal("14919.80")
    assert account.balance == Decimal("32993.78")
    assert account.raw["MARGINBALANCE"] == "0.00"
    assert len(holdings_of(result)) == 6
    first = holdings_of(result)[0]
    assert (first.symbol, first.name, first.cusip, first.isin, first.asset_type) == (
        "SDRL",
        "SEADRILL LTD USD2",
        "G7945E105",
        None,
        AssetType.EQUITY,
    )
    assert (first.quantity, first.current_price, first.market_value, first.currency) == (
        Decimal("128"),
        Decimal("40.87"),
        Decimal("5231.36"),
        "USD",
    )
    assert first.raw["ELEMENT"] == "POSSTOCK"
    assert first.raw["HELDINACCT"] == "CASH"
    assert {h.price_currency for h in holdings_of(result)} == {"USD"}  # the statement's CURDEF


def test_a_position_in_its_own_currency_is_priced_in_it() -> None:
    """quantity times price is the market value only in the position's currency, not the account's."""
    position = OfxPosition(
        kind="POSSTOCK",
        unique_id="CA0000000001",
        unique_id_type="ISIN",
        units=Decimal(10),
        unit_price=Decimal("12.50"),
        currency="CAD",
    )
    statement = OfxStatement(
        kind="investment", account_id="X1", currency="USD", positions=[position], positions_listed=True
    )
    (result,) = map_document(OfxDocument(statements=[statement], securities=[]))
    (holding,) = holdings_of(result)
    assert (holding.currency, holding.price_currency, holding.market_value) == (
        "CAD",
        "CAD",
        Decimal("125.00"),
    )


def _positions_file(positions: str) -> bytes:
    """An investment statement in USD (CURDEF) with 100 of cash and the given positions."""
    return (
        SGML_HEADER + "<OFX><SIGNONMSGSRSV1><SONRS><STATUS><CODE>0<SEVERITY>INFO</STATUS><DTSERVER>20240131"
        "<LANGUAGE>ENG<FI><ORG>Broker<FID>77</FI></SONRS></SIGNONMSGSRSV1>\n<INVSTMTMSGSRSV1><INVSTMTTRNRS>"
        "<TRNUID>1<STATUS><CODE>0<SEVERITY>INFO</STATUS><INVSTMTRS><DTASOF>20240131<CURDEF>USD<INVACCTFROM>"
        "<BROKERID>broker.example<ACCTID>9876</INVACCTFROM>\n<INVPOSLIST>\n" + positions + "</INVPOSLIST>"
        "<INVBAL><AVAILCASH>100.00</INVBAL></INVSTMTRS></INVSTMTTRNRS></INVSTMTMSGSRSV1></OFX>\n"
    ).encode()


def _position(unique_id: str, market_value: str, currency: str = "") -> str:
    return (
        f"<POSSTOCK><INVPOS><SECID><UNIQUEID>{unique_id}<UNIQUEIDTYPE>ISIN</SECID><HELDINACCT>CASH"
        f"<POSTYPE>LONG<UNITS>10<UNITPRICE>1<MKTVAL>{market_value}<DTPRICEASOF>20240131{currency}"
        "</INVPOS></POSSTOCK>\n"
    )


def test_account_value_converts_positions_in_another_currency_by_their_rate() -> None:
    """A position's <CURRENCY> (CURSYM, CURRATE) states its MKTVAL in that currency; the
    account's value is in CURDEF, so 1,000 EUR at 1.10 count as 1,100 USD, not as 1,000 USD."""
    data = _positions_file(
        _position("DE0000000001", "1000.00", "<CURRENCY><CURRATE>1.10<CURSYM>EUR</CURRENCY>")
        + _position("US0000000001", "500.00")
    )
    (result,) = map_document(parse_ofx(data))
    assert [(h.currency, h.market_value) for h in holdings_of(result)] == [
        ("EUR", Decimal("1000.00")),
        ("USD", Decimal("500.00")),
    ]
    assert result.account.currency == "USD"
    assert result.account.holdings_value == Decimal("1600.00")
    assert result.account.balance == Decimal("1700.00")


def test_a_position_in_another_currency_without_a_rate_is_not_counted_as_the_accounts() -> None:
    document = parse_ofx(
        _positions_file(
            _position("DE0000000001", "1000.00", "<CURRENCY><CURSYM>EUR</CURRENCY>")
            + _position("US0000000001", "500.00")
        )
    )
    (result,) = map_document(document)
    assert (result.account.holdings_value, result.account.balance) == (Decimal("500.00"), Decimal("600.00"))
    assert any("DE0000000001" in w and "EUR" in w and "rate" in w for w in document.warnings)


def test_holding_asset_types(fixture_bytes: Read) -> None:
    (result,) = mapped(fixture_bytes, "td_ameritrade.ofx")
    assert [(h.symbol, h.asset_type) for h in holdings_of(result)] == [
        ("AMZN", AssetType.EQUITY),
        ("912810RW0", AssetType.BOND),
    ]
    (result,) = mapped(fixture_bytes, "vanguard401k.ofx")
    assert [(h.symbol, h.name, h.asset_type) for h in holdings_of(result)] == [
        ("92202V351", "Target Retirement 2050 Trust Plus", AssetType.FUND),  # no TICKER: the CUSIP
    ]


def test_holding_without_a_security_entry(fixture_bytes: Read) -> None:
    (result,) = mapped(fixture_bytes, "tiaacref.ofx")
    unmatched = holdings_of(result)[0]
    assert (unmatched.symbol, unmatched.name, unmatched.asset_type) == ("222222126", None, AssetType.OTHER)
    matched = holdings_of(result)[2]
    assert (matched.symbol, matched.name) == ("QCBMIX", "CREF Bond Market R3")


def test_isin_short_position_and_missing_market_value() -> None:
    position = OfxPosition(
        kind="POSOPT",
        unique_id="US0378331005",
        unique_id_type="ISIN",
        units=Decimal(3),
        unit_price=Decimal("2.50"),
        position_type="SHORT",
    )
    security = OfxSecurity(kind="OPTINFO", unique_id="US0378331005", unique_id_type="ISIN", ticker="AAPL C")
    statement = OfxStatement(
        kind="investment",
        account_id="X1",
        positions=[position],
        positions_listed=True,
        available_cash=Decimal(10),
    )
    (result,) = map_document(OfxDocument(statements=[statement], securities=[security]))
    (holding,) = holdings_of(result)
    assert (holding.symbol, holding.isin, holding.cusip, holding.asset_type) == (
        "AAPL C",
        "US0378331005",
        None,
        AssetType.OPTION,
    )
    assert (holding.quantity, holding.market_value) == (Decimal(-3), Decimal("-7.50"))
    assert result.account.balance == Decimal("2.50")


def test_holdings_are_none_unless_the_file_lists_positions(fixture_bytes: Read) -> None:
    (result,) = mapped(fixture_bytes, "fidelity-savings.ofx")  # INVSTMTRS without INVPOSLIST
    assert result.holdings is None
    assert result.account.holdings_value is None
    assert result.account.balance is None
    statement = OfxStatement(
        kind="investment", account_id="X1", positions_listed=True, available_cash=Decimal(5)
    )
    (result,) = map_document(OfxDocument(statements=[statement]))
    assert result.holdings == []  # an empty INVPOSLIST: everything was sold
    assert (result.account.holdings_value, result.account.balance) == (Decimal(0), Decimal(5))


def test_retirement_account(fixture_bytes: Read) -> None:
    (result,) = mapped(fixture_bytes, "vanguard401k.ofx")
    assert result.account.type is AccountType.RETIREMENT
    assert result.account.name == "GOOGLE INC. 401(K) SAVINGS PLAN ••3456"
    assert result.account.balance == result.account.holdings_value == Decimal("5171.44")
    assert result.account.cash_value is None
    (result,) = mapped(fixture_bytes, "investment_401k.ofx")
    assert result.account.type is AccountType.RETIREMENT
    assert result.account.name == "Retirement ••6-01"


# --- bank transactions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trntype", "amount", "kind", "subtype"),
    [
        ("CREDIT", "10", T.TRANSFER, S.DEPOSIT),
        ("DEP", "10", T.TRANSFER, S.DEPOSIT),
        ("DIRECTDEP", "2500", T.TRANSFER, S.DEPOSIT),
        ("DEBIT", "-10", T.TRANSFER, S.WITHDRAWAL),
        ("DEBIT", "10", T.TRANSFER, S.DEPOSIT),
        ("ATM", "-40", T.TRANSFER, S.WITHDRAWAL),
        ("CASH", "-40", T.TRANSFER, S.WITHDRAWAL),
        ("POS", "-6.60", T.OTHER, S.PURCHASE),
        ("POS", "6.60", T.OTHER, S.REFUND),
        ("CHECK", "-316.67", T.OTHER, S.PAYMENT),
        ("PAYMENT", "-50", T.OTHER, S.PAYMENT),
        ("PAYMENT", "50", T.TRANSFER, S.DEPOSIT),
        ("DIRECTDEBIT", "-50", T.OTHER, S.PAYMENT),
        ("REPEATPMT", "-50", T.OTHER, S.PAYMENT),
        ("XFER", "100", T.TRANSFER, S.TRANSFER_IN),
        ("XFER", "-100", T.TRANSFER, S.TRANSFER_OUT),
        ("INT", "0.24", T.INCOME, S.INTEREST),
        ("DIV", "5.53", T.INCOME, S.DIVIDEND),
        ("FEE", "-0.97", T.FEE, S.FEE),
        ("SRVCHG", "-5", T.FEE, S.FEE),
        ("OTHER", "-1", T.OTHER, S.OTHER),
        ("NONSENSE", "-1", T.OTHER, S.OTHER),
    ],
)
def test_bank_transaction_types_and_signs(
    trntype: str, amount: str, kind: TransactionType, subtype: TransactionSubtype
) -> None:
    (result,) = map_document(bank_doc(txn(trntype, amount)))
    (transaction,) = result.transactions
    assert (transaction.type, transaction.subtype) == (kind, subtype)
    assert transaction.amount == Decimal(amount)  # OFX already signs from the account's side
    assert transaction.status is TransactionStatus.SETTLED


def test_hold_is_pending() -> None:
    (result,) = map_document(bank_doc(txn("HOLD", "-20")))
    assert result.transactions[0].status is TransactionStatus.PENDING


def test_bank_transaction_fields(fixture_bytes: Read) -> None:
    (result,) = mapped(fixture_bytes, "bank_medium.ofx")
    first = result.transactions[0]
    assert first.provider_transaction_id == "0000123456782009040100001"
    assert first.description == "MCDONALD'S #112 / POS MERCHANDISE;MCDONALD'S #112"
    assert (first.transaction_date, first.settlement_date) == (date(2009, 4, 1), None)
    assert (first.currency, first.symbol, first.quantity) == ("CAD", None, None)
    assert first.raw == {
        "TRNTYPE": "POS",
        "DTPOSTED": "20090401122017.000[-5:EST]",
        "TRNAMT": "-6.60",
        "FITID": "0000123456782009040100001",
        "NAME": "MCDONALD'S #112",
        "MEMO": "POS MERCHANDISE;MCDONALD'S #112",
    }


def test_description_without_duplicate_memo_and_user_date() -> None:
    user = datetime(2024, 1, 3, 18, 30, tzinfo=UTC)
    (result,) = map_document(bank_doc(txn("POS", "-1", name="SHOP", memo="SHOP", user_date=user)))
    transaction = result.transactions[0]
    assert transaction.description == "SHOP"
    assert (transaction.transaction_date, transaction.settlement_date) == (date(2024, 1, 3), date(2024, 1, 5))
    (result,) = map_document(bank_doc(txn("POS", "-1", name=None, memo="ONLY MEMO")))
    assert result.transactions[0].description == "ONLY MEMO"


def test_bank_date_is_the_banks_calendar_day(fixture_bytes: Read) -> None:
    (result,) = mapped(fixture_bytes, "fidelity-savings.ofx")
    # 2012-07-20 00:00 at -4:00 is 04:00 UTC the same day; late-evening postings stay on their day too
    assert result.transactions[0].transaction_date == date(2012, 7, 20)


# --- ids without FITID ----------------------------------------------------------------------------


def expected_hash(when: str, amount: str, payee: str, memo: str, occurrence: int) -> str:
    digest = hashlib.sha256("|".join((when, amount, payee, memo, str(occurrence))).encode()).hexdigest()
    return "h:" + digest[:32]


def test_missing_fitid_gets_a_stable_hash(bank_file: Build, stmttrn: Build) -> None:
    text = bank_file(
        stmttrn(None, amount="-3.50")  # two identical coffees on one day
        + stmttrn(None, amount="-3.50")
        + stmttrn(None, amount="-3.5", memo="OTHER CARD")
        + stmttrn("REAL-ID")
    )
    first = [t.provider_transaction_id for t in map_document(parse_ofx(text.encode()))[0].transactions]
    again = [t.provider_transaction_id for t in map_document(parse_ofx(text.encode()))[0].transactions]
    assert first == again
    assert first == [
        expected_hash("2024-01-05", "-3.5", "COFFEE", "CARD 1234", 0),
        expected_hash("2024-01-05", "-3.5", "COFFEE", "CARD 1234", 1),
        expected_hash("2024-01-05", "-3.5", "COFFEE", "OTHER CARD", 0),
        "REAL-ID",
    ]
    assert len(set(first)) == 4
    assert all(len(i) == 34 for i in first[:3])


def test_hash_occurrence_counts_per_account() -> None:
    coffee = txn("POS", "-3.50", fitid=None, name="COFFEE")
    doc = bank_doc(coffee, coffee)
    doc.statements.append(OfxStatement(kind="bank", account_id="999", transactions=[coffee]))
    doc.statements.append(OfxStatement(kind="bank", account_id="000111222", transactions=[coffee]))
    ids = [[t.provider_transaction_id for t in m.transactions] for m in map_document(doc)]
    occurrence = [expected_hash("2024-01-05", "-3.5", "COFFEE", "", n) for n in range(3)]
    assert ids == [occurrence[:2], occurrence[:1], occurrence[2:]]  # same account later in the file: 2


def test_identical_rows_keep_their_ids_when_a_new_one_is_appended(bank_file: Build, stmttrn: Build) -> None:
    rows = stmttrn(None) + stmttrn(None)
    before = map_document(parse_ofx(bank_file(rows).encode()))[0].transactions
    after = map_document(parse_ofx(bank_file(rows + stmttrn(None)).encode()))[0].transactions
    assert [t.provider_transaction_id for t in after[:2]] == [t.provider_transaction_id for t in before]
    assert len({t.provider_transaction_id for t in after}) == 3


# --- investment transactions ------------------------------------------------------------------------


def test_fidelity_trades_income_and_cash(fixture_bytes: Read) -> None:
    (result,) = mapped(fixture_bytes, "fidelity.ofx")
    by_id = {t.provider_transaction_id: t for t in result.transactions}
    buy = by_id["0123456789020201120120720"]
    assert (buy.type, buy.subtype, buy.symbol, buy.quantity, buy.unit_price) == (
        T.TRADE,
        S.BUY,
        "INTC",
        Decimal(100),
        Decimal("25.635"),
    )
    assert (buy.fees, buy.amount, buy.transaction_date) == (
        Decimal("7.95"),
        Decimal("-2571.45"),
        date(2012, 7, 20),
    )
    assert buy.description == "YOU BOUGHT / INTEL CORP"
    assert buy.raw["ELEMENT"] == "BUYSTOCK"
    sell = by_id["0123456789020901320120727"]
    assert (sell.type, sell.subtype, sell.quantity, sell.amount, sell.symbol) == (
        T.TRADE,
        S.SELL,
        Decimal(8),
        Decimal("1089.30"),
        "SPY",
    )
    dividend = by_id["0123456789021301520120731"]
    assert (dividend.type, dividend.subtype, dividend.amount, dividend.symbol) == (
        T.INCOME,
        S.DIVIDEND,
        Decimal("5.53"),
        "SPY",
    )
    interest = by_id["0123456789021301320120731"]  # INVBANKTRAN: mapped like a bank row
    assert (interest.type, interest.subtype, interest.amount) == (T.TRANSFER, S.DEPOSIT, Decimal("0.24"))
    assert interest.raw["SUBACCTFUND"] == "CASH"
    assert len(result.transactions) == 17


def test_security_transfers(fixture_bytes: Read) -> None:
    (result,) = mapped(fixture_bytes, "vanguard401k.ofx")
    last = result.transactions[-1]
    assert (last.type, last.subtype, last.quantity, last.amount) == (
        T.TRANSFER,
        S.TRANSFER_OUT,
        Decimal("0.04241"),
        Decimal(0),
    )
    assert (last.transaction_date, last.settlement_date) == (date(2013, 9, 5), date(2013, 9, 6))
    (result,) = mapped(fixture_bytes, "investment_401k.ofx")
    assert [(t.subtype, t.symbol) for t in result.transactions[1:]] == [
        (S.TRANSFER_IN, "BAR"),
        (S.TRANSFER_OUT, "BAZ"),
    ]


def inv(kind: str, **kwargs: object) -> OfxInvestmentTransaction:
    values: dict[str, object] = {"kind": kind, "fitid": kind, "trade_date": WHEN} | kwargs
    return OfxInvestmentTransaction(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("entry", "kind", "subtype", "amount", "quantity"),
    [
        (inv("INCOME", income_type="INTEREST", total=Decimal("1.5")), T.INCOME, S.INTEREST, "1.5", None),
        (inv("INCOME", income_type="CGLONG", total=Decimal(9)), T.INCOME, S.DIVIDEND, "9", None),
        (inv("INCOME", income_type="CGSHORT", total=Decimal(9)), T.INCOME, S.DIVIDEND, "9", None),
        (inv("INCOME", income_type="MISC", total=Decimal(9)), T.INCOME, S.OTHER, "9", None),
        (
            inv(
                "REINVEST",
                income_type="DIV",
                units=Decimal("0.5"),
                unit_price=Decimal(20),
                total=Decimal(-10),
            ),
            T.TRADE,
            S.REINVEST,
            "-10",
            "0.5",
        ),
        (inv("SPLIT", old_units=Decimal(10), new_units=Decimal(20)), T.OTHER, S.SPLIT, "0", "10"),
        (inv("INVEXPENSE", total=Decimal(-4)), T.FEE, S.FEE, "-4", None),
        (inv("MARGININTEREST", total=Decimal(-2)), T.FEE, S.INTEREST, "-2", None),
        (inv("JRNLFUND", total=Decimal(5)), T.OTHER, S.OTHER, "5", None),
        (
            inv("BUYOPT", units=Decimal(2), unit_price=Decimal("1.25"), commission=Decimal("0.65")),
            T.TRADE,
            S.BUY,
            "-3.15",  # no TOTAL: -(units * price) - fees
            "2",
        ),
        (
            inv("SELLDEBT", units=Decimal(-2), unit_price=Decimal(100), fees=Decimal(1)),
            T.TRADE,
            S.SELL,
            "199",
            "2",
        ),
    ],
)
def test_investment_transaction_types(
    entry: OfxInvestmentTransaction,
    kind: TransactionType,
    subtype: TransactionSubtype,
    amount: str,
    quantity: str | None,
) -> None:
    statement = OfxStatement(kind="investment", account_id="X1", investment_transactions=[entry])
    (result,) = map_document(OfxDocument(statements=[statement]))
    (transaction,) = result.transactions
    assert (transaction.type, transaction.subtype) == (kind, subtype)
    assert transaction.amount == Decimal(amount)
    assert transaction.quantity == (Decimal(quantity) if quantity is not None else None)
    assert transaction.provider_transaction_id == entry.kind
