"""One unsigned amount column plus a debit/credit marker column (CR/DR, D/C, Debit/Credit)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from finsync.domain.csvmapping import ColumnMapping, SignConvention, direction_of
from finsync.domain.errors import MalformedFile
from finsync.providers.csv import CsvFormat
from finsync.providers.csv.detect import detect_direction
from finsync.providers.csv.reader import rows_of


def amounts(data: bytes, mapping: ColumnMapping | None = None) -> tuple[list[Decimal], list[str]]:
    parsed = CsvFormat().read(data, mapping, "m1", "Bank")
    (statement,) = parsed.statements
    return [t.amount for t in rows_of(statement)], parsed.warnings


@pytest.mark.parametrize(
    ("header", "debit", "credit"),
    [
        ("CR/DR", "DR", "CR"),
        ("Dr/Cr", "dr", "cr"),
        ("Debit/Credit", "Debit", "Credit"),
        ("Type", "D", "C"),
        ("Transaction Type", "DEBIT", "credit"),
    ],
)
def test_markers_sign_an_unsigned_amount(header: str, debit: str, credit: str) -> None:
    data = (
        f"Date,Description,Amount,{header},Currency\n"
        f"2024-01-05,Coffee,12.50,{debit},EUR\n"
        f"2024-01-06,Salary,2500.00,{credit},EUR\n"
        f"2024-01-07,Rent, 900.00 , {debit} ,EUR\n"
    ).encode()
    got, warnings = amounts(data)
    assert got == [Decimal("-12.50"), Decimal("2500.00"), Decimal("-900.00")]
    assert any(header in w and "debit or credit" in w for w in warnings)


def test_only_debits_under_a_marker_header_are_money_out() -> None:
    data = b"Date,Amount,CR/DR,Currency\n2024-01-05,12.50,DR,EUR\n2024-01-06,3.00,DR,EUR\n"
    assert amounts(data)[0] == [Decimal("-12.50"), Decimal("-3.00")]


def test_a_negative_debit_is_not_flipped_twice_and_a_negative_credit_is_reported() -> None:
    data = (
        b"Date,Amount,Dr/Cr,Currency\n"
        b"2024-01-05,-12.50,DR,EUR\n"
        b"2024-01-06,-7.00,CR,EUR\n"
        b"2024-01-07,0.00,CR,EUR\n"
    )
    got, warnings = amounts(data)
    assert got == [Decimal("-12.50"), Decimal("0.00")]
    assert any(w.startswith("line 3:") and "says credit" in w for w in warnings)


def test_rows_with_a_missing_or_unknown_marker_are_reported_by_line() -> None:
    rows = [f"2024-01-{d:02},{d}.00,{'DR' if d % 2 else 'CR'},EUR" for d in range(1, 21)]
    rows[4] = "2024-01-05,5.00,,EUR"  # line 6: empty marker
    rows[9] = "2024-01-10,10.00,REV,EUR"  # line 11: unknown marker
    data = ("Date,Amount,CR/DR,Currency\n" + "\n".join(rows) + "\n").encode()
    got, warnings = amounts(data)
    assert len(got) == 18
    assert got[:2] == [Decimal("-1.00"), Decimal("2.00")]
    assert Decimal("-5.00") not in got
    assert Decimal("10.00") not in got
    assert any(w.startswith("line 6:") and "CR/DR is empty" in w for w in warnings)
    assert any(w.startswith("line 11:") and "'REV'" in w for w in warnings)


def test_a_marker_column_is_found_by_its_values_when_its_name_is_unknown() -> None:
    data = b"Date,Amount,Flag,Currency\n2024-01-05,12.50,D,EUR\n2024-01-06,4.00,C,EUR\n"
    assert amounts(data)[0] == [Decimal("-12.50"), Decimal("4.00")]


@pytest.mark.parametrize(
    ("header", "rows"),
    [
        (["Date", "Amount", "Status"], [["2024-01-05", "1", "C"], ["2024-01-06", "2", "C"]]),  # "cleared"
        (["Date", "Amount", "Type"], [["2024-01-05", "1", "Card"], ["2024-01-06", "2", "Transfer"]]),
        (["Date", "Amount", "Type"], [["2024-01-05", "1", ""]]),
    ],
)
def test_other_columns_are_no_markers(header: list[str], rows: list[list[str]]) -> None:
    assert detect_direction(header, rows) is None


def test_a_column_already_mapped_is_not_a_marker_column() -> None:
    assert detect_direction(["Date", "D/C"], [["2024-01-05", "DR"]], skip=[1]) is None


def test_signed_files_without_markers_are_unchanged() -> None:
    data = b"Date,Description,Amount,Currency\n2024-01-05,Coffee,-3.20,EUR\n2024-01-06,Pay,10,EUR\n"
    got, warnings = amounts(data)
    assert got == [Decimal("-3.20"), Decimal("10")]
    assert not warnings


def test_a_saved_mapping_names_the_direction_column() -> None:
    data = b"Booked;Sum;Kind;Text\n05.01.2024;12,50;Dr;Coffee\n06.01.2024;100,00;Cr;Refund\n"
    mapping = ColumnMapping(
        date="Booked", amount="Sum", direction="Kind", description=("Text",), default_currency="EUR"
    )
    assert amounts(data, mapping)[0] == [Decimal("-12.50"), Decimal("100.00")]
    assert ColumnMapping.from_json(mapping.to_json()) == mapping
    # Saved without it, the marker column is detected all the same.
    plain = ColumnMapping(date="Booked", amount="Sum", description=("Text",), default_currency="EUR")
    assert amounts(data, plain)[0] == [Decimal("-12.50"), Decimal("100.00")]


def test_a_mapping_naming_a_missing_direction_column_does_not_fit() -> None:
    mapping = ColumnMapping(date="Date", amount="Amount", direction="CR/DR", default_currency="EUR")
    with pytest.raises(MalformedFile, match="CR/DR"):
        CsvFormat().read(b"Date,Amount\n2024-01-05,1.00\n", mapping)


@pytest.mark.parametrize(
    ("mapping", "words"),
    [
        (ColumnMapping(date="D", debit="Out", direction="K", default_currency="EUR"), "name the amount"),
        (
            ColumnMapping(
                date="D", amount="A", direction="K", sign=SignConvention.POSITIVE_OUT, default_currency="EUR"
            ),
            "positive_in",
        ),
    ],
)
def test_direction_mapping_problems(mapping: ColumnMapping, words: str) -> None:
    assert any(words in p for p in mapping.problems())
    assert "K" in mapping.columns()


def test_preview_shows_the_direction_column_and_signed_rows() -> None:
    data = b"Date,Amount,CR/DR,Currency\n2024-01-05,12.50,DR,EUR\n2024-01-06,4.00,CR,EUR\n"
    preview = CsvFormat().preview(data)
    assert preview["mapping"]["direction"] == "CR/DR"
    assert [r["amount"] for r in preview["rows"]] == ["-12.50", "4.00"]
    assert any("'CR/DR'" in p for p in preview["problems"])


@pytest.mark.parametrize(("value", "way"), [(" dr ", -1), ("D", -1), ("Credit", 1), ("c", 1), ("x", None)])
def test_direction_of(value: str, way: int | None) -> None:
    assert direction_of(value) == way
