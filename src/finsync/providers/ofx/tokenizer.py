"""Tokenizer and tree builder for OFX 1.x SGML and OFX 2.x XML.

One ``re.finditer`` walks the body. Its first alternative takes a whole simple
``<STMTTRN>...</STMTTRN>`` block as one token, and an upper-case ``<BANKTRANLIST>`` is
read by :func:`fastpath.transaction_list` in one go, after which the scan resumes at
``</BANKTRANLIST>``: per-transaction work stays C-level. Both fall back to the generic
alternatives whenever the markup is unusual, so they never change the result.

SGML lets leaf elements omit their end tag; an element followed by text is a leaf, one
followed by another tag is an aggregate. An "aggregate" that turns out to be an empty leaf
(``<LANGUAGE><FI>...</SONRS>``) is repaired when its parent closes. Known OFX aggregates
must be closed, so a missing ``</STMTTRN>`` or a truncated file is a ``MalformedFile``.
"""

from __future__ import annotations

import re

from finsync.domain.errors import MalformedFile
from finsync.providers.ofx import fastpath
from finsync.providers.ofx.nodes import Lines, Node
from finsync.providers.ofx.values import unescape

__all__ = ["AGGREGATES", "build_tree", "find_body"]

_TOKEN = re.compile(
    fastpath.BLOCK  # 1, 2: a simple STMTTRN block
    + r"|([^<]+)"  # 3: text
    r"|(</([A-Za-z][\w.-]*)\s*>)"  # 4, 5: end tag
    r"|(<([A-Za-z][\w.-]*)(?:\s[^<>]*?)?(/?)>)"  # 6, 7, 8: start tag (attributes ignored)
    r"|(<!\[CDATA\[(.*?)\]\]>)"  # 9, 10
    r"|(<!--.*?-->)"  # 11: comment
    r"|(<\?.*?\?>)"  # 12: processing instruction
    r"|(<!)"  # 13: DOCTYPE, ENTITY or other declarations: refused
    r"|(<)",  # 14: broken markup
    re.IGNORECASE | re.DOTALL,
)
_TRN, _TEXT, _CLOSE, _OPEN, _CDATA, _COMMENT, _PI, _DECL = 1, 3, 4, 6, 9, 11, 12, 13
_OFX_START = re.compile(r"<OFX\s*>", re.IGNORECASE)
_DECLARATION = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)

# Aggregates finsync reads. They never nest in themselves and must be closed; an unknown
# element left open is treated as an empty SGML leaf instead.
# fmt: off
AGGREGATES = frozenset({
    "OFX", "SIGNONMSGSRSV1", "SONRS", "STATUS", "FI", "BANKMSGSRSV1", "CREDITCARDMSGSRSV1",
    "INVSTMTMSGSRSV1", "SECLISTMSGSRSV1", "STMTTRNRS", "CCSTMTTRNRS", "INVSTMTTRNRS", "STMTRS",
    "CCSTMTRS", "INVSTMTRS", "BANKACCTFROM", "CCACCTFROM", "INVACCTFROM", "BANKTRANLIST", "INVTRANLIST",
    "STMTTRN", "LEDGERBAL", "AVAILBAL", "INVPOSLIST", "INVPOS", "INVBAL", "SECLIST", "SECINFO", "SECID",
    "INVTRAN", "INVBUY", "INVSELL", "CURRENCY", "ORIGCURRENCY", "INVBANKTRAN", "BUYSTOCK", "SELLSTOCK",
    "BUYMF", "SELLMF", "BUYDEBT", "SELLDEBT", "BUYOPT", "SELLOPT", "BUYOTHER", "SELLOTHER", "INCOME",
    "REINVEST", "TRANSFER", "SPLIT", "POSSTOCK", "POSMF", "POSDEBT", "POSOPT", "POSOTHER", "STOCKINFO",
    "MFINFO", "DEBTINFO", "OPTINFO", "OTHERINFO"
})
# fmt: on


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


class _Builder:
    def __init__(self, text: str, lines: Lines) -> None:
        self.text = text
        self.lines = lines
        self.root = Node("#document", 0)
        self.stack = [self.root]
        self.names: list[str] = []  # tags of the open elements below root
        self.open_count: dict[str, int] = {}  # tag → how many are open: O(1) checks at any depth
        self.try_sections = True  # False once no "</BANKTRANLIST>" follows: never search again
        self.pending: Node | None = None  # start tag seen, not yet known to be leaf or aggregate
        self.last_leaf: Node | None = None  # leaf that may still get more text or its end tag

    def where(self, pos: int) -> str:
        names = self.names if len(self.names) <= 8 else ["...", *self.names[-7:]]
        path = "/".join(names)
        return f"line {self.lines.at(pos)}" + (f" (in {path})" if path else "")

    def push_pending(self) -> None:
        """The pending start tag was followed by markup: it is an aggregate."""
        node = self.pending
        if node is None:
            return
        self.pending = None
        if node.tag in AGGREGATES and self.open_count.get(node.tag):
            raise MalformedFile(
                f"{self.where(node.pos)}: <{node.tag}> starts before the previous one was closed"
            )
        self.stack[-1].children.append(node)
        self.stack.append(node)
        self.names.append(node.tag)
        self.open_count[node.tag] = self.open_count.get(node.tag, 0) + 1

    def pop(self) -> Node:
        node = self.stack.pop()
        self.names.pop()
        self.open_count[node.tag] -= 1
        return node

    def value(self, value: str, pos: int) -> None:
        if self.pending is not None:
            self.pending.value = value
            self.stack[-1].children.append(self.pending)
            self.last_leaf, self.pending = self.pending, None
        elif self.last_leaf is not None:
            self.last_leaf.value = f"{self.last_leaf.value}{value}"
        else:
            raise MalformedFile(f"{self.where(pos)}: unexpected text {value[:40]!r} outside a value")

    def close(self, tag: str, pos: int) -> None:
        if self.pending is not None:  # empty leaf: <TAG></TAG>, or <TAG> with no value nor end tag
            self.pending.value = ""
            self.stack[-1].children.append(self.pending)
            self.last_leaf, self.pending = self.pending, None
        last_leaf, self.last_leaf = self.last_leaf, None
        if last_leaf is not None and last_leaf.tag == tag:
            return
        if not self.open_count.get(tag):
            if any(child.tag == tag and child.value is not None for child in self.stack[-1].children[-3:]):
                return  # a leaf's end tag arriving late: <A>1<B>2</A>
            raise MalformedFile(f"{self.where(pos)}: </{tag}> does not close any open element")
        # Elements left open above ``tag`` were empty SGML leaves (unless they are known
        # aggregates): their children become their parent's, in one pass per element.
        hoisted: list[Node] = []
        while self.stack[-1].tag != tag:
            node = self.stack[-1]
            if node.tag in AGGREGATES:
                opened = self.lines.at(node.pos)
                raise MalformedFile(
                    f"{self.where(pos)}: <{node.tag}> (line {opened}) is not closed before </{tag}>"
                )
            hoisted.append(self.pop())
        if hoisted:
            children = self.stack[-1].children
            for node in reversed(hoisted):
                children.extend(node.children)
                node.children = []
                node.value = ""
        self.pop()

    def truncated(self) -> MalformedFile:
        open_nodes = self.stack[1:] + ([self.pending] if self.pending is not None else [])
        inner = ([node for node in open_nodes if node.tag in AGGREGATES] or open_nodes)[-1]
        return MalformedFile(
            f"line {self.lines.at(len(self.text))}: the file ends inside <{inner.tag}> "
            f"(opened on line {self.lines.at(inner.pos)}); it looks truncated"
        )


def build_tree(text: str, start: int, lines: Lines, warnings: list[str]) -> Node:
    """Parse from ``start`` (the ``<OFX>`` tag) to ``</OFX>`` and return the OFX node."""
    b = _Builder(text, lines)
    pos, end = start, -1
    while end < 0:
        resume = -1
        for match in _TOKEN.finditer(text, pos):
            kind = match.lastindex
            if kind == _TRN:
                b.push_pending()
                b.last_leaf = None
                if b.open_count.get("STMTTRN"):
                    raise MalformedFile(
                        f"{b.where(match.start())}: <STMTTRN> starts before the previous one was closed"
                    )
                node = Node("STMTTRN", match.start())
                node.fields = fastpath.block_fields(match.group(2))
                b.stack[-1].children.append(node)
            elif kind == _TEXT:
                value = match.group(3).strip()
                if value:
                    b.value(unescape(value) if "&" in value else value, match.start())
            elif kind == _OPEN:
                b.push_pending()
                b.last_leaf = None
                tag = match.group(7).upper()
                b.pending = Node(tag, match.start())
                if match.group(8):  # <TAG/>
                    b.value("", match.start())
                elif tag == "BANKTRANLIST" and match.group(7) == tag and b.try_sections:
                    section_end = text.find("</BANKTRANLIST>", match.end())
                    b.try_sections = section_end >= 0
                    fast = (
                        fastpath.transaction_list(text, match.end(), section_end) if b.try_sections else None
                    )
                    if fast is not None:
                        b.push_pending()
                        tranlist = b.stack[-1]
                        tranlist.children, tranlist.blocks, tranlist.block_offsets = fast
                        resume = section_end
                        break
            elif kind == _CLOSE:
                b.close(match.group(5).upper(), match.start())
                if len(b.stack) == 1:
                    end = match.end()
                    break
            elif kind == _CDATA:
                b.value(match.group(10).strip(), match.start())
            elif kind in (_COMMENT, _PI):
                continue
            elif kind == _DECL and _DECLARATION.match(text, match.start()):
                raise _declaration_error(lines.at(match.start()))
            else:
                snippet = text[match.start() : match.start() + 20]
                raise MalformedFile(f"{b.where(match.start())}: broken or unsupported markup {snippet!r}")
        if resume < 0 and end < 0:
            raise b.truncated()
        pos = resume
    trailing = text[end:].strip()
    if trailing:
        warnings.append(f"line {lines.at(end)}: ignored {len(trailing)} characters after </OFX>")
    ofx = b.root.find("OFX")
    if ofx is None:  # pragma: no cover - find_body guarantees the first token is <OFX>
        raise MalformedFile("no <OFX> element found")
    return ofx
