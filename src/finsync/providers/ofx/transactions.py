"""OFX transactions → ``ProviderTransaction``. Pure: no I/O, no clock.

Sign convention: ``amount`` > 0 is money into the account, which is already how OFX
writes ``TRNAMT`` and ``TOTAL``, so amounts are passed through unchanged. Trade
quantities are absolute (the subtype says buy or sell); ``fees`` is commission + fees.

Bank ``TRNTYPE`` → (type, subtype):

==========================================  =============================================
CREDIT, DEP, DIRECTDEP, DEBIT, ATM, CASH     transfer / deposit (in) or withdrawal (out)
XFER                                         transfer / transfer_in or transfer_out
POS                                          other / purchase (refund when money comes in)
CHECK, PAYMENT, REPEATPMT, DIRECTDEBIT       other / payment (transfer / deposit when in)
INT, DIV                                     income / interest, dividend
FEE, SRVCHG                                  fee / fee
HOLD                                         other / other, status pending
OTHER and anything unknown                   other / other
==========================================  =============================================
"""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal

from finsync.domain.enums import TransactionStatus, TransactionSubtype, TransactionType
from finsync.domain.records import ProviderTransaction
from finsync.providers.ofx.model import OfxInvestmentTransaction, OfxSecurity, OfxTransaction, clean_fields

T, S = TransactionType, TransactionSubtype
_CREDITS = frozenset({"CREDIT", "DEP", "DIRECTDEP"})
_SIGNED = _CREDITS | {"DEBIT", "ATM", "CASH"}
_PAYMENTS = frozenset({"CHECK", "PAYMENT", "REPEATPMT", "DIRECTDEBIT"})
_FIXED = {
    "INT": (T.INCOME, S.INTEREST),
    "DIV": (T.INCOME, S.DIVIDEND),
    "FEE": (T.FEE, S.FEE),
    "SRVCHG": (T.FEE, S.FEE),
}
_PENDING, _SETTLED = TransactionStatus.PENDING, TransactionStatus.SETTLED
_KINDS: dict[tuple[str, bool], tuple[TransactionType, TransactionSubtype]] = {}
_KINDS_MAX = 256
# Part of every fingerprint: bump it when the mapping of a bank transaction changes, so that
# re-importing a file rewrites the rows an older mapping stored.
FINGERPRINT_VERSION = "ofx1"
# The same for investment entries named without mapping them (``investment_fingerprint``).
INVESTMENT_FINGERPRINT_VERSION = "ofxi1"
_INCOME = {"DIV": S.DIVIDEND, "CGLONG": S.DIVIDEND, "CGSHORT": S.DIVIDEND, "INTEREST": S.INTEREST}


class TransactionIds:
    """``provider_transaction_id`` for one account: the FITID, or for banks that omit it
    ``"h:" + sha256(date|amount|payee|memo|n)[:32]`` where ``n`` counts earlier identical
    (date, amount, payee, memo) rows of the same account in file order. Two identical
    coffees on one day stay two rows, and re-importing the same file yields the same ids."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str, str, str], int] = {}

    def __call__(self, fitid: str | None, when: date, amount: Decimal | None, payee: str, memo: str) -> str:
        if fitid:
            return fitid
        canonical = "" if amount is None else format(amount.normalize(), "f")
        key = (when.isoformat(), canonical, payee, memo)
        occurrence = self._seen.get(key, 0)
        self._seen[key] = occurrence + 1
        digest = hashlib.sha256("|".join((*key, str(occurrence))).encode()).hexdigest()
        return "h:" + digest[:32]


def bank_fingerprint(currency: str, digest: str) -> str:
    """What decides a mapped bank transaction: its source text, the account currency and
    the mapping itself (its version)."""
    return f"{FINGERPRINT_VERSION}|{currency}|{digest}"


def investment_fingerprint(currency: str, digest: str, security: OfxSecurity | None) -> str:
    """What decides a mapped investment entry: its element name and source text (``digest``),
    the account currency, the security's ticker and name it takes from the SECLIST, and the
    mapping's version. Short enough for the store (at most 64 characters)."""
    named = f"{security.ticker or ''}\x00{security.name or ''}" if security is not None else "\x01"
    listed = hashlib.blake2b(named.encode(), digest_size=4).hexdigest()
    return f"{INVESTMENT_FINGERPRINT_VERSION}|{currency}|{listed}{digest}"


def fingerprint_digest(fingerprint: str) -> str:
    """The digest inside a :func:`bank_fingerprint`."""
    return fingerprint[fingerprint.rindex("|") + 1 :]


def bank_kind(trntype: str, amount: Decimal) -> tuple[TransactionType, TransactionSubtype]:
    incoming = amount > 0 or (amount == 0 and trntype in _CREDITS)
    if trntype in _SIGNED:
        return T.TRANSFER, S.DEPOSIT if incoming else S.WITHDRAWAL
    if trntype == "XFER":
        return T.TRANSFER, S.TRANSFER_IN if incoming else S.TRANSFER_OUT
    if trntype == "POS":
        return (T.OTHER, S.REFUND) if incoming else (T.OTHER, S.PURCHASE)
    if trntype in _PAYMENTS:
        return (T.TRANSFER, S.DEPOSIT) if incoming else (T.OTHER, S.PAYMENT)
    return _FIXED.get(trntype, (T.OTHER, S.OTHER))


def _describe(*parts: str | None) -> str | None:
    kept: list[str] = []
    for part in parts:
        if part and part not in kept:
            kept.append(part)
    return " / ".join(kept) or None


def _raw(fields: dict[str, str], **extra: str) -> dict[str, str]:
    raw = clean_fields(fields)
    raw.update(extra)
    return raw


def _bank_kind_cached(trntype: str, amount: Decimal) -> tuple[TransactionType, TransactionSubtype]:
    """``bank_kind``, memoised on (trntype, incoming): the only inputs it depends on."""
    key = (trntype, amount > 0 or (amount == 0 and trntype in _CREDITS))
    kind = _KINDS.get(key)
    if kind is None:
        if len(_KINDS) >= _KINDS_MAX:  # TRNTYPE comes from the file: keep the memo bounded
            _KINDS.clear()
        kind = _KINDS[key] = bank_kind(trntype, amount)
    return kind


def map_bank_transaction(txn: OfxTransaction, currency: str, ids: TransactionIds) -> ProviderTransaction:
    # The mapper's per-transaction hot path.
    trntype, amount, name, memo = txn.trntype, txn.amount, txn.name, txn.memo
    kind, subtype = _bank_kind_cached(trntype, amount)
    posted = txn.posted.date()
    user_date = txn.user_date
    when = user_date.date() if user_date is not None else posted
    # ``_describe(name, memo)``, inlined; ``txn.fields`` is already tidy (see bank_transaction).
    description = (f"{name} / {memo}" if memo and memo != name else name) if name else memo or None
    return ProviderTransaction(
        provider_transaction_id=txn.fitid or ids(txn.fitid, posted, amount, name or "", memo or ""),
        type=kind,
        subtype=subtype,
        amount=amount,
        currency=txn.currency or currency,
        transaction_date=when,
        settlement_date=posted if posted != when else None,
        status=_PENDING if trntype == "HOLD" else _SETTLED,
        description=description,
        raw=txn.fields,  # shared, not copied: neither side changes it
        fingerprint=bank_fingerprint(currency, txn.digest) if txn.digest else None,
    )


def _abs_sum(*values: Decimal | None) -> Decimal | None:
    present = [abs(value) for value in values if value is not None]
    return sum(present, Decimal(0)) if present else None


def investment_kind(txn: OfxInvestmentTransaction) -> tuple[TransactionType, TransactionSubtype]:
    kind = txn.kind
    if kind.startswith("BUY"):
        return T.TRADE, S.BUY
    if kind.startswith("SELL"):
        return T.TRADE, S.SELL
    if kind == "INCOME":
        return T.INCOME, _INCOME.get(txn.income_type or "", S.OTHER)
    if kind == "REINVEST":
        return T.TRADE, S.REINVEST
    if kind == "TRANSFER":
        outgoing = txn.transfer_action == "OUT" or (txn.transfer_action is None and (txn.units or 0) < 0)
        return T.TRANSFER, S.TRANSFER_OUT if outgoing else S.TRANSFER_IN
    if kind == "SPLIT":
        return T.OTHER, S.SPLIT
    if kind == "INVEXPENSE":
        return T.FEE, S.FEE
    if kind == "MARGININTEREST":
        return T.FEE, S.INTEREST
    return T.OTHER, S.OTHER


def map_investment_transaction(
    txn: OfxInvestmentTransaction,
    security: OfxSecurity | None,
    currency: str,
    ids: TransactionIds,
    fingerprint: str | None = None,
) -> ProviderTransaction:
    """``fingerprint``: the entry's :func:`investment_fingerprint` when it was named by it."""
    kind, subtype = investment_kind(txn)
    fees = _abs_sum(txn.commission, txn.fees)
    quantity = abs(txn.units) if txn.units is not None else None
    if subtype is S.SPLIT and txn.new_units is not None and txn.old_units is not None:
        quantity = txn.new_units - txn.old_units
    amount = txn.total
    if amount is None and kind is T.TRADE and quantity is not None and txn.unit_price is not None:
        gross = quantity * txn.unit_price
        amount = gross - (fees or 0) if subtype is S.SELL else -gross - (fees or 0)
    if amount is None:
        amount = Decimal(0)  # security transfers and splits move no cash
    symbol = (security.ticker if security is not None else None) or txn.unique_id
    traded = txn.trade_date.date()
    return ProviderTransaction(
        provider_transaction_id=ids(txn.fitid, traded, amount, txn.unique_id or "", txn.memo or ""),
        type=kind,
        subtype=subtype,
        amount=amount,
        currency=txn.currency or currency,
        transaction_date=traded,
        settlement_date=txn.settle_date.date() if txn.settle_date is not None else None,
        symbol=symbol,
        quantity=quantity,
        unit_price=txn.unit_price,
        fees=fees,
        description=_describe(txn.memo, security.name if security is not None else None) or txn.kind,
        raw=_raw(txn.fields, ELEMENT=txn.kind),
        fingerprint=fingerprint,
    )
