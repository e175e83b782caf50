"""looks_like_ofx: the import endpoint's format sniffing on the first bytes of an upload."""

from __future__ import annotations

import pytest

from finsync.providers.ofx import looks_like_ofx

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "head",
    [
        b"OFXHEADER:100\r\nDATA:OFXSGML\r\n",
        b"ofxheader : 100\n",
        b'<?xml version="1.0"?>\n<?OFX OFXHEADER="200" VERSION="220"?>\n<OFX>',
        b'\xef\xbb\xbf<?OFX OFXHEADER="200"?>',
        b"\r\n\r\n<OFX>\r\n<SIGNONMSGSRSV1>",
        b"<ofx>",
        "OFXHEADER:100\nDATA:OFXSGML\n".encode("utf-16"),
        b"\n" * 12 + b"OFXHEADER:100",
        b'<?xml version="1.0"?>\n<!-- exported by bank -->\n<OFX>',
        # Recognised by structure rather than by the first bytes (issue 9):
        b"<OFXHEADER>100</OFXHEADER>\n<DATA>OFXSGML</DATA>\n<VERSION>102</VERSION>\n<OFX>",
        b'<?xml version="1.0"?>\n<HEADER><OFXHEADER>100<DATA>OFXSGML</HEADER>\n<OFX>',
        b"VERSION:102\r\nSECURITY:NONE\r\nENCODING:USASCII\r\nCHARSET:1252\r\n\r\n<OFX>",
        b"DATA:OFXSGML\nVERSION:102\n",
        b"Statement export 2024-01-31\r\n<OFX>\r\n<SIGNONMSGSRSV1>",
        b"Exported by MyBank\n<ofx><!-- x --><BANKMSGSRSV1>",
    ],
)
def test_ofx_heads(head: bytes) -> None:
    assert looks_like_ofx(head)


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"Date,Amount,Payee,Memo\n2024-01-05,-3.50,Coffee,<OFX> in memo\n",
        b"Export for OFXHEADER:100 users\n",
        b'{"transactions": []}',
        b"%PDF-1.7\n",
        b"<html><body>OFX export</body></html>",
        b"<OFXFOO>",
        b"\x00\x01\x02" * 100,
        b"Version: 2\nSecurity: none\nNotes: plain text\n",
        b"Date,Memo\n2024-01-05,<OFX> and <SIGNON> in a memo\n",
        b"VERSION:102\nDATA:CSV\n",
    ],
)
def test_other_heads(head: bytes) -> None:
    assert not looks_like_ofx(head)


def test_only_the_first_kilobytes_are_read() -> None:
    assert not looks_like_ofx(b" " * 5000 + b"<OFX>")
