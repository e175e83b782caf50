"""``OfxDocument`` → finsync records, one :class:`MappedStatement` per statement. Pure.

Account ids: bank ``"{BANKID}:{ACCTID}"`` (the routing number disambiguates equal
account numbers at different banks), otherwise ``ACCTID``. Names mask the number
("Checking ••5678"). Currency is CURDEF, else the one currency all transactions
declare, else USD (the OFX default). Investment balance = AVAILCASH + Σ MKTVAL, a position
in another currency (its <CURRENCY>) converted by its CURRATE.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from typing import TypeVar

from finsync.domain.enums import AccountType, AssetType
from finsync.domain.records import (
    DeferredTransactions,
    ProviderAccount,
    ProviderHolding,
    ProviderTransaction,
)
from finsync.gcpause import gc_paused, paused_gc
from finsync.providers.ofx.fastpath import piece_digest, piece_fitid
from finsync.providers.ofx.model import (
    OfxDocument,
    OfxInvestmentTransaction,
    OfxPosition,
    OfxSecurity,
    OfxStatement,
    UnreadTransactions,
    clean_fields,
)
from finsync.providers.ofx.transactions import (
    TransactionIds,
    bank_fingerprint,
    fingerprint_digest,
    investment_fingerprint,
    map_bank_transaction,
    map_investment_transaction,
)

T = TypeVar("T")
DEFAULT_CURRENCY = "USD"
_BANK_ACCOUNT_TYPES = {
    "CHECKING": (AccountType.CHECKING, "Checking"),
    "SAVINGS": (AccountType.SAVINGS, "Savings"),
    "MONEYMRKT": (AccountType.SAVINGS, "Money market"),
    "CD": (AccountType.SAVINGS, "Certificate of deposit"),
    "CREDITLINE": (AccountType.CREDIT_CARD, "Credit line"),
}
_ASSET_TYPES = {
    "POSSTOCK": AssetType.EQUITY,
    "POSMF": AssetType.FUND,
    "POSDEBT": AssetType.BOND,
    "POSOPT": AssetType.OPTION,
    "POSOTHER": AssetType.OTHER,
}


@dataclass(slots=True, kw_only=True)
class MappedStatement:
    """What the import use-case stores for one account of the file."""

    account: ProviderAccount
    transactions: list[ProviderTransaction] = field(default_factory=list)
    deferred: DeferredTransactions | None = None  # from parse_ofx(..., defer=True)
    # None when the file says nothing about holdings (bank statements, no INVPOSLIST): an
    # empty list means "holds nothing" and would wipe the holdings stored for the account.
    holdings: list[ProviderHolding] | None = None
    institution: str | None = None  # FI/ORG
    institution_fid: str | None = None  # FI/FID
    period_start: datetime | None = None
    period_end: datetime | None = None


class _Securities:
    """SECLIST lookup by (id type, id), falling back to the id alone."""

    def __init__(self, securities: list[OfxSecurity]) -> None:
        self._exact: dict[tuple[str | None, str], OfxSecurity] = {}
        self._by_id: dict[str, OfxSecurity] = {}
        for security in securities:
            self._exact.setdefault((security.unique_id_type, security.unique_id), security)
            self._by_id.setdefault(security.unique_id, security)

    def get(self, id_type: str | None, unique_id: str | None) -> OfxSecurity | None:
        if unique_id is None:
            return None
        return self._exact.get((id_type, unique_id)) or self._by_id.get(unique_id)


def _drain(items: list[T]) -> Iterator[T]:
    """Yield in order while releasing each parsed item, so a big file is never held twice
    (parsed and mapped) at once: the peak memory of an import is the parse, not parse + map."""
    items.reverse()
    while items:
        yield items.pop()


@gc_paused
def map_document(doc: OfxDocument) -> list[MappedStatement]:
    """Map every statement. Consumes ``statement.transactions`` (see ``_drain``)."""
    securities = _Securities(doc.securities)
    ids: dict[str, TransactionIds] = {}  # per account, so the occurrence index spans the file
    out: list[MappedStatement] = []
    for statement in doc.statements:
        account = map_account(statement, doc)
        account_ids = ids.setdefault(account.provider_account_id, TransactionIds())
        currency = account.currency
        transactions = [
            map_bank_transaction(t, currency, account_ids) for t in _drain(statement.transactions)
        ]
        deferred = _defer(statement.unread, transactions, currency, account_ids)
        if statement.unread_entries is not None:
            deferred = _defer_entries(statement, securities, transactions, currency, account_ids)
        for entry in _drain(statement.investment_transactions):
            security = securities.get(entry.unique_id_type, entry.unique_id)
            transactions.append(map_investment_transaction(entry, security, currency, account_ids))
        holdings = None
        if statement.positions_listed:
            holdings = [
                map_position(p, securities.get(p.unique_id_type, p.unique_id), currency)
                for p in statement.positions
            ]
        if statement.kind == "investment":
            _investment_balances(account, statement, holdings, doc.warnings)
        out.append(
            MappedStatement(
                account=account,
                transactions=transactions,
                deferred=deferred,
                holdings=holdings,
                institution=doc.institution_org,
                institution_fid=doc.institution_fid,
                period_start=statement.date_start,
                period_end=statement.date_end,
            )
        )
    return out


def _defer(
    unread: UnreadTransactions | None,
    transactions: list[ProviderTransaction],
    currency: str,
    ids: TransactionIds,
) -> DeferredTransactions | None:
    """Name each unread STMTTRN by FITID + fingerprint without converting it.

    Those without a FITID (their id hashes converted values) or with a FITID used twice
    (``#n`` suffixes compare converted values) are converted and mapped now, into
    ``transactions``, in file order.
    """
    if unread is None:
        return None
    piece = unread.pieces.__getitem__  # sliced from the text when needed, never all at once
    fitids = [piece_fitid(piece(i)) for i in range(len(unread))]
    ordered = sorted(fitids)  # repeated FITIDs, found in far less memory than a Counter
    repeated = {fitid for fitid, after in pairwise(ordered) if fitid == after}
    del ordered
    keys: list[tuple[str, str]] = []
    positions = array("q")  # 8 bytes per transaction, not an int object each
    for i, fitid in enumerate(fitids):
        if fitid and fitid not in repeated:
            keys.append((fitid, bank_fingerprint(currency, piece_digest(piece(i)))))
            positions.append(i)
        elif (txn := unread.convert(i)) is not None:
            transactions.append(map_bank_transaction(txn, currency, ids))
    unread.finish()  # parse_ofx has finished its warnings: count what these added

    def build(wanted: list[int]) -> Iterator[ProviderTransaction]:
        with paused_gc():
            for at in wanted:
                if (txn := unread.convert(positions[at], fingerprint_digest(keys[at][1]))) is not None:
                    yield map_bank_transaction(txn, currency, ids)
        unread.finish()  # "... and N more warnings" for those converted here

    return DeferredTransactions(keys=keys, build=build)


def _defer_entries(
    statement: OfxStatement,
    securities: _Securities,
    transactions: list[ProviderTransaction],
    currency: str,
    ids: TransactionIds,
) -> DeferredTransactions:
    """Name each unread investment entry by FITID + fingerprint, then let it go: its leaves,
    values and row are built again only if it is written.

    Entries without a FITID (their id hashes converted values) or whose FITID another item of
    the statement uses too (``#n`` suffixes compare converted values) are converted and
    mapped now, into ``transactions`` after the bank legs, merged in file order with the
    entries read eagerly (consumed from ``statement.investment_transactions``): the list
    the eager reader gives, less the deferred entries.
    """
    unread = statement.unread_entries
    assert unread is not None
    fitids: list[str | None] = []
    fingerprints: list[str] = []
    for i in range(len(unread)):
        fitid, id_type, unique_id, digest = unread.name(i)
        fitids.append(fitid)
        fingerprints.append(investment_fingerprint(currency, digest, securities.get(id_type, unique_id)))
    named = [fitid for fitid in fitids if fitid]
    named += (entry.fitid for entry in statement.investment_transactions if entry.fitid)
    named += (t.provider_transaction_id for t in transactions)  # the bank legs
    named.sort()
    repeated = {fitid for fitid, after in pairwise(named) if fitid == after}
    del named

    def eager(entry: OfxInvestmentTransaction | None) -> None:
        if entry is not None:
            security = securities.get(entry.unique_id_type, entry.unique_id)
            transactions.append(map_investment_transaction(entry, security, currency, ids))

    read = _drain(statement.investment_transactions)
    before = iter(unread.eager_before())
    upcoming = next(before, None)
    keys: list[tuple[str, str]] = []
    positions = array("q")
    for i, fitid in enumerate(fitids):
        while upcoming is not None and upcoming <= i:
            eager(next(read))
            upcoming = next(before, None)
        if fitid and fitid not in repeated:
            keys.append((fitid, fingerprints[i]))
            positions.append(i)
        else:
            eager(unread.convert(i))
    for entry in read:
        eager(entry)
    del fitids, fingerprints
    unread.finish()

    def build(wanted: list[int]) -> Iterator[ProviderTransaction]:
        with paused_gc():
            for at in wanted:
                entry = unread.convert(positions[at])
                if entry is not None:
                    security = securities.get(entry.unique_id_type, entry.unique_id)
                    yield map_investment_transaction(entry, security, currency, ids, keys[at][1])
        unread.finish()

    return DeferredTransactions(keys=keys, build=build)


def statement_currency(statement: OfxStatement) -> str:
    if statement.currency:
        return statement.currency
    declared = {t.currency for t in statement.transactions if t.currency}
    declared |= {t.currency for t in statement.investment_transactions if t.currency}
    return declared.pop() if len(declared) == 1 else DEFAULT_CURRENCY


def _account_type(statement: OfxStatement) -> tuple[AccountType, str]:
    if statement.kind == "credit_card":
        return AccountType.CREDIT_CARD, "Credit card"
    if statement.kind == "investment":
        if statement.is_retirement:
            return AccountType.RETIREMENT, statement.plan_name or "Retirement"
        return AccountType.BROKERAGE, "Brokerage"
    return _BANK_ACCOUNT_TYPES.get(statement.account_type or "", (AccountType.OTHER, "Bank account"))


def map_account(statement: OfxStatement, doc: OfxDocument) -> ProviderAccount:
    account_type, label = _account_type(statement)
    number = statement.account_id
    if statement.kind == "bank" and statement.bank_id:
        provider_id = f"{statement.bank_id}:{number}"
    else:
        provider_id = number
    raw = {
        "statement": statement.kind,
        "ACCTID": number,
        "BANKID": statement.bank_id,
        "BRANCHID": statement.branch_id,
        "BROKERID": statement.broker_id,
        "ACCTTYPE": statement.account_type,
        "CURDEF": statement.currency,
        "ORG": doc.institution_org,
        "FID": doc.institution_fid,
    }
    return ProviderAccount(
        provider_account_id=provider_id,
        name=f"{label} ••{number.replace(' ', '')[-4:]}",
        type=account_type,
        currency=statement_currency(statement),
        institution=doc.institution_org or statement.broker_id,
        balance=statement.ledger_balance,
        available_balance=statement.available_balance,
        balance_at=statement.ledger_balance_at or statement.available_balance_at or statement.date_end,
        raw={key: value for key, value in raw.items() if value},
    )


def _investment_balances(
    account: ProviderAccount,
    statement: OfxStatement,
    holdings: list[ProviderHolding] | None,
    warnings: list[str],
) -> None:
    if holdings is not None:
        account.holdings_value = sum(
            (
                _value_in_account_currency(position, holding, account.currency, warnings)
                for position, holding in zip(statement.positions, holdings, strict=True)
            ),
            Decimal(0),
        )
    account.cash_value = statement.available_cash
    if account.cash_value is not None or account.holdings_value is not None:
        account.balance = (account.cash_value or Decimal(0)) + (account.holdings_value or Decimal(0))
    account.balance_at = statement.as_of or statement.date_end
    for key, value in (
        ("MARGINBALANCE", statement.margin_balance),
        ("SHORTBALANCE", statement.short_balance),
        ("BUYPOWER", statement.buying_power),
    ):
        if value is not None:
            account.raw[key] = str(value)


def _value_in_account_currency(
    position: OfxPosition, holding: ProviderHolding, currency: str, warnings: list[str]
) -> Decimal:
    """A holding's market value in the account's currency: a position in another currency
    (its <CURRENCY>) is converted by its CURRATE; without a rate it cannot count towards the
    account's value (adding euros to dollars would be wrong), and a warning says so."""
    value = holding.market_value
    if value is None or holding.currency == currency:
        return value or Decimal(0)
    if position.currency_rate is not None:
        return value * position.currency_rate
    warnings.append(
        f"position {position.unique_id} is valued in {holding.currency} without an exchange rate "
        f"(<CURRATE>): its market value ({value}) is not counted in the account's value in {currency}"
    )
    return Decimal(0)


def map_position(position: OfxPosition, security: OfxSecurity | None, currency: str) -> ProviderHolding:
    """Short positions get a negative quantity and market value, whatever sign the file used."""
    quantity, market_value = position.units, position.market_value
    if market_value is None and position.unit_price is not None:
        market_value = quantity * position.unit_price
    if position.position_type == "SHORT":
        quantity = -abs(quantity)
        market_value = -abs(market_value) if market_value is not None else None
    id_type = position.unique_id_type
    return ProviderHolding(
        symbol=(security.ticker if security is not None else None) or position.unique_id,
        name=security.name if security is not None else None,
        cusip=position.unique_id if id_type == "CUSIP" else None,
        isin=position.unique_id if id_type == "ISIN" else None,
        asset_type=_ASSET_TYPES.get(position.kind, AssetType.OTHER),
        quantity=quantity,
        currency=position.currency or currency,
        price_currency=position.currency or currency,  # a position's <CURRENCY> prices it too
        current_price=position.unit_price,
        market_value=market_value,
        raw=clean_fields(position.fields) | {"ELEMENT": position.kind},
    )
