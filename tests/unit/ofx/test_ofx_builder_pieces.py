"""Files the fast path cannot read (issue 10): CDATA that is only part of a value, an empty
CDATA leaf before a start tag, processing instructions, empty elements. The tree builder keeps
each closed STMTTRN and investment item as its leaves written in one string
(``Builder._closed``), so the tree stays a fraction of the file and the transactions stay
unconverted (deferred) like fast-path ones. Such a file must still read exactly like its plain
equivalent: values, rows, warnings and their line numbers."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from tests.unit.ofx.test_ofx_deferred import paths
from tests.unit.ofx.test_ofx_deferred_investments import entry, investment_file
from tests.unit.ofx.test_ofx_normalised_markup import _generic, _rows, assert_reads_like

from finsync.providers.ofx import fastpath, parse_ofx
from finsync.providers.ofx.encoding import decode
from finsync.providers.ofx.model import clean_fields
from finsync.providers.ofx.nodes import Lines, Node, WrittenLeaves, block_fields, first_leaf
from finsync.providers.ofx.tokenizer import build_tree, find_body

pytestmark = pytest.mark.unit

Build = Callable[..., str]


def _plain(bank_file: Build, stmttrn: Build, n: int = 8) -> str:
    rows = "".join(
        stmttrn(f"F{i}", amount=f"-{i}.25", name=f"SHOP &amp; CO {i}", memo=f"m {i}") for i in range(n)
    )
    return bank_file(rows)


# Each: the file as the fast path cannot read it, from its plain form (the same lines).
SHAPES: dict[str, Callable[[str], str]] = {
    "partial-cdata": lambda text: re.sub(r"<NAME>(\w)", r"<NAME><![CDATA[\1]]>", text),
    "cdata-in-the-middle": lambda text: text.replace("SHOP &amp; CO", "SHOP<![CDATA[ & ]]>CO"),
    "empty-cdata-before-a-start-tag": lambda text: text.replace("<NAME>", "<SIC><![CDATA[]]><NAME>"),
    "processing-instruction": lambda text: text.replace("<STMTTRN>", "<STMTTRN><?export v=1?>"),
    "empty-element": lambda text: text.replace("<MEMO>", "<SIC/><MEMO>"),
    "comment-inside-a-value": lambda text: text.replace("SHOP &amp; CO", "SHOP &amp;<!-- x --> CO"),
}


_JOINED = {"cdata-in-the-middle": "SHOP&amp;CO", "comment-inside-a-value": "SHOP &amp;CO"}


@pytest.mark.parametrize("shape", SHAPES)
def test_a_file_the_builder_reads_is_deferred_and_reads_like_the_plain_file(
    bank_file: Build, stmttrn: Build, shape: str
) -> None:
    plain = _plain(bank_file, stmttrn)
    text = SHAPES[shape](plain)
    if shape in _JOINED:  # the generic path joins the parts of a value, each one stripped
        plain = plain.replace("SHOP &amp; CO", _JOINED[shape])
    assert_reads_like(text, plain)  # eager, generic, rows built from the deferred pieces
    (statement,) = parse_ofx(text.encode(), defer=True).statements
    assert paths(statement) == ["builder"]
    assert statement.transactions == []
    assert statement.unread is not None
    assert len(statement.unread) == 8


def test_warnings_of_deferred_builder_rows_keep_their_line_numbers(bank_file: Build, stmttrn: Build) -> None:
    rows = [stmttrn(f"F{i}", name=f"SHOP {i}") for i in range(6)]
    rows[2] = stmttrn("BAD", amount="x")
    rows[4] = stmttrn("LATE", extra="<DTUSER>2024")
    rows[5] = stmttrn(None, name="NO ID")  # no FITID: converted at once, in file order
    plain = bank_file("".join(rows))
    text = plain.replace("<STMTTRN>", "<STMTTRN><?pi?>")
    text_rows, text_warnings = _rows(text)
    plain_rows, plain_warnings = _rows(plain)
    assert text_rows == plain_rows
    assert text_warnings == plain_warnings
    assert len(text_warnings) == 2
    bad = text.rindex("<STMTTRN>", 0, text.index("<FITID>BAD"))
    assert text_warnings[0].startswith(f"line {text[:bad].count(chr(10)) + 1}: <STMTTRN> (FITID BAD) skipped")
    assert sorted(text_warnings) == sorted(parse_ofx(text.encode()).warnings)


def test_mixed_fast_and_builder_lists_keep_file_order(bank_file: Build, stmttrn: Build) -> None:
    head = "<BANKTRANLIST><DTSTART>20240101<DTEND>20240131\n"
    generic = head + stmttrn("G1").replace("<STMTTRN>", "<STMTTRN><?pi?>") + "</BANKTRANLIST>\n"
    fast = head + stmttrn("S2") + stmttrn("S3") + "</BANKTRANLIST>\n"
    text = bank_file(stmttrn("S0") + stmttrn("S1")).replace(
        "</BANKTRANLIST>\n", "</BANKTRANLIST>\n" + generic + fast
    )
    (statement,) = parse_ofx(text.encode(), defer=True).statements
    assert paths(statement) == ["fast", "builder", "fast"]
    rows, _ = _rows(text)
    assert [row[0] for row in rows] == ["S0", "S1", "G1", "S2", "S3"]
    assert [t.fitid for t in parse_ofx(text.encode()).statements[0].transactions] == [
        "S0",
        "S1",
        "G1",
        "S2",
        "S3",
    ]


def _tree(text: str) -> Node:
    data = text.encode()
    warnings: list[str] = []
    decoded, _ = decode(data, {}, warnings)
    lines = Lines(decoded)
    return build_tree(lines, find_body(decoded, lines), warnings)


def _descendants(node: Node, tag: str) -> list[Node]:
    found, todo = [], [node]
    while todo:
        current = todo.pop()
        for child in current.children:
            (found if child.tag == tag else todo).append(child)
    return found


def test_the_tree_keeps_no_node_per_leaf_of_a_closed_stmttrn(bank_file: Build, stmttrn: Build) -> None:
    text = SHAPES["partial-cdata"](_plain(bank_file, stmttrn))
    transactions = _descendants(_tree(text), "STMTTRN")
    assert len(transactions) == 8
    assert all(t.children == () and isinstance(t.extra, WrittenLeaves) for t in transactions)
    assert clean_fields(transactions[3].leaves()) == {
        "TRNTYPE": "POS",
        "DTPOSTED": "20240105",
        "TRNAMT": "-3.25",
        "FITID": "F3",
        "NAME": "SHOP & CO 3",
        "MEMO": "m 3",
    }


def test_a_stmttrn_inside_an_investment_bank_leg_keeps_its_nodes() -> None:
    """INVBANKTRAN is read with find() and text(): only lists and statements get written pieces."""
    leg = "<INVBANKTRAN><STMTTRN><?pi?><TRNTYPE>CREDIT<DTPOSTED>20240105<TRNAMT>5<FITID>B1</STMTTRN>"
    text = investment_file(entry("BUYSTOCK", "A1") + leg + "<SUBACCTFUND>CASH</INVBANKTRAN>\n")
    text = text.replace("<INVTRAN>", "<INVTRAN><?pi?>")
    (stmttrn,) = _descendants(_tree(text), "STMTTRN")
    assert stmttrn.children != ()
    assert not isinstance(stmttrn.extra, WrittenLeaves)
    (statement,) = parse_ofx(text.encode()).statements
    assert [t.fitid for t in statement.transactions] == ["B1"]
    assert statement.transactions[0].fields["SUBACCTFUND"] == "CASH"


_INVESTMENT_SHAPES: dict[str, Callable[[str], str]] = {
    "processing-instruction": lambda text: (
        text.replace("<INVTRAN>", "<INVTRAN><?pi?>")
        .replace("<SECINFO>", "<SECINFO><?pi?>")
        .replace("<INVPOS>", "<INVPOS><?pi?>")
    ),
    "partial-cdata": lambda text: re.sub(r"<(MEMO|SECNAME)>(\w)", r"<\1><![CDATA[\2]]>", text),
}


@pytest.mark.parametrize("shape", _INVESTMENT_SHAPES)
def test_an_investment_file_the_builder_reads_is_deferred_and_reads_like_the_plain_file(shape: str) -> None:
    kinds = ("BUYSTOCK", "SELLSTOCK", "INCOME", "BUYMF", "REINVEST", "INVEXPENSE") * 2
    entries = "".join(
        entry(kind, f"F{i}", day=1 + i, security=f"{i:09d}", memo=f"Order &amp; fee {i}", total=f"-{i}.50")
        for i, kind in enumerate(kinds)
    )
    entries += entry("BUYSTOCK", "W", memo="&#32;padded&#32;", security="000000002")  # exact leaves
    plain = investment_file(entries)
    text = _INVESTMENT_SHAPES[shape](plain)
    assert text != plain
    assert parse_ofx(text.encode()) == parse_ofx(plain.encode()) == _generic(text)
    assert parse_ofx(text.encode()).statements[0].investment_transactions[-1].fields["MEMO"] == " padded "
    assert _rows(text) == _rows(plain)
    (statement,) = parse_ofx(text.encode(), defer=True).statements
    assert statement.investment_transactions == []
    assert statement.unread_entries is not None
    assert len(statement.unread_entries) == 13
    items = [node for tag in ("BUYSTOCK", "STOCKINFO") for node in _descendants(_tree(text), tag)]
    assert items
    changed = [node for node in items if node.leaves().get("FITID") != "W"]  # not W: plain, a block
    assert len(changed) == 2 + 20
    assert all(isinstance(node.extra, WrittenLeaves) for node in changed)


VALUES = [
    "A & B",
    "<x>",
    "&amp;",
    "&#32;",
    " lead",
    "trail ",
    "\u00a0nbsp\u00a0",
    "",
    "]]>",
    "a\nb",
    "&lt;",
    "é",
]


def test_written_leaves_read_back_exactly() -> None:
    leaves = {f"K{i}": value for i, value in enumerate(VALUES)} | {"CURRENCY": "", "CURSYM": "EUR"}
    written = fastpath.written_leaves(leaves)
    assert block_fields(written) == leaves
    assert [first_leaf(written, key) for key in leaves] == list(leaves.values())


def test_written_pieces_read_back_as_clean_fields() -> None:
    leaves = {f"K{i}": value for i, value in enumerate(VALUES)} | {"FITID": " &x ", "CURRENCY": ""}
    piece = fastpath.written_piece(leaves)
    assert fastpath.piece_fields(piece) == clean_fields(leaves)
    assert clean_fields(block_fields(piece)) == clean_fields(leaves)
    assert fastpath.piece_fitid(piece) == "&x"
    assert "<CURRENCY>" in piece  # what bank_transaction looks for
    assert "<CURRENCY>" not in fastpath.written_piece({"FITID": "1"})


def test_a_last_leaf_is_read_to_the_end() -> None:
    """A written piece or body ends with its last value, not with a tag."""
    assert fastpath.piece_fitid(fastpath.written_piece({"NAME": "X", "FITID": "ABC"})) == "ABC"
    assert (
        first_leaf(fastpath.written_leaves({"UNIQUEID": "1", "UNIQUEIDTYPE": "CUSIP"}), "UNIQUEIDTYPE")
        == "CUSIP"
    )
    assert first_leaf("<SECID><UNIQUEID>123", "UNIQUEID") == "123"
