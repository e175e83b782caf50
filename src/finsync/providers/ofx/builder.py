"""The tree builder behind the tokenizer: SGML's optional end tags, and the repairs real files need.

SGML lets leaf elements omit their end tag: an element followed by text is a leaf, one
followed by another tag is an aggregate. An "aggregate" that turns out to be an empty leaf
(``<LANGUAGE><FI>...</SONRS>``) is repaired when an enclosing element closes: its children
become its parent's. Repairs that change how the file reads are reported, once per kind and
tag, as warnings:

* an end tag that closes nothing is skipped;
* a leaf's end tag arriving after later elements (pretty-printed SGML,
  ``<A>1<B>2<C>3</C></B></A>``) closes that leaf: every open aggregate remembers its
  unclosed leaves, so any depth works in constant time per tag;
* a known aggregate whose end tag is missing is closed where the file proves it ended: at
  its parent's end tag, where another one starts (known aggregates never nest in
  themselves), or where a sibling starts (``<LEDGERBAL>`` after an unclosed
  ``<BANKTRANLIST>``, see :data:`~finsync.providers.ofx.schema.PARENTS`).

Memory: the tree may hold an element per 8 bytes of input, so a leaf repeated in one
aggregate is kept only while it can still be read (the readers take the first non-empty
one), tag names are shared, and leaves carry no position. A closed STMTTRN or investment
item, which the readers only flatten, keeps its leaves as one string (see ``_closed``):
the tree of a file the fast path cannot read holds a node per transaction, not per leaf.
"""

from __future__ import annotations

from finsync.domain.errors import MalformedFile
from finsync.providers.ofx.fastpath import ITEMS, written_leaves, written_piece
from finsync.providers.ofx.model import OfxLimitExceeded
from finsync.providers.ofx.nodes import Lines, Node, Pieces
from finsync.providers.ofx.schema import AGGREGATES, PARENTS, STATEMENTS, is_item, reads_every

__all__ = ["MAX_STATEMENTS", "Builder"]

_MAX_NOTES = 20  # distinct repair messages; the rest are counted in one line
# Each statement is an account written in the import's one transaction: bound them.
MAX_STATEMENTS = 1_000
# Real files use a few hundred element names; a file of made-up ones is built to cost memory.
MAX_TAG_NAMES = 2_000
# Where the readers take a STMTTRN's or an investment item's leaves only (``Node.leaves``):
# closed there, it is kept as its leaves written in one string (see _closed).
_TRANSACTION_PARENTS = frozenset({"BANKTRANLIST", "STMTRS", "CCSTMTRS"})
_ITEM_PARENTS = frozenset({"INVTRANLIST", "INVPOSLIST", "SECLIST", "INVSTMTRS"})


class Builder:
    def __init__(self, text: str, lines: Lines) -> None:
        self.text = text
        self.lines = lines
        self.root = Node("#document", 0)
        self.stack = [self.root]
        self.kids: list[list[Node]] = [[]]  # children list of each open element
        self.root.children = self.kids[0]
        self.names: list[str] = []  # tags of the open elements below root
        # Per open element, its leaves by tag: 2 x (how many still lack an end tag), plus 1
        # once one with a value was kept. None until it has a leaf.
        self.leaf_states: list[dict[str, int] | None] = [None]
        # Per open element: whether it is or is inside an item the readers flatten (all kept).
        self.in_item = [False]
        self.open_count: dict[str, int] = {}  # tag → how many are open: O(1) checks at any depth
        self.tags: dict[str, str] = {}  # one string per tag name
        self.pending_tag: str | None = None  # start tag seen, not yet known to be leaf or aggregate
        self.pending_pos = 0
        # The leaf that may still get more text or its end tag (None if it was dropped).
        self.last_tag: str | None = None
        self.last_leaf: Node | None = None
        # (kind, tag) → [first position, count, detail]: see note()
        self.notes: dict[tuple[str, str], list[int | str]] = {}
        self.other_notes = 0
        self.statements = 0

    def where(self, pos: int) -> str:
        names = self.names if len(self.names) <= 8 else ["...", *self.names[-7:]]
        path = "/".join(names)
        return f"line {self.lines.at(pos)}" + (f" (in {path})" if path else "")

    # --- tokens ---------------------------------------------------------------------

    def start(self, tag: str, pos: int) -> None:
        if self.pending_tag is not None:
            self.push_pending()
        self.last_tag = None
        self.pending_tag = self.tags.get(tag) or self._new_tag(tag)
        self.pending_pos = pos

    def leaf(self, tag: str, value: str) -> None:
        """A start tag directly followed by its value (one token: the common case)."""
        if self.pending_tag is not None:
            self.push_pending()
        self._leaf(self.tags.get(tag) or self._new_tag(tag), value)

    def value(self, value: str, pos: int) -> None:
        if self.pending_tag is not None:
            self._leaf(self.pending_tag, value)
        elif self.last_tag is not None:
            if self.last_leaf is not None:
                self.last_leaf.value = f"{self.last_leaf.value}{value}"
            elif value and (states := self.leaf_states[-1]) and not states[self.last_tag] & 1:
                # A repeated leaf dropped while empty (an empty CDATA section before its text)
                # is kept after all, as the same leaf written without that section would be.
                states[self.last_tag] -= 2
                self._leaf(self.last_tag, value)
        else:
            raise MalformedFile(f"{self.where(pos)}: unexpected text {value[:40]!r} outside a value")

    def end(self, tag: str, pos: int) -> None:
        if self.pending_tag is not None:  # empty leaf: <TAG></TAG>, or <TAG> with no value nor end tag
            self._leaf(self.pending_tag, "")
        last, self.last_tag = self.last_tag, None
        states = self.leaf_states[-1]
        if last == tag:
            if states is not None:
                states[tag] -= 2
            return
        top = self.stack[-1].tag
        if top != tag and states is not None and states.get(tag, 0) >= 2:  # <A>1<B>2</B></A>
            states[tag] -= 2
            self.note("late", "", pos, tag)
            return
        if top == tag:
            self._closed(self._pop())
            return
        if not self.open_count.get(tag):
            self.note("stray", tag, pos)
            return
        depth = len(self.stack) - 1
        while self.stack[depth].tag != tag:
            depth -= 1
        self._unwind(depth + 1, f"</{tag}>", pos)
        self._closed(self._pop())

    def block(self, node: Node) -> None:
        """A fast-path STMTTRN (see fastpath.BLOCK) or investment item (fastpath.item_body)."""
        self.push_pending()
        self.last_tag = None
        self._make_room(node.tag, node.pos)
        if self._attach(node.tag):
            self.kids[-1].append(node)

    def push_pending(self) -> None:
        """The pending start tag was followed by markup: it is an aggregate."""
        tag = self.pending_tag
        if tag is None:
            return
        self.pending_tag = None
        pos = self.pending_pos
        if tag in AGGREGATES:
            self._make_room(tag, pos)
            if tag in STATEMENTS:
                self._count_statement()
        node = Node(tag, pos)
        if self._attach(tag):
            self.kids[-1].append(node)
        self.in_item.append(self.in_item[-1] or is_item(self.stack[-1].tag, tag))
        self.stack.append(node)
        self.kids.append(node.children)  # type: ignore[arg-type]  # an aggregate's own list
        self.leaf_states.append(None)
        self.names.append(tag)
        self.open_count[tag] = self.open_count.get(tag, 0) + 1

    def _attach(self, tag: str) -> bool:
        """Whether a new aggregate joins its parent's children: always where the readers read
        every one of them, else only the first of its tag (all they ever read, with find())."""
        if self.in_item[-1] or reads_every(self.stack[-1].tag, tag):
            return True
        states = self.leaf_states[-1]
        if states is None:
            states = self.leaf_states[-1] = {}
        key = "<" + tag  # aggregates beside the leaves, in the same table
        if key in states:
            return False
        states[key] = 0
        return True

    def _new_tag(self, tag: str) -> str:
        if len(self.tags) >= MAX_TAG_NAMES:
            raise OfxLimitExceeded(
                f"the file uses more than {MAX_TAG_NAMES:,} different element names; OFX needs a few hundred"
            )
        self.tags[tag] = tag
        return tag

    def _count_statement(self) -> None:
        self.statements += 1
        if self.statements > MAX_STATEMENTS:
            raise OfxLimitExceeded(
                f"the file holds more than {MAX_STATEMENTS:,} account statements, the most one file may "
                "hold: export fewer accounts or periods at a time"
            )

    def fill(self, leaves: list[Node], blocks: Pieces) -> None:
        """Give the open aggregate (a fast-path BANKTRANLIST) its leaves and STMTTRN pieces."""
        self.kids[-1].extend(leaves)
        self.stack[-1].extra = blocks

    # --- repairs --------------------------------------------------------------------

    def _leaf(self, tag: str, value: str) -> None:
        self.pending_tag = None
        states = self.leaf_states[-1]
        if states is None:
            states = self.leaf_states[-1] = {}
        self.last_tag = tag
        state = states.get(tag)
        # Readers take the first leaf of a tag, or the first non-empty one: later ones are dropped.
        if state is None or (value and not state & 1):
            node = self.last_leaf = Node(tag, 0, value)
            self.kids[-1].append(node)
            states[tag] = (3 if value else 2) if state is None else state + 3
        else:
            self.last_leaf = None
            states[tag] = state + 2

    def _make_room(self, tag: str, pos: int) -> None:
        """Close what ``<tag>`` starting here proves has ended (see the module docstring)."""
        if self.open_count.get(tag):
            depth = len(self.stack) - 1
            while self.stack[depth].tag != tag:
                depth -= 1
            self._unwind(depth, f"<{tag}>", pos)
            return
        parents = PARENTS.get(tag)
        if parents is None or self.stack[-1].tag in parents:
            return
        if not any(self.open_count.get(parent) for parent in parents):
            return
        depth = len(self.stack) - 1
        while self.stack[depth].tag not in parents:
            depth -= 1
        self._unwind(depth + 1, f"<{tag}>", pos)

    def _unwind(self, depth: int, proof: str, pos: int) -> None:
        """Close the open elements above ``depth``: known aggregates with a note, others as the
        empty leaves they were (their children move up), each child moved once."""
        hoisted: list[Node] = []
        while len(self.stack) > depth:
            node = self.stack[-1]
            if node.tag not in AGGREGATES:
                hoisted.append(self._pop())
                continue
            self._hoist(hoisted)
            self.note("unclosed", node.tag, pos, proof, node.pos)
            self._closed(self._pop())
        self._hoist(hoisted)

    def _hoist(self, hoisted: list[Node]) -> None:
        if not hoisted:
            return
        children = self.kids[-1]
        for node in reversed(hoisted):
            children.extend(node.children)
            node.children = ()
            node.value = ""
        hoisted.clear()

    def _pop(self) -> Node:
        node = self.stack.pop()
        self.kids.pop()
        self.leaf_states.pop()
        self.in_item.pop()
        self.names.pop()
        self.open_count[node.tag] -= 1
        return node

    def _closed(self, node: Node) -> None:
        """``node`` was closed (not hoisted: nothing adds to it any more). A STMTTRN or an
        investment item where the readers only take its leaves (Node.leaves) keeps them as one
        string that reads back the same, instead of a node per leaf: the tree of a file the
        fast path cannot read stays a fraction of its size, and its STMTTRNs and entries can be
        left unconverted like fast-path ones (``statements.UnreadPieces``, ``investments.UnreadItems``)."""
        if not node.children:
            return
        parent = self.stack[-1].tag
        if node.tag == "STMTTRN" and parent in _TRANSACTION_PARENTS:
            node.extra = written_piece(node.leaves())
        elif node.tag in ITEMS and parent in _ITEM_PARENTS:
            node.extra = written_leaves(node.leaves())
        else:
            return
        node.children = ()

    def note(self, kind: str, tag: str, pos: int, detail: str = "", opened: int = 0) -> None:
        """Record a repair: messages are built once, in :meth:`report`, from the first one."""
        entry = self.notes.get((kind, tag))
        if entry is not None:
            entry[1] = int(entry[1]) + 1
        elif len(self.notes) < _MAX_NOTES:
            self.notes[kind, tag] = [pos, 1, detail, opened]
        else:
            self.other_notes += 1

    def report(self, warnings: list[str]) -> None:
        """One warning per kind of repair (and tag), in file order."""
        for (kind, tag), (pos, count, detail, opened) in sorted(self.notes.items(), key=lambda i: i[1][0]):
            times = f" ({count:,} times)" if int(count) > 1 else ""
            if kind == "stray":
                message = f"</{tag}> does not close any open element; ignored{times}"
            elif kind == "late":
                message = (
                    f"{count:,} end tag(s) of leaf elements arrive after later elements (first </{detail}>), "
                    "as in pretty-printed SGML; each leaf was read as ending at its value"
                )
            else:
                line = self.lines.at(int(opened))
                message = f"<{tag}> (line {line}) has no end tag; closed before {detail}{times}"
            warnings.append(f"line {self.lines.at(int(pos))}: {message}")
        if self.other_notes:
            warnings.append(f"... and {self.other_notes:,} more end tags ignored or added")

    def truncated(self) -> MalformedFile:
        open_tags = [(node.tag, node.pos) for node in self.stack[1:]]
        if self.pending_tag is not None:
            open_tags.append((self.pending_tag, self.pending_pos))
        tag, pos = ([item for item in open_tags if item[0] in AGGREGATES] or open_tags)[-1]
        return MalformedFile(
            f"line {self.lines.at(len(self.text))}: the file ends inside <{tag}> "
            f"(opened on line {self.lines.at(pos)}); it looks truncated"
        )
