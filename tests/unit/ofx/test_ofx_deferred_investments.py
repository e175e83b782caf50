"""Deferred investment entries: ``parse_ofx(..., defer=True)`` keeps fast-path INVTRANLIST
entries as text and ``OfxFormat.read`` names them by FITID + fingerprint; building them must
give what the eager reader gives, with the same warnings, and the keys must not change
between two reads of a file (a re-import finds every entry unchanged)."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable
from pathlib import Path

import pytest
from tests.unit.ofx.conftest import SGML_HEADER

from finsync.domain.errors import ImportRejected
from finsync.domain.ports import ParsedFile
from finsync.domain.records import DeferredTransactions, ProviderTransaction
from finsync.providers.ofx import map_document, parse_ofx
from finsync.providers.ofx.format import OfxFormat, _unique_ids

pytestmark = pytest.mark.unit

View = tuple[object, ...]
_KINDS = ("BUYSTOCK", "SELLSTOCK", "BUYMF", "SELLMF", "INCOME", "REINVEST", "TRANSFER", "SPLIT", "INVEXPENSE")


def view(t: ProviderTransaction) -> View:
    """Everything an import stores of a transaction but the fingerprint (eager rows have
    none: the store hashes their values)."""
    return tuple(value for name, value in dataclasses.asdict(t).items() if name != "fingerprint")


def by_id(transactions: Iterable[ProviderTransaction]) -> list[View]:
    return sorted((view(t) for t in transactions), key=lambda v: str(v[0]))


def is_subsequence(part: list[View], whole: list[View]) -> bool:
    remaining = iter(whole)
    return all(any(item == candidate for candidate in remaining) for item in part)


def build_all(group: DeferredTransactions) -> list[ProviderTransaction]:
    return list(group.build(list(range(len(group.keys)))))


def eager_reference(data: bytes) -> tuple[list[list[ProviderTransaction]], list[str]]:
    document = parse_ofx(data)
    mapped = map_document(document)
    assert all(m.deferred is None for m in mapped)
    return [_unique_ids(m.transactions, document.warnings) for m in mapped], document.warnings


def assert_same_as_eager(data: bytes, name: str) -> int:
    """Deferred + eager parts equal the eager reader's list, each part in file order, with the
    same warnings; returns how many entries were deferred (and built)."""
    reference, reference_warnings = eager_reference(data)
    parsed = OfxFormat().read(data)
    assert len(parsed.statements) == len(reference), name
    deferred = 0
    for statement, expected in zip(parsed.statements, reference, strict=True):
        assert len(statement.deferred) <= 1, name
        built = [t for group in statement.deferred for t in build_all(group)]
        deferred += len(built)
        wanted = [view(t) for t in expected]
        assert by_id(statement.transactions + built) == by_id(expected), name
        assert len(statement.transactions) + len(built) == len(wanted), name
        assert is_subsequence([view(t) for t in statement.transactions], wanted), name
        assert is_subsequence([view(t) for t in built], wanted), name
    assert sorted(parsed.warnings) == sorted(reference_warnings), name
    return deferred


def investment_file(entries: str, *, seclist: str | None = None, curdef: str = "<CURDEF>USD") -> str:
    if seclist is None:
        seclist = "".join(
            f"<STOCKINFO><SECINFO><SECID><UNIQUEID>{i:09d}<UNIQUEIDTYPE>CUSIP</SECID>"
            f"<SECNAME>Stock &amp; Co {i}<TICKER>S{i}</SECINFO></STOCKINFO>\n"
            for i in range(20)
        )
    return SGML_HEADER + (
        "<OFX><SIGNONMSGSRSV1><SONRS><STATUS><CODE>0<SEVERITY>INFO</STATUS><DTSERVER>20240131"
        "<LANGUAGE>ENG<FI><ORG>Broker<FID>77</FI></SONRS></SIGNONMSGSRSV1>\n<INVSTMTMSGSRSV1><INVSTMTTRNRS>"
        f"<TRNUID>1<STATUS><CODE>0<SEVERITY>INFO</STATUS><INVSTMTRS><DTASOF>20240131{curdef}"
        "<INVACCTFROM><BROKERID>b.example<ACCTID>9876</INVACCTFROM>\n"
        f"<INVTRANLIST><DTSTART>20240101<DTEND>20241231\n{entries}</INVTRANLIST>\n"
        "<INVPOSLIST><POSSTOCK><INVPOS><SECID><UNIQUEID>000000001<UNIQUEIDTYPE>CUSIP</SECID>"
        "<HELDINACCT>CASH<POSTYPE>LONG<UNITS>10<UNITPRICE>19<MKTVAL>190<DTPRICEASOF>20240131</INVPOS>"
        "</POSSTOCK></INVPOSLIST><INVBAL><AVAILCASH>50</INVBAL></INVSTMTRS></INVSTMTTRNRS>"
        "</INVSTMTMSGSRSV1>\n"
        f"<SECLISTMSGSRSV1><SECLIST>\n{seclist}</SECLIST></SECLISTMSGSRSV1></OFX>\n"
    )


def entry(
    kind: str,
    fitid: str | None,
    *,
    day: int = 5,
    security: str = "000000001",
    memo: str | None = "Order",
    units: str = "10",
    total: str = "-100.00",
    trade: str | None = None,
    extra: str = "",
) -> str:
    tran = "<INVTRAN>" + (f"<FITID>{fitid}" if fitid is not None else "")
    tran += f"<DTTRADE>{trade or f'202401{day:02d}'}<DTSETTLE>202401{day:02d}"
    tran += (f"<MEMO>{memo}" if memo is not None else "") + "</INVTRAN>"
    secid = f"<SECID><UNIQUEID>{security}<UNIQUEIDTYPE>CUSIP</SECID>"
    tail = f"<SUBACCTSEC>CASH<SUBACCTFUND>CASH{extra}"
    if kind.startswith(("BUY", "SELL")):
        inner = "INVBUY" if kind.startswith("BUY") else "INVSELL"
        return (
            f"<{kind}><{inner}>{tran}{secid}<UNITS>{units}<UNITPRICE>10.00<COMMISSION>1.00<TOTAL>{total}"
            f"{tail}</{inner}><{kind[:3] if kind.startswith('BUY') else 'SELL'}TYPE>X</{kind}>\n"
        )
    if kind in ("INCOME", "REINVEST"):
        return f"<{kind}>{tran}{secid}<INCOMETYPE>DIV<TOTAL>{total}<UNITS>{units}{tail}</{kind}>\n"
    if kind == "TRANSFER":
        return f"<TRANSFER>{tran}{secid}<UNITS>{units}<TFERACTION>IN<POSTYPE>LONG{tail}</TRANSFER>\n"
    if kind == "SPLIT":
        return f"<SPLIT>{tran}{secid}<OLDUNITS>10<NEWUNITS>20<NUMERATOR>2<DENOMINATOR>1{tail}</SPLIT>\n"
    return f"<{kind}>{tran}{secid}<TOTAL>{total}{tail}</{kind}>\n"


def bank_leg(fitid: str, amount: str = "100.00") -> str:
    return (
        f"<INVBANKTRAN><STMTTRN><TRNTYPE>CREDIT<DTPOSTED>20240120<TRNAMT>{amount}<FITID>{fitid}"
        "<NAME>Deposit</STMTTRN><SUBACCTFUND>CASH</INVBANKTRAN>\n"
    )


def generated_entries(n: int, *, seed: int, bad: bool = True) -> str:
    """``n`` varied entries: unique FITIDs mostly, plus FITID-less ones (some identical),
    FITIDs reused with other content or by a bank leg, exact repeats, entities, unknown
    securities, attributes (normalised away, see fastpath.normalized), bank legs (read as
    trees by the builder) and, when ``bad``, unreadable dates and numbers."""
    rng = random.Random(seed)
    parts: list[str] = []
    for i in range(n):
        kind = _KINDS[i % len(_KINDS)]
        fitid: str | None = f"{seed}-{i:05d}"
        memo: str | None = rng.choice(("Order", "AT&amp;T dividend", None))
        security = f"{rng.randrange(25):09d}"  # 20 listed, 5 unknown
        units, total, trade, extra = str(rng.randint(1, 99)), f"-{rng.randint(1, 9999)}.00", None, ""
        if i % 13 == 0:
            fitid, memo, units, total, security = None, "Same", "1", "-1.00", "000000002"
        elif i % 31 == 0:
            fitid = None
        elif i % 53 == 0:
            fitid = f"REUSED{i % 3}"
        elif i % 59 == 0:
            fitid = f"LEG{i % 2}"  # also a bank leg's FITID
        if bad and i % 41 == 7:
            trade = "2024-13-45"
        if bad and i % 43 == 8:
            units = "1.2.3"
        if i % 37 == 0:
            extra = "<INV401KSOURCE>PRETAX"
        block = entry(kind, fitid, day=1 + i % 28, security=security, memo=memo, units=units, total=total,
                      trade=trade, extra=extra)  # fmt: skip
        if i % 17 == 0:
            block = block.replace(f"<{kind}>", f'<{kind} source="x">', 1)
        parts.append(block)
        if i % 67 == 0:
            parts.append(block)  # an exact repeat
        if i % 50 == 0:
            parts.append(bank_leg(f"LEG{i % 2}" if i % 100 == 0 else f"CASH{i}"))
    return "".join(parts)


@pytest.fixture(scope="module")
def generated() -> bytes:
    return investment_file(generated_entries(900, seed=1)).encode()


def test_investment_fixtures_read_with_deferral_as_when_eager(fixtures_dir: Path) -> None:
    deferred = 0
    compared = []
    for path in sorted(fixtures_dir.rglob("*.ofx")):
        data = path.read_bytes()
        try:
            document = parse_ofx(data)
        except ImportRejected:
            continue
        if not any(s.kind == "investment" for s in document.statements):
            continue
        deferred += assert_same_as_eager(data, path.name)
        compared.append(path.name)
    assert len(compared) >= 7, compared
    assert deferred > 20, "no investment fixture exercised the deferred path"


def test_generated_investment_statement_reads_with_deferral_as_when_eager(generated: bytes) -> None:
    reference, warnings = eager_reference(generated)
    assert sum(map(len, reference)) > 850
    assert any("skipped: not an OFX date" in w for w in warnings)
    assert any("skipped: <UNITS>" in w for w in warnings)
    assert any("is used for 2 different transactions" in w for w in warnings)
    assert len(warnings) < 100  # the cap would keep different subsets
    assert assert_same_as_eager(generated, "generated") > 600


def test_lower_case_and_currency_less_statements_read_as_when_eager() -> None:
    text = investment_file(generated_entries(200, seed=2))
    lower = text.replace("<INVTRANLIST>", "<invtranlist>").replace("</INVTRANLIST>", "</invtranlist>")
    assert assert_same_as_eager(lower.encode(), "lower") > 100
    # Without CURDEF the entries give the currency: none is deferred.
    assert assert_same_as_eager(text.replace("<CURDEF>USD", "").encode(), "no CURDEF") == 0


def test_keys_name_what_build_yields_and_are_the_same_on_every_read() -> None:
    data = investment_file(generated_entries(300, seed=3, bad=False)).encode()
    first, second = OfxFormat().read(data), OfxFormat().read(data)
    (group,) = first.statements[0].deferred
    ids = [pid for pid, _ in group.keys]
    assert len(ids) > 200
    assert len(set(ids)) == len(ids)
    assert not {t.provider_transaction_id for t in first.statements[0].transactions} & set(ids)
    assert all(fp.startswith("ofxi1|USD|") and len(fp) <= 64 for _, fp in group.keys)
    assert [(t.provider_transaction_id, t.fingerprint) for t in build_all(group)] == group.keys
    assert second.statements[0].deferred[0].keys == group.keys


def only_group(parsed: ParsedFile) -> DeferredTransactions:
    (statement,) = parsed.statements
    (group,) = statement.deferred
    return group


def test_fingerprints_follow_the_entry_and_its_security() -> None:
    base = entry("BUYSTOCK", "A1") + entry("BUYSTOCK", "A2", security="000000003")
    (a1, a2) = only_group(OfxFormat().read(investment_file(base).encode())).keys

    def keys(text: str) -> list[tuple[str, str]]:
        return only_group(OfxFormat().read(text.encode())).keys

    # Another element name with the same content, another amount: another fingerprint.
    assert keys(investment_file(base.replace("BUYSTOCK", "BUYMF")))[0][1] != a1[1]
    assert keys(investment_file(base.replace("<TOTAL>-100.00", "<TOTAL>-101.00", 1)))[0] != a1
    # The security's listed name changes the description: A1's fingerprint changes, A2's not.
    renamed = investment_file(base).replace("Stock &amp; Co 1<", "Stock &amp; Co One<")
    assert keys(renamed) == [(a1[0], keys(renamed)[0][1]), a2]
    assert keys(renamed)[0][1] != a1[1]
    # Another account currency.
    assert keys(investment_file(base, curdef="<CURDEF>EUR"))[0][1].startswith("ofxi1|EUR|")


def test_a_deferred_entry_makes_the_account_a_retirement_one() -> None:
    data = investment_file(entry("BUYMF", "R1", extra="<INV401KSOURCE>PRETAX")).encode()
    assert parse_ofx(data, defer=True).statements[0].unread_entries is not None
    assert parse_ofx(data, defer=True).statements[0].is_retirement
    (statement,) = OfxFormat().read(data).statements
    assert statement.account.type.value == "retirement"


def test_unreadable_deferred_entries_warn_when_built_as_the_eager_reader_does() -> None:
    data = investment_file(
        entry("INCOME", "OK1") + entry("INCOME", "BAD", trade="20241345") + entry("INCOME", "OK2")
    ).encode()
    (expected,) = parse_ofx(data).warnings
    assert "(FITID BAD) skipped" in expected
    parsed = OfxFormat().read(data)
    group = only_group(parsed)
    assert [pid for pid, _ in group.keys] == ["OK1", "BAD", "OK2"]
    assert parsed.warnings == []
    assert [t.provider_transaction_id for t in build_all(group)] == ["OK1", "OK2"]
    assert parsed.warnings == [expected]


def test_warnings_over_the_cap_match_the_eager_reader() -> None:
    data = investment_file("".join(entry("INCOME", f"X{i}", trade="x") for i in range(130))).encode()
    _, expected = eager_reference(data)
    assert expected[-1] == "... and 30 more warnings"
    parsed = OfxFormat().read(data)
    assert build_all(only_group(parsed)) == []
    assert parsed.warnings == expected


def test_defer_false_leaves_no_entry_unread(fixture_bytes: object) -> None:
    data = investment_file(entry("BUYSTOCK", "A1")).encode()
    assert parse_ofx(data).statements[0].unread_entries is None
    assert parse_ofx(data, defer=True).statements[0].unread_entries is not None


def test_leaves_naming_an_entry_are_read_as_its_fields_read_them() -> None:
    """A repeated FITID (the first non-empty one counts), one written as a character reference,
    an id type in lower case: the key found in the text is the converted entry's id, and the
    security found for the fingerprint is the one the row names."""
    entries = (
        entry("BUYSTOCK", None, extra="").replace("<INVTRAN>", "<INVTRAN><FITID> F1 <FITID>F2", 1)
        + entry("INCOME", "&#32;G&amp;1")
        + entry("INCOME", "H1").replace("<UNIQUEIDTYPE>CUSIP", "<UNIQUEIDTYPE> cusip ")
    )
    data = investment_file(entries).encode()
    assert assert_same_as_eager(data, "names") == 3
    group = only_group(OfxFormat().read(data))
    assert [pid for pid, _ in group.keys] == ["F1", " G&1", "H1"]
    built = build_all(group)
    assert [(t.provider_transaction_id, t.fingerprint) for t in built] == group.keys
    assert [t.symbol for t in built] == ["S1", "S1", "S1"]
