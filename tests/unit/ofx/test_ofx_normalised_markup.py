"""CDATA sections and attributes (issue 10): ``fastpath.normalized`` rewrites them so that
the fast path reads such bank and investment files in a fraction of the generic path's memory. A file read
that way must give exactly what its plain equivalent gives, and what the generic path gives
reading it as it is (values, warnings and their line numbers, errors)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from tests.unit.ofx.test_ofx_deferred import build_all, paths
from tests.unit.ofx.test_ofx_deferred_investments import entry, investment_file
from tests.unit.ofx.test_ofx_reader import line_of

from finsync.domain.errors import MalformedFile
from finsync.providers.ofx import OfxDocument, fastpath, parse_ofx
from finsync.providers.ofx.format import OfxFormat

pytestmark = pytest.mark.unit

Build = Callable[..., str]
_LEAF = re.compile(r"<(TRNTYPE|DTPOSTED|TRNAMT|FITID|NAME|MEMO)>([^<\n]+)")


def _cdata(text: str, tags: str = "TRNTYPE|DTPOSTED|TRNAMT|FITID|NAME|MEMO") -> str:
    """Every ``tags`` leaf's value in a CDATA section (unescaped: CDATA is read literally)."""
    return re.sub(
        rf"<({tags})>([^<\n]+)",
        lambda m: f"<{m[1]}><![CDATA[{_unescaped(m[2])}]]>",
        text,
    )


def _unescaped(value: str) -> str:
    return value.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _generic(text: str) -> OfxDocument:
    """The generic path's reading of ``text`` as it is (nothing normalised)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fastpath, "normalized", lambda text, at: None)
        return parse_ofx(text.encode())


def _rows(text: str) -> tuple[list[tuple[object, ...]], list[str]]:
    """What an import stores (deferred rows built) and the warnings."""
    parsed = OfxFormat().read(text.encode())
    rows = [
        (t.provider_transaction_id, t.transaction_date, t.amount, t.description, t.type, t.raw)
        for s in parsed.statements
        for t in [*s.transactions, *(row for group in s.deferred for row in build_all(group))]
    ]
    return rows, parsed.warnings


def assert_reads_like(text: str, plain: str) -> None:
    """``text`` reads as ``plain`` does, eagerly and deferred, on the fast path (its lists
    stay deferred), and as the generic path reads it unnormalised."""
    assert text != plain
    assert parse_ofx(text.encode()) == parse_ofx(plain.encode())
    assert _generic(text) == parse_ofx(plain.encode())
    assert _rows(text) == _rows(plain)
    statement = parse_ofx(text.encode(), defer=True).statements[0]
    assert statement.unread is not None
    assert len(statement.unread) == len(parse_ofx(plain.encode()).statements[0].transactions)


def _plain(bank_file: Build, stmttrn: Build, n: int = 6, **names: str) -> str:
    rows = "".join(
        stmttrn(str(i), amount=f"-{i}.25", name=names.get(str(i), f"SHOP &amp; CO {i}"), memo=f"m {i}")
        for i in range(n)
    )
    return bank_file(rows)


def test_every_value_in_cdata_reads_like_the_plain_file(bank_file: Build, stmttrn: Build) -> None:
    plain = _plain(bank_file, stmttrn)
    assert_reads_like(_cdata(plain), plain)
    assert parse_ofx(_cdata(plain).encode()).statements[0].transactions[0].name == "SHOP & CO 0"


def test_xml_style_cdata_with_end_tags(bank_file: Build, stmttrn: Build) -> None:
    plain = _plain(bank_file, stmttrn)
    closed = _LEAF.sub(r"<\1>\2</\1>", plain)
    assert_reads_like(_cdata(closed), plain)


def test_cdata_content_with_markup_characters_stays_verbatim(bank_file: Build, stmttrn: Build) -> None:
    names = {"1": "A&lt;B &amp; C]]D", "2": "&amp;amp; &lt;x&gt;", "3": "]] ] &amp;#32;"}
    plain = _plain(bank_file, stmttrn, **names)
    text = _cdata(plain, "NAME")
    assert "<![CDATA[A<B & C]]D]]>" in text
    assert_reads_like(text, plain)
    read = [t.name for t in parse_ofx(text.encode()).statements[0].transactions]
    assert read[1:4] == ["A<B & C]]D", "&amp; <x>", "]] ] &#32;"]


def test_cdata_too_long_once_escaped_is_read_by_the_generic_path(bank_file: Build, stmttrn: Build) -> None:
    """``<<<<<`` escaped needs 15 more characters than the 12 its markers free: left as it is."""
    plain = _plain(bank_file, stmttrn, **{"2": "&lt;&lt;&lt;&lt;&lt;"})
    text = _cdata(plain, "NAME")
    assert parse_ofx(text.encode()) == parse_ofx(plain.encode())
    assert paths(parse_ofx(text.encode(), defer=True).statements[0]) == ["builder"]
    assert parse_ofx(text.encode()).statements[0].transactions[2].name == "<<<<<"
    assert _rows(text) == _rows(plain)


@pytest.mark.parametrize(
    ("cdata", "name"),
    [
        ("<NAME><![CDATA[COF]]>FEE", "COFFEE"),  # joined to the text after it
        ("<NAME><![CDATA[ ]]>\n<MEMO>", None),  # an empty leaf before a start tag
        ("<NAME>COF<![CDATA[FEE]]>", "COFFEE"),  # not right after the start tag
        ("<NAME><!-- c --><![CDATA[COFFEE]]>", "COFFEE"),
    ],
)
def test_cdata_that_is_not_a_whole_value_is_left_to_the_generic_path(
    bank_file: Build, stmttrn: Build, cdata: str, name: str | None
) -> None:
    text = bank_file(stmttrn("1", name="COFFEE") + stmttrn("2")).replace("<NAME>COFFEE", cdata, 1)
    assert fastpath.normalized(text, 0) is None
    (statement,) = parse_ofx(text.encode(), defer=True).statements
    assert paths(statement) == ["builder"]
    assert parse_ofx(text.encode()).statements[0].transactions[0].name == name
    assert parse_ofx(text.encode()) == _generic(text)
    assert _rows(text)[0][0][3] == (f"{name} / CARD 1234" if name else "CARD 1234")


def test_empty_cdata_before_text_or_an_end_tag(bank_file: Build, stmttrn: Build) -> None:
    """What some exporters write (and the benchmark's CDATA case): it changes nothing."""
    plain = _plain(bank_file, stmttrn)
    text = plain.replace("<NAME>", "<NAME><![CDATA[]]>").replace("<MEMO>m 1", "<MEMO><![CDATA[ ]]></MEMO>")
    assert_reads_like(text, plain.replace("<MEMO>m 1", "<MEMO></MEMO>"))
    assert parse_ofx(text.encode()).statements[0].transactions[1].memo is None


def test_an_empty_cdata_completed_by_text_after_an_empty_repeat(bank_file: Build, stmttrn: Build) -> None:
    """``<NAME></NAME><NAME><![CDATA[]]>B``: the second NAME is "B", as in ``<NAME>B``,
    whichever path reads it (the builder used to drop the text of a repeated leaf that
    started empty)."""
    plain = bank_file(stmttrn("1", name="</NAME><NAME>B") + stmttrn("2"))
    text = plain.replace("<NAME>B", "<NAME><![CDATA[]]>B")
    assert_reads_like(text, plain)
    assert _generic(text).statements[0].transactions[0].name == "B"


def test_mixed_lists_only_some_in_cdata_or_with_attributes(bank_file: Build, stmttrn: Build) -> None:
    """The first list is read before anything is normalised; the second (CDATA, attributes)
    from the normalised copy; both stay deferred together."""
    head = "<BANKTRANLIST><DTSTART>20231201<DTEND>20240215\n"
    second = head + stmttrn("7") + stmttrn("8") + "</BANKTRANLIST>"
    plain = _plain(bank_file, stmttrn, n=3).replace("</BANKTRANLIST>", "</BANKTRANLIST>\n" + second)
    at = plain.index("<BANKTRANLIST><DTSTART>20231201")
    later_cdata = plain[:at] + _cdata(plain[at:], "NAME|FITID")
    assert_reads_like(later_cdata, plain)
    later_attributes = plain[:at] + plain[at:].replace("<STMTTRN>", '<STMTTRN type="card">')
    assert_reads_like(later_attributes, plain)
    some_values = _cdata(plain, "MEMO").replace("<NAME>SHOP &amp; CO 1", "<NAME kind='x'>SHOP &amp; CO 1")
    assert_reads_like(some_values, plain)


def test_attributes_anywhere_read_like_the_plain_file(bank_file: Build, stmttrn: Build) -> None:
    plain = _plain(bank_file, stmttrn)
    text = (
        plain.replace("<STMTTRN>", '<STMTTRN kind="card" note=\'a "b" c\'>')
        .replace("<NAME>", "<NAME lang=en>")
        .replace("<BANKTRANLIST>", '<BANKTRANLIST\n  from="x">', 1)
        .replace("<MEMO>m 2", "<MEMO x='1'><![CDATA[m 2]]>")
    )
    text = text.replace("</STMTTRN>", "<EXTRA a='1'/></STMTTRN>")  # an empty element: left as it is
    plain = plain.replace("</STMTTRN>", "<EXTRA/></STMTTRN>")
    assert parse_ofx(text.encode()) == parse_ofx(plain.encode()) == _generic(text)
    text = text.replace("<EXTRA a='1'/>", "")
    plain = plain.replace("<EXTRA/>", "")
    assert_reads_like(text, plain)


def test_markup_inside_comments_and_cdata_is_not_rewritten(bank_file: Build, stmttrn: Build) -> None:
    plain = _plain(bank_file, stmttrn, **{"1": "&lt;!-- kept --&gt;", "2": "&lt;NAME a='1'&gt;"})
    text = _cdata(plain, "NAME").replace("<STMTTRN>", "<!-- <NAME a='1'><![CDATA[x]]> <?pi?> --><STMTTRN>", 1)
    assert_reads_like(text, plain)
    assert [t.name for t in parse_ofx(text.encode()).statements[0].transactions[1:3]] == [
        "<!-- kept -->",
        "<NAME a='1'>",
    ]


def test_warnings_keep_their_line_numbers(bank_file: Build, stmttrn: Build) -> None:
    """Multi-line attributes and CDATA: the normalised copy keeps every line break in place."""
    rows = stmttrn("1") + stmttrn("2", amount="oops") + stmttrn("3", posted="2024")
    plain = bank_file(rows)
    text = plain.replace("<STMTTRN>", '<STMTTRN a="1\n2">').replace(
        "<MEMO>CARD 1234", "<MEMO><![CDATA[CARD\n1234]]>"
    )
    document = parse_ofx(text.encode())
    assert document.warnings == _generic(text).warnings
    assert parse_ofx(text.encode(), defer=True).statements[0].unread is not None
    assert document.warnings[:2] == [
        f"line {line_of(text, '<STMTTRN a', 2)}: <STMTTRN> (FITID 2) skipped: <TRNAMT> not an amount: 'oops'",
        f"line {line_of(text, '<STMTTRN a', 3)}: <STMTTRN> (FITID 3) skipped: <DTPOSTED> "
        + document.warnings[1].split("<DTPOSTED> ", 1)[1],
    ]
    assert _rows(text)[1] == document.warnings  # deferred: they arrive as the rows are built


def test_errors_keep_their_line_numbers(bank_file: Build, stmttrn: Build) -> None:
    attributes_and_cdata = '<STMTTRN a="1\n2">\n<TRNTYPE>POS<NAME><![CDATA[X\nY]]></NAME>'
    text = bank_file(stmttrn("1") + attributes_and_cdata + "junk</STMTTRN>")
    message = _error(text)
    assert message.startswith(f"line {line_of(text, 'junk')} (in ")
    assert "'junk' outside a value" in message
    truncated = text[: text.index("junk")]
    last = truncated.count("\n") + 1
    assert _error(truncated) == (
        f"line {last}: the file ends inside <STMTTRN> (opened on line {line_of(text, '<STMTTRN a')}); "
        "it looks truncated"
    )


def _error(text: str) -> str:
    """The message of the MalformedFile ``text`` raises, the same on both paths."""
    with pytest.raises(MalformedFile) as normalised:
        parse_ofx(text.encode())
    with pytest.raises(MalformedFile) as generic:
        _generic(text)
    assert str(normalised.value) == str(generic.value)
    return str(normalised.value)


def test_the_rewriting_itself() -> None:
    """Same length, line breaks in place, values escaped where the markers were."""
    text = '<OFX><BANKTRANLIST><NAME a="1"><![CDATA[A<B]]></NAME><MEMO\n x><![CDATA[]]>m<X/></OFX>'
    assert fastpath.normalized(text, 5) == (
        "<OFX><BANKTRANLIST><NAME>      A&lt;B         </NAME><MEMO>\n" + " " * 14 + "m<X/></OFX>"
    )


@pytest.mark.parametrize(
    "markup",
    [
        "<?pi?>",
        "<!DOCTYPE x>",
        "<!-- unterminated",
        "<NAME>a<![CDATA[not right after a start tag]]>",
        "<NAME><![CDATA[joined]]>to text",
        "<MEMO><![CDATA[]]><NAME>",  # an empty leaf: unwrapped, an aggregate
        "<NAME><![CDATA[<<<<<]]>",  # no room to escape
        "<A x",  # broken markup is quoted as it is in the error
        "</ A>",
        "< A>",
        "<NAMÉ x='1'>",  # not an ASCII name
    ],
)
def test_what_is_left_as_it_is(markup: str) -> None:
    text = f'<OFX><BANKTRANLIST><STMTTRN id="1">{markup}<NAME>x</OFX>'
    assert fastpath.normalized(text, 5) is None


# --- investment statements: the items of INVTRANLIST, INVPOSLIST and SECLIST ---------------

_INVESTMENT_LEAVES = "FITID|MEMO|UNITS|TOTAL|UNIQUEID|SECNAME|TICKER|MKTVAL"


def _investment_plain() -> str:
    entries = "".join(
        entry(kind, f"F{i}", day=1 + i, security=f"{i:09d}", memo=f"Order &amp; fee {i}", total=f"-{i}.50")
        for i, kind in enumerate(("BUYSTOCK", "SELLSTOCK", "INCOME", "BUYMF", "REINVEST", "INVEXPENSE") * 2)
    )
    return investment_file(entries)


def assert_investment_reads_like(text: str, plain: str) -> None:
    """``text`` reads as ``plain`` does, eagerly, deferred (every entry left unread: the
    fast path took them all) and as the generic path reads it unnormalised."""
    assert text != plain
    assert parse_ofx(text.encode()) == parse_ofx(plain.encode()) == _generic(text)
    assert _rows(text) == _rows(plain)
    entries = len(parse_ofx(plain.encode()).statements[0].investment_transactions)
    (statement,) = parse_ofx(text.encode(), defer=True).statements
    assert statement.unread_entries is not None
    assert len(statement.unread_entries) == entries == 12
    assert statement.investment_transactions == []


def test_investment_values_in_cdata_read_like_the_plain_file() -> None:
    plain = _investment_plain()
    text = _cdata(plain, _INVESTMENT_LEAVES)
    assert "<SECNAME><![CDATA[Stock & Co 3]]>" in text
    assert "<MEMO><![CDATA[Order & fee 2]]>" in text
    assert_investment_reads_like(text, plain)
    assert parse_ofx(text.encode()).statements[0].investment_transactions[2].memo == "Order & fee 2"


def test_investment_attributes_read_like_the_plain_file() -> None:
    plain = _investment_plain()
    text = (
        plain.replace("<BUYSTOCK>", '<BUYSTOCK kind="x">')
        .replace("<INVTRAN>", "<INVTRAN a='1'>")
        .replace("<SECID>", '<SECID\n  t="c">')
        .replace("<STOCKINFO>", "<STOCKINFO x=1>")
        .replace("<POSSTOCK>", "<POSSTOCK p='2'>")
    )
    assert_investment_reads_like(text, plain)


def test_investment_xml_style_cdata_and_attributes_together() -> None:
    plain = _investment_plain()
    closed = re.sub(rf"<({_INVESTMENT_LEAVES})>([^<\n]+)", r"<\1>\2</\1>", plain)
    text = _cdata(closed, _INVESTMENT_LEAVES).replace("<INCOME>", "<INCOME src='b'>")
    assert_investment_reads_like(text, plain)


def test_investment_warnings_keep_their_line_numbers() -> None:
    entries = entry("BUYSTOCK", "A1") + entry("SELLSTOCK", "A2", units="1.2.3")
    entries += entry("INCOME", "A3", trade="2024")
    plain = investment_file(entries)
    text = _cdata(plain.replace("<SELLSTOCK>", '<SELLSTOCK a="1\n2">'), "MEMO|UNITS")
    assert parse_ofx(text.encode(), defer=True).statements[0].unread_entries is not None
    document = parse_ofx(text.encode())
    assert document.warnings == _generic(text).warnings
    assert document.warnings
    assert document.warnings[0].startswith(f"line {line_of(text, '<SELLSTOCK a')}")
    assert _rows(text)[1] == _rows(plain.replace("<SELLSTOCK>", "<SELLSTOCK>\n"))[1]


def test_investment_cdata_that_is_not_a_whole_value_is_left_to_the_generic_path() -> None:
    plain = _investment_plain()
    text = plain.replace("<MEMO>Order &amp; fee 3", "<MEMO><![CDATA[Order]]> fee 3", 1)
    assert fastpath.normalized(text, 0) is None
    assert parse_ofx(text.encode()) == _generic(text)
    assert parse_ofx(text.encode()).statements[0].investment_transactions[3].memo == "Orderfee 3"
