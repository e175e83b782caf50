"""The same content in the shapes that used to leave the lean paths (issue 10): lower-case
tags and comments in bank files, big investment lists. Each shape must read exactly as its
plain form (or as the generic tree builder reads it) and take the lean path: deferred
STMTTRN pieces, one string per investment item."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from tests.unit.ofx.conftest import SGML_HEADER
from tests.unit.ofx.test_ofx_deferred import build_all, paths

from finsync.providers.ofx import OfxDocument, fastpath, parse_ofx
from finsync.providers.ofx.format import OfxFormat
from finsync.providers.ofx.schema import INVESTMENT_TRANSACTIONS, POSITIONS, SECURITIES

pytestmark = pytest.mark.unit

Build = Callable[..., str]
_ITEM_TAG = re.compile(r"<(" + "|".join(sorted(INVESTMENT_TRANSACTIONS | POSITIONS | SECURITIES)) + r")>")
INVESTMENT_FIXTURES = (
    "fidelity.ofx",
    "investment_401k.ofx",
    "investment_medium.ofx",
    "td_ameritrade.ofx",
    "tiaacref.ofx",
    "vanguard.ofx",
    "vanguard401k.ofx",
)


def lower_case(text: str) -> str:
    return re.sub(r"</?[A-Za-z][\w.]*", lambda tag: tag.group().lower(), text)


def as_trees(text: str) -> str:
    """Every investment item with an attribute: the builder then reads it as a tree."""
    return _ITEM_TAG.sub(r'<\1 source="test">', text)


def investments(doc: OfxDocument) -> list[Any]:
    return [
        (s.account_id, s.investment_transactions, s.transactions, s.positions, s.is_retirement)
        for s in doc.statements
    ] + [doc.securities, doc.warnings]


def spy_items(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each item the tokenizer offered was read as one block."""
    seen: list[bool] = []
    real = fastpath.item_body

    def spy(*args: Any) -> str | None:
        body = real(*args)
        seen.append(body is not None)
        return body

    monkeypatch.setattr(fastpath, "item_body", spy)
    return seen


INVESTMENT_FILE = SGML_HEADER + (
    "<OFX><SIGNONMSGSRSV1><SONRS><STATUS><CODE>0<SEVERITY>INFO</STATUS><DTSERVER>20240131"
    "<LANGUAGE>ENG</SONRS></SIGNONMSGSRSV1>\n<INVSTMTMSGSRSV1><INVSTMTTRNRS><TRNUID>1<STATUS><CODE>0"
    "<SEVERITY>INFO</STATUS><INVSTMTRS><DTASOF>20240131<CURDEF>USD<INVACCTFROM><BROKERID>b.example"
    "<ACCTID>9876</INVACCTFROM>\n<INVTRANLIST><DTSTART>20240101<DTEND>20240131\n"
    # repeated leaves: the first non-empty value counts; an empty one first
    "<BUYSTOCK><INVBUY><INVTRAN><FITID>B1<FITID>B1-LATER<DTTRADE>20240105<MEMO></MEMO><MEMO>Buy &amp; hold"
    "</INVTRAN>\n  <SECID><UNIQUEID>037833100<UNIQUEIDTYPE>CUSIP</SECID><UNITS>10<UNITPRICE>185.50"
    "<COMMISSION>1.00<TOTAL>-1856.00<SUBACCTSEC>CASH<SUBACCTFUND>CASH</INVBUY><BUYTYPE>BUY</BUYSTOCK>\n"
    # XML-style end tags, a foreign currency aggregate
    "<SELLSTOCK><INVSELL><INVTRAN><FITID>S1</FITID><DTTRADE>20240110</DTTRADE></INVTRAN><SECID>"
    "<UNIQUEID>594918104</UNIQUEID><UNIQUEIDTYPE>CUSIP</UNIQUEIDTYPE></SECID><UNITS>-5</UNITS>"
    "<UNITPRICE>400</UNITPRICE><TOTAL>1999</TOTAL><CURRENCY><CURRATE>1.1<CURSYM>EUR</CURRENCY>"
    "<SUBACCTSEC>CASH</SUBACCTSEC><SUBACCTFUND>CASH</SUBACCTFUND></INVSELL><SELLTYPE>SELL</SELLSTOCK>\n"
    # an unknown element left open (an empty SGML leaf), a 401(k) source
    "<INCOME><INVTRAN><FITID>I1<DTTRADE>20240115</INVTRAN><SECID><UNIQUEID>037833100"
    "<UNIQUEIDTYPE>CUSIP</SECID><INCOMETYPE>DIV<TOTAL>12.30<X.EXTRA><SUBACCTSEC>CASH"
    "<SUBACCTFUND>CASH<INV401KSOURCE>PRETAX</INCOME>\n"
    # unreadable: skipped with a warning on both paths
    "<INCOME><INVTRAN><FITID>I2<DTTRADE>notadate</INVTRAN><SECID><UNIQUEID>1<UNIQUEIDTYPE>CUSIP</SECID>"
    "<INCOMETYPE>DIV<TOTAL>1<SUBACCTSEC>CASH<SUBACCTFUND>CASH</INCOME>\n"
    # a known aggregate left open: the builder closes it with a warning (never a block)
    "<INCOME><INVTRAN><FITID>I3<DTTRADE>20240116<SECID><UNIQUEID>2<UNIQUEIDTYPE>CUSIP</SECID>"
    "<INCOMETYPE>DIV<TOTAL>2<SUBACCTSEC>CASH<SUBACCTFUND>CASH</INCOME>\n"
    "<INVBANKTRAN><STMTTRN><TRNTYPE>CREDIT<DTPOSTED>20240120<TRNAMT>100<FITID>C1<NAME>Deposit</STMTTRN>"
    "<SUBACCTFUND>CASH</INVBANKTRAN>\n"
    "</INVTRANLIST><INVPOSLIST>\n"
    "<POSSTOCK><INVPOS><SECID><UNIQUEID>037833100<UNIQUEIDTYPE>CUSIP</SECID><HELDINACCT>CASH"
    "<POSTYPE>LONG<UNITS>10<UNITPRICE>190<MKTVAL>1900<DTPRICEASOF>20240131</INVPOS></POSSTOCK>\n"
    "<POSOPT><INVPOS><SECID><UNIQUEID>OPT1<UNIQUEIDTYPE>OTHER</SECID><HELDINACCT>CASH"
    "<POSTYPE>SHORT<UNITS>1<UNITPRICE>2.5<MKTVAL>250<DTPRICEASOF>20240131</INVPOS></POSOPT>\n"
    "</INVPOSLIST><INVBAL><AVAILCASH>50</INVBAL></INVSTMTRS></INVSTMTTRNRS></INVSTMTMSGSRSV1>\n"
    "<SECLISTMSGSRSV1><SECLIST>\n"
    "<STOCKINFO><SECINFO><SECID><UNIQUEID>037833100<UNIQUEIDTYPE>CUSIP</SECID><SECNAME>Apple"
    "<TICKER>AAPL</SECINFO></STOCKINFO>\n"
    # an option names its underlying in a second SECID: the first one identifies it
    "<OPTINFO><SECINFO><SECID><UNIQUEID>OPT1<UNIQUEIDTYPE>OTHER</SECID><SECNAME>AAPL call"
    "<TICKER>AAPL240621C200</SECINFO><OPTTYPE>CALL<STRIKEPRICE>200<DTEXPIRE>20240621<SHPERCTRCT>100"
    "<SECID><UNIQUEID>037833100<UNIQUEIDTYPE>CUSIP</SECID></OPTINFO>\n"
    "</SECLIST></SECLISTMSGSRSV1></OFX>\n"
)


def test_investment_items_read_as_blocks_as_the_builder_reads_them(monkeypatch: pytest.MonkeyPatch) -> None:
    reference = parse_ofx(as_trees(INVESTMENT_FILE).encode())
    seen = spy_items(monkeypatch)
    doc = parse_ofx(INVESTMENT_FILE.encode())
    assert investments(doc) == investments(reference)
    # All but the item with an unclosed <SECID> inside <INVTRAN> (and INVBANKTRAN, a tree).
    assert seen.count(True) == 8
    assert seen.count(False) == 1
    (statement,) = doc.statements
    first = statement.investment_transactions[0]
    assert (first.fitid, first.memo) == ("B1", "Buy & hold")  # repeated leaves: first non-empty
    assert statement.investment_transactions[1].currency == "EUR"
    assert statement.is_retirement
    assert [t.fitid for t in statement.investment_transactions] == ["B1", "S1", "I1", "I3"]
    option = next(s for s in doc.securities if s.kind == "OPTINFO")
    assert option.unique_id == "OPT1"
    assert any("<INVTRAN>" in w and "no end tag" in w for w in doc.warnings)


@pytest.mark.parametrize("name", INVESTMENT_FIXTURES)
def test_investment_fixtures_read_alike_as_blocks_and_as_trees(
    fixture_bytes: Callable[[str], bytes], name: str
) -> None:
    data = fixture_bytes(name)
    text = data.decode("latin-1")
    assert investments(parse_ofx(data)) == investments(parse_ofx(as_trees(text).encode("latin-1")))


def test_lower_case_investment_items_are_read_as_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Normalised with the first transaction list; investment-only files stay as written."""
    reference = parse_ofx(as_trees(INVESTMENT_FILE).encode())
    lower = parse_ofx(lower_case(INVESTMENT_FILE).encode())
    assert investments(lower)[:-1] == investments(reference)[:-1]


# --- bank statements: lower case and comments -------------------------------------------


def _commented(text: str) -> str:
    text = text.replace("<STMTTRN>", "<!-- row --><STMTTRN>")
    text = text.replace("<TRNAMT>", "<!-- amount,\nsigned --><TRNAMT>")  # inside, over two lines
    return text.replace("<BANKTRANLIST>", "<BANKTRANLIST><!--\n  transactions\n-->")


SHAPES: dict[str, Callable[[str], str]] = {
    "lower case": lower_case,
    "comments": _commented,
    "lower case and comments": lambda text: lower_case(_commented(text)),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_lower_case_and_commented_bank_files_are_deferred_like_plain_ones(
    bank_file: Build, stmttrn: Build, shape: str
) -> None:
    rows = [stmttrn(f"T{i}", amount=f"-{i}.50", name=f"SHOP &amp; CO {i}") for i in range(40)]
    rows[7] = stmttrn("BAD", amount="x")  # a warning, with its line number
    plain = bank_file("".join(rows))
    text = SHAPES[shape](plain)
    assert text != plain
    statement = parse_ofx(text.encode(), defer=True).statements[0]
    assert statement.unread is not None  # the lean path: pieces, converted when needed
    assert len(statement.unread) == 40
    reference = OfxFormat().read(plain.encode())
    parsed = OfxFormat().read(text.encode())
    assert _rows(parsed) == _rows(reference)
    (warning,) = parsed.warnings
    at = text.lower().rindex("<stmttrn>", 0, text.index("BAD"))  # where the skipped row starts
    assert warning.startswith(f"line {text.count(chr(10), 0, at) + 1}: <STMTTRN> (FITID BAD) skipped")
    # The same file read without normalising (the generic path) says exactly the same.
    assert parsed.warnings == _generic_warnings(text)


def _rows(parsed: Any) -> list[tuple[object, ...]]:
    (statement,) = parsed.statements
    built = [t for group in statement.deferred for t in build_all(group)]
    return sorted(
        (t.provider_transaction_id, t.transaction_date, t.amount, t.description, t.type, t.raw)
        for t in statement.transactions + built
    )


def _generic_warnings(text: str) -> list[str]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fastpath, "normalized", lambda text, at: None)
        assert paths(parse_ofx(text.encode(), defer=True).statements[0]) == ["builder"]
        return parse_ofx(text.encode()).warnings


def test_a_comment_followed_by_text_is_left_to_the_generic_path(bank_file: Build, stmttrn: Build) -> None:
    """``<NAME>A<!-- c -->B`` reads "AB"; blanking that comment would read "A         B"."""
    text = bank_file(stmttrn("1", name="A<!-- c -->B") + "<!-- d -->" + stmttrn("2"))
    assert fastpath.normalized(text, 0) is not None  # the other comments could go
    (statement,) = parse_ofx(text.encode(), defer=True).statements
    assert paths(statement) == ["builder"]
    assert parse_ofx(text.encode()).statements[0].transactions[0].name == "AB"


def test_normalising_keeps_length_lines_and_cdata(bank_file: Build, stmttrn: Build) -> None:
    text = lower_case(_commented(bank_file(stmttrn("1"))))
    normal = fastpath.normalized(text, 0)
    assert normal is not None
    assert len(normal) == len(text)
    assert [i for i, c in enumerate(normal) if c == "\n"] == [i for i, c in enumerate(text) if c == "\n"]
    assert "<!--" not in normal
    assert "<STMTTRN>" in normal
    assert "<stmttrn>" not in normal
    assert fastpath.normalized(text.replace("<name>", "<name><![CDATA[x]]>"), 0) is None
    assert fastpath.normalized(text.replace("<name>", "<?pi?><name>"), 0) is None
    assert fastpath.normalized(bank_file(stmttrn("1")), 0) is None  # nothing to change


@pytest.mark.parametrize(
    ("old", "new"),
    [("<FITID>3", "<fitid>3"), ("<FITID>3", "<!-- c --><FITID>3"), ("<TRNAMT>-3", "<trnamt>-3")],
)
def test_a_later_list_normalised_reads_like_the_first(
    bank_file: Build, stmttrn: Build, old: str, new: str
) -> None:
    """Only the second list needs normalising: the first list's pieces were cut from the text
    before it was normalised, the second's from the copy; all are read from the newest text."""
    second = (
        "<BANKTRANLIST><DTSTART>20231201<DTEND>20240215\n" + stmttrn("3") + stmttrn("4") + "</BANKTRANLIST>"
    )
    plain = bank_file(stmttrn("1") + stmttrn("2")).replace("</BANKTRANLIST>", "</BANKTRANLIST>\n" + second)
    text = plain.replace(old, new, 1)
    assert text != plain
    (statement,) = parse_ofx(text.encode(), defer=True).statements
    assert statement.unread is not None
    assert len(statement.unread) == 4
    assert _rows(OfxFormat().read(text.encode())) == _rows(OfxFormat().read(plain.encode()))
