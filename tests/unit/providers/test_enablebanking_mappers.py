"""Enable Banking mappers: the documented balance order, signs, stable keys and row ids."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from finsync.domain.enums import TransactionStatus
from finsync.domain.errors import BadData
from finsync.providers.enablebanking.mappers import (
    account_identities,
    map_account,
    map_transactions,
    session_account,
)

pytestmark = pytest.mark.unit


def _balance(kind: str, amount: str) -> dict[str, Any]:
    return {"balance_type": kind, "balance_amount": {"amount": amount, "currency": "EUR"}}


def _account(**changes: Any) -> dict[str, Any]:
    return session_account({"uid": "u1", "currency": "EUR", "account_id": {"iban": "FI21"}} | changes)


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        (["ITAV", "XPCD", "CLBD", "ITBD"], "CLBD"),
        (["ITAV", "XPCD", "ITBD"], "ITBD"),
        (["ITAV", "OPBD", "XPCD"], "XPCD"),
        (["CLAV", "ITAV"], "ITAV"),
        (["PRCD"], "PRCD"),  # nothing known: the first given
    ],
)
def test_balance_follows_the_documented_order(kinds: list[str], expected: str) -> None:
    balances = [_balance(kind, str(i + 1)) for i, kind in enumerate(kinds)]
    account = map_account(_account(), balances, "iban:FI21", "Bank")
    assert account.balance == Decimal(kinds.index(expected) + 1)


def test_keys_prefer_the_hash_then_iban_then_uid_and_pockets_add_the_currency() -> None:
    accounts = [
        _account(uid="a", identification_hash="h1"),
        _account(uid="b"),
        _account(uid="c", account_id={}),
        _account(uid="d", account_id={"iban": "SE45"}, currency="EUR"),
        _account(uid="e", account_id={"iban": "SE45"}, currency="USD"),
    ]
    assert account_identities(accounts) == {
        "a": "hash:h1",
        "b": "iban:FI21",
        "c": "uid:c",
        "d": "iban:SE45:EUR",
        "e": "iban:SE45:USD",
    }


def _tx(**changes: Any) -> dict[str, Any]:
    return {
        "transaction_amount": {"amount": "5.00", "currency": "EUR"},
        "credit_debit_indicator": "DBIT",
        "status": "BOOK",
        "booking_date": "2026-01-02",
        "remittance_information": ["TEA"],
    } | changes


def test_signs_statuses_and_ids() -> None:
    rows = map_transactions(
        [
            _tx(),
            _tx(),
            _tx(credit_debit_indicator="CRDT", entry_reference="r1"),
            _tx(credit_debit_indicator=None, transaction_amount={"amount": "-2.5", "currency": "EUR"}),
            _tx(status="PDNG", entry_reference="p1"),
            _tx(status="RJCT"),
        ]
    )
    assert [r.amount for r in rows] == [Decimal("-5.00"), Decimal("-5.00"), Decimal("5.00"), Decimal("-2.5"),
                                        Decimal("-5.00")]  # fmt: skip
    assert rows[0].provider_transaction_id != rows[1].provider_transaction_id  # twins stay two rows
    assert rows[2].provider_transaction_id == "ref:r1"
    assert rows[4].status is TransactionStatus.PENDING
    assert rows[4].provider_transaction_id.startswith("h:")  # a pending reference may change
    assert map_transactions([_tx()])[0].provider_transaction_id == rows[0].provider_transaction_id


def test_unreadable_values_are_bad_data() -> None:
    with pytest.raises(BadData):
        map_transactions([_tx(transaction_amount={"amount": "lots", "currency": "EUR"})])
    with pytest.raises(BadData):
        map_transactions([_tx(booking_date=None)])
