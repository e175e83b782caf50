"""Investment statements (``INVSTMTRS``) and the security list (``SECLIST``).

Same policy as bank statements: an entry without a usable date, security or number is
skipped with a warning; the account id is mandatory. Entries are read through their
flattened leaves (``INVBUY/INVTRAN/FITID`` → ``FITID``) because the OFX investment
aggregates never reuse a leaf name at different depths in a way that matters here.
"""

from __future__ import annotations

import hashlib
import sys
from array import array
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import TypeVar

from finsync.providers.ofx.model import (
    OfxInvestmentTransaction,
    OfxPosition,
    OfxSecurity,
    OfxStatement,
)
from finsync.providers.ofx.nodes import Node, WrittenLeaves, block_fields, first_leaf
from finsync.providers.ofx.schema import INVESTMENT_TRANSACTIONS, POSITIONS
from finsync.providers.ofx.statements import Context, account_id, bank_transaction, period, repeated
from finsync.providers.ofx.values import parse_amount, parse_currency, parse_datetime

_NUMBERS = {
    "UNITS": "units",
    "UNITPRICE": "unit_price",
    "COMMISSION": "commission",
    "FEES": "fees",
    "TAXES": "taxes",
    "TOTAL": "total",
    "OLDUNITS": "old_units",
    "NEWUNITS": "new_units",
}
_RETIREMENT_MARKERS = ("INV401K", "INV401KBAL")
T = TypeVar("T")


class UnreadItems:
    """Fast-path INVTRANLIST entries left unconverted by ``parse_ofx(..., defer=True)``.

    An entry's leaves, parsed values and mapped row are many times the size of its text; an
    import needs them only for what it writes. Each entry is kept as where its body is in the
    decoded text (kept anyway for line numbers): 16 bytes and a shared tag name, instead of a
    string, a dict of leaves and a row.
    """

    __slots__ = ("_eager_before", "ctx", "ends", "retirement", "starts", "tags", "text", "written")

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.text = ctx.lines.text
        self.tags: list[str] = []  # the element names, interned by the builder
        self.starts, self.ends = array("q"), array("q")  # each body: text[starts[i]:ends[i]]
        self._eager_before = array("q")
        self.retirement = False  # an INV401KSOURCE seen (the statement's is_retirement)
        self.written: dict[int, str] = {}  # entries the tree builder read: their WrittenLeaves

    def __len__(self) -> int:
        return len(self.starts)

    def add(self, node: Node, body: str) -> None:
        """``node``: a fast-path item, whose body ``text`` holds right after its start tag, or
        one the tree builder read (``body``: its WrittenLeaves; ``ends`` -1)."""
        start = node.pos + len(node.tag) + 2  # "<TAG>": the fast path takes no attributes
        self.tags.append(sys.intern(node.tag))  # one string per element name
        if isinstance(body, WrittenLeaves):
            self.written[len(self.starts)] = body
            self.ends.append(-1)
        else:
            self.ends.append(start + len(body))
        self.starts.append(start)
        if not self.retirement and "<INV401KSOURCE>" in body:  # body: upper-case simple tags only
            self.retirement = True

    def eager(self) -> None:
        """An entry read eagerly comes next in the file."""
        self._eager_before.append(len(self.starts))

    def eager_before(self) -> Sequence[int]:
        return self._eager_before

    def body(self, i: int) -> str:
        end = self.ends[i]
        return self.text[self.starts[i] : end] if end >= 0 else self.written[i]

    def fields(self, i: int) -> dict[str, str]:
        return block_fields(self.body(i))

    def name(self, i: int) -> tuple[str | None, str | None, str | None, str]:
        """The entry's FITID, security id type and id as its fields read them (None when
        absent), and the digest of its element name and source text: what names it."""
        body = self.body(i)
        id_type = first_leaf(body, "UNIQUEIDTYPE").upper() or None
        source = f"{self.tags[i]}>{body}"
        digest = hashlib.blake2b(source.encode(), digest_size=16).hexdigest()
        return first_leaf(body, "FITID") or None, id_type, first_leaf(body, "UNIQUEID") or None, digest

    def convert(self, i: int, fields: dict[str, str] | None = None) -> OfxInvestmentTransaction | None:
        tag = self.tags[i]
        pos = self.starts[i] - len(tag) - 2
        return investment_transaction(tag, pos, self.fields(i) if fields is None else fields, self.ctx)

    def finish(self) -> None:
        self.ctx.finish()


def investment_statement(node: Node, ctx: Context) -> OfxStatement:
    account, acctid = account_id(node, ctx, "INVACCTFROM")
    statement = OfxStatement(
        kind="investment",
        account_id=acctid,
        broker_id=account.text("BROKERID"),
        currency=ctx.currency(node),
        as_of=ctx.date(node, "DTASOF"),
    )
    lists = repeated(node, "INVTRANLIST", ctx, "their transactions are merged")
    if lists:
        statement.date_start, statement.date_end = period(lists, ctx)
    position_lists = repeated(node, "INVPOSLIST", ctx, "their positions are merged")
    statement.positions_listed = bool(position_lists)
    stray = 0
    # Without CURDEF, entries give the account's currency: all of them are read.
    unread = UnreadItems(ctx) if ctx.defer and statement.currency else None
    for child in node.children:  # lists and, after a list closed, the entries that belong in one
        if child.tag == "INVTRANLIST" and child.value is None:
            for entry in _consume(child):
                body = entry.extra
                if unread is not None and isinstance(body, str) and entry.tag in INVESTMENT_TRANSACTIONS:
                    unread.add(entry, body)
                elif _entry(entry, statement, ctx) == 2 and unread is not None:
                    unread.eager()
        elif child.tag == "INVPOSLIST" and child.value is None:
            for entry in _consume(child):
                if entry.value is None:
                    _append(statement.positions, _position(entry, ctx))
        elif child.tag in INVESTMENT_TRANSACTIONS or child.tag == "INVBANKTRAN":
            read = _entry(child, statement, ctx)
            stray += read > 0
            if read == 2 and unread is not None:
                unread.eager()
        elif child.tag in POSITIONS and child.value is None:
            stray += 1
            statement.positions_listed = True
            _append(statement.positions, _position(child, ctx))
    if stray:
        ctx.warn(node.pos, f"{stray} entries outside their list read into this <{node.tag}>")
    balances = repeated(node, "INVBAL", ctx, "the last one is used")
    if balances:
        statement.available_cash = ctx.amount(balances[-1], "AVAILCASH")
        statement.margin_balance = ctx.amount(balances[-1], "MARGINBALANCE")
        statement.short_balance = ctx.amount(balances[-1], "SHORTBALANCE")
        statement.buying_power = ctx.amount(balances[-1], "BUYPOWER")
    plan = node.find("INV401K")
    statement.plan_name = plan.text("EMPLOYERNAME") if plan is not None else None
    statement.is_retirement = (
        any(node.find(tag) is not None for tag in _RETIREMENT_MARKERS)
        or any("INV401KSOURCE" in entry.fields for entry in statement.investment_transactions)
        or (unread is not None and unread.retirement)
    )
    if unread:
        statement.unread_entries = unread
    return statement


def _entry(child: Node, statement: OfxStatement, ctx: Context) -> int:
    """Read one INVTRANLIST entry: 2 if it was read into ``investment_transactions``, 1 if it
    was another entry (a bank leg, an unreadable one), else 0 (DTSTART, extensions without
    INVTRAN)."""
    if child.tag == "INVBANKTRAN":
        _bank_leg(child, statement, ctx)
        return 1
    if child.value is None:
        fields = child.leaves()
        if "INVTRAN" in fields or child.tag in INVESTMENT_TRANSACTIONS:
            entry = investment_transaction(child.tag, child.pos, fields, ctx)
            if entry is None:
                return 1
            statement.investment_transactions.append(entry)
            return 2
    return 0


def _consume(node: Node) -> Iterator[Node]:
    """The children of a list, each released once read: the tree and what is read from it
    are never both whole in memory."""
    children = node.children
    if isinstance(children, list):
        children.reverse()
        while children:
            yield children.pop()


def _append(items: list[T], item: T | None) -> None:
    if item is not None:
        items.append(item)


def _bank_leg(node: Node, statement: OfxStatement, ctx: Context) -> None:
    inner = node.find("STMTTRN")
    if inner is None:
        ctx.warn(node.pos, "<INVBANKTRAN> without <STMTTRN> skipped")
        return
    transaction = bank_transaction(inner.leaves(), inner.pos, ctx)
    if transaction is not None:
        subaccount = node.text("SUBACCTFUND")
        if subaccount:
            transaction.fields = {**transaction.fields, "SUBACCTFUND": subaccount}
        statement.transactions.append(transaction)


def _numbers(fields: dict[str, str], tags: dict[str, str]) -> dict[str, Decimal]:
    """Parse the numeric leaves present; raises ValueError naming the bad one."""
    out: dict[str, Decimal] = {}
    for tag, name in tags.items():
        raw = fields.get(tag)
        if raw:
            try:
                out[name] = parse_amount(raw)
            except ValueError as exc:
                raise ValueError(f"<{tag}> {exc}") from None
    return out


def _currency(fields: dict[str, str]) -> str | None:
    if "CURRENCY" in fields and fields.get("CURSYM"):
        try:
            return parse_currency(fields["CURSYM"])
        except ValueError:
            return None
    return None


def _currency_rate(fields: dict[str, str]) -> Decimal | None:
    """CURRATE of a CURRENCY aggregate (not of ORIGCURRENCY, whose amounts are in CURDEF already)."""
    rate = fields.get("CURRATE") if "CURRENCY" in fields else None
    try:
        value = parse_amount(rate) if rate else None
    except ValueError:
        return None
    return value if value is not None and value > 0 else None


def investment_transaction(
    tag: str, pos: int, fields: dict[str, str], ctx: Context
) -> OfxInvestmentTransaction | None:
    """An entry (element ``tag`` at ``pos``) read through its flattened leaves, or None with a
    warning."""
    fitid = fields.get("FITID") or None
    label = f"<{tag}>" + (f" (FITID {fitid})" if fitid else "")
    trade_raw = fields.get("DTTRADE")
    try:
        if not trade_raw:
            raise ValueError("no <DTTRADE>")
        trade_date = parse_datetime(trade_raw)
        if trade_date is None:
            raise ValueError(f"<DTTRADE> is the null date {trade_raw!r}")
        settle_raw = fields.get("DTSETTLE")
        settle_date = parse_datetime(settle_raw) if settle_raw else None
        numbers = _numbers(fields, _NUMBERS)
    except ValueError as exc:
        ctx.warn(pos, f"{label} skipped: {exc}")
        return None
    return OfxInvestmentTransaction(
        kind=tag,
        fitid=fitid,
        trade_date=trade_date,
        settle_date=settle_date,
        memo=fields.get("MEMO") or None,
        unique_id=fields.get("UNIQUEID") or None,
        unique_id_type=(fields.get("UNIQUEIDTYPE") or "").upper() or None,
        income_type=(fields.get("INCOMETYPE") or "").upper() or None,
        transfer_action=(fields.get("TFERACTION") or "").upper() or None,
        currency=_currency(fields),
        fields=fields,
        **numbers,
    )


def _position(node: Node, ctx: Context) -> OfxPosition | None:
    fields = node.leaves()
    unique_id = fields.get("UNIQUEID")
    try:
        if not unique_id:
            raise ValueError("no <SECID>/<UNIQUEID>")
        numbers = _numbers(fields, {"UNITS": "units", "UNITPRICE": "unit_price", "MKTVAL": "market_value"})
        if "units" not in numbers:
            raise ValueError("no <UNITS>")
        raw_priced = fields.get("DTPRICEASOF")
        priced_at = parse_datetime(raw_priced) if raw_priced else None
    except ValueError as exc:
        ctx.warn(node.pos, f"<{node.tag}> {unique_id or ''} skipped: {exc}".replace("  ", " "))
        return None
    return OfxPosition(
        kind=node.tag,
        unique_id=unique_id,
        unique_id_type=(fields.get("UNIQUEIDTYPE") or "").upper() or None,
        units=numbers["units"],
        unit_price=numbers.get("unit_price"),
        market_value=numbers.get("market_value"),
        priced_at=priced_at,
        position_type=(fields.get("POSTYPE") or "").upper() or None,
        held_in=(fields.get("HELDINACCT") or "").upper() or None,
        currency=_currency(fields),
        currency_rate=_currency_rate(fields),
        fields=fields,
    )


def securities(node: Node, ctx: Context) -> list[OfxSecurity]:
    """SECLIST entries, all kept; a repeated (id type, id) is warned about (the mappers
    use the first one)."""
    out: list[OfxSecurity] = []
    seen: set[tuple[str | None, str]] = set()
    for child in node.children:
        if child.value is not None:
            continue
        fields = child.leaves()
        unique_id = fields.get("UNIQUEID")
        if not unique_id:
            ctx.warn(child.pos, f"<{child.tag}> without <SECID>/<UNIQUEID> skipped")
            continue
        id_type = (fields.get("UNIQUEIDTYPE") or "").upper() or None
        if (id_type, unique_id) in seen:
            ctx.warn(
                child.pos, f"security {id_type or ''} {unique_id} is listed twice; the first one is used"
            )
        seen.add((id_type, unique_id))
        price = fields.get("UNITPRICE")
        try:
            unit_price = parse_amount(price) if price else None
        except ValueError:
            unit_price = None
        out.append(
            OfxSecurity(
                kind=child.tag,
                unique_id=unique_id,
                unique_id_type=id_type,
                name=fields.get("SECNAME") or None,
                ticker=fields.get("TICKER") or None,
                unit_price=unit_price,
                fields=fields,
            )
        )
    return out
