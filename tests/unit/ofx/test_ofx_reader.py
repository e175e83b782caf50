"""Synthetic files for every reader quirk: syntax variants, charsets, security, errors."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from finsync.domain.errors import MalformedFile
from finsync.providers.ofx import (
    OfxDocument,
    OfxInstitutionError,
    OfxNoStatements,
    OfxTransaction,
    builder,
    fastpath,
    nodes,
    parse_ofx,
)
from finsync.providers.ofx.model import clean_fields

pytestmark = pytest.mark.unit

Build = Callable[..., str]

XML_FILE = """<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<?OFX OFXHEADER="200" VERSION="211" SECURITY="NONE" OLDFILEUID="NONE" NEWFILEUID="NONE"?>
<OFX>
  <SIGNONMSGSRSV1><SONRS><STATUS><CODE>0</CODE><SEVERITY>INFO</SEVERITY></STATUS>
    <DTSERVER>20240131</DTSERVER><LANGUAGE>ENG</LANGUAGE></SONRS></SIGNONMSGSRSV1>
  <BANKMSGSRSV1><STMTTRNRS><TRNUID>1</TRNUID><STATUS><CODE>0</CODE><SEVERITY>INFO</SEVERITY></STATUS>
    <STMTRS><CURDEF>EUR</CURDEF>
      <BANKACCTFROM><BANKID>BANK</BANKID><ACCTID>42</ACCTID><ACCTTYPE>SAVINGS</ACCTTYPE></BANKACCTFROM>
      <BANKTRANLIST><DTSTART>20240101</DTSTART><DTEND>20240131</DTEND>
        <STMTTRN><TRNTYPE>CREDIT</TRNTYPE><DTPOSTED>20240102</DTPOSTED><TRNAMT>10.00</TRNAMT>
          <FITID>A1</FITID><NAME>{name}</NAME></STMTTRN>
      </BANKTRANLIST>
      <LEDGERBAL><BALAMT>10.00</BALAMT><DTASOF>20240131</DTASOF></LEDGERBAL>
    </STMTRS></STMTTRNRS></BANKMSGSRSV1>
</OFX>
"""


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the ``nth`` occurrence of ``needle``: where a message must point."""
    pos = -1
    for _ in range(nth):
        pos = text.index(needle, pos + 1)
    return text.count("\n", 0, pos) + 1


def only_transaction(doc: OfxDocument) -> OfxTransaction:
    (statement,) = doc.statements
    (transaction,) = statement.transactions
    return transaction


def summary(doc: OfxDocument) -> list[tuple[object, ...]]:
    """Everything but raw fields, for comparing the same content written differently."""
    return [
        (t.fitid, t.trntype, t.posted, t.amount, t.user_date, t.name, t.memo, t.checknum, t.currency)
        for s in doc.statements
        for t in s.transactions
    ]


# --- syntax variants ---------------------------------------------------------------


def test_sgml_with_header(bank_file: Build, stmttrn: Build) -> None:
    doc = parse_ofx(bank_file(stmttrn("1") + stmttrn("2", amount="+12,50")).encode())
    assert [t.amount for t in doc.statements[0].transactions] == [Decimal("-3.50"), Decimal("12.50")]
    assert (doc.institution_org, doc.institution_fid) == ("Test Bank", "999")
    assert doc.warnings == []


def test_no_header_and_blank_lines_before_ofx(bank_file: Build, stmttrn: Build) -> None:
    doc = parse_ofx(("\r\n \n\t\n" + bank_file(stmttrn("1"), header="")).encode())
    assert only_transaction(doc).fitid == "1"
    assert doc.header == {}


def test_xml_header_closing_tags_and_encoding(bank_file: Build) -> None:
    doc = parse_ofx(XML_FILE.format(name="Café").encode("utf-8"))
    assert doc.header["XML.ENCODING"] == "UTF-8"
    assert doc.header["VERSION"] == "211"
    assert only_transaction(doc).name == "Café"
    assert doc.statements[0].currency == "EUR"


def test_lowercase_tags_read_like_uppercase(bank_file: Build, stmttrn: Build) -> None:
    text = bank_file(stmttrn("1") + stmttrn("2", trntype="dep", amount="5"))
    lower = re.sub(r"</?[A-Za-z.\d]+>", lambda tag: tag.group().lower(), text)
    assert "<stmttrn>" in lower
    assert "<TRNTYPE>" not in lower
    assert summary(parse_ofx(lower.encode())) == summary(parse_ofx(text.encode()))
    assert parse_ofx(lower.encode()).statements[0].transactions[1].trntype == "DEP"


def _pretty(block: re.Match[str]) -> str:
    """Pretty-printed SGML: each leaf nested in the one before, all closed late, in reverse."""
    lines = block.group().strip().split("\n")[1:-1]
    leaves = [line[1 : line.index(">")] for line in lines if re.fullmatch(r"<[A-Z]+>[^<]+", line)]
    nested = "\n".join(" " * depth + line for depth, line in enumerate(lines))
    return "<STMTTRN>\n" + nested + "".join(f"</{tag}>" for tag in reversed(leaves)) + "\n</STMTTRN>\n"


def _in_cdata(leaf: re.Match[str]) -> str:
    """``<NAME>value`` as ``<NAME><![CDATA[value]]>``: the same value, unescaped."""
    return f"<NAME><![CDATA[{leaf.group(1).replace('&amp;', '&')}]]>"


@pytest.mark.parametrize(
    ("rewrite", "expected_path"),
    [
        (lambda body: body, "section"),
        (lambda body: re.sub(r"<([A-Z]+)>([^<\n]+)", r"<\1>\2</\1>", body), "section"),  # XML end tags
        # Comments and lower-case tags are normalised away (fastpath.normalized): same reading.
        (lambda body: body.replace("</STMTTRN>", "</STMTTRN><!-- c -->"), "section"),
        (lambda body: re.sub(r"</?[A-Z]+>", lambda tag: tag.group().lower(), body), "section"),
        (lambda body: body.replace("<STMTTRN>", "<STMTTRN><!-- c\n -->"), "section"),
        (lambda body: body.replace("</STMTTRN>", "</STMTTRN><?pi?>"), "block"),  # not normalised
        # Attributes and CDATA sections that are a whole value are normalised away too.
        (lambda body: body.replace("<STMTTRN>", '<STMTTRN id="1">'), "section"),
        (lambda body: re.sub(r"<NAME>([^<\n]+)", _in_cdata, body), "section"),
        (lambda body: body.replace("<NAME>PAYEE", "<NAME><![CDATA[PAY]]>EE"), "generic"),  # joined to text
        (lambda body: re.sub(r"<STMTTRN>.*?</STMTTRN>\n", _pretty, body, flags=re.DOTALL), "generic"),
        # The last one is closed: the others are read by the builder (closed by the next one).
        (lambda body: body.replace("</STMTTRN>\n<STMTTRN>", "\n<STMTTRN>"), "block+generic"),
    ],
    ids=[
        "sgml",
        "xml-end-tags",
        "comment-between",
        "lowercase",
        "comment-inside",
        "processing-instruction",
        "attribute",
        "cdata",
        "cdata-joined",
        "pretty-printed",
        "unclosed",
    ],
)
def test_fast_and_generic_paths_agree(
    bank_file: Build,
    stmttrn: Build,
    monkeypatch: pytest.MonkeyPatch,
    rewrite: Callable[[str], str],
    expected_path: str,
) -> None:
    body = "".join(
        stmttrn(
            str(i),
            trntype=("POS", "DEP", "CHECK")[i % 3],
            posted=f"202401{i % 28 + 1:02d}120000.000[-5:EST]",
            amount=f"{(-1) ** i * i}.{i % 100:02d}",
            name=f"PAYEE &amp; SONS {i}",
            memo=f"memo {i}" if i % 4 else None,
            extra=(
                "<CURRENCY><CURRATE>1.1<CURSYM>EUR</CURRENCY>"
                if i % 5 == 0
                else "<NAME>REPEATED\n<FITID>\n<MEMO>later memo"  # the first non-empty one counts
                if i % 5 == 1
                else ""
            ),
        )
        for i in range(60)
    )
    reference = parse_ofx(bank_file(body).encode())
    paths: list[str] = []
    section, block, written = fastpath.transaction_list, nodes.block_fields, builder.written_piece

    def spy_section(*args: Any) -> Any:
        result = section(*args)
        if result is not None:
            paths.append("section")
        return result

    def spy_block(*args: Any) -> Any:
        paths.append("block")
        return block(*args)

    def spy_written(*args: Any) -> Any:
        paths.append("generic")
        return written(*args)

    monkeypatch.setattr(fastpath, "transaction_list", spy_section)
    monkeypatch.setattr(nodes, "block_fields", spy_block)
    monkeypatch.setattr(builder, "written_piece", spy_written)
    other = parse_ofx(bank_file(rewrite(body)).encode())
    # The tree builder's STMTTRNs are kept as written pieces, read back as blocks are.
    expected = set(expected_path.split("+"))
    assert set(paths) == (expected if "generic" not in expected else expected | {"block"})
    assert summary(other) == summary(reference)
    assert len(summary(other)) == 60
    pairs = zip(other.statements[0].transactions, reference.statements[0].transactions, strict=True)
    assert all(clean_fields(a.fields) == clean_fields(b.fields) for a, b in pairs)
    assert other.statements[0].transactions[5].currency == "EUR"
    repeated = other.statements[0].transactions[1]
    assert (repeated.fitid, repeated.name, repeated.memo) == ("1", "PAYEE & SONS 1", "memo 1")
    assert other.statements[0].transactions[16].memo == "later memo"  # its own <MEMO> is missing
    assert other.statements[0].transactions[0].name == "PAYEE & SONS 0"


def test_cdata_is_literal(bank_file: Build, stmttrn: Build) -> None:
    doc = parse_ofx(bank_file(stmttrn("1", name="<![CDATA[  A<B & C&amp;D  ]]>")).encode())
    assert only_transaction(doc).name == "A<B & C&amp;D"


def test_entities_and_numeric_references(bank_file: Build, stmttrn: Build) -> None:
    name = "AT&amp;T &lt;b&gt; &quot;q&quot; &apos;a&apos; caf&#233; &#x41; &nbsp; &lol;"
    doc = parse_ofx(bank_file(stmttrn("1", name=name)).encode())
    assert only_transaction(doc).name == "AT&T <b> \"q\" 'a' café A &nbsp; &lol;"


def test_empty_and_self_closing_tags(bank_file: Build, stmttrn: Build) -> None:
    extra = "<CHECKNUM></CHECKNUM><REFNUM/><SIC>"
    doc = parse_ofx(bank_file(stmttrn("1", name="", extra=extra)).encode())
    transaction = only_transaction(doc)
    assert (transaction.name, transaction.checknum, transaction.refnum) == (None, None, None)


def test_empty_leaf_without_end_tag_is_repaired(bank_file: Build, stmttrn: Build) -> None:
    sign_on = (
        "<SIGNONMSGSRSV1><SONRS><STATUS><CODE>0</STATUS><LANGUAGE><FI><ORG>Org<FID>7</FI>"
        "</SONRS></SIGNONMSGSRSV1>"
    )
    doc = parse_ofx(bank_file(stmttrn("1"), sign_on=sign_on).encode())
    assert (doc.institution_org, doc.institution_fid) == ("Org", "7")


def test_unknown_and_dotted_extension_aggregates_are_ignored(bank_file: Build, stmttrn: Build) -> None:
    extension = "<INTU.XFER><INTU.FOO>1</INTU.FOO><BAR><BAZ>2</BAR></INTU.XFER>"
    text = bank_file(stmttrn("1", extra=extension)).replace("<CURDEF>", f"{extension}<MKTGINFO>hi<CURDEF>")
    doc = parse_ofx(text.encode())
    assert only_transaction(doc).amount == Decimal("-3.50")
    assert doc.warnings == []


def test_bank_id_longer_than_nine_characters(bank_file: Build, stmttrn: Build) -> None:
    account = "<BANKID>12345678901234<BRANCHID>0001<ACCTID>99<ACCTTYPE>SAVINGS"
    (statement,) = parse_ofx(bank_file(stmttrn("1"), account=account).encode()).statements
    assert (statement.bank_id, statement.branch_id, statement.account_id) == ("12345678901234", "0001", "99")


def test_missing_ledger_balance_and_dtstart(bank_file: Build, stmttrn: Build) -> None:
    text = bank_file(stmttrn("1"), ledger="", tranlist_head="<DTEND>20240131")
    doc = parse_ofx(text.encode())
    (statement,) = doc.statements
    assert statement.ledger_balance is None
    assert statement.date_start is None
    assert statement.date_end == datetime(2024, 1, 31, tzinfo=UTC)
    assert len(statement.transactions) == 1
    line = line_of(text, "<STMTRS>")
    assert doc.warnings == [f"line {line}: <STMTRS> has no <LEDGERBAL>: the account balance is unknown"]


def test_credit_card_and_several_message_sets(bank_file: Build, stmttrn: Build) -> None:
    card = (
        "<CREDITCARDMSGSRSV1><CCSTMTTRNRS><TRNUID>2<STATUS><CODE>0<SEVERITY>INFO</STATUS>"
        "<CCSTMTRS><CURDEF>GBP<CCACCTFROM><ACCTID>4111</CCACCTFROM>"
        "<BANKTRANLIST>" + stmttrn("c1", amount="-9.99") + "</BANKTRANLIST>"
        "<LEDGERBAL><BALAMT>-9.99<DTASOF>20240131</LEDGERBAL></CCSTMTRS></CCSTMTTRNRS></CREDITCARDMSGSRSV1>"
    )
    text = bank_file(stmttrn("b1")).replace("</OFX>", card + "</OFX>")
    doc = parse_ofx(text.encode())
    assert [(s.kind, s.account_id, s.currency) for s in doc.statements] == [
        ("bank", "000111222", "USD"),
        ("credit_card", "4111", "GBP"),
    ]


def test_trailing_garbage_after_ofx_is_a_warning(bank_file: Build, stmttrn: Build) -> None:
    text = bank_file(stmttrn("1")) + "\x1a garbage"
    doc = parse_ofx(text.encode())
    assert len(doc.statements) == 1
    assert doc.warnings == [f"line {line_of(text, '</OFX>')}: ignored 9 characters after </OFX>"]


# --- dates and amounts ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("20240105", datetime(2024, 1, 5, tzinfo=UTC)),
        ("202401051230", datetime(2024, 1, 5, 12, 30, tzinfo=UTC)),
        ("20240105123045", datetime(2024, 1, 5, 12, 30, 45, tzinfo=UTC)),
        ("20240105123045.123", datetime(2024, 1, 5, 12, 30, 45, 123000, tzinfo=UTC)),
        ("20240105123045:014", datetime(2024, 1, 5, 12, 30, 45, 14000, tzinfo=UTC)),
        (
            "20240105123045.000[-5:EST]",
            datetime(2024, 1, 5, 12, 30, 45, tzinfo=timezone(timedelta(hours=-5))),
        ),
        (
            "20240105120000[+5.30:IST]",
            datetime(2024, 1, 5, 12, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        ),
        (
            "20240105120000 [-5.5:XXX]",
            datetime(2024, 1, 5, 12, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
        ),
        ("20240105120000[0:GMT]", datetime(2024, 1, 5, 12, tzinfo=UTC)),
        ("20240105120000[+9:JST]", datetime(2024, 1, 5, 12, tzinfo=timezone(timedelta(hours=9)))),
        ("20240105120000[-:EST]", datetime(2024, 1, 5, 12, tzinfo=timezone(timedelta(hours=-5)))),
        (" 20240105 ", datetime(2024, 1, 5, tzinfo=UTC)),
        ("20240105120000[-3]", datetime(2024, 1, 5, 12, tzinfo=timezone(timedelta(hours=-3)))),
    ],
)
def test_dates(bank_file: Build, stmttrn: Build, raw: str, expected: datetime) -> None:
    posted = only_transaction(parse_ofx(bank_file(stmttrn("1", posted=raw)).encode())).posted
    assert posted == expected
    assert posted.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("raw", ["20120231", "19881301", "abcdLOL!", "881103", "20240105120000[+25:XXX]"])
def test_unreadable_date_skips_the_transaction(bank_file: Build, stmttrn: Build, raw: str) -> None:
    text = bank_file(stmttrn("7", posted=raw) + stmttrn("8"))
    doc = parse_ofx(text.encode())
    assert [t.fitid for t in doc.statements[0].transactions] == ["8"]
    (warning,) = doc.warnings
    assert warning.startswith(
        f"line {line_of(text, '<STMTTRN>')}: <STMTTRN> (FITID 7) skipped: <DTPOSTED> not"
    )
    assert raw in warning


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("-6.60", "-6.60"),
        ("+00000000000115.8331", "115.8331"),
        ("-1006,60", "-1006.60"),
        ("-1.006,60", "-1006.60"),
        ("-1,006.60", "-1006.60"),
        ("  12.5 ", "12.5"),
        ("0", "0"),
    ],
)
def test_amounts_are_exact_decimals(bank_file: Build, stmttrn: Build, raw: str, expected: str) -> None:
    amount = only_transaction(parse_ofx(bank_file(stmttrn("1", amount=raw)).encode())).amount
    assert isinstance(amount, Decimal)
    assert amount == Decimal(expected)
    assert str(amount) == expected


@pytest.mark.parametrize("raw", ["$120", "NaN", "Infinity", "1_000", "12.5.3", "null", "1e999999", "-1E-99"])
def test_unreadable_amount_skips_the_transaction(bank_file: Build, stmttrn: Build, raw: str) -> None:
    text = bank_file(stmttrn("7", amount=raw))
    doc = parse_ofx(text.encode())
    assert doc.statements[0].transactions == []
    line = line_of(text, "<STMTTRN>")
    assert doc.warnings == [f"line {line}: <STMTTRN> (FITID 7) skipped: <TRNAMT> not an amount: {raw!r}"]


def test_missing_amount_is_named_with_its_line(bank_file: Build, stmttrn: Build) -> None:
    text = bank_file(stmttrn("1") + stmttrn("2").replace("<TRNAMT>-3.50\n", ""))
    doc = parse_ofx(text.encode())
    assert len(doc.statements[0].transactions) == 1
    assert doc.warnings == [f"line {line_of(text, '<STMTTRN>', 2)}: <STMTTRN> (FITID 2) skipped: no <TRNAMT>"]


def test_warnings_are_capped(bank_file: Build, stmttrn: Build) -> None:
    doc = parse_ofx(bank_file("".join(stmttrn(str(i), amount="x") for i in range(150))).encode())
    assert len(doc.warnings) == 101
    assert doc.warnings[-1] == "... and 50 more warnings"


# --- charsets ------------------------------------------------------------------------


def test_cp1252_bytes_per_header(bank_file: Build, stmttrn: Build) -> None:
    data = bank_file(stmttrn("1", name="Caf\xe9 \u20ac")).encode("cp1252")
    assert b"\xe9 \x80" in data
    doc = parse_ofx(data)
    assert only_transaction(doc).name == "Café €"
    assert doc.warnings == []


def test_latin1_header(bank_file: Build, stmttrn: Build) -> None:
    text = bank_file(stmttrn("1", name="Stra\xdfe")).replace("CHARSET:1252", "CHARSET:ISO-8859-1")
    doc = parse_ofx(text.encode("latin-1"))
    assert (only_transaction(doc).name, doc.encoding) == ("Straße", "latin-1")


def test_utf8_header(bank_file: Build, stmttrn: Build) -> None:
    text = bank_file(stmttrn("1", name="Zürich €")).replace("ENCODING:USASCII", "ENCODING:UTF-8")
    doc = parse_ofx(text.encode("utf-8"))
    assert only_transaction(doc).name == "Zürich €"
    assert doc.warnings == []


def test_wrong_declared_charset_falls_back_to_cp1252_with_a_warning() -> None:
    text = XML_FILE.format(name="Caf\xe9")
    doc = parse_ofx(text.encode("cp1252"))
    assert only_transaction(doc).name == "Café"
    line = line_of(text, "Caf\xe9")
    assert doc.warnings == [f"line {line}: the file is not valid UTF-8 (byte 0xE9); read as CP1252"]


def test_undecodable_bytes_are_replaced_and_counted(bank_file: Build, stmttrn: Build) -> None:
    text = bank_file(stmttrn("1", name="A\x81B")).replace("CHARSET:1252", "CHARSET:UTF-8")
    doc = parse_ofx(text.encode("latin-1"))
    assert only_transaction(doc).name == "A\ufffdB"
    line = line_of(text, "A\x81B")
    assert doc.warnings == [
        f"line {line}: the file is not valid CHARSET UTF-8 (byte 0x81); read as CP1252; "
        "1 undecodable byte(s) replaced by U+FFFD"
    ]


def test_utf8_bom(bank_file: Build, stmttrn: Build) -> None:
    doc = parse_ofx(b"\xef\xbb\xbf" + bank_file(stmttrn("1", name="\xe9t\xe9"), header="").encode("utf-8"))
    assert only_transaction(doc).name == "été"


# --- security ------------------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<OFX><SIGNONMSGSRSV1><SONRS><STATUS><CODE>0</CODE></STATUS><FI><ORG>&lol9;</ORG></FI></SONRS></SIGNONMSGSRSV1></OFX>
"""


def test_billion_laughs_is_refused_not_expanded() -> None:
    started = time.process_time()  # this process's CPU: a loaded machine does not stretch it
    with pytest.raises(MalformedFile, match=r"^line 2: DOCTYPE/ENTITY declarations are not allowed"):
        parse_ofx(BILLION_LAUGHS.encode())
    assert time.process_time() - started < 1


def test_entity_declaration_inside_the_body_is_refused() -> None:
    with pytest.raises(MalformedFile, match="DOCTYPE/ENTITY"):
        parse_ofx(b"<OFX>\n<!ENTITY x SYSTEM 'file:///etc/passwd'>\n</OFX>")


STATEMENT = (
    "<BANKMSGSRSV1><STMTTRNRS><STMTRS><CURDEF>USD<BANKACCTFROM><BANKID>1<ACCTID>2</BANKACCTFROM>"
    "</STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>"
)


def test_entity_reference_without_declaration_stays_literal() -> None:
    text = BILLION_LAUGHS.split("]>\n", 1)[1].replace("</OFX>", STATEMENT)
    doc = parse_ofx(text.encode())
    assert doc.institution_org == "&lol9;"


def test_external_entity_is_not_fetched() -> None:
    sign_on = "<OFX><SIGNONMSGSRSV1><SONRS><FI><ORG>&xxe;</ORG></FI></SONRS></SIGNONMSGSRSV1>"
    doc = parse_ofx((sign_on + STATEMENT).encode())
    assert doc.institution_org == "&xxe;"


def _deep_open(n: int) -> bytes:
    return b"<OFX>" + b"<XXXXXXXX>" * n + b"<STATUS><CODE>0</STATUS>" * n + b"</OFX>"


def _late_end_tags(n: int) -> bytes:
    pairs = (
        b"<AAAAA%d>x<AAAAA%d>y</AAAAA%d>" % (i, i + 1, i) for i in (j % 1000 for j in range(0, 2 * n, 2))
    )
    return b"<OFX><SONRS>" + b"".join(pairs) + b"</SONRS></OFX>"


def _deep_nesting(n: int) -> bytes:
    return (
        b"<OFX><INVSTMTMSGSRSV1><INVSTMTTRNRS><INVSTMTRS><INVACCTFROM><ACCTID>1</INVACCTFROM><INVTRANLIST>"
        b"<BUYSTOCK>" + b"<XXXXXXXX>" * (2 * n) + b"<DTTRADE>20200101</BUYSTOCK></INVTRANLIST></INVSTMTRS>"
        b"</INVSTMTTRNRS></INVSTMTMSGSRSV1></OFX>"
    )


def _deep_late_end_tags(n: int) -> bytes:
    return b"<OFX><SONRS>" + b"<AAAAAA>1" * n + b"</AAAAAA>" * n + b"</SONRS></OFX>"


def _parse_cpu(data: bytes) -> float:
    """This process's CPU seconds for one parse, best of three: other processes on a loaded
    machine stretch wall time, not this."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        with contextlib.suppress(OfxNoStatements):  # the tree was built all the same
            parse_ofx(data)
        best = min(best, time.process_time() - started)
    return best


@pytest.mark.parametrize(
    "build",
    [_deep_open, _late_end_tags, _deep_nesting, _deep_late_end_tags],
    ids=["deep-open-elements", "late-end-tags", "deep-nesting", "deep-late-end-tags"],
)
def test_hostile_structure_stays_linear(build: Callable[[int], bytes]) -> None:
    """Four times the elements cost about four times the CPU; quadratic handling would cost
    sixteen (at 30,000 elements it took minutes). A ratio, not a time limit."""
    small, large = _parse_cpu(build(3_000)), _parse_cpu(build(12_000))
    assert large < 8 * max(small, 0.002), (small, large)


# --- malformed files -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"  \r\n ", "the file is empty"),
        (b"Date,Amount,Payee\n2024-01-01,-3.50,Coffee\n", "no <OFX> element found"),
        (bytes(range(256)) * 4, "no <OFX> element found"),
        (b"<OFX><SIGNONMSGSRSV1>\n<SONRS>\n<FOO bar=<>\n</OFX>", "line 3"),
    ],
)
def test_garbage_is_malformed(data: bytes, message: str) -> None:
    with pytest.raises(MalformedFile, match=message):
        parse_ofx(data)


def test_truncated_inside_a_transaction(bank_file: Build, stmttrn: Build) -> None:
    text = bank_file(stmttrn("1") + stmttrn("2") + stmttrn("3"))
    cut = text[: text.index("<FITID>2")]
    with pytest.raises(MalformedFile) as caught:
        parse_ofx(cut.encode())
    last, opened = cut.count("\n") + 1, line_of(text, "<STMTTRN>", 2)
    assert str(caught.value) == (
        f"line {last}: the file ends inside <STMTTRN> (opened on line {opened}); it looks truncated"
    )


def test_truncated_inside_a_tag(bank_file: Build, stmttrn: Build) -> None:
    text = bank_file(stmttrn("1"))
    with pytest.raises(MalformedFile) as caught:
        parse_ofx(text[: text.index("<LEDGERBAL>") + 4].encode())
    assert str(caught.value) == (
        f"line {line_of(text, '<LEDGERBAL>')} (in OFX/BANKMSGSRSV1/STMTTRNRS/STMTRS): "
        "broken or unsupported markup '<LED'"
    )


def test_truncated_after_the_transactions(bank_file: Build, stmttrn: Build) -> None:
    text = bank_file(stmttrn("1"))
    with pytest.raises(
        MalformedFile, match=rf"ends inside <STMTRS> \(opened on line {line_of(text, '<STMTRS>')}\)"
    ):
        parse_ofx(text[: text.index("</STMTRS>")].encode())


def test_missing_end_tag_of_a_transaction(bank_file: Build, stmttrn: Build) -> None:
    """The next <STMTTRN> proves the previous one ended: both are read, with a warning."""
    text = bank_file(stmttrn("1").replace("</STMTTRN>", "") + stmttrn("2"))
    doc = parse_ofx(text.encode())
    assert [t.fitid for t in doc.statements[0].transactions] == ["1", "2"]
    first, second = line_of(text, "<STMTTRN>"), line_of(text, "<STMTTRN>", 2)
    assert doc.warnings == [
        f"line {second}: <STMTTRN> (line {first}) has no end tag; closed before <STMTTRN>"
    ]


def test_mismatched_end_tag_is_skipped(bank_file: Build, stmttrn: Build) -> None:
    text = bank_file(stmttrn("1")).replace("</BANKTRANLIST>", "</BANKTRANLIST></CCSTMTRS>")
    doc = parse_ofx(text.encode())
    assert [t.fitid for t in doc.statements[0].transactions] == ["1"]
    assert doc.warnings == [
        f"line {line_of(text, '</CCSTMTRS>')}: </CCSTMTRS> does not close any open element; ignored"
    ]


def test_text_outside_values(bank_file: Build, stmttrn: Build) -> None:
    text = bank_file(stmttrn("1")).replace("</BANKACCTFROM>", "</BANKACCTFROM>oops")
    with pytest.raises(
        MalformedFile, match=rf"^line {line_of(text, 'oops')} .*unexpected text 'oops' outside a value"
    ):
        parse_ofx(text.encode())


def test_statement_without_account_id(bank_file: Build, stmttrn: Build) -> None:
    text = bank_file(stmttrn("1"), account="<BANKID>1<ACCTTYPE>CHECKING")
    with pytest.raises(
        MalformedFile, match=rf"^line {line_of(text, '<BANKACCTFROM>')}: <BANKACCTFROM> has no <ACCTID>$"
    ):
        parse_ofx(text.encode())


# --- institution status ------------------------------------------------------------------


def test_signon_error_is_refused(bank_file: Build, stmttrn: Build) -> None:
    sign_on = (
        "<SIGNONMSGSRSV1><SONRS><STATUS><CODE>15500<SEVERITY>ERROR<MESSAGE>Bad PIN</STATUS>"
        "</SONRS></SIGNONMSGSRSV1>"
    )
    with pytest.raises(
        OfxInstitutionError, match=r"^the institution refused the sign-on: code 15500 \(Bad PIN\)$"
    ):
        parse_ofx(bank_file(stmttrn("1"), sign_on=sign_on).encode())


def test_signon_warning_keeps_the_data(bank_file: Build, stmttrn: Build) -> None:
    sign_on = (
        "<SIGNONMSGSRSV1><SONRS><STATUS><CODE>15000<SEVERITY>WARN<MESSAGE>Change PIN</STATUS>"
        "</SONRS></SIGNONMSGSRSV1>"
    )
    text = bank_file(stmttrn("1"), sign_on=sign_on)
    doc = parse_ofx(text.encode())
    assert len(doc.statements) == 1
    assert doc.warnings == [f"line {line_of(text, '<SONRS>')}: sign-on status 15000 WARN: Change PIN"]


def test_one_failed_statement_among_several(bank_file: Build, stmttrn: Build) -> None:
    failed = (
        "<STMTTRNRS><TRNUID>9<STATUS><CODE>2003<SEVERITY>ERROR<MESSAGE>Account not found</STATUS></STMTTRNRS>"
    )
    text = bank_file(stmttrn("1")).replace("</BANKMSGSRSV1>", failed + "</BANKMSGSRSV1>")
    doc = parse_ofx(text.encode())
    assert len(doc.statements) == 1
    assert doc.warnings == [
        f"line {line_of(text, '<STMTTRNRS>', 2)}: the institution returned an error instead of a statement: "
        "code 2003 ERROR (Account not found) in <STMTTRNRS>"
    ]


def test_statement_with_a_non_zero_status_is_read_with_a_warning(bank_file: Build, stmttrn: Build) -> None:
    text = bank_file(stmttrn("1")).replace(
        "<CODE>0<SEVERITY>INFO</STATUS>\n", "<CODE>1<SEVERITY>WARN</STATUS>\n"
    )
    doc = parse_ofx(text.encode())
    assert len(doc.statements[0].transactions) == 1
    line = line_of(text, "<STMTTRNRS>")
    assert doc.warnings == [
        f"line {line}: the institution reported code 1 WARN (no message) in <STMTTRNRS>; "
        "its statement is still read"
    ]
