"""CSV presets read from fixtures written from the documented headers: kinds, signs, currencies, ids."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from finsync.domain.enums import TransactionStatus, TransactionSubtype
from finsync.domain.records import ProviderTransaction
from finsync.providers.csv import CsvFormat
from finsync.providers.csv.presets import identify
from finsync.providers.csv.reader import rows_of

CSV = Path(__file__).parents[2] / "fixtures" / "csv"
S = TransactionSubtype


def _read(data: bytes) -> tuple[str, dict[str, list[ProviderTransaction]], list[str]]:
    parsed = CsvFormat().read(data)
    return (
        parsed.format,
        {s.account.provider_account_id: rows_of(s) for s in parsed.statements},
        parsed.warnings,
    )


def test_presets_are_identified_by_header_whatever_the_order_and_case() -> None:
    for name in (
        "trading212_2024",
        "trading212_2021",
        "revolut",
        "monzo",
        "chase_card",
        "amex",
        "vanguard_uk",
    ):
        header = (CSV / f"{name}.csv").read_text().splitlines()[0].split(",")
        preset = identify(list(reversed([h.upper() for h in header])))
        assert preset is not None
        assert preset.name == name.split("_20")[0], name
    assert identify(["Date", "Amount", "Description"]) is None


def test_trading212_older_generation_fees_and_currency_from_the_column_names() -> None:
    fmt, accounts, warnings = _read((CSV / "trading212_2021.csv").read_bytes())
    assert (fmt, warnings) == ("csv:trading212", [])
    (rows,) = accounts.values()
    sell = next(t for t in rows if t.subtype is S.SELL)
    assert (sell.amount, sell.currency, sell.fees, sell.symbol) == (
        Decimal("36.15"),
        "GBP",
        Decimal("0.01"),
        "MSFT",
    )
    dividend = next(t for t in rows if t.subtype is S.DIVIDEND)
    assert dividend.fees is None  # withholding tax is in USD and stays in raw
    assert dividend.raw["Withholding tax"] == "0.08"
    assert [t.provider_transaction_id for t in rows][:3] == ["d-2021-1", "EOF1000000001", "EOF1000000002"]


def test_trading212_minimal_export_and_other_actions() -> None:
    data = (
        b"Action,Time,Notes,ID,Total,Currency (Total)\n"
        b"Deposit,2024-05-01 10:00:00,,dep-1,100.00,EUR\n"
        b"Stop buy,2024-05-02 10:00:00,,o-2,10.00,EUR\n"
        b"Spending cashback,2024-05-03 10:00:00,,,0.12,EUR\n"
        b"Card debit,2024-05-04 10:00:00,Coffee,c-4,3.10,EUR\n"
        b"Something new,2024-05-05 10:00:00,,,1.00,EUR\n"
        b",2024-05-06 10:00:00,,,1.00,EUR\n"
    )
    fmt, accounts, warnings = _read(data)
    assert fmt == "csv:trading212"
    rows = accounts["trading212|EUR"]
    assert [(t.subtype, t.amount) for t in rows] == [
        (S.DEPOSIT, Decimal("100.00")), (S.BUY, Decimal("-10.00")), (S.OTHER, Decimal("0.12")),
        (S.PURCHASE, Decimal("-3.10")), (S.OTHER, Decimal("1.00")),
    ]  # fmt: skip
    assert warnings == ["line 7: the Action is empty; the row was not imported"]


def test_revolut_fee_pending_and_declined() -> None:
    _, accounts, warnings = _read((CSV / "revolut.csv").read_bytes())
    exchange = next(t for t in accounts["revolut|current|GBP"] if t.description == "Exchanged to EUR")
    assert (exchange.amount, exchange.fees) == (Decimal("-100.50"), Decimal("0.50"))
    tesco = next(t for t in accounts["revolut|current|GBP"] if t.description == "Tesco")
    assert (tesco.status, tesco.settlement_date) == (TransactionStatus.PENDING, None)
    assert warnings == ["1 row(s) skipped: declined Revolut transactions"]
    assert sorted(accounts) == ["revolut|current|EUR", "revolut|current|GBP", "revolut|savings|GBP"]


def test_amex_multiline_quoted_cells_positive_charges_and_quoted_references() -> None:
    _, accounts, _ = _read((CSV / "amex.csv").read_bytes())
    rows = accounts["amex-card"]
    assert [t.amount for t in rows] == [Decimal("-412.30"), Decimal("412.30"), Decimal("-1204.00")]
    assert rows[0].provider_transaction_id == "320240610123456789"
    assert rows[0].raw["Extended Details"] == "DELTA AIR LINES\nATLANTA GA"


def test_monzo_day_first_dates_and_kinds() -> None:
    _, accounts, _ = _read((CSV / "monzo.csv").read_bytes())
    rows = accounts["monzo|GBP"]
    assert [t.transaction_date.isoformat() for t in rows] == [
        "2024-03-01",
        "2024-03-02",
        "2024-03-13",
        "2024-03-14",
    ]
    assert [t.subtype for t in rows] == [S.TRANSFER_IN, S.PURCHASE, S.PURCHASE, S.TRANSFER_OUT]
    assert rows[2].description == "Café Zürich / #holiday"


def test_a_reused_id_keeps_each_row_and_an_exact_repeat_counts_once() -> None:
    head = (CSV / "monzo.csv").read_text().splitlines()
    repeat = head[2].replace("Pret A Manger", "Pret A Manger (again)")
    data = "\n".join([head[0], head[1], head[2], head[2], repeat]).encode()
    _, accounts, warnings = _read(data)
    assert [t.provider_transaction_id for t in accounts["monzo|GBP"]] == [
        "tx_0000A1",
        "tx_0000A2",
        "tx_0000A2#2",
    ]
    assert warnings == ["id tx_0000A2 is used for 2 different rows; kept each of them"]


def test_vanguard_uk_kinds_units_and_funds_from_the_details() -> None:
    fmt, accounts, warnings = _read((CSV / "vanguard_uk.csv").read_bytes())
    assert (fmt, warnings) == ("csv:vanguard_uk", [])
    rows = accounts["vanguard_uk|GBP"]
    assert [(t.transaction_date.isoformat(), t.subtype, t.amount) for t in rows] == [
        ("2024-01-03", S.DEPOSIT, Decimal("5000")),
        ("2024-01-04", S.BUY, Decimal("-2500")),
        ("2024-01-04", S.BUY, Decimal("-2480.31")),
        ("2024-02-01", S.INTEREST, Decimal("0.07")),
        ("2024-02-01", S.DEPOSIT, Decimal("150")),
        ("2024-04-07", S.FEE, Decimal("-11.20")),
        ("2024-06-26", S.DIVIDEND, Decimal("191.05")),
        ("2024-06-26", S.DIVIDEND, Decimal("-191.05")),  # the reversal undoes the first
        ("2024-06-26", S.DIVIDEND, Decimal("191.05")),
        ("2024-07-15", S.SELL, Decimal("1701.44")),
        ("2024-07-16", S.WITHDRAWAL, Decimal("-2000")),
    ]
    assert [(t.symbol, t.quantity) for t in rows if t.quantity is not None] == [
        ("FTSE Global All Cap Index Fund - Accumulation", Decimal("12.3456")),
        ("VUSA", Decimal("1020")),
        ("VUSA", Decimal("20")),
    ]
    assert {t.symbol for t in rows if t.subtype is S.DIVIDEND} == {"VUSA"}
    assert {t.currency for t in rows} == {"GBP"}
    assert len({t.provider_transaction_id for t in rows}) == 11  # the repeated dividend stays two rows
