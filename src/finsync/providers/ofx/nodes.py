"""The element tree the tokenizer builds, and lazy line numbering for messages."""

from __future__ import annotations

import re
from array import array
from bisect import bisect_right
from itertools import accumulate
from sys import intern
from typing import Protocol

from finsync.providers.ofx.values import unescape

_LEAF = re.compile(r"<([A-Za-z][\w.-]*)>([^<]*)")
_LOWERCASE_TAG = re.compile(r"<[A-Z0-9.]*[a-z]")


def block_fields(body: str) -> dict[str, str]:
    """Leaves of a simple block (a STMTTRN of ``fastpath.BLOCK``, an investment item of
    ``fastpath.item_body``) as :meth:`Node.leaves` reads the tree the builder would make of
    it: tag names upper-cased, values stripped then unescaped, aggregates and empty leaves
    as "", and a repeated leaf's first non-empty value."""
    pairs = _LEAF.findall(body)
    upper = _LOWERCASE_TAG.search(body) is not None
    fields: dict[str, str]
    if not upper:  # one string per name, as in the tree
        fields = {intern(key): value.strip() for key, value in pairs}
        if len(fields) == len(pairs):  # no leaf repeated: each has its only value
            if "&" in body:
                for key, value in fields.items():
                    if "&" in value:
                        fields[key] = unescape(value)
            return fields
    fields = {}
    for key, value in pairs:
        key = intern(key.upper() if upper else key)
        if not fields.get(key):
            value = value.strip()
            fields[key] = unescape(value) if "&" in value else value
    return fields


def first_leaf(body: str, tag: str) -> str:
    """The value :func:`block_fields` reads for ``tag`` in a body of upper-case simple tags
    (a fast-path investment item): its first non-empty value, or "". Without reading the
    other leaves."""
    start = f"<{tag}>"
    at = 0
    while (at := body.find(start, at)) >= 0:
        at += len(start)
        end = body.find("<", at)  # none: the body's last leaf
        value = body[at : end if end >= 0 else len(body)].strip()
        if value:
            return unescape(value) if "&" in value else value
    return ""


class Pieces:
    """Fast-path STMTTRNs of the decoded text, by position: 16 bytes each instead of a string
    (the text is kept for line numbers anyway). Piece ``i`` is ``text[starts[i]:ends[i]]``,
    what follows its ``<STMTTRN>`` up to the next one; that tag starts at :meth:`offset`."""

    __slots__ = ("ends", "starts", "text")
    TAG = len("<STMTTRN>")

    def __init__(self, text: str, starts: array[int], ends: array[int]) -> None:
        self.text, self.starts, self.ends = text, starts, ends

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> str:
        return self.text[self.starts[i] : self.ends[i]]

    def offset(self, i: int) -> int:
        return self.starts[i] - self.TAG

    def __add__(self, other: Pieces) -> Pieces:
        """``other`` comes later in the file: its text is the newest (a normalised copy made
        after ``self`` was read is the same text up to where normalising began)."""
        return Pieces(other.text, self.starts + other.starts, self.ends + other.ends)


class WrittenLeaves(str):
    """Leaves of an element the tree builder read, written back as a body that
    :func:`block_fields` (and, for a STMTTRN, ``fastpath.piece_fields``) reads as that
    element's :meth:`Node.leaves`: kept in ``Node.extra`` like a fast-path body, but not a slice
    of the text (see ``fastpath.written_piece``, ``fastpath.written_leaves``)."""

    __slots__ = ()


class PieceSource(Protocol):
    """STMTTRN pieces by position (:class:`Pieces`, :class:`Written`, :class:`Chain`): each one's
    text, which ``fastpath.piece_fields`` reads, and where its ``<STMTTRN>`` is in the file."""

    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> str: ...
    def offset(self, i: int) -> int: ...


class Written:
    """STMTTRNs the tree builder read, each written back as one piece (see
    ``fastpath.written_piece``), with the offset of its ``<STMTTRN>``: one string per
    transaction instead of a node per leaf, so they can stay unconverted like fast-path ones."""

    __slots__ = ("offsets", "texts")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.offsets = array("q")

    def append(self, text: str, offset: int) -> None:
        self.texts.append(text)
        self.offsets.append(offset)

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> str:
        return self.texts[i]

    def offset(self, i: int) -> int:
        return self.offsets[i]


class Chain:
    """Several piece sources one after the other, in file order (a statement whose lists took
    different paths)."""

    __slots__ = ("bounds", "parts")

    def __init__(self, parts: list[PieceSource]) -> None:
        self.parts = parts
        self.bounds = list(accumulate(len(part) for part in parts))

    def _locate(self, i: int) -> tuple[PieceSource, int]:
        k = bisect_right(self.bounds, i)
        if k == len(self.parts):
            raise IndexError(i)
        return self.parts[k], i - (self.bounds[k - 1] if k else 0)

    def __len__(self) -> int:
        return self.bounds[-1] if self.bounds else 0

    def __getitem__(self, i: int) -> str:
        part, at = self._locate(i)
        return part[at]

    def offset(self, i: int) -> int:
        part, at = self._locate(i)
        return part.offset(at)


class Node:
    """An element: a leaf has ``value``; an aggregate has ``children``; a fast-path
    STMTTRN keeps only its source text and reads its ``fields`` from it when asked (leaves
    flattened, values unescaped but possibly with surrounding whitespace, end tags as
    ``"/TAG"`` keys).

    Kept small, since a file may hold one per 8 bytes: leaves share one empty ``children``
    tuple and carry no position (messages point at aggregates), and the rarely used
    fast-path parts share one slot, ``extra``."""

    __slots__ = ("children", "extra", "pos", "tag", "value")

    def __init__(self, tag: str, pos: int, value: str | None = None) -> None:
        self.tag = tag
        self.pos = pos
        self.value = value
        self.children: list[Node] | tuple[()] = () if value is not None else []  # () is shared
        # A fast-path STMTTRN's body (see ``fields``), a closed element's WrittenLeaves, or a
        # fast-path BANKTRANLIST's STMTTRNs by position instead of one Node each (see ``blocks``).
        self.extra: str | Pieces | None = None

    @property
    def fields(self) -> dict[str, str] | None:
        return block_fields(self.extra) if isinstance(self.extra, str) else None

    @property
    def blocks(self) -> Pieces | None:
        return self.extra if isinstance(self.extra, Pieces) else None

    def find(self, tag: str) -> Node | None:
        for child in self.children:
            if child.tag == tag:
                return child
        return None

    def text(self, tag: str) -> str | None:
        """The non-empty value of the first child leaf ``tag``."""
        for child in self.children:
            if child.tag == tag and child.value:
                return child.value
        return None

    def leaves(self) -> dict[str, str]:
        """All descendant leaves in file order; a repeated one gives its first non-empty
        value (the rule of every path: see ``fastpath.piece_fields``, :func:`block_fields`);
        aggregates appear with "". Iterative, so hostile nesting depth cannot exhaust the
        Python stack."""
        if isinstance(self.extra, str):
            return block_fields(self.extra)
        out: dict[str, str] = {}
        todo = [iter(self.children)]
        while todo:
            child = next(todo[-1], None)
            if child is None:
                todo.pop()
            elif isinstance(child.extra, str):
                for key, value in block_fields(child.extra).items():
                    if not out.get(key):
                        out[key] = value
            else:
                if not out.get(child.tag):
                    out[child.tag] = child.value or ""
                if child.children:
                    todo.append(iter(child.children))
        return out


class Lines:
    """Offset → line number, counted lazily and incrementally (positions mostly grow)."""

    def __init__(self, text: str) -> None:
        self.text = text  # replaced by a normalised copy (same line breaks) while parsing
        self._newline = "\n" if "\n" in text else "\r"
        self._pos = 0
        self._line = 1

    def at(self, pos: int) -> int:
        if pos >= self._pos:
            self._line += self.text.count(self._newline, self._pos, pos)
        else:
            self._line -= self.text.count(self._newline, pos, self._pos)
        self._pos = pos
        return self._line
