"""Hostile and broken uploads through ``POST /api/v1/imports`` on SQLite and PostgreSQL (issue 10).

Every refused file answers its status and problem type and leaves every table exactly as it
was; every accepted one answers 201 with its warnings, never a 500. The corpus is generated
here (no file is copied from elsewhere), big inputs lazily, against a 2 MiB upload limit.
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from finsync.bootstrap import Container
from finsync.infrastructure.db.tables import metadata
from tests.api.helpers import register_and_login
from tests.conftest import api_client, built, make_settings

pytestmark = pytest.mark.e2e

LIMIT = 2 * 1024 * 1024
HEADER = (
    "OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\nSECURITY:NONE\nENCODING:USASCII\nCHARSET:1252\n"
    "COMPRESSION:NONE\nOLDFILEUID:NONE\nNEWFILEUID:NONE\n\n"
)
SIGN_ON = (
    "<SIGNONMSGSRSV1><SONRS><STATUS><CODE>0<SEVERITY>INFO</STATUS><DTSERVER>20240131<LANGUAGE>ENG"
    "<FI><ORG>{org}<FID>999</FI></SONRS></SIGNONMSGSRSV1>"
)


def statement(
    *,
    account: str = "55501234",
    name: str = "Shop",
    as_of: str = "20240131",
    rows: int = 3,
    org: str = "Bank",
) -> str:
    """A small SGML bank statement; ``{...}`` parts are where the cases inject their quirks."""
    body = "".join(
        f"<STMTTRN><TRNTYPE>DEBIT<DTPOSTED>202401{i + 1:02d}<TRNAMT>-{i}.25<FITID>F{account}{i}"
        f"<NAME>{name}<MEMO>card {i}</STMTTRN>\n"
        for i in range(rows)
    )
    return (
        f"{HEADER}<OFX>{SIGN_ON.format(org=org)}<BANKMSGSRSV1><STMTTRNRS><TRNUID>1<STATUS><CODE>0"
        f"<SEVERITY>INFO</STATUS><STMTRS><CURDEF>USD<BANKACCTFROM><BANKID>021000021<ACCTID>{account}"
        f"<ACCTTYPE>CHECKING</BANKACCTFROM><BANKTRANLIST><DTSTART>20240101<DTEND>20240131\n{body}"
        f"</BANKTRANLIST><LEDGERBAL><BALAMT>100.00<DTASOF>{as_of}</LEDGERBAL></STMTRS></STMTTRNRS>"
        "</BANKMSGSRSV1></OFX>\n"
    )


def accounts(n: int) -> bytes:
    one = statement(account="{n}", rows=1)
    response = one[one.index("<STMTTRNRS>") : one.index("</BANKMSGSRSV1>")]
    many = "".join(response.replace("{n}", f"{i:08d}") for i in range(n))
    return (one[: one.index("<STMTTRNRS>")] + many + one[one.index("</BANKMSGSRSV1>") :]).encode()


XXE_DOCTYPE = '<?xml version="1.0"?>\n<!DOCTYPE OFX [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">' for i in range(1, 10))
    + "]>\n"
)


@dataclass(frozen=True)
class Case:
    name: str
    data: Callable[[], bytes]  # generated when the case runs
    status: int
    problem: str | None = None  # the problem type, for refusals
    warning: str | None = None  # a warning an accepted file must carry
    detail: str | None = None  # a regular expression the refusal's detail must match in full


CASES = [
    # Refused: nothing written.
    Case("empty", lambda: b"", 415, "unsupported-format"),
    Case("one byte", lambda: b"<", 415, "unsupported-format"),
    Case("random binary", lambda: random.Random(10).randbytes(64 * 1024), 415, "unsupported-format"),
    Case(
        "over the upload limit", lambda: accounts(1)[:-7] + b" " * LIMIT + b"</OFX>\n", 413, "file-too-large"
    ),
    Case("truncated", lambda: statement(rows=50).encode()[:2000], 422, "malformed-file"),
    Case(
        "xxe: external entity",
        lambda: (XXE_DOCTYPE + statement(name="&xxe;")[len(HEADER) :]).encode(),
        422,
        "malformed-file",
    ),
    Case(
        "xxe: entity in the body",
        lambda: statement().replace("<BANKMSGSRSV1>", _ENTITY).encode(),
        422,
        "malformed-file",
    ),
    Case("xxe: external DTD", lambda: (_DTD + statement()[len(HEADER) :]).encode(), 422, "malformed-file"),
    Case(
        "billion laughs",
        lambda: (LAUGHS + statement(org="&lol9;")[len(HEADER) :]).encode(),
        422,
        "malformed-file",
    ),
    Case("100k-deep nesting only", lambda: _nested(100_000, then_statement=False), 422, "no-statements"),
    Case(
        "many tiny elements",
        lambda: statement().replace("</SONRS>", "<A>1" * 50_000 + "</SONRS>").encode(),
        422,
        "file-too-complex",
        detail=r"the file holds 50,0\d\d elements in 2\d\d,\d{3} bytes; at most one element per 8 bytes "
        r"on average \(2\d,\d{3} here\) is accepted",
    ),
    Case(
        "1,001 accounts",
        lambda: accounts(1_001),
        422,
        "file-too-complex",
        detail=r"the file holds more than 1,000 account statements, the most one file may hold: "
        r"export fewer accounts or periods at a time",
    ),
    Case(
        "sign-on only (issue 9)",
        lambda: (HEADER + "<OFX>" + SIGN_ON.format(org="B") + "</OFX>").encode(),
        422,
        "no-statements",
    ),
    Case("account list only", lambda: _ACCOUNT_LIST.encode(), 422, "no-statements"),
    # Accepted, with warnings; never a 500.
    Case(
        "NUL in NAME, MEMO, ORG",
        lambda: statement(name="Sh\x00op", org="Ba\x00nk").encode(),
        201,
        None,
        "NUL",
    ),
    Case(
        "99991231235959[-12:EST]",
        lambda: statement(as_of="99991231235959[-12:EST]").encode(),
        201,
        None,
        "UTC",
    ),
    Case("00010101000000[+14]", lambda: statement(as_of="00010101000000[+14]").encode(), 201, None, "UTC"),
    Case("99991231235959 in UTC", lambda: statement(account="9", as_of="99991231235959").encode(), 201),
    Case(
        "00010101000000[-12:EST]",
        lambda: statement(account="1", as_of="00010101000000[-12:EST]").encode(),
        201,
    ),
    Case(
        "wrong charset", lambda: statement(name="Caf\xe9").replace("USASCII", "UTF-8").encode("cp1252"), 201
    ),
    Case("xxe: undeclared entity", lambda: statement(account="7", name="&xxe;").encode(), 201),
    Case("100k-deep nesting", lambda: _nested(100_000, then_statement=True), 201),
    Case(
        "lower case and comments",
        lambda: (
            re.sub(r"</?[A-Z][A-Z0-9.]*", lambda tag: tag.group().lower(), statement(account="6", rows=500))
            .replace("<stmttrn>", "<!-- row --><stmttrn>")
            .encode()
        ),
        201,
    ),
    Case(
        "stray end tag (issue 9)",
        lambda: statement(account="5").replace("<LEDGERBAL>", "</BANKTRANLIST><LEDGERBAL>").encode(),
        201,
        None,
        "does not close",
    ),
]
_ENTITY = '<!ENTITY xxe SYSTEM "file:///etc/passwd"><BANKMSGSRSV1>'
_DTD = '<?xml version="1.0"?>\n<!DOCTYPE OFX SYSTEM "http://127.0.0.1:9/evil.dtd">\n'
_ACCOUNT_LIST = (
    f"{HEADER}<OFX>{SIGN_ON.format(org='B')}<SIGNUPMSGSRSV1><ACCTINFOTRNRS><TRNUID>1<STATUS><CODE>0</STATUS>"
    "<ACCTINFORS><DTACCTUP>20240101<ACCTINFO><DESC>Checking<BANKACCTINFO><BANKACCTFROM><BANKID>1<ACCTID>2"
    "<ACCTTYPE>CHECKING</BANKACCTFROM><SUPTXDL>Y</BANKACCTINFO></ACCTINFO></ACCTINFORS></ACCTINFOTRNRS>"
    "</SIGNUPMSGSRSV1></OFX>"
)


def _nested(depth: int, *, then_statement: bool) -> bytes:
    """``depth`` nested unknown elements after the sign-on, then a statement or just ``</OFX>``."""
    full = statement(account="8")
    at = full.index("<BANKMSGSRSV1>")
    return (full[:at] + "<ABCDEFGH>" * depth + (full[at:] if then_statement else "</OFX>")).encode()


async def _counts(container: Container) -> dict[str, int]:
    async with container.engine.connect() as conn:
        return {
            table.name: int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
            for table in metadata.sorted_tables
        }


@pytest.fixture
async def small_limit_client(
    database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Container]]:
    settings = make_settings(database_url, tmp_path, upload_limit_bytes=LIMIT)
    async with built(settings) as container, api_client(container) as client:
        yield client, container


async def test_hostile_corpus(small_limit_client: tuple[httpx.AsyncClient, Container]) -> None:
    client, container = small_limit_client
    headers = await register_and_login(client)
    failures: list[str] = []
    for case in CASES:
        data = case.data()
        before = await _counts(container)
        r = await client.post(
            "/api/v1/imports", headers=headers, files={"file": ("upload.ofx", data, "application/x-ofx")}
        )
        body = r.json()
        what = f"{case.name}: {r.status_code} {body.get('type') or ''} {body.get('detail') or ''}"[:300]
        if r.status_code != case.status:
            failures.append(what)
            continue
        if r.status_code >= 400:
            assert r.headers["content-type"] == "application/problem+json", what
            if case.problem is None or not body["type"].endswith(
                f"/{case.problem}"
            ):  # every refusal names one
                failures.append(what)
            if case.detail is not None and not re.fullmatch(case.detail, body["detail"]):
                failures.append(f"{case.name}: detail {body['detail']!r}")
            if await _counts(container) != before:
                failures.append(f"{case.name}: rows changed")
        else:
            if case.warning is not None and not any(case.warning in w for w in body["warnings"]):
                failures.append(f"{case.name}: no warning with {case.warning!r} in {body['warnings']}")
            for account in body["accounts"]:  # what was stored reads back
                for path in ("transactions", "balance-snapshots"):
                    got = await client.get(f"/api/v1/accounts/{account['id']}/{path}", headers=headers)
                    if got.status_code != 200:
                        failures.append(f"{case.name}: GET {path} {got.status_code}")
    assert failures == []
