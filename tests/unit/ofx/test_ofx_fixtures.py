"""The real bank files in /work/shared/fixtures/ofx: facts from the fixtures README and the
upstream ofxparse tests, plus the per-file decision (parse cleanly, parse with warnings,
or refuse) for the deliberately broken ones."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from finsync.domain.errors import ImportRejected, MalformedFile
from finsync.providers.ofx import OfxDocument, OfxInstitutionError, looks_like_ofx, parse_ofx
from finsync.providers.ofx.model import OfxNoStatements

pytestmark = pytest.mark.unit

EST = timezone(timedelta(hours=-5))
EDT = timezone(timedelta(hours=-4))
MDT = timezone(timedelta(hours=-6))  # as written in the file: [-6:MDT]
PDT = timezone(timedelta(hours=-7))

# Every fixture and what the reader does with it: "ok" (no warnings), "warn" (parsed,
# with warnings) or "refuse" (an exception). Keeps new fixtures from going untested.
OUTCOMES = {
    "account_listing_aggregation.ofx": "refuse",  # no statement (issue 9)
    "anzcc.ofx": "ok",
    "bank_medium.ofx": "ok",
    "bank_small.ofx": "refuse",  # no statement (issue 9)
    "checking.ofx": "ok",
    "error_message.ofx": "refuse",
    "fail_nice/date_missing.ofx": "warn",
    "fail_nice/decimal_error.ofx": "warn",
    "fail_nice/empty_balance.ofx": "warn",
    "fidelity-savings.ofx": "ok",
    "fidelity.ofx": "ok",
    "investment_401k.ofx": "ok",
    "investment_medium.ofx": "ok",
    "multiple_accounts.ofx": "ok",
    "multiple_accounts2.ofx": "ok",
    "ofx-v102-empty-tags.ofx": "warn",
    "signon_fail.ofx": "refuse",
    "signon_success.ofx": "refuse",  # no statement (issue 9)
    "signon_success_no_message.ofx": "refuse",  # no statement (issue 9)
    "suncorp.ofx": "ok",
    "td_ameritrade.ofx": "ok",
    "tiaacref.ofx": "ok",
    "vanguard.ofx": "warn",
    "vanguard401k.ofx": "ok",
}

Read = Callable[[str], bytes]


def parse(read: Read, name: str) -> OfxDocument:
    return parse_ofx(read(name))


def test_fixture_folder_is_beside_the_checkout(fixtures_dir: Path) -> None:
    assert fixtures_dir.parts[-3:] == ("shared", "fixtures", "ofx")
    assert (fixtures_dir / "bank_medium.ofx").is_file()


def test_every_fixture_has_a_decided_outcome(fixtures_dir: Path) -> None:
    present = {path.relative_to(fixtures_dir).as_posix() for path in fixtures_dir.rglob("*.ofx")}
    assert present == set(OUTCOMES)


@pytest.mark.parametrize(("name", "outcome"), sorted(OUTCOMES.items()))
def test_outcome_per_fixture(fixture_bytes: Read, name: str, outcome: str) -> None:
    data = fixture_bytes(name)
    assert looks_like_ofx(data[:4096])
    if outcome == "refuse":
        with pytest.raises(ImportRejected):
            parse_ofx(data)
        return
    document = parse_ofx(data)
    assert bool(document.warnings) is (outcome == "warn"), document.warnings


def test_bank_medium(fixture_bytes: Read) -> None:
    doc = parse(fixture_bytes, "bank_medium.ofx")
    (statement,) = doc.statements
    assert statement.kind == "bank"
    assert statement.account_id == "12300 000012345678"
    assert statement.bank_id == "160000100"
    assert statement.branch_id == "00"
    assert statement.account_type == "CHECKING"
    assert statement.currency == "CAD"
    as_of = datetime(2009, 5, 23, 12, 20, 17, tzinfo=UTC)
    assert (statement.ledger_balance, statement.ledger_balance_at) == (Decimal("382.34"), as_of)
    assert (statement.available_balance, statement.available_balance_at) == (Decimal("682.34"), as_of)
    assert statement.date_start == datetime(2009, 4, 1, tzinfo=UTC)
    assert statement.date_end == as_of
    assert len(statement.transactions) == 3
    first = statement.transactions[0]
    assert first.name == "MCDONALD'S #112"
    assert first.memo == "POS MERCHANDISE;MCDONALD'S #112"
    assert first.trntype == "POS"
    assert first.amount == Decimal("-6.60")
    assert isinstance(first.amount, Decimal)
    assert first.fitid == "0000123456782009040100001"
    assert first.posted == datetime(2009, 4, 1, 12, 20, 17, tzinfo=EST)
    assert statement.transactions[1].checknum == "0"
    assert doc.header["CHARSET"] == "1252"
    assert doc.encoding == "cp1252"


@pytest.mark.parametrize("name", ["multiple_accounts.ofx", "multiple_accounts2.ofx"])
def test_multiple_accounts(fixture_bytes: Read, name: str) -> None:
    doc = parse(fixture_bytes, name)
    assert [(s.account_id, s.bank_id, s.account_type) for s in doc.statements] == [
        ("9100", "123", "CHECKING"),
        ("9200", "123", "SAVINGS"),
    ]
    assert [s.ledger_balance for s in doc.statements] == [Decimal(111), Decimal(222)]
    assert doc.statements[0].ledger_balance_at == datetime(2012, 6, 3, 13, 32, 20, tzinfo=PDT)
    assert all(not s.transactions for s in doc.statements)
    assert (doc.institution_org, doc.institution_fid) == ("blah", "1000")


def test_vanguard401k(fixture_bytes: Read) -> None:
    doc = parse(fixture_bytes, "vanguard401k.ofx")
    (statement,) = doc.statements
    entries = statement.investment_transactions
    assert [e.kind for e in entries] == ["BUYMF"] * 4 + ["TRANSFER"]
    last = entries[-1]
    assert last.fitid == "1234567890123456795AAA"
    assert last.transfer_action == "OUT"
    assert last.units == Decimal("-0.04241")
    assert last.fields["INV401KSOURCE"] == "MATCH"
    assert entries[0].trade_date == datetime(2014, 9, 26, 16, tzinfo=EST)
    assert entries[0].total == Decimal("-673.0")
    assert statement.is_retirement
    assert statement.plan_name == "GOOGLE INC. 401(K) SAVINGS PLAN"
    assert [s.name for s in doc.securities] == ["Target Retirement 2050 Trust Plus"]


def test_fidelity(fixture_bytes: Read) -> None:
    doc = parse(fixture_bytes, "fidelity.ofx")
    (statement,) = doc.statements
    assert statement.kind == "investment"
    assert statement.account_id == "01234567890"
    assert statement.broker_id == "fidelity.com"
    assert len(statement.positions) == 6
    assert statement.positions[0].units == Decimal("128.0")
    assert statement.positions[0].market_value == Decimal("5231.36")
    assert statement.positions[0].unique_id == "G7945E105"
    assert len(doc.securities) == 7
    assert statement.available_cash == Decimal("18073.98")
    assert statement.margin_balance == statement.short_balance == statement.buying_power == Decimal(0)
    kinds = [e.kind for e in statement.investment_transactions]
    assert (kinds.count("BUYSTOCK"), kinds.count("INCOME"), kinds.count("SELLSTOCK")) == (8, 4, 2)
    assert len(statement.transactions) == 3  # INVBANKTRAN cash legs
    spy = next(s for s in doc.securities if s.ticker == "SPY")
    assert spy.name == "SPDR S&P 500 ETF TRUST UNIT SER 1 S&P"  # &amp; decoded
    buy = statement.investment_transactions[0]
    assert (buy.units, buy.unit_price, buy.commission, buy.total) == (
        Decimal(100),
        Decimal("25.635"),
        Decimal("7.95"),
        Decimal("-2571.45"),
    )


def test_fidelity_savings_bank_legs(fixture_bytes: Read) -> None:
    # The fixtures README lists these facts under checking.ofx; they are this file's
    # (upstream: TestFidelitySavingsStatement).
    doc = parse(fixture_bytes, "fidelity-savings.ofx")
    (statement,) = doc.statements
    assert len(statement.transactions) == 4
    assert not statement.positions_listed
    first, second = statement.transactions[:2]
    assert (first.trntype, first.amount, first.name, first.memo) == (
        "CHECK",
        Decimal("-1500.00"),
        "Check Paid #0000001001",
        "Check Paid #0000001001",
    )
    assert first.checknum == "0000001001"
    assert first.posted == datetime(2012, 7, 20, tzinfo=EDT)
    assert first.fields["SUBACCTFUND"] == "CASH"
    assert (second.trntype, second.amount, second.fitid) == (
        "DEP",
        Decimal("115.8331"),
        "X0000000000000000000002",
    )
    assert second.name == "TRANSFERRED FROM     VS X10-08144"
    assert second.memo == "TRANSFERRED FROM     VS X10-08144-1"


def test_checking(fixture_bytes: Read) -> None:
    doc = parse(fixture_bytes, "checking.ofx")
    (statement,) = doc.statements
    assert statement.bank_id == "5472369148"  # 10 characters: longer than a US routing number
    assert statement.account_id == "1452687~7"
    assert [(t.trntype, t.amount) for t in statement.transactions] == [
        ("CREDIT", Decimal("0.01")),
        ("DEBIT", Decimal("-34.51")),
        ("CHECK", Decimal("-25.00")),
    ]
    assert statement.transactions[2].checknum == "319"
    assert statement.transactions[0].posted == datetime(2011, 3, 31, 12, tzinfo=UTC)
    assert statement.date_start == datetime(2000, 1, 1, 7, tzinfo=UTC)
    assert (statement.ledger_balance, statement.available_balance) == (Decimal("100.99"), Decimal("75.99"))
    assert statement.ledger_balance_at == datetime(2013, 5, 25, 22, 57, 31, 258000, tzinfo=UTC)
    assert (doc.institution_org, doc.institution_fid) == ("FAKE", "1101")  # INTU.* ignored


def test_suncorp_cdata(fixture_bytes: Read) -> None:
    doc = parse(fixture_bytes, "suncorp.ofx")
    assert len(doc.statements) == 1
    (transaction,) = doc.statements[0].transactions
    assert transaction.name == "EFTPOS WDL HANDYWAY ALDI STORE"
    assert transaction.memo == "EFTPOS WDL HANDYWAY ALDI STORE   GEELONG WEST VICAU"
    assert transaction.amount == Decimal("-16.85")
    assert doc.encoding == "ascii"


def test_anz_credit_card(fixture_bytes: Read) -> None:
    (statement,) = parse(fixture_bytes, "anzcc.ofx").statements
    assert statement.kind == "credit_card"
    assert statement.account_id == "1234123412341234"
    assert statement.currency == "AUD"
    assert statement.ledger_balance == Decimal("-123.45")
    (transaction,) = statement.transactions
    assert (transaction.trntype, transaction.amount, transaction.memo, transaction.name) == (
        "DEBIT",
        Decimal("-5.50"),
        "SOME MEMO",
        None,
    )


def test_investment_401k(fixture_bytes: Read) -> None:
    (statement,) = parse(fixture_bytes, "investment_401k.ofx").statements
    entries = statement.investment_transactions
    assert [
        (e.fitid, e.kind, e.units, e.unit_price, e.total, e.unique_id, e.transfer_action) for e in entries
    ] == [
        ("1", "BUYMF", Decimal("8.846699"), Decimal("22.2908"), Decimal("-197.2"), "FOO", None),
        ("2", "TRANSFER", Decimal("6.800992"), Decimal("29.214856"), None, "BAR", "IN"),
        ("3", "TRANSFER", Decimal("-9.060702"), Decimal("21.928764"), None, "BAZ", "OUT"),
    ]
    assert entries[0].trade_date == datetime(2014, 6, 17, tzinfo=MDT)
    assert [(p.unique_id, p.units, p.unit_price, p.market_value) for p in statement.positions] == [
        ("FOO", Decimal("17.604312"), Decimal("22.517211"), Decimal("396.4")),
        ("BAR", Decimal("13.550983"), Decimal("29.214855"), Decimal("395.89")),
        ("BAZ", Decimal("0.0"), Decimal("0.0"), Decimal("0.0")),
    ]
    assert statement.is_retirement  # INV401KBAL


def test_investment_medium_foreign_cash(fixture_bytes: Read) -> None:
    doc = parse(fixture_bytes, "investment_medium.ofx")
    (statement,) = doc.statements
    assert statement.currency == "CAD"
    assert statement.available_cash == Decimal("1.00")
    assert [(t.amount, t.currency, t.currency_rate) for t in statement.transactions] == [
        (Decimal("-3.65"), "USD", Decimal("1.06")),
        (Decimal("3.35"), "USD", Decimal("1.06")),
        (Decimal("-3.65"), "USD", Decimal("1.06")),
    ]
    assert doc.warnings == []  # DTSERVER "[-:EST]" is never read


def test_td_ameritrade(fixture_bytes: Read) -> None:
    doc = parse(fixture_bytes, "td_ameritrade.ofx")
    (statement,) = doc.statements
    assert statement.investment_transactions == []
    assert statement.positions_listed
    assert [(p.kind, p.unique_id, p.units, p.unit_price, p.market_value) for p in statement.positions] == [
        ("POSSTOCK", "023135106", Decimal(1), Decimal(1000), Decimal(1000)),
        ("POSDEBT", "912810RW0", Decimal(1000), Decimal(100), Decimal(1000)),
    ]
    assert [(s.unique_id, s.ticker, s.name, s.kind) for s in doc.securities] == [
        ("023135106", "AMZN", "Amazon.com, Inc. - Common Stock", "STOCKINFO"),
        ("912810RW0", "912810RW0", "US Treasury 2047", "DEBTINFO"),
    ]


def test_tiaacref(fixture_bytes: Read) -> None:
    (statement,) = parse(fixture_bytes, "tiaacref.ofx").statements
    assert statement.account_id == "111A1111 22B222 33C333"
    (entry,) = statement.investment_transactions
    assert entry.kind == "TRANSFER"
    assert entry.fitid == "TIAA#20170307160000.000[-4:EDT]160000.000[-4:EDT]"
    assert [(p.unique_id, p.units, p.unit_price, p.market_value) for p in statement.positions] == [
        ("222222126", Decimal("13.0763"), Decimal("1.0000"), Decimal("13.0763")),
        ("222222217", Decimal("1.0000"), Decimal("25.5785"), Decimal("25.5785")),
        ("222222233", Decimal("8.7605"), Decimal("12.4823"), Decimal("109.3512")),
        ("222222258", Decimal("339.2012"), Decimal("12.3456"), Decimal("4187.6423")),
        ("111111111", Decimal("543.71"), Decimal(1), Decimal("543.71")),
        ("333333200", Decimal("2.00"), Decimal("10.00"), Decimal("20.00")),
    ]


def test_vanguard_unclosed_tags_and_duplicate_security(fixture_bytes: Read) -> None:
    doc = parse(fixture_bytes, "vanguard.ofx")  # CR CR LF line ends
    (statement,) = doc.statements
    (entry,) = statement.investment_transactions
    assert entry.fitid == "01234567890.0123.07152011.0"
    assert entry.trade_date == entry.settle_date == datetime(2011, 7, 15, 21, tzinfo=UTC)
    assert [p.units for p in statement.positions] == [Decimal("102.0"), Decimal("142.2")]
    assert len(doc.securities) == 2
    assert doc.warnings == ["line 11: security CUSIP 012345678 is listed twice; the first one is used"]
    assert doc.header["NEWFILEUID"] == "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0"


def test_empty_tags_file(fixture_bytes: Read) -> None:
    doc = parse(fixture_bytes, "ofx-v102-empty-tags.ofx")
    (statement,) = doc.statements
    assert (statement.currency, statement.account_type, statement.branch_id) == (None, None, None)
    (transaction,) = statement.transactions
    assert transaction.trntype == "CREDIT"  # written "Credit"
    assert (transaction.fitid, transaction.name, transaction.checknum) == (None, None, None)
    assert (transaction.memo, transaction.currency) == ("CBA:Transfer", "AUD")
    assert statement.ledger_balance is None
    assert doc.warnings == ["line 23: <LEDGERBAL> has no <BALAMT> value: the balance is unknown"]


def test_account_listing_has_no_statements(fixture_bytes: Read) -> None:
    with pytest.raises(OfxNoStatements) as caught:
        parse(fixture_bytes, "account_listing_aggregation.ofx")
    assert str(caught.value) == (
        "the file contains no account statement (only ACCTINFORS): there is nothing to import"
    )


@pytest.mark.parametrize("name", ["bank_small.ofx", "signon_success.ofx", "signon_success_no_message.ofx"])
def test_files_without_statements_are_refused(fixture_bytes: Read, name: str) -> None:
    """Accepting them used to leave an empty "Statement files" connection and a run behind."""
    with pytest.raises(OfxNoStatements, match=r"^the file contains no account statement \(sign-on only\)"):
        parse(fixture_bytes, name)


def test_signon_fail_is_refused(fixture_bytes: Read) -> None:
    with pytest.raises(OfxInstitutionError) as caught:
        parse(fixture_bytes, "signon_fail.ofx")
    assert str(caught.value) == (
        "the institution refused the sign-on: code 15500 (Your request could not be processed because "
        "you supplied an invalid identification code or your password was incorrect)"
    )
    assert (caught.value.status_code, caught.value.severity) == (15500, "ERROR")
    assert not isinstance(caught.value, MalformedFile)


def test_error_message_is_refused(fixture_bytes: Read) -> None:
    with pytest.raises(OfxInstitutionError) as caught:
        parse(fixture_bytes, "error_message.ofx")
    assert str(caught.value) == (
        "the institution returned an error instead of a statement: "
        "code 2000 ERROR (General Server Error) in <STMTTRNRS> at line 20"
    )
    assert caught.value.status_code == 2000


def test_date_missing_skips_each_transaction_with_a_warning(fixture_bytes: Read) -> None:
    doc = parse(fixture_bytes, "fail_nice/date_missing.ofx")
    (statement,) = doc.statements
    assert statement.transactions == []
    assert statement.ledger_balance == Decimal(0)
    assert doc.warnings == [
        "line 33: <STMTTRN> (FITID 184997056) skipped: no <DTPOSTED>",
        "line 40: <STMTTRN> (FITID 2000957249) skipped: no <DTPOSTED>",
        "line 48: <STMTTRN> (FITID 2000957249) skipped: <DTPOSTED> not a valid date: '20120231' "
        "(day is out of range for month)",
    ]


def test_decimal_error_names_both_problems(fixture_bytes: Read) -> None:
    doc = parse(fixture_bytes, "fail_nice/decimal_error.ofx")
    assert doc.statements[0].transactions == []
    (warning,) = doc.warnings
    assert warning.startswith("line 34: <STMTTRN> (FITID 2000957249) skipped:")
    assert "'201120000000'" in warning
    assert "not an amount: '$120'" in warning


def test_empty_balance_keeps_the_transaction(fixture_bytes: Read) -> None:
    doc = parse(fixture_bytes, "fail_nice/empty_balance.ofx")
    (statement,) = doc.statements
    assert [t.amount for t in statement.transactions] == [Decimal(120)]
    assert statement.ledger_balance is statement.available_balance is None
    assert doc.warnings == [
        "line 37: <LEDGERBAL> has no <BALAMT> value: the balance is unknown",
        "line 41: <AVAILBAL> has no <BALAMT> value: the balance is unknown",
    ]
