"""Builders for test data: realistic records with exact Decimals."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from finsync.bootstrap import Container
from finsync.domain.entities import Connection, User
from finsync.domain.enums import (
    AccountType,
    AssetType,
    ConnectionStatus,
    TransactionStatus,
    TransactionSubtype,
    TransactionType,
)
from finsync.domain.records import ProviderAccount, ProviderHolding, ProviderTransaction
from finsync.domain.trading import Order, OrderEvent, OrderSide, OrderType, TimeInForce


def account(pid: str = "acc-1", **kw: Any) -> ProviderAccount:
    values: dict[str, Any] = {
        "provider_account_id": pid,
        "name": f"Account {pid}",
        "type": AccountType.CHECKING,
        "currency": "GBP",
        "balance": Decimal("1234.56"),
        "available_balance": Decimal("1200.00"),
    }
    return ProviderAccount(**(values | kw))


def holding(symbol: str = "VWRL", **kw: Any) -> ProviderHolding:
    values: dict[str, Any] = {
        "symbol": symbol,
        "quantity": Decimal("10.5"),
        "currency": "GBP",
        "asset_type": AssetType.ETF,
        "market_value": Decimal("1050.25"),
    }
    return ProviderHolding(**(values | kw))


def txn(pid: str, amount: str = "-12.34", day: date = date(2026, 1, 15), **kw: Any) -> ProviderTransaction:
    values: dict[str, Any] = {
        "provider_transaction_id": pid,
        "type": TransactionType.TRANSFER,
        "subtype": TransactionSubtype.WITHDRAWAL,
        "amount": Decimal(amount),
        "currency": "GBP",
        "transaction_date": day,
        "status": TransactionStatus.SETTLED,
        "description": f"Payment {pid}",
        "raw": {"id": pid, "amount": amount},
    }
    return ProviderTransaction(**(values | kw))


SEEDED_PASSWORD = "correct horse battery staple"


async def seed_user(container: Container, email: str = "ada@example.com") -> User:
    return await container.user_auth.register(email, SEEDED_PASSWORD)


async def seed_connection(container: Container, user: User, provider: str = "memory") -> Connection:
    connection = Connection(
        user_id=user.id,
        provider=provider,
        name="Test connection",
        status=ConnectionStatus.ACTIVE,
        credentials=container.cipher.encrypt({"token": "fake-token-for-tests"}),
    )
    async with container.uow() as uow:
        await uow.connections.add(connection)
        await uow.commit()
    return connection


def order(user_id: UUID, connection_id: UUID, account_id: UUID, **kw: Any) -> Order:
    """A market order to buy one AAPL, as a user placed it (not stored)."""
    values: dict[str, Any] = {
        "idempotency_key": "seeded-order",
        "request_digest": "0" * 64,
        "symbol": "AAPL",
        "side": OrderSide.BUY,
        "type": OrderType.MARKET,
        "time_in_force": TimeInForce.DAY,
        "currency": "USD",
        "created_by": "user",
        "quantity": Decimal("1"),
    }
    return Order(user_id=user_id, connection_id=connection_id, account_id=account_id, **(values | kw))


async def seed_order(container: Container, user_id: UUID, connection_id: UUID, account_id: UUID) -> UUID:
    """An order as just stored (pending_submit), without any broker: for isolation and export tests."""
    order_ = order(user_id, connection_id, account_id)
    async with container.uow() as uow:
        assert await uow.trading.add_order(order_)
        await uow.trading.add_events(
            OrderEvent(
                user_id=user_id, order_id=order_.id, kind="request", actor="user", data={"symbol": "AAPL"}
            )
        )
        await uow.commit()
    return order_.id
