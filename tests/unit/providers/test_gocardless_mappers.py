"""GoCardless payloads → records, transaction ids without a bank id, and the per-account budget."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from finsync.domain.enums import AccountType, TransactionStatus, TransactionSubtype, TransactionType
from finsync.domain.errors import BadData, RateLimited
from finsync.providers.budget import DAY, AccountBudget, rate_header
from finsync.providers.gocardless.mappers import (
    account_identities,
    account_identity,
    content_key,
    hashed_id,
    map_account,
    map_transactions,
)
from finsync.providers.gocardless.tokens import gocardless_error_message
from tests.fakes.clock import VirtualClock

pytestmark = pytest.mark.unit


def bal(kind: str, amount: str, currency: str = "EUR") -> dict[str, Any]:
    return {"balanceType": kind, "balanceAmount": {"amount": amount, "currency": currency}}


def tx(amount: str, text: str = "COFFEE", day: str = "2025-10-01", **extra: Any) -> dict[str, Any]:
    return {"bookingDate": day, "valueDate": day, "transactionAmount": {"amount": amount, "currency": "EUR"},
            "creditorName": "Cafe", "remittanceInformationUnstructured": text, **extra}  # fmt: skip


@pytest.mark.parametrize(
    ("types", "balance", "available"),
    [
        (["closingBooked", "interimAvailable", "expected"], "1.00", "2.00"),
        (["interimBooked", "closingBooked", "expected"], "1.00", "3.00"),
        (["expected", "closingAvailable"], "1.00", "1.00"),
        (["closingAvailable"], "1.00", "1.00"),  # no booked type at all: first entry, and it is available
        (["forwardAvailable"], "1.00", "1.00"),
    ],
)
def test_balance_precedence(types: list[str], balance: str, available: str) -> None:
    balances = [bal(kind, f"{i + 1}.00") for i, kind in enumerate(types)]
    account = map_account("acc-1", {"currency": "EUR"}, balances)
    assert account.balance == Decimal(balance)
    assert account.available_balance == Decimal(available)
    assert account.raw["balances"] == balances


def test_account_details_and_fallbacks() -> None:
    details = {
        "iban": "GB33BUKB20201555555555",
        "currency": "gbp",
        "cashAccountType": "SVGS",
        "product": "Saver",
    }
    account = map_account("acc-1", details, [bal("interimBooked", "-0.10", "GBP")], "SANDBOX")
    assert (account.name, account.type, account.currency, account.institution) == (
        "Saver",
        AccountType.SAVINGS,
        "GBP",
        "SANDBOX",
    )
    assert account.balance == Decimal("-0.10")
    bare = map_account("acc-2", None, [bal("expected", "5", "EUR")])
    assert (bare.name, bare.type, bare.currency) == ("Bank account", AccountType.OTHER, "EUR")
    with pytest.raises(BadData):
        map_account("acc-3", None, [])


def test_ids_prefer_bank_then_internal_then_hash() -> None:
    payload = {"transactions": {"booked": [tx("-1.00", transactionId="T1", internalTransactionId="I1"),
                                           tx("-2.00", internalTransactionId="I2"), tx("-3.00")],
                                "pending": [tx("-4.00")]}}  # fmt: skip
    ids = [t.provider_transaction_id for t in map_transactions(payload)]
    assert ids[:2] == ["T1", "I2"]
    assert ids[2].startswith("h:")
    assert ids[3].startswith("h:")
    statuses = [t.status for t in map_transactions(payload)]
    assert statuses == [TransactionStatus.SETTLED] * 3 + [TransactionStatus.PENDING]


def test_hash_is_stable_and_counts_identical_rows() -> None:
    twins = {"transactions": {"booked": [tx("-4.50"), tx("-4.50"), tx("-4.5", "OTHER")], "pending": []}}
    first = [t.provider_transaction_id for t in map_transactions(twins)]
    again = [t.provider_transaction_id for t in map_transactions(twins)]
    assert first == again
    assert len(set(first)) == 3  # identical coffees stay two rows via the occurrence index
    key = content_key(tx("-4.50"))
    assert key == "2025-10-01|-4.5|EUR|Cafe|COFFEE"
    assert content_key(tx("-4.5")) == key  # "-4.50" and "-4.5" are the same amount
    assert first[:2] == [hashed_id(key, 0), hashed_id(key, 1)]
    assert hashed_id(key, 0, pending=True) != hashed_id(key, 0)


def test_signs_types_and_exact_amounts() -> None:
    rows = [tx("0.10"), tx("0.20"), tx("-12.34", bankTransactionCode="PMNT-CCRD-POSD"),
            tx("0.05", bankTransactionCode="LDAS-CSLN-INTR"),
            tx("-1.00", bankTransactionCode="ACMT-MDOP-FEES")]  # fmt: skip
    mapped = map_transactions({"transactions": {"booked": rows}})
    assert mapped[0].amount + mapped[1].amount == Decimal("0.30")
    assert [(t.type, t.subtype) for t in mapped] == [
        (TransactionType.TRANSFER, TransactionSubtype.DEPOSIT),
        (TransactionType.TRANSFER, TransactionSubtype.DEPOSIT),
        (TransactionType.OTHER, TransactionSubtype.PURCHASE),
        (TransactionType.INCOME, TransactionSubtype.INTEREST),
        (TransactionType.FEE, TransactionSubtype.FEE),
    ]
    assert mapped[2].amount == Decimal("-12.34")
    assert mapped[0].transaction_date == date(2025, 10, 1)
    with pytest.raises(BadData):
        map_transactions(
            {"transactions": {"booked": [{"transactionAmount": {"amount": "x", "currency": "EUR"}}]}}
        )


def test_rate_headers_any_spelling() -> None:
    assert rate_header({"HTTP_X_RATELIMIT_ACCOUNT_SUCCESS_REMAINING": "2"}, "account-success-remaining") == 2
    assert (
        rate_header(httpx.Headers({"X-RateLimit-Account-Success-Reset": "60"}), "account-success-reset") == 60
    )
    assert rate_header({"x-ratelimit-remaining": "9"}, "account-success-remaining") is None


def test_budget_rolling_day_and_server_view() -> None:
    clock = VirtualClock()
    state: dict[str, Any] = {}
    budget = AccountBudget(state, clock)
    start = clock.now()
    for _ in range(4):
        budget.require([("a", "balances")])
        budget.record("a", "balances", {})
        clock.advance(60)
    with pytest.raises(RateLimited) as caught:
        budget.require([("a", "balances"), ("a", "transactions")])
    assert caught.value.retry_at == datetime.fromtimestamp(start + DAY, UTC)
    assert budget.can_call("a", "transactions")
    clock.advance(DAY - 240)
    assert budget.can_call("a", "balances")  # the first call left the rolling day

    fresh = AccountBudget({}, clock)
    fresh.record("b", "details", {"x-ratelimit-account-success-remaining": "0",
                                  "x-ratelimit-account-success-reset": "300"})  # fmt: skip
    assert fresh.available_at("b", "details") == clock.now() + 300
    fresh.record("c", "details", {"x-ratelimit-account-success-limit": "10"})
    assert fresh.can_call("c", "details")


def test_error_messages() -> None:
    flat = httpx.Response(400, json={"summary": "Invalid", "detail": "Bad institution", "status_code": 400})
    assert gocardless_error_message(flat) == "Invalid — Bad institution"
    field = httpx.Response(
        400, json={"date_from": {"summary": "Bad", "detail": "Too early"}, "status_code": 400}
    )
    assert gocardless_error_message(field) == "date_from: Too early"


def test_account_key_is_iban_then_resource_id_then_gocardless_id() -> None:
    iban = "GB33BUKB20201555555555"
    assert account_identity({"iban": iban, "resourceId": "r-1"}) == f"iban:{iban}"
    assert account_identity({"resourceId": "r-1"}) == "resource:r-1"
    long_a, long_b = account_identity({"resourceId": "x" * 400}), account_identity({"resourceId": "y" * 400})
    assert long_a is not None
    assert long_a.startswith("resource:sha256-")
    assert len(long_a) == len("resource:sha256-") + 64
    assert long_a != long_b
    assert account_identity({}) is None
    assert account_identity(None) is None
    keyed = map_account("acc-9", {"resourceId": "r-9", "currency": "EUR"}, [])
    assert keyed.provider_account_id == "resource:r-9"
    assert map_account("acc-9", {"currency": "EUR"}, []).provider_account_id == "acc-9"
    assert map_account("acc-9", {"currency": "EUR"}, [], key="stored").provider_account_id == "stored"


def test_currency_pockets_sharing_an_iban_get_one_key_each() -> None:
    iban = "LT123250000000000001"
    found = account_identities(
        {
            "a": {"iban": iban, "currency": "EUR"},
            "b": {"iban": iban, "currency": "usd"},
            "c": {"resourceId": "r-3"},
            "d": None,
        }
    )
    assert found == {"a": f"iban:{iban}:EUR", "b": f"iban:{iban}:USD", "c": "resource:r-3", "d": None}
