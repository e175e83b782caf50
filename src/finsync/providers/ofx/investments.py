"""Investment statements (``INVSTMTRS``) and the security list (``SECLIST``).

Same policy as bank statements: an entry without a usable date, security or number is
skipped with a warning; the account id is mandatory. Entries are read through their
flattened leaves (``INVBUY/INVTRAN/FITID`` → ``FITID``) because the OFX investment
aggregates never reuse a leaf name at different depths in a way that matters here.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import TypeVar

from finsync.providers.ofx.model import (
    OfxInvestmentTransaction,
    OfxPosition,
    OfxSecurity,
    OfxStatement,
)
from finsync.providers.ofx.nodes import Node
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
    for child in node.children:  # lists and, after a list closed, the entries that belong in one
        if child.tag == "INVTRANLIST" and child.value is None:
            for entry in _consume(child):
                _entry(entry, statement, ctx)
        elif child.tag == "INVPOSLIST" and child.value is None:
            for entry in _consume(child):
                if entry.value is None:
                    _append(statement.positions, _position(entry, ctx))
        elif child.tag in INVESTMENT_TRANSACTIONS or child.tag == "INVBANKTRAN":
            stray += _entry(child, statement, ctx)
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
    statement.is_retirement = any(node.find(tag) is not None for tag in _RETIREMENT_MARKERS) or any(
        "INV401KSOURCE" in entry.fields for entry in statement.investment_transactions
    )
    return statement


def _entry(child: Node, statement: OfxStatement, ctx: Context) -> int:
    """Read one INVTRANLIST entry; 1 if it was one, else 0 (DTSTART, extensions without INVTRAN)."""
    if child.tag == "INVBANKTRAN":
        _bank_leg(child, statement, ctx)
        return 1
    if child.value is None:
        fields = child.leaves()
        if "INVTRAN" in fields or child.tag in INVESTMENT_TRANSACTIONS:
            _append(statement.investment_transactions, investment_transaction(child, fields, ctx))
            return 1
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


def investment_transaction(
    node: Node, fields: dict[str, str], ctx: Context
) -> OfxInvestmentTransaction | None:
    fitid = fields.get("FITID") or None
    label = f"<{node.tag}>" + (f" (FITID {fitid})" if fitid else "")
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
        ctx.warn(node.pos, f"{label} skipped: {exc}")
        return None
    return OfxInvestmentTransaction(
        kind=node.tag,
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
