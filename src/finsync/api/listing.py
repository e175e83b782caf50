"""Transaction pages written straight to JSON: the busiest responses, serialised once.

The list endpoints keep ``PageOut[TransactionOut]`` as their documented response model (the
OpenAPI document is unchanged), but build the body here from the repository's rows: no
entity, no pydantic validation of every row and again of the page, and each provider record
(``raw``) passed through as the JSON text the database holds. The values are formatted as
``finsync.api.wire`` formats them everywhere else; a test holds the two paths equal.

The database writes the items itself where it can (``listed_json``: on PostgreSQL reads in
the page's own statement, joined into one text; on SQLite each item in the page's
statement, joined in Python). A test holds those bytes equal to what this module writes
from the same rows, on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

from finsync.api.pagination import encode_cursor
from finsync.api.wire import decimal_text, utc_text
from finsync.domain.ports import (
    ListedTransaction,
    Page,
    PageRequest,
    TransactionFilter,
    UnitOfWork,
    WrittenPage,
)


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else decimal_text(value)


def _utc(value: datetime) -> datetime | str:
    """A UTC value as it is (orjson writes it with ``Z``), any other through ``utc_text``."""
    return value if value.tzinfo is UTC else utc_text(value)


def transaction_item(t: ListedTransaction) -> dict[str, Any]:
    """One item, keys in ``TransactionOut``'s order (dates orjson writes itself)."""
    return {
        "id": str(t.id),  # asyncpg's own UUID type, which orjson does not know
        "account_id": str(t.account_id),
        "provider_transaction_id": t.provider_transaction_id,
        "type": t.type,
        "subtype": t.subtype,
        "status": t.status,
        "amount": decimal_text(t.amount),
        "currency": t.currency,
        "transaction_date": t.transaction_date,
        "settlement_date": t.settlement_date,
        "symbol": t.symbol,
        "quantity": _decimal(t.quantity),
        "unit_price": _decimal(t.unit_price),
        "fees": _decimal(t.fees),
        "description": t.description,
        "raw": orjson.Fragment(t.raw_json),
        "created_at": _utc(t.created_at),
        "updated_at": _utc(t.updated_at),
        "category_id": None if t.category_id is None else str(t.category_id),
        "category_set_by": t.category_set_by,
        "tags": t.tags or [],
        "notes": t.notes,
        "excluded_from_analytics": bool(t.excluded_from_analytics),
    }


def transactions_body(page: Page[ListedTransaction]) -> bytes:
    """The page as ``PageOut[TransactionOut]`` JSON."""
    body = {
        "items": [transaction_item(t) for t in page.items],
        "next_cursor": encode_cursor(page.next_key) if page.next_key else None,
    }
    return orjson.dumps(body, option=orjson.OPT_UTC_Z)


def written_body(page: WrittenPage) -> bytes:
    """The page from the items the database wrote as JSON (``listed_json``, ``written``), not
    parsed."""
    cursor = encode_cursor(page.next_key) if page.next_key else None
    return orjson.dumps({"items": orjson.Fragment(f"[{page.items}]"), "next_cursor": cursor})


async def transactions_body_of(
    uow: UnitOfWork, user_id: UUID, filters: TransactionFilter, page: PageRequest
) -> tuple[bytes, int]:
    """The page's JSON body and how many items it holds: written by the database where it
    can (PostgreSQL reads), else here."""
    written = await uow.transactions.listed_json(user_id, filters, page)
    if written is not None:
        return written_body(written), written.count
    listed = await uow.transactions.listed(user_id, filters, page)
    return transactions_body(listed), len(listed.items)
