"""Bank and credit-card statements (``STMTRS``, ``CCSTMTRS``) and the shared reading context.

Failure policy, per element:

* no account id → ``MalformedFile``: transactions that belong to no account cannot be imported;
* one transaction without a usable date or amount → skipped with a warning, the rest import;
* missing or unreadable ``LEDGERBAL`` / ``AVAILBAL`` / ``DTSTART`` / ``DTEND`` → ``None`` with
  a warning for the ledger balance (the account then shows no balance) and silently for
  the optional ones, unless present but unreadable;
* an unreadable ``DTUSER`` or ``CURDEF`` → dropped with a warning, the transaction stays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

from finsync.domain.errors import MalformedFile
from finsync.providers.ofx.fastpath import piece_digest, piece_fields, written_piece
from finsync.providers.ofx.model import OfxStatement, OfxTransaction, StatementKind, clean_fields
from finsync.providers.ofx.nodes import Chain, Lines, Node, Pieces, PieceSource, Written, WrittenLeaves
from finsync.providers.ofx.values import parse_amount, parse_currency, parse_datetime

MAX_WARNINGS = 100
_EPOCH = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = "the one with the latest <DTASOF> is used"


T = TypeVar("T")


class Context:
    """Line numbers and the (capped) warning list shared by one parse."""

    def __init__(self, lines: Lines, warnings: list[str], *, defer: bool = False) -> None:
        self.lines = lines
        self.warnings = warnings
        self.suppressed = 0  # left out since the last finish()
        self.left_out = 0
        self.summary_at: int | None = None  # index of the "... and N more warnings" line
        self.defer = defer  # leave fast-path STMTTRNs unconverted (see UnreadPieces)

    def line(self, pos: int) -> int:
        return self.lines.at(pos)

    def warn(self, pos: int, message: str) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(f"line {self.lines.at(pos)}: {message}")
        else:
            self.suppressed += 1

    def finish(self) -> None:
        """Count the warnings left out, in one summary line however often this is called
        (parsing, then each build of deferred transactions, each adds to it)."""
        if not self.suppressed:
            return
        self.left_out += self.suppressed
        self.suppressed = 0
        line = f"... and {self.left_out} more warnings"
        if self.summary_at is None:
            self.summary_at = len(self.warnings)
            self.warnings.append(line)
        else:
            self.warnings[self.summary_at] = line

    def date(self, node: Node, tag: str) -> datetime | None:
        """An optional date child: absent → None; unreadable → None and a warning."""
        return self._optional(node, tag, parse_datetime)

    def amount(self, node: Node, tag: str) -> Decimal | None:
        return self._optional(node, tag, parse_amount)

    def currency(self, node: Node) -> str | None:
        return self._optional(node, "CURDEF", parse_currency)

    def _optional(self, node: Node, tag: str, parse: Callable[[str], T]) -> T | None:
        raw = node.text(tag)
        if raw is None:
            return None
        try:
            return parse(raw)
        except ValueError as exc:
            self.warn(node.pos, f"<{node.tag}>/<{tag}> ignored: {exc}")
            return None


@dataclass(slots=True)
class UnreadPieces:
    """Fast-path STMTTRNs left unconverted by ``parse_ofx(..., defer=True)``.

    Converting (dates, amounts) and then mapping is most of the per-transaction cost, and a
    re-import needs neither for the transactions it already stores: each one is named by
    its FITID and the digest of its source text without converting it. ``convert`` records
    its warnings in the document's list, as the eager reader would have. Digests are not
    kept (the importer's keys hold them): a piece is digested when named or converted.
    """

    pieces: PieceSource  # each STMTTRN's source text, by position: a fraction of its fields' memory
    ctx: Context

    def __len__(self) -> int:
        return len(self.pieces)

    def digest(self, i: int) -> str:
        return piece_digest(self.pieces[i])

    def finish(self) -> None:
        self.ctx.finish()

    def convert(self, i: int, digest: str | None = None) -> OfxTransaction | None:
        """The transaction at ``i``; ``digest`` is its piece's, when the caller has it already."""
        piece = self.pieces[i]
        digest = digest or piece_digest(piece)
        return bank_transaction(piece_fields(piece), self.pieces.offset(i), self.ctx, digest, source=piece)


def account_id(node: Node, ctx: Context, *aggregates: str) -> tuple[Node, str]:
    for tag in aggregates:
        account = node.find(tag)
        if account is not None:
            break
    else:
        wanted = " or ".join(f"<{tag}>" for tag in aggregates)
        raise MalformedFile(
            f"line {ctx.line(node.pos)}: <{node.tag}> has no {wanted}: the account is unknown"
        )
    acctid = account.text("ACCTID")
    if acctid is None:
        raise MalformedFile(f"line {ctx.line(account.pos)}: <{account.tag}> has no <ACCTID>")
    return account, acctid


def bank_statement(node: Node, ctx: Context) -> OfxStatement:
    kind: StatementKind = "credit_card" if node.tag == "CCSTMTRS" else "bank"
    account, acctid = account_id(node, ctx, "BANKACCTFROM", "CCACCTFROM")
    statement = OfxStatement(
        kind=kind,
        account_id=acctid,
        bank_id=account.text("BANKID"),
        branch_id=account.text("BRANCHID"),
        account_type=(account.text("ACCTTYPE") or "").upper() or None,
        currency=ctx.currency(node),
    )
    lists = repeated(node, "BANKTRANLIST", ctx, "their transactions are merged")
    if lists:
        statement.date_start, statement.date_end = period(lists, ctx)
    _transactions(node, lists, statement, ctx)
    ledger = latest(repeated(node, "LEDGERBAL", ctx, _LATEST), ctx)
    if ledger is None:
        ctx.warn(node.pos, f"<{node.tag}> has no <LEDGERBAL>: the account balance is unknown")
    else:
        statement.ledger_balance, statement.ledger_balance_at = _balance(ledger, ctx)
    available = latest(repeated(node, "AVAILBAL", ctx, _LATEST), ctx)
    if available is not None:
        statement.available_balance, statement.available_balance_at = _balance(available, ctx)
    return statement


def repeated(node: Node, tag: str, ctx: Context, merged: str) -> list[Node]:
    """Every ``tag`` aggregate of a statement, which should hold one: a warning saying how
    they are ``merged`` when it holds more."""
    found = [child for child in node.children if child.tag == tag and child.value is None]
    if len(found) > 1:
        ctx.warn(found[1].pos, f"<{node.tag}> holds {len(found)} <{tag}>; {merged}")
    return found


def period(lists: list[Node], ctx: Context) -> tuple[datetime | None, datetime | None]:
    """The period several transaction lists cover: the earliest DTSTART, the latest DTEND."""
    starts = [d for d in (ctx.date(t, "DTSTART") for t in lists) if d is not None]
    ends = [d for d in (ctx.date(t, "DTEND") for t in lists) if d is not None]
    return (min(starts) if starts else None), (max(ends) if ends else None)


def latest(balances: list[Node], ctx: Context) -> Node | None:
    """Of repeated balances, the one as of the latest DTASOF (the last one on a tie)."""
    if len(balances) < 2:
        return balances[0] if balances else None
    dated = [(ctx.date(b, "DTASOF"), i) for i, b in enumerate(balances)]
    return balances[max((d is not None, d or _EPOCH, i) for d, i in dated)[2]]


def _transactions(node: Node, lists: list[Node], statement: OfxStatement, ctx: Context) -> None:
    """The STMTTRNs of every list, and those found after their list closed, in file order."""
    segments: list[Node | Pieces] = []  # generic STMTTRNs and fast-path lists
    stray = 0
    for child in node.children:
        if child.tag == "STMTTRN" and child.value is None:
            stray += 1
            segments.append(child)
        elif child.tag == "BANKTRANLIST" and child.value is None:
            listed = [c for c in child.children if c.tag == "STMTTRN" and c.value is None]
            segments += listed
            if listed:  # read above (DTSTART, DTEND) or below: each node is released once read
                child.children = []
            if child.blocks is not None:
                segments.append(child.blocks)
    if stray:
        first = next(c for c in node.children if c.tag == "STMTTRN")
        ctx.warn(first.pos, f"{stray} <STMTTRN> outside <BANKTRANLIST> read into this <{node.tag}>")
    if ctx.defer and statement.currency:  # without CURDEF, rows give the currency
        if segments:
            statement.unread = UnreadPieces(_unread(segments), ctx)
        return
    append = statement.transactions.append
    segments.reverse()
    while segments:
        segment = segments.pop()
        if isinstance(segment, Node):
            transaction = bank_transaction(segment.leaves(), segment.pos, ctx)
            if transaction is not None:
                append(transaction)
            continue
        for i in range(len(segment)):
            piece = segment[i]
            digest = piece_digest(piece) if ctx.defer else None  # digests serve importers
            transaction = bank_transaction(piece_fields(piece), segment.offset(i), ctx, digest, source=piece)
            if transaction is not None:
                append(transaction)


def _unread(segments: list[Node | Pieces]) -> PieceSource:
    """The STMTTRNs of ``segments`` as pieces, in file order: fast-path lists as they are,
    the tree builder's STMTTRNs written as pieces (``written_piece``), each node let go."""
    parts: list[PieceSource] = []
    segments.reverse()
    while segments:
        segment = segments.pop()
        last = parts[-1] if parts else None
        if isinstance(segment, Pieces):
            if isinstance(last, Pieces):
                parts[-1] = last + segment
            else:
                parts.append(segment)
            continue
        if not isinstance(last, Written):
            last = Written()
            parts.append(last)
        written = segment.extra  # the builder's (see Builder._pop), else a block's text or a node
        last.append(
            written if isinstance(written, WrittenLeaves) else written_piece(segment.leaves()), segment.pos
        )
    return parts[0] if len(parts) == 1 else Chain(parts)


def _balance(node: Node, ctx: Context) -> tuple[Decimal | None, datetime | None]:
    if node.text("BALAMT") is None:
        ctx.warn(node.pos, f"<{node.tag}> has no <BALAMT> value: the balance is unknown")
        return None, None
    return ctx.amount(node, "BALAMT"), ctx.date(node, "DTASOF")


def bank_transaction(
    fields: dict[str, str], pos: int, ctx: Context, digest: str | None = None, *, source: str | None = None
) -> OfxTransaction | None:
    """A STMTTRN, or None (with a warning) when its date or amount is missing or unreadable.

    The per-transaction hot path. With ``source`` (the fast path's piece), ``fields`` is
    already as ``clean_fields`` leaves it, and is kept as it is."""
    if source is None:
        foreign = "CURRENCY" in fields  # the aggregate, as opposed to ORIGCURRENCY
        fields = clean_fields(fields)
    else:
        foreign = "<CURRENCY>" in source
    get = fields.get
    try:
        posted = parse_datetime(get("DTPOSTED") or "")
        amount = parse_amount(get("TRNAMT") or "")
    except ValueError:
        posted = None
    if posted is None:
        _skip(pos, fields, ctx)
        return None
    user_date = None
    user_raw = get("DTUSER")
    if user_raw:
        try:
            user_date = parse_datetime(user_raw)
        except ValueError as exc:
            ctx.warn(pos, f"<STMTTRN>{_fitid(fields)}: <DTUSER> ignored: {exc}")
    transaction = OfxTransaction(
        get("FITID"),
        (get("TRNTYPE") or "OTHER").upper(),
        posted,
        amount,
        user_date,
        get("NAME"),
        get("MEMO"),
        get("CHECKNUM"),
        get("REFNUM"),
        None,
        None,
        fields,
        digest,
    )
    if foreign and get("CURSYM"):
        foreign_currency(transaction, fields, pos, ctx)
    return transaction


def foreign_currency(transaction: OfxTransaction, fields: dict[str, str], pos: int, ctx: Context) -> None:
    try:
        transaction.currency = parse_currency(fields["CURSYM"])
        rate = fields.get("CURRATE")
        transaction.currency_rate = parse_amount(rate) if rate else None
    except ValueError as exc:
        ctx.warn(pos, f"<STMTTRN>{_fitid(fields)}: <CURRENCY> ignored: {exc}")


def _fitid(fields: dict[str, str]) -> str:
    fitid = (fields.get("FITID") or "").strip()
    return f" (FITID {fitid})" if fitid else ""


def _skip(pos: int, fields: dict[str, str], ctx: Context) -> None:
    problems = []
    for tag, parse in (("DTPOSTED", parse_datetime), ("TRNAMT", parse_amount)):
        raw = (fields.get(tag) or "").strip()
        if not raw:
            problems.append(f"no <{tag}>")
            continue
        try:
            if parse(raw) is None:
                problems.append(f"<{tag}> is the null date {raw!r}")
        except ValueError as exc:
            problems.append(f"<{tag}> {exc}")
    ctx.warn(pos, f"<STMTTRN>{_fitid(fields)} skipped: {'; '.join(problems)}")
