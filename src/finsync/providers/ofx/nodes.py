"""The element tree the tokenizer builds, and lazy line numbering for messages."""

from __future__ import annotations


class Node:
    """An element: a leaf has ``value``; an aggregate has ``children``; a fast-path
    STMTTRN has only ``fields``: its leaves flattened, values unescaped but possibly with
    surrounding whitespace (end tags appear as ``"/TAG"`` keys).

    Kept small, since a file may hold one per 8 bytes: leaves share one empty ``children``
    tuple and carry no position (messages point at aggregates), and the rarely used
    fast-path parts live in ``blocks``."""

    __slots__ = ("blocks", "children", "fields", "pos", "tag", "value")

    def __init__(self, tag: str, pos: int, value: str | None = None) -> None:
        self.tag = tag
        self.pos = pos
        self.value = value
        self.children: list[Node] | tuple[()] = () if value is not None else []  # () is shared
        self.fields: dict[str, str] | None = None
        # A fast-path BANKTRANLIST keeps its STMTTRNs as source text (fastpath.piece_fields)
        # plus their offsets instead of one Node each (saves objects per transaction).
        self.blocks: tuple[list[str], list[int]] | None = None

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
        """All descendant leaves, first occurrence wins; aggregates appear with "".
        Iterative, so hostile nesting depth cannot exhaust the Python stack."""
        if self.fields is not None:
            return self.fields
        out: dict[str, str] = {}
        todo = [iter(self.children)]
        while todo:
            child = next(todo[-1], None)
            if child is None:
                todo.pop()
            elif child.fields is not None:
                for key, value in child.fields.items():
                    out.setdefault(key, value)
            else:
                out.setdefault(child.tag, child.value or "")
                if child.children:
                    todo.append(iter(child.children))
        return out


class Lines:
    """Offset → line number, counted lazily and incrementally (positions mostly grow)."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._newline = "\n" if "\n" in text else "\r"
        self._pos = 0
        self._line = 1

    def at(self, pos: int) -> int:
        if pos >= self._pos:
            self._line += self._text.count(self._newline, self._pos, pos)
        else:
            self._line -= self._text.count(self._newline, pos, self._pos)
        self._pos = pos
        return self._line
