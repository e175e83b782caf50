"""Shared helpers for the OFX tests: the real-bank fixture folder and a tiny file builder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import SHARED

# The real-bank files: <shared>/fixtures/ofx (shared/ sits beside the checkout).
FIXTURES = SHARED / "fixtures" / "ofx"

SGML_HEADER = (
    "OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\nSECURITY:NONE\nENCODING:USASCII\n"
    "CHARSET:1252\nCOMPRESSION:NONE\nOLDFILEUID:NONE\nNEWFILEUID:NONE\n\n"
)


def _bank_file(
    transactions: str,
    *,
    ledger: str = "<LEDGERBAL><BALAMT>100.00<DTASOF>20240131</LEDGERBAL>",
    account: str = "<BANKID>123456789<ACCTID>000111222<ACCTTYPE>CHECKING",
    tranlist_head: str = "<DTSTART>20240101<DTEND>20240131",
    header: str = SGML_HEADER,
    sign_on: str = "<SIGNONMSGSRSV1><SONRS><STATUS><CODE>0<SEVERITY>INFO</STATUS>"
    "<DTSERVER>20240131<LANGUAGE>ENG<FI><ORG>Test Bank<FID>999</FI></SONRS></SIGNONMSGSRSV1>",
) -> str:
    """An OFX 1.x bank statement around the given STMTTRN markup (one tag per line)."""
    return (
        f"{header}<OFX>\n{sign_on}\n<BANKMSGSRSV1><STMTTRNRS><TRNUID>1<STATUS><CODE>0<SEVERITY>INFO</STATUS>\n"
        f"<STMTRS><CURDEF>USD<BANKACCTFROM>{account}</BANKACCTFROM>\n"
        f"<BANKTRANLIST>{tranlist_head}\n{transactions}</BANKTRANLIST>\n"
        f"{ledger}\n</STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>\n"
    )


def _stmttrn(
    fitid: str | None = "1",
    *,
    trntype: str = "POS",
    posted: str = "20240105",
    amount: str = "-3.50",
    name: str | None = "COFFEE",
    memo: str | None = "CARD 1234",
    extra: str = "",
) -> str:
    parts = ["<STMTTRN>", f"<TRNTYPE>{trntype}", f"<DTPOSTED>{posted}", f"<TRNAMT>{amount}"]
    if fitid is not None:
        parts.append(f"<FITID>{fitid}")
    if name is not None:
        parts.append(f"<NAME>{name}")
    if memo is not None:
        parts.append(f"<MEMO>{memo}")
    parts += [extra, "</STMTTRN>"] if extra else ["</STMTTRN>"]
    return "\n".join(parts) + "\n"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"shared OFX fixtures not found at {FIXTURES}")
    return FIXTURES


@pytest.fixture(scope="session")
def fixture_bytes(fixtures_dir: Path) -> Callable[[str], bytes]:
    def read(name: str) -> bytes:
        return (fixtures_dir / name).read_bytes()

    return read


@pytest.fixture(scope="session")
def bank_file() -> Callable[..., str]:
    """Build an OFX 1.x bank statement around STMTTRN markup; see ``_bank_file``."""
    return _bank_file


@pytest.fixture(scope="session")
def stmttrn() -> Callable[..., str]:
    """Build one SGML STMTTRN; see ``_stmttrn``."""
    return _stmttrn
