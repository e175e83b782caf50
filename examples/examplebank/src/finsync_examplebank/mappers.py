"""Example Bank wire → finsync records. Pure: no I/O; amounts exact (strings on the wire)."""

from typing import Any

from finsync.domain.enums import AccountType, TransactionStatus, TransactionSubtype, TransactionType
from finsync.domain.money import currency_code
from finsync.domain.records import ProviderAccount, ProviderTransaction
from finsync.providers.common import Wire

WIRE = Wire("examplebank")
TYPES = {"current": AccountType.CHECKING, "savings": AccountType.SAVINGS}


def map_account(item: dict[str, Any]) -> ProviderAccount:
    return ProviderAccount(
        provider_account_id=str(item["id"]),
        name=str(item.get("name") or "Example Bank account"),
        type=TYPES.get(str(item.get("type")), AccountType.OTHER),
        currency=currency_code(str(item["currency"])),
        institution="Example Bank",
        balance=WIRE.optional(item.get("balance"), "balance"),
        available_balance=WIRE.optional(item.get("available"), "available"),
        raw=item,
    )


def map_transaction(item: dict[str, Any], currency: str) -> ProviderTransaction:
    amount = WIRE.number(item.get("amount"), "amount")
    return ProviderTransaction(
        provider_transaction_id=str(item["id"]),
        type=TransactionType.TRANSFER,
        subtype=TransactionSubtype.DEPOSIT if amount > 0 else TransactionSubtype.WITHDRAWAL,
        amount=amount,
        currency=currency,
        transaction_date=WIRE.day(item.get("booked_at")),
        status=TransactionStatus.PENDING if item.get("pending") else TransactionStatus.SETTLED,
        description=item.get("description"),
        raw=item,
    )
