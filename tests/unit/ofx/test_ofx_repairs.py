"""Real-world files that used to fail (issue 9) and hostile ones (issue 10): what the reader
repairs with a warning, and what it refuses before doing unbounded work."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from tests.unit.ofx.conftest import SGML_HEADER
from tests.unit.ofx.test_ofx_deferred import paths
from tests.unit.ofx.test_ofx_reader import line_of

from finsync.providers.ofx import OfxLimitExceeded, OfxNoStatements, parse_ofx
from finsync.providers.ofx.format import OfxFormat
from finsync.providers.ofx.reader import BYTES_PER_ELEMENT, ELEMENT_ALLOWANCE, MAX_STATEMENTS

pytestmark = pytest.mark.unit

Build = Callable[..., str]


def fitids(text: str, *, defer: bool = False) -> list[list[str | None]]:
    """Per statement, the FITIDs read (deferred ones are converted to be compared)."""
    document = parse_ofx(text.encode(), defer=defer)
    out = []
    for statement in document.statements:
        read = [t.fitid for t in statement.transactions]
        if statement.unread is not None:
            read += [t.fitid for i in range(len(statement.unread)) if (t := statement.unread.convert(i))]
        out.append(read)
    return out


def both_paths(text: str) -> tuple[list[list[str | None]], list[str]]:
    """What the eager and the deferred reader agree on: FITIDs per statement, warnings."""
    eager, deferred = parse_ofx(text.encode()), parse_ofx(text.encode(), defer=True)
    assert fitids(text) == fitids(text, defer=True)
    assert eager.warnings == deferred.warnings
    return fitids(text), eager.warnings


# --- 1. repeated blocks -------------------------------------------------------------------


def test_a_response_with_two_statements_reads_both(bank_file: Build, stmttrn: Build) -> None:
    text = bank_file(stmttrn("A1") + stmttrn("A2"))
    statement = text[text.index("<STMTRS>") : text.index("</STMTRS>") + len("</STMTRS>")]
    other = statement.replace("<ACCTID>000111222", "<ACCTID>999").replace("<FITID>A", "<FITID>B")
    text = text.replace("</STMTRS>", "</STMTRS>\n" + other, 1)
    read, warnings = both_paths(text)
    assert read == [["A1", "A2"], ["B1", "B2"]]
    assert [s.account_id for s in parse_ofx(text.encode()).statements] == ["000111222", "999"]
    line = line_of(text, "<STMTRS>", 2)
    assert warnings == [f"line {line}: <STMTTRNRS> holds 2 statements; all of them are read"]


@pytest.mark.parametrize("wrapper", ["CCSTMTTRNRS", "INVSTMTTRNRS"])
def test_card_and_investment_responses_with_two_statements(wrapper: str) -> None:
    if wrapper == "CCSTMTTRNRS":
        statement = (
            "<CCSTMTRS><CURDEF>USD<CCACCTFROM><ACCTID>{n}</CCACCTFROM><BANKTRANLIST>"
            "<STMTTRN><TRNTYPE>DEBIT<DTPOSTED>20240105<TRNAMT>-1<FITID>C{n}</STMTTRN></BANKTRANLIST>"
            "<LEDGERBAL><BALAMT>-1<DTASOF>20240131</LEDGERBAL></CCSTMTRS>"
        )
        message_set = "CREDITCARDMSGSRSV1"
    else:
        statement = (
            "<INVSTMTRS><DTASOF>20240131<CURDEF>USD<INVACCTFROM><BROKERID>b<ACCTID>{n}</INVACCTFROM>"
            "<INVTRANLIST><INCOME><INVTRAN><FITID>I{n}<DTTRADE>20240105</INVTRAN><SECID><UNIQUEID>X"
            "<UNIQUEIDTYPE>CUSIP</SECID><INCOMETYPE>DIV<TOTAL>1</INCOME></INVTRANLIST></INVSTMTRS>"
        )
        message_set = "INVSTMTMSGSRSV1"
    body = statement.format(n=1) + statement.format(n=2)
    text = f"{SGML_HEADER}<OFX><{message_set}><{wrapper}><TRNUID>1{body}</{wrapper}></{message_set}></OFX>"
    document = parse_ofx(text.encode())
    assert [s.account_id for s in document.statements] == ["1", "2"]
    assert [len(s.transactions) + len(s.investment_transactions) for s in document.statements] == [1, 1]
    assert document.warnings == [
        f"line {line_of(text, '<OFX>')}: <{wrapper}> holds 2 statements; all of them are read"
    ]


def test_several_transaction_lists_are_merged(bank_file: Build, stmttrn: Build) -> None:
    second = (
        "<BANKTRANLIST><DTSTART>20231201<DTEND>20240215\n" + stmttrn("3") + stmttrn("4") + "</BANKTRANLIST>"
    )
    text = bank_file(stmttrn("1") + stmttrn("2")).replace("</BANKTRANLIST>", "</BANKTRANLIST>\n" + second)
    read, warnings = both_paths(text)
    assert read == [["1", "2", "3", "4"]]
    (statement,) = parse_ofx(text.encode()).statements
    assert (statement.date_start, statement.date_end) == (
        datetime(2023, 12, 1, tzinfo=UTC),
        datetime(2024, 2, 15, tzinfo=UTC),
    )
    assert warnings == [
        f"line {line_of(text, '<BANKTRANLIST>', 2)}: <STMTRS> holds 2 <BANKTRANLIST>; "
        "their transactions are merged"
    ]
    # Fast-path lists stay deferred together; a generic one is deferred with them, in file order.
    assert len(parse_ofx(text.encode(), defer=True).statements[0].unread) == 4  # type: ignore[union-attr]
    third = "<STMTTRN>\n<TRNTYPE>POS\n<DTPOSTED>20240105\n<TRNAMT>-3.50\n<FITID>3"
    mixed = text.replace(third, third.replace("<STMTTRN>", "<STMTTRN><?pi?>"))
    assert mixed != text
    assert both_paths(mixed)[0] == [["1", "2", "3", "4"]]
    assert paths(parse_ofx(mixed.encode(), defer=True).statements[0]) == ["fast", "builder"]
    both_generic = mixed.replace("</BANKTRANLIST>", "<?pi?></BANKTRANLIST>", 1)
    assert both_paths(both_generic)[0] == [["1", "2", "3", "4"]]
    assert paths(parse_ofx(both_generic.encode(), defer=True).statements[0]) == ["builder"]
    # An attribute is normalised away (fastpath.normalized): the lists stay deferred together.
    attribute = text.replace(third, third.replace("<STMTTRN>", '<STMTTRN id="3">'))
    assert both_paths(attribute) == both_paths(text)
    assert len(parse_ofx(attribute.encode(), defer=True).statements[0].unread) == 4  # type: ignore[union-attr]


def test_repeated_balances_keep_the_latest(bank_file: Build, stmttrn: Build) -> None:
    ledger = (
        "<LEDGERBAL><BALAMT>1.00<DTASOF>20240101</LEDGERBAL>"
        "<LEDGERBAL><BALAMT>5.00<DTASOF>20240215</LEDGERBAL>"
    )
    text = bank_file(stmttrn("1"), ledger=ledger)
    document = parse_ofx(text.encode())
    (statement,) = document.statements
    assert (statement.ledger_balance, statement.ledger_balance_at) == (
        Decimal("5.00"),
        datetime(2024, 2, 15, tzinfo=UTC),
    )
    line = line_of(text, "<LEDGERBAL>")
    assert document.warnings == [
        f"line {line}: <STMTRS> holds 2 <LEDGERBAL>; the one with the latest <DTASOF> is used"
    ]


def test_repeated_investment_lists_are_merged() -> None:
    entry = (
        "<BUYSTOCK><INVBUY><INVTRAN><FITID>{f}<DTTRADE>20240105</INVTRAN><SECID><UNIQUEID>X"
        "<UNIQUEIDTYPE>CUSIP</SECID><UNITS>1<UNITPRICE>2<TOTAL>-2</INVBUY><BUYTYPE>BUY</BUYSTOCK>"
    )
    position = (
        "<POSSTOCK><INVPOS><SECID><UNIQUEID>{u}<UNIQUEIDTYPE>CUSIP</SECID><HELDINACCT>CASH"
        "<POSTYPE>LONG<UNITS>1<UNITPRICE>2<MKTVAL>2<DTPRICEASOF>20240131</INVPOS></POSSTOCK>"
    )
    text = (
        f"{SGML_HEADER}<OFX><INVSTMTMSGSRSV1><INVSTMTTRNRS><INVSTMTRS><DTASOF>20240131<CURDEF>USD"
        "<INVACCTFROM><BROKERID>b<ACCTID>1</INVACCTFROM>"
        f"<INVTRANLIST><DTSTART>20240101<DTEND>20240110{entry.format(f='T1')}</INVTRANLIST>"
        f"<INVTRANLIST><DTSTART>20231201<DTEND>20240131{entry.format(f='T2')}</INVTRANLIST>"
        f"{entry.format(f='T3')}"  # after its list closed
        f"<INVPOSLIST>{position.format(u='P1')}</INVPOSLIST><INVPOSLIST>{position.format(u='P2')}</INVPOSLIST>"
        "</INVSTMTRS></INVSTMTTRNRS></INVSTMTMSGSRSV1></OFX>"
    )
    document = parse_ofx(text.encode())
    (statement,) = document.statements
    assert [e.fitid for e in statement.investment_transactions] == ["T1", "T2", "T3"]
    assert [p.unique_id for p in statement.positions] == ["P1", "P2"]
    assert (statement.date_start, statement.date_end) == (
        datetime(2023, 12, 1, tzinfo=UTC),
        datetime(2024, 1, 31, tzinfo=UTC),
    )
    line = line_of(text, "<OFX>")
    assert document.warnings == [
        f"line {line}: <INVSTMTRS> holds 2 <INVTRANLIST>; their transactions are merged",
        f"line {line}: <INVSTMTRS> holds 2 <INVPOSLIST>; their positions are merged",
        f"line {line}: 1 entries outside their list read into this <INVSTMTRS>",
    ]


# --- 2. stray end tags, transactions after their list --------------------------------------


def test_a_stray_end_tag_is_skipped_and_a_late_transaction_kept(bank_file: Build, stmttrn: Build) -> None:
    text = bank_file(stmttrn("1") + stmttrn("2")).replace(
        "</BANKTRANLIST>", "</BANKTRANLIST>\n" + stmttrn("3") + "</BANKTRANLIST>"
    )
    read, warnings = both_paths(text)
    assert read == [["1", "2", "3"]]
    assert warnings == [
        f"line {line_of(text, '</BANKTRANLIST>', 2)}: </BANKTRANLIST> does not close any open element; "
        "ignored",
        f"line {line_of(text, '<STMTTRN>', 3)}: 1 <STMTTRN> outside <BANKTRANLIST> read into this <STMTRS>",
    ]


def test_stray_end_tags_are_summed_per_tag(bank_file: Build, stmttrn: Build) -> None:
    text = bank_file(stmttrn("1")).replace("</BANKACCTFROM>", "</BANKACCTFROM></FOO></FOO></FOO>")
    assert parse_ofx(text.encode()).warnings == [
        f"line {line_of(text, '</FOO>')}: </FOO> does not close any open element; ignored (3 times)"
    ]


# --- 3. headers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prolog",
    [
        "".join(
            f"<{k}>{v}</{k}>\n"
            for k, v in (
                ("OFXHEADER", 100),
                ("DATA", "OFXSGML"),
                ("VERSION", 102),
                ("ENCODING", "USASCII"),
                ("CHARSET", 1252),
            )
        ),
        '<?xml version="1.0"?>\n<HEADER><OFXHEADER>100<DATA>OFXSGML<CHARSET>1252</HEADER>\n',
        SGML_HEADER.replace("OFXHEADER:100\n", ""),
        SGML_HEADER + "Exported by MyBank on 2024-01-31\n<!-- stray -->\n",
        "Exported by MyBank on 2024-01-31\n" + SGML_HEADER,
        "\x1a\r\n" + SGML_HEADER,
    ],
    ids=[
        "header-as-elements",
        "elements-in-a-prolog",
        "no-ofxheader-line",
        "text-before-ofx",
        "text-before-header",
        "junk-before-header",
    ],
)
def test_headers_the_sniffer_did_not_recognise(bank_file: Build, stmttrn: Build, prolog: str) -> None:
    data = bank_file(stmttrn("1", name="Caf\xe9"), header=prolog).encode("cp1252")
    assert OfxFormat().sniff(data[:8192], "statement.ofx")
    document = parse_ofx(data)
    assert document.header["CHARSET"] == "1252"
    assert document.statements[0].transactions[0].name == "Café"
    assert document.warnings == []  # the charset came from the header: no fallback warning


# --- 4. nothing to import -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "only"),
    [
        (
            "<SIGNONMSGSRSV1><SONRS><STATUS><CODE>0<SEVERITY>INFO</STATUS></SONRS></SIGNONMSGSRSV1>",
            "sign-on only",
        ),
        (
            "<SIGNUPMSGSRSV1><ACCTINFOTRNRS><TRNUID>1<ACCTINFORS><DTACCTUP>20240101</ACCTINFORS></ACCTINFOTRNRS></SIGNUPMSGSRSV1>",
            "only ACCTINFORS",
        ),
        ("<BANKMSGSRSV1></BANKMSGSRSV1>", "sign-on only"),
    ],
)
def test_a_file_without_statements_is_refused(body: str, only: str) -> None:
    with pytest.raises(OfxNoStatements, match=rf"^the file contains no account statement \({only}\)"):
        parse_ofx(f"{SGML_HEADER}<OFX>{body}</OFX>".encode())


# --- 5. late end tags of leaves ---------------------------------------------------------------


def test_late_leaf_end_tags_at_any_depth(bank_file: Build, stmttrn: Build) -> None:
    """Pretty-printed SGML: leaves nested in the ones before them and closed in reverse order,
    inside a transaction and around whole aggregates (CURDEF holding the rest of STMTRS)."""
    pretty = (
        "<STMTTRN>\n <TRNTYPE>POS\n  <DTPOSTED>20240105\n   <TRNAMT>-1.00\n    <FITID>P1\n     <NAME>SHOP\n"
        "      <MEMO>CARD\n      </MEMO>\n     </NAME>\n    </FITID>\n   </TRNAMT>\n  </DTPOSTED>\n"
        " </TRNTYPE>\n</STMTTRN>\n"
    )
    text = bank_file(stmttrn("1") + pretty + stmttrn("2"))
    text = text.replace("</STMTRS>", "</CURDEF></STMTRS>")
    for variant in (text, text.replace("STMTTRN>", "stmttrn>")):  # block and generic tokenizing alike
        read, warnings = both_paths(variant)
        assert read == [["1", "P1", "2"]]
        assert warnings == [
            f"line {line_of(text, '</NAME>')}: 6 end tag(s) of leaf elements arrive after later elements "
            "(first </NAME>), as in pretty-printed SGML; each leaf was read as ending at its value"
        ]
    transaction = parse_ofx(text.encode()).statements[0].transactions[1]
    assert (transaction.trntype, transaction.amount, transaction.name, transaction.memo) == (
        "POS",
        Decimal("-1.00"),
        "SHOP",
        "CARD",
    )


def test_late_leaf_end_tags_forty_levels_deep(bank_file: Build, stmttrn: Build) -> None:
    leaves = "".join(f"<X.{i}>{i}\n" for i in range(40))
    late = "".join(f"</X.{i}>" for i in reversed(range(40)))
    pretty = stmttrn("P").replace("</STMTTRN>", leaves + late + "</STMTTRN>")
    read, warnings = both_paths(bank_file(pretty))
    assert read == [["P"]]
    assert "39 end tag(s) of leaf elements" in warnings[0]
    assert parse_ofx(bank_file(pretty).encode()).statements[0].transactions[0].fields["X.0"] == "0"


def test_a_regular_block_with_nested_aggregates_stays_on_the_fast_path(
    bank_file: Build, stmttrn: Build
) -> None:
    rows = stmttrn(
        "1", extra="<CURRENCY><CURRATE>1.1<CURSYM>EUR</CURRENCY><PAYEE><NAME>A</NAME><ADDR1>B</PAYEE>"
    )
    (statement,) = parse_ofx(bank_file(rows + stmttrn("2")).encode(), defer=True).statements
    assert statement.unread is not None
    assert len(statement.unread) == 2


# --- 6. missing end tags of aggregates --------------------------------------------------------


@pytest.mark.parametrize(
    ("cut", "proof"),
    [
        ("</BANKTRANLIST>", "<LEDGERBAL>"),
        ("</BANKTRANLIST>\n<LEDGERBAL><BALAMT>100.00<DTASOF>20240131</LEDGERBAL>", "</STMTRS>"),
    ],
)
def test_an_unclosed_transaction_list(bank_file: Build, stmttrn: Build, cut: str, proof: str) -> None:
    text = bank_file(stmttrn("1") + stmttrn("2")).replace(cut, "")
    read, warnings = both_paths(text)
    assert read == [["1", "2"]]
    opened = line_of(text, "<BANKTRANLIST>")
    message = f"<BANKTRANLIST> (line {opened}) has no end tag; closed before {proof}"
    assert warnings[0] == f"line {line_of(text, proof)}: {message}"


def test_an_unclosed_statement_is_closed_where_the_next_one_starts(bank_file: Build, stmttrn: Build) -> None:
    text = bank_file(stmttrn("A"))
    response = text[text.index("<STMTTRNRS>") : text.index("</BANKMSGSRSV1>")]
    second = response.replace("000111222", "999").replace("<FITID>A", "<FITID>B")
    text = text.replace("</BANKMSGSRSV1>", second + "</BANKMSGSRSV1>").replace("</STMTRS></STMTTRNRS>", "", 1)
    read, warnings = both_paths(text)
    assert read == [["A"], ["B"]]
    at = line_of(text, "<STMTTRNRS>", 2)
    closed = "has no end tag; closed before <STMTTRNRS>"
    assert warnings == [  # the inner one first: the order they were closed in
        f"line {at}: <STMTRS> (line {line_of(text, '<STMTRS>')}) {closed}",
        f"line {at}: <STMTTRNRS> (line {line_of(text, '<STMTTRNRS>')}) {closed}",
    ]


def test_a_truncated_file_is_still_refused(bank_file: Build, stmttrn: Build) -> None:
    text = bank_file(stmttrn("1")).replace("</BANKTRANLIST>", "")
    with pytest.raises(Exception, match="looks truncated"):
        parse_ofx(text[: text.index("</STMTRS>")].encode())


# --- 7, 8. NUL characters, dates out of range -------------------------------------------------


def test_nul_characters_are_removed(bank_file: Build, stmttrn: Build) -> None:
    text = bank_file(
        stmttrn("1", name="CO\x00FFEE", memo="\x00"),
        sign_on="<SIGNONMSGSRSV1><SONRS><FI><ORG>Ba\x00nk</FI></SONRS></SIGNONMSGSRSV1>",
    )
    document = parse_ofx(text.encode())
    transaction = document.statements[0].transactions[0]
    assert (transaction.name, transaction.memo, document.institution_org) == ("COFFEE", None, "Bank")
    assert document.warnings == [f"line {line_of(text, 'Ba')}: 3 NUL character(s) removed"]


@pytest.mark.parametrize(
    "raw", ["99991231235959[-12:EST]", "00010101000000[+14]", "99991231235959.999[-0.30:X]"]
)
def test_dates_beyond_utc_are_warnings(bank_file: Build, stmttrn: Build, raw: str) -> None:
    ledger = f"<LEDGERBAL><BALAMT>100.00<DTASOF>{raw}</LEDGERBAL>"
    text = bank_file(
        stmttrn("1") + stmttrn("2", posted=raw), ledger=ledger, tranlist_head=f"<DTSTART>{raw}<DTEND>{raw}"
    )
    document = parse_ofx(text.encode())
    (statement,) = document.statements
    assert [t.fitid for t in statement.transactions] == ["1"]
    assert (statement.ledger_balance, statement.ledger_balance_at, statement.date_start) == (
        Decimal("100.00"),
        None,
        None,
    )
    assert len(document.warnings) == 4
    assert all("out of range in UTC" in w for w in document.warnings)


@pytest.mark.parametrize("raw", ["99991231235959", "00010101000000", "00010101000000[-12:EST]"])
def test_extreme_dates_within_utc_are_read(bank_file: Build, stmttrn: Build, raw: str) -> None:
    ledger = f"<LEDGERBAL><BALAMT>1<DTASOF>{raw}</LEDGERBAL>"
    document = parse_ofx(bank_file(stmttrn("1"), ledger=ledger).encode())
    assert document.statements[0].ledger_balance_at is not None
    assert document.warnings == []


# --- 9. bounded work --------------------------------------------------------------------------


def test_more_elements_than_the_size_justifies_are_refused() -> None:
    body = b"<A>1" * 100_000  # 4 bytes per element
    with pytest.raises(
        OfxLimitExceeded,
        match=r"^the file holds 100,00\d elements in [\d,]+ bytes; at most one element per 8 bytes",
    ):
        parse_ofx(b"<OFX>" + body + b"</OFX>")


def test_the_element_budget_is_one_per_eight_bytes(bank_file: Build, stmttrn: Build) -> None:
    base = bank_file(stmttrn("1")).encode()
    padding = b"<AAAAA>1" * 20_000  # exactly 8 bytes per element: in budget however long
    assert len(parse_ofx(base.replace(b"</SONRS>", padding + b"</SONRS>")).statements) == 1
    data = base.replace(b"</SONRS>", b"<AAAA>1" * 20_000 + b"</SONRS>")  # 7 bytes per element
    elements = data.count(b"<") - data.count(b"</")
    assert elements > len(data) // BYTES_PER_ELEMENT + ELEMENT_ALLOWANCE
    with pytest.raises(OfxLimitExceeded, match=f"the file holds {elements:,} elements"):
        parse_ofx(data)


def test_more_than_a_thousand_statements_are_refused(bank_file: Build) -> None:
    text = bank_file("")
    response = text[text.index("<STMTTRNRS>") : text.index("</BANKMSGSRSV1>")]
    many = lambda n: text.replace("</BANKMSGSRSV1>", response * (n - 1) + "</BANKMSGSRSV1>").encode()  # noqa: E731
    assert len(parse_ofx(many(MAX_STATEMENTS)).statements) == MAX_STATEMENTS
    with pytest.raises(OfxLimitExceeded, match=r"more than 1,000 account statements"):
        parse_ofx(many(MAX_STATEMENTS + 1))
