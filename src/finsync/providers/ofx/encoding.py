"""Format sniffing, header reading and charset decoding.

OFX 1.x declares its charset in ``KEY:VALUE`` header lines (``ENCODING``/``CHARSET``),
OFX 2.x in the XML declaration. Banks get this wrong often enough that decoding is
lenient: the declared charset is tried strictly, then the file is read as CP1252 (what
almost every "USASCII" file with accents really is) and the caller gets a warning.
"""

from __future__ import annotations

import codecs
import re

SNIFF_BYTES = 4096
# At the start of the file, after whitespace, an XML declaration and comments: so a CSV
# that merely mentions "<OFX>" in a memo column is not taken for OFX.
_SNIFF = re.compile(
    rb"\s*(?:OFXHEADER\s*:|(?:<\?xml[^>]*\?>\s*)?(?:<!--.*?-->\s*)*(?:<\?OFX[\s?]|<OFX\s*>))",
    re.IGNORECASE | re.DOTALL,
)
# Otherwise OFX is recognised by its structure: <OFX> opening a sign-on or message set, or
# the header's keys (as "KEY:" lines or as elements) before <OFX> or DATA:OFXSGML.
_STRUCTURE = re.compile(
    rb"<OFX\s*>\s*(?:<!--.*?-->\s*)*<(?:SIGNONMSGSRSV1|[A-Z0-9]+MSGSRSV[0-9]|/OFX)\s*>",
    re.IGNORECASE | re.DOTALL,
)
_KEYS = "OFXHEADER|DATA|VERSION|SECURITY|ENCODING|CHARSET|COMPRESSION|OLDFILEUID|NEWFILEUID"
_HEADER_KEY = re.compile(
    rb"(?:^[ \t]*(" + _KEYS.encode() + rb")[ \t]*:|<(" + _KEYS.encode() + rb")>)", re.I | re.M
)
_OFX_MARK = re.compile(rb"<OFX\s*>|^[ \t]*DATA[ \t]*:[ \t]*OFXSGML", re.I | re.M)
_HEADER_ELEMENT = re.compile(r"<(" + _KEYS + r")>[ \t]*([^<\r\n]*?)[ \t]*(?=<|[\r\n]|\Z)", re.I)
_OFX_START = re.compile(r"<OFX\s*>", re.I)
# Header lines end in LF, CRLF, CR CR LF or a bare CR (old Mac exports).
_SGML_HEADER = re.compile(r"(?:\A|(?<=[\r\n]))[ \t]*([A-Za-z]+)[ \t]*:[ \t]*([^\r\n]*?)[ \t]*(?=[\r\n]|\Z)")
_XML_ATTRIBUTE = re.compile(r"""([A-Za-z]+)\s*=\s*["']([^"']*)["']""")
_PROCESSING = re.compile(r"<\?(xml|OFX)\b(.*?)\?>", re.IGNORECASE | re.DOTALL)
_CP1252_UNDEFINED = (b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d")
_CHARSETS = {
    "USASCII": "ascii",
    "US-ASCII": "ascii",
    "ASCII": "ascii",
    "1252": "cp1252",
    "CP1252": "cp1252",
    "WINDOWS-1252": "cp1252",
    "ISO-8859-1": "latin-1",
    "8859-1": "latin-1",
    "ISO8859-1": "latin-1",
    "LATIN-1": "latin-1",
    "LATIN1": "latin-1",
    "UTF-8": "utf-8",
    "UTF8": "utf-8",
    "UNICODE": "utf-8",
    "CSUNICODE": "utf-8",
}


def looks_like_ofx(head: bytes) -> bool:
    """True when the first bytes of an upload look like OFX/QFX (SGML header, ``<?OFX``
    processing instruction, or a bare ``<OFX>``). Pure and cheap: only ``SNIFF_BYTES`` are read."""
    head = head[:SNIFF_BYTES]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        head = head.decode("utf-16", errors="ignore").encode("ascii", errors="ignore")
    head = head.removeprefix(codecs.BOM_UTF8)
    if _SNIFF.match(head) is not None or _STRUCTURE.search(head) is not None:
        return True
    keys = {(a or b).upper() for a, b in _HEADER_KEY.findall(head)}
    return b"OFXHEADER" in keys or (len(keys) >= 2 and _OFX_MARK.search(head) is not None)


def read_header(data: bytes) -> dict[str, str]:
    """The SGML ``KEY:VALUE`` header (also written as ``<KEY>value`` elements before ``<OFX>``)
    or the XML/``<?OFX ?>`` attributes, keys upper-cased."""
    head = data[:SNIFF_BYTES].decode("latin-1")
    body = head.find("<")
    header: dict[str, str] = {}
    if body != 0:
        prolog = head if body < 0 else head[:body]
        header.update((k.upper(), v) for k, v in _SGML_HEADER.findall(prolog))
    if body >= 0:
        start = _OFX_START.search(head)
        prolog = head[: start.start() if start is not None else len(head)]
        header.update((k.upper(), v) for k, v in _HEADER_ELEMENT.findall(prolog) if k.upper() not in header)
    for match in _PROCESSING.finditer(head):
        prefix = "XML." if match.group(1).lower() == "xml" else ""
        header.update((prefix + k.upper(), v) for k, v in _XML_ATTRIBUTE.findall(match.group(2)))
    return header


def declared_codec(data: bytes, header: dict[str, str]) -> tuple[str, str]:
    """(Python codec, label for messages) from BOM, XML declaration, then SGML header."""
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", "UTF-8"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "UTF-16"
    xml = header.get("XML.ENCODING")
    if xml:
        label = xml.upper()
        return _CHARSETS.get(label, "utf-8"), label
    encoding = header.get("ENCODING", "").upper()
    charset = header.get("CHARSET", "").upper()
    if encoding in ("UTF-8", "UNICODE"):
        return "utf-8", encoding
    if charset in _CHARSETS:
        return _CHARSETS[charset], f"CHARSET {charset}"
    if encoding or charset:
        # USASCII with CHARSET:NONE etc.: CP1252 is a superset of ASCII and what banks mean.
        return "cp1252", f"ENCODING {encoding or '?'} / CHARSET {charset or '?'}"
    return "utf-8", "UTF-8 (no charset declared)"


def decode(data: bytes, header: dict[str, str], warnings: list[str]) -> tuple[str, str]:
    """Decode ``data``; returns (text, codec used). Never raises on bad bytes. NUL characters
    are removed (with a warning): they mean nothing in OFX and no database text column takes them."""
    text, codec = _decode(data, header, warnings)
    first = text.find("\x00")
    if first >= 0:
        newline = "\n" if "\n" in text else "\r"
        line = text.count(newline, 0, first) + 1
        count = text.count("\x00")
        text = text.replace("\x00", "")
        warnings.append(f"line {line}: {count} NUL character(s) removed")
    return text, codec


def _decode(data: bytes, header: dict[str, str], warnings: list[str]) -> tuple[str, str]:
    codec, label = declared_codec(data, header)
    try:
        return data.decode(codec), codec
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        text = data.decode("cp1252", errors="replace")
        replaced = sum(data.count(byte) for byte in _CP1252_UNDEFINED)
        note = f"; {replaced} undecodable byte(s) replaced by U+FFFD" if replaced else ""
        byte = data[exc.start]
        warnings.append(
            f"line {line}: the file is not valid {label} (byte 0x{byte:02X}); read as CP1252{note}"
        )
        return text, "cp1252"
