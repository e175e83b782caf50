"""CSV detection: encodings, dialects, date and number formats, debit/credit vs signed amounts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from finsync.domain.csvmapping import ColumnMapping, SignConvention, header_signature
from finsync.domain.errors import MalformedFile
from finsync.providers.csv import CsvFormat
from finsync.providers.csv.detect import (
    DateFormat,
    Dialect,
    NumberFormat,
    decode,
    detect_date_format,
    detect_number_format,
    sniff_dialect,
)
from finsync.providers.csv.mapping import guess_mapping
from finsync.providers.csv.reader import rows_of

TEXT = "Date;Description;Amount\n02.01.2024;Café;-3,20\n"


@pytest.mark.parametrize(
    ("data", "codec"),
    [
        (TEXT.encode("utf-8"), "utf-8"),
        (TEXT.encode("utf-8-sig"), "utf-8-sig"),
        (TEXT.encode("utf-16"), "utf-16"),
        (TEXT.encode("utf-16-le"), "utf-16-le"),
        (TEXT.encode("utf-16-be"), "utf-16-be"),
        (TEXT.encode("cp1252"), "windows-1252"),
    ],
)
def test_encodings(data: bytes, codec: str) -> None:
    assert decode(data) == (TEXT, codec)


def test_windows_1252_undefined_bytes_do_not_fail() -> None:
    assert decode(b"a,b\n\x81,\x9d\n")[1] == "windows-1252"


def test_broken_utf16_is_a_clear_error() -> None:
    with pytest.raises(MalformedFile, match="utf-16"):
        decode(b"\xff\xfe" + "a,b\n".encode("utf-16-le") + b"\x00\xd8")


@pytest.mark.parametrize(
    ("text", "dialect"),
    [
        ("a,b,c\n1,2,3\n", Dialect(",", '"')),
        ("a;b;c\n1,5;2;3\n", Dialect(";", '"')),
        ("a\tb\tc\n1\t2\t3\n", Dialect("\t", '"')),
        ("a|b|c\n1|2|3\n", Dialect("|", '"')),
        ('a,b\n"x, y",2\n', Dialect(",", '"')),
        ("a,b\n'x, y',2\n", Dialect(",", "'")),
    ],
)
def test_dialects(text: str, dialect: Dialect) -> None:
    assert sniff_dialect(text) == dialect


@pytest.mark.parametrize(
    ("text", "dialect"),
    [
        ("Statement for account 12345\nDate,Amount\n2024-01-31,-2.50\n", Dialect(",", '"', 1)),
        (  # Nationwide: key/value lines and a blank line above the header
            '"Account Name:","FlexAccount"\n"Balance:","1.00"\n\n"Date","Description","Paid out","Paid in"\n'
            '"31/01/2024","COFFEE","2.50",""\n"01/02/2024","SALARY","","100.00"\n',
            Dialect(",", '"', 2),
        ),
        (  # ING: semicolons, a preamble wider than two cells
            "Umsatzanzeige;Datei erstellt am: 31.01.2024\nIBAN;DE12\nSaldo;1.234,56;EUR\n\n"
            "Buchung;Valuta;Text;Betrag;Waehrung\n31.01.2024;31.01.2024;Kaffee;-2,50;EUR\n",
            Dialect(";", '"', 3),
        ),
        # Data rows (not the header) ending with a delimiter.
        ("Date,Amount,Currency\n2024-01-31,-2.50,EUR,\n2024-02-01,3.00,EUR,\n", Dialect(",", '"')),
    ],
)
def test_header_below_a_preamble_and_trailing_delimiters(text: str, dialect: Dialect) -> None:
    assert sniff_dialect(text) == dialect


def test_prose_is_not_a_table() -> None:
    assert sniff_dialect("Dear bank\nplease send my statement\n") is None


@pytest.mark.parametrize(
    ("values", "label", "ambiguous"),
    [
        (["2024-01-31", "2024-02-01 10:00:00"], "YYYY-MM-DD", False),
        (["2024-01-31T10:00:00Z"], "YYYY-MM-DD", False),
        (["31/01/2024", "01/02/2024"], "DD/MM/YYYY", False),
        (["01/31/2024", "02/01/2024"], "MM/DD/YYYY", False),
        (["01/02/2024", "03/04/2024"], "DD/MM/YYYY", True),
        (["31.01.2024"], "DD.MM.YYYY", False),
        (["20240131"], "YYYYMMDD", False),
        (["31/01/24"], "DD/MM/YYYY", False),
    ],
)
def test_date_formats(values: list[str], label: str, ambiguous: bool) -> None:
    fmt, unsure = detect_date_format(values)
    assert (fmt.label, unsure) == (label, ambiguous)


def test_date_preference_and_pinning() -> None:
    assert detect_date_format(["01/02/2024"], DateFormat("mdy", "/")) == (DateFormat("mdy", "/"), False)
    assert DateFormat.from_label("MM/DD/YYYY").parser()("02/01/2024 10:00") == date(2024, 2, 1)
    assert DateFormat.from_label("DD/MM/YY").parser()("31/01/99") == date(1999, 1, 31)
    with pytest.raises(ValueError, match="unknown date format"):
        DateFormat.from_label("banana")
    with pytest.raises(ValueError, match="no known format"):
        detect_date_format(["soon", "later"])


@pytest.mark.parametrize(
    ("label", "value", "day"),
    [
        ("DDMMYYYY", "31012024", date(2024, 1, 31)),
        ("MMDDYYYY", "01312024", date(2024, 1, 31)),
        ("DDMMYY", "310124", date(2024, 1, 31)),
        ("YYYYMMDD", "20240131", date(2024, 1, 31)),
        ("DD MM YYYY", "31 01 2024", date(2024, 1, 31)),
        ("DD MM YYYY", "31 01 2024 10:00", date(2024, 1, 31)),
    ],
)
def test_every_label_a_mapping_may_pin_reads_its_dates(label: str, value: str, day: date) -> None:
    """The mapping validator accepts these labels: the parser must read what they describe."""
    assert DateFormat.from_label(label).parser()(value) == day


def test_a_few_bad_dates_do_not_hide_the_format() -> None:
    assert detect_date_format(["31/01/2024", "n/a", "01/02/2024"])[0].label == "DD/MM/YYYY"


@pytest.mark.parametrize(
    ("values", "decimal"),
    [
        (["-3.20", "1,234.56"], "."),
        (["-3,20"], ","),
        (["1.234,56"], ","),
        (["1,234"], "."),
        (["€ 12,5"], ","),
    ],
)
def test_number_formats(values: list[str], decimal: str) -> None:
    assert detect_number_format(values).decimal == decimal


@pytest.mark.parametrize(
    ("decimal", "text", "value"),
    [
        (".", "1,234.56", Decimal("1234.56")),
        (".", "(12.50)", Decimal("-12.50")),
        (".", "$1,204.00", Decimal("1204.00")),
        (".", "+3", Decimal("3")),
        (",", "1.234,56", Decimal("1234.56")),
        (",", "-3,20", Decimal("-3.20")),
        (",", "3,20-", Decimal("-3.20")),
        (",", "1 234,56", Decimal("1234.56")),
        (".", "1'234.50", Decimal("1234.50")),
        (".", "", None),
        (".", "1,23,456.78", Decimal("123456.78")),  # Indian lakh grouping
        (",", "1.234.567", Decimal("1234567")),
    ],
)
def test_number_parsing(decimal: str, text: str, value: Decimal | None) -> None:
    assert NumberFormat(decimal).parser()(text) == value


@pytest.mark.parametrize(
    "text",
    # A finite exponent or digit run beyond any amount (stored, it would be a million digits).
    ["abc", "1.2.3", "NaN", "Infinity", "--", "1e999999", "1e-999999", "-2E+50", "9" * 60, "1_000"],
)
def test_not_numbers(text: str) -> None:
    with pytest.raises(ValueError, match="not an amount"):
        NumberFormat(".").parser()(text)


@pytest.mark.parametrize(
    ("decimal", "text"),
    # A separator that does not group thousands is the other decimal mark: the amount is
    # reported as unreadable, not read 100 or 1,000 times too big.
    [(".", "12,50"), (".", "-2,5"), (".", "1,234,56"), (",", "12.50"), (",", "(12.50)"), (",", "1.5")],
)
def test_a_decimal_mark_is_never_read_as_thousands(decimal: str, text: str) -> None:
    with pytest.raises(ValueError, match="not an amount"):
        NumberFormat(decimal).parser()(text)


def test_decimal_comma_after_the_sample_is_reported_not_read_as_hundreds() -> None:
    whole = "".join(f"2024-01-{1 + i % 28:02d};Shop {i};-{i};EUR\n" for i in range(250))
    data = ("Date;Description;Amount;Currency\n" + whole + "2024-02-01;Coffee;-2,50;EUR\n").encode()
    parsed = CsvFormat().read(data)
    rows = [t for s in parsed.statements for t in rows_of(s)]
    assert [t.amount for t in rows if t.description == "Coffee"] == []
    assert parsed.warnings == ["line 252: amount '-2,50' is not a number; the row was not imported"]


def test_debit_credit_columns_versus_signed_amount() -> None:
    fmt = CsvFormat()
    split = (
        b"Date,Description,Debit,Credit,Currency\n2024-01-02,Rent,900.00,,EUR\n2024-01-03,Pay,,2500.00,EUR\n"
    )
    signed = b"Date,Description,Amount,Currency\n2024-01-02,Rent,-900.00,EUR\n2024-01-03,Pay,2500.00,EUR\n"
    for data in (split, signed):
        (statement,) = fmt.read(data).statements
        assert [t.amount for t in rows_of(statement)] == [Decimal("-900.00"), Decimal("2500.00")]
    mapping = guess_mapping(["Date", "Description", "Debit", "Credit", "Currency"])
    assert mapping is not None
    assert (mapping.amount, mapping.debit, mapping.credit) == (
        None,
        "Debit",
        "Credit",
    )


def test_sign_convention_positive_out() -> None:
    mapping = ColumnMapping(
        date="When",
        amount="Charge",
        description=("What",),
        default_currency="USD",
        sign=SignConvention.POSITIVE_OUT,
    )
    data = b"When,What,Charge\n01/05/2024,Coffee,4.50\n01/06/2024,Payment,-100.00\n"
    parsed = CsvFormat().read(data, mapping, "m1", "Card")
    assert parsed.format == "csv:mapping"
    (statement,) = parsed.statements
    assert [t.amount for t in rows_of(statement)] == [Decimal("-4.50"), Decimal("100.00")]
    assert statement.account.provider_account_id == "mapping|m1|USD"


def test_mapping_problems_and_header_signature() -> None:
    assert ColumnMapping(date="d", default_currency="EUR").problems() == [
        "an amount column, or debit and/or credit columns, is required"
    ]
    assert header_signature([" Date ", "AMOUNT"]) == header_signature(["date", "amount"])
    with pytest.raises(MalformedFile, match="no column 'Value'"):
        CsvFormat().read(
            b"Date,Amount\n2024-01-01,1\n", ColumnMapping(date="Date", amount="Value", default_currency="EUR")
        )


def test_occurrence_index_keeps_identical_rows_and_stable_ids() -> None:
    data = b"Date,Description,Amount,Currency\n2024-01-02,Coffee,-3.20,EUR\n2024-01-02,Coffee,-3.20,EUR\n"
    first = [t.provider_transaction_id for t in rows_of(CsvFormat().read(data).statements[0])]
    longer = data + b"2024-01-03,Tea,-2.00,EUR\n"
    second = [t.provider_transaction_id for t in rows_of(CsvFormat().read(longer).statements[0])]
    assert len(set(first)) == 2
    assert second[:2] == first


def test_sniff_leaves_ofx_and_markup_alone() -> None:
    fmt = CsvFormat()
    assert not fmt.sniff(b"OFXHEADER:100\nDATA:OFXSGML\n\n<OFX>", None)
    assert not fmt.sniff(b"<html><body>a,b</body></html>", None)
    assert fmt.sniff("Date,Amount\n2024-01-01,1\n".encode("utf-16"), None)
    assert fmt.sniff("Date,Name\n2024-01-01,é".encode()[:-1], None)  # cut inside a character
