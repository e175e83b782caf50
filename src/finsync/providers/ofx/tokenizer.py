"""Tokenizer for OFX 1.x SGML and OFX 2.x XML; the tree is built by :mod:`.builder`.

One ``re.finditer`` walks the body. Its first alternative takes a whole simple
``<STMTTRN>...</STMTTRN>`` block as one token, and an upper-case ``<BANKTRANLIST>`` is
read by :func:`fastpath.transaction_list` in one go, after which the scan resumes at
``</BANKTRANLIST>``: per-transaction work stays C-level. Investment items are read as one
block each (:func:`fastpath.item_body`). Where either fails, the rest of the text is
normalised once (:func:`fastpath.normalized`: lower-case tags, comments, attributes,
whole-value CDATA) and read again from there. Both fall back to the generic
alternatives whenever the markup is unusual (including end tags the builder would have
to repair), so they never change the result. A truncated file is a ``MalformedFile``.
"""

from __future__ import annotations

import re

from finsync.domain.errors import MalformedFile
from finsync.providers.ofx import fastpath
from finsync.providers.ofx.builder import MAX_STATEMENTS, Builder
from finsync.providers.ofx.nodes import Lines, Node, Pieces
from finsync.providers.ofx.schema import AGGREGATES
from finsync.providers.ofx.values import unescape

__all__ = ["AGGREGATES", "MAX_STATEMENTS", "build_tree", "find_body"]

_TOKEN = re.compile(
    fastpath.BLOCK  # 1, 2: a simple STMTTRN block
    + r"|(<([A-Za-z][\w.-]*)>\s*([^<\s][^<]*))"  # 3, 4, 5: a start tag and its value, a leaf
    r"|([^<]+)"  # 6: text
    r"|(</([A-Za-z][\w.-]*)\s*>)"  # 7, 8: end tag
    r"|(<([A-Za-z][\w.-]*)(?:\s[^<>]*?)?(/?)>)"  # 9, 10, 11: start tag (attributes ignored)
    r"|(<!\[CDATA\[(.*?)\]\]>)"  # 12, 13
    r"|(<!--.*?-->)"  # 14: comment
    r"|(<\?.*?\?>)"  # 15: processing instruction
    r"|(<!)"  # 16: DOCTYPE, ENTITY or other declarations: refused
    r"|(<)",  # 17: broken markup
    re.IGNORECASE | re.DOTALL,
)
# The same alternatives and groups without the block one: for a block the builder must read.
_GENERIC = re.compile("(?!)" + _TOKEN.pattern, re.IGNORECASE | re.DOTALL)
_TRN, _LEAF, _TEXT, _CLOSE, _OPEN, _CDATA, _COMMENT, _PI, _DECL = 1, 3, 6, 7, 9, 12, 14, 15, 16
_OFX_START = re.compile(r"<OFX\s*>", re.IGNORECASE)
_DECLARATION = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def find_body(text: str, lines: Lines) -> int:
    """Offset of ``<OFX>``; refuses DTD declarations in the prolog (nothing is expanded)."""
    match = _OFX_START.search(text)
    if match is None:
        raise MalformedFile("no <OFX> element found: this is not an OFX/QFX file")
    declaration = _DECLARATION.search(text, 0, match.start())
    if declaration is not None:
        raise _declaration_error(lines.at(declaration.start()))
    return match.start()


def _declaration_error(line: int) -> MalformedFile:
    return MalformedFile(f"line {line}: DOCTYPE/ENTITY declarations are not allowed in OFX files")


def _section(text: str, start: int) -> tuple[tuple[list[Node], Pieces] | None, int]:
    """The fast path's reading of the BANKTRANLIST whose content starts at ``start``, and
    where its end tag is (-1: there is none further on)."""
    end = text.find("</BANKTRANLIST>", start)
    return (fastpath.transaction_list(text, start, end) if end >= 0 else None), end


def build_tree(lines: Lines, start: int, warnings: list[str]) -> Node:
    """Parse ``lines.text`` from ``start`` (the ``<OFX>`` tag) to ``</OFX>`` and return the
    OFX node. ``lines.text`` may be replaced by a normalised copy (see ``fastpath.normalized``)."""
    text = lines.text
    b = Builder(text, lines)
    pos, end, generic_until = start, -1, -1
    try_sections = True  # False once no "</BANKTRANLIST>" follows: never search again
    normalized = False  # the rest of the text was normalised once (see fastpath.normalized)
    while end < 0:
        resume = -1
        tokens = _TOKEN if generic_until < 0 else _GENERIC
        for match in tokens.finditer(text, pos):
            kind = match.lastindex
            if kind == _TRN:
                body = match.group(2)
                if "</" in body and not fastpath.regular(body):
                    resume, generic_until = match.start(), match.end()  # the builder must see its tags
                    break
                node = Node("STMTTRN", match.start())
                node.children = ()
                node.extra = body
                b.block(node)
            elif kind == _LEAF:
                value = match.group(5).rstrip()
                b.leaf(match.group(4).upper(), unescape(value) if "&" in value else value)
            elif kind == _TEXT:
                value = match.group(6).strip()
                if value:
                    b.value(unescape(value) if "&" in value else value, match.start())
            elif kind == _OPEN:
                tag = match.group(10).upper()
                simple = match.end() - match.start() == len(tag) + 2  # <TAG>, no attribute
                if tag in fastpath.ITEMS and generic_until < 0:
                    b.push_pending()  # what start() does first: now its parent is known
                    if b.stack[-1].tag in fastpath.ITEM_LISTS:
                        stop = text.find(f"</{tag}>", match.end()) if simple else -1
                        body = fastpath.item_body(text, match.end(), stop, b.open_count) if stop > 0 else None
                        if body is not None:
                            node = Node(tag, match.start())
                            node.children = ()
                            node.extra = body
                            b.block(node)
                            resume = stop + len(tag) + 3
                            break
                        if not normalized:  # as for a BANKTRANLIST below: read this item again
                            normalized = True
                            replacement = fastpath.normalized(text, match.start())
                            if replacement is not None:
                                text = b.text = lines.text = replacement
                                resume = match.start()
                                break
                b.start(tag, match.start())
                if match.group(11):  # <TAG/>
                    b.value("", match.start())
                elif tag == "BANKTRANLIST" and try_sections:
                    fast, section_end = _section(text, match.end()) if match.group(10) == tag else (None, 0)
                    if fast is None and not normalized:
                        # Lower-case tags, comments, attributes, CDATA? Read the rest as its normalised text,
                        # which tokenizes alike (same length and lines), and try again.
                        normalized = True
                        replacement = fastpath.normalized(text, match.start())
                        if replacement is not None:
                            text = b.text = lines.text = replacement
                            fast, section_end = _section(text, match.end())
                            resume = match.end()  # the tokens go on in the new text
                    try_sections = section_end >= 0
                    if fast is not None:
                        b.push_pending()
                        b.fill(*fast)
                        resume = section_end
                    if resume >= 0:
                        break
            elif kind == _CLOSE:
                b.end(match.group(8).upper(), match.start())
                if len(b.stack) == 1:
                    end = match.end()
                    break
            elif kind == _CDATA:
                b.value(match.group(13).strip(), match.start())
            elif kind in (_COMMENT, _PI):
                pass
            elif kind == _DECL and _DECLARATION.match(text, match.start()):
                raise _declaration_error(lines.at(match.start()))
            else:
                snippet = text[match.start() : match.start() + 20]
                raise MalformedFile(f"{b.where(match.start())}: broken or unsupported markup {snippet!r}")
            if 0 <= generic_until <= match.end():  # the block read by the builder is done
                resume, generic_until = match.end(), -1
                break
        if resume < 0 and end < 0:
            raise b.truncated()
        pos = resume
    b.report(warnings)
    trailing = text[end:].strip()
    if trailing:
        warnings.append(f"line {lines.at(end)}: ignored {len(trailing)} characters after </OFX>")
    ofx = b.root.find("OFX")
    if ofx is None:  # pragma: no cover - find_body guarantees the first token is <OFX>
        raise MalformedFile("no <OFX> element found")
    return ofx
