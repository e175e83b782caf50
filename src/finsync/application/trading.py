"""A connection's trading switches and limits, and the kill switch.

Trading is off until the connection's owner enables it (the API re-confirms their
password first). Halting cancels every open order at the broker, best effort per order:
the halt itself is committed first, so no new order gets through while cancels run.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any
from uuid import UUID

import structlog

from finsync.application.sync import session_of
from finsync.domain.entities import Connection, utcnow
from finsync.domain.enums import Capability
from finsync.domain.errors import InvalidInput, NotFound, ProviderError
from finsync.domain.ports import CredentialCipher, Now, OrderPort, ProviderGateway, UnitOfWorkFactory
from finsync.domain.trading import TradingSettings

log = structlog.get_logger(__name__)
MAX_SYMBOLS = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class TradingChange:
    """A PATCH of trading settings: only the fields in ``given`` change (None clears a limit)."""

    given: frozenset[str]
    enabled: bool | None = None
    max_order_notional: Decimal | None = None
    max_orders_per_day: int | None = None
    max_notional_per_day: Decimal | None = None
    symbols: list[str] | None = None


LIMIT_FIELDS = frozenset(f.name for f in fields(TradingChange)) - {"given"}


@dataclass(frozen=True, slots=True)
class Halted:
    settings: TradingSettings
    cancelled: list[UUID]
    failed: list[UUID]


def broker(providers: ProviderGateway, cipher: CredentialCipher, connection: Connection) -> OrderPort:
    """The connection's adapter as an order port; refused when its provider cannot trade."""
    if Capability.TRADING not in providers.capabilities(connection.provider):
        raise InvalidInput(f"{connection.provider} connections cannot trade")
    adapter = providers.adapter(connection.provider, session_of(connection, cipher))
    if not isinstance(adapter, OrderPort):  # pragma: no cover - check_adapter guarantees it
        raise InvalidInput(f"{connection.provider} connections cannot trade")
    return adapter


@dataclass(slots=True)
class _Kept:
    port: OrderPort
    fingerprint: tuple[str, str | None, bytes]
    users: int = 0
    retired: bool = False


class OrderPorts:
    """Each connection's order port, kept between orders. Building one per order cost a
    settings load, a credential decryption and an HTTP client (a fifth of an order's CPU),
    and a new client opens a new connection to the broker (TCP and TLS handshakes: round
    trips before the order). A port is rebuilt when the connection's provider, environment
    or (encrypted) credentials change; the least recently used beyond ``size`` are closed
    once no order uses them."""

    def __init__(self, providers: ProviderGateway, cipher: CredentialCipher, size: int = 256) -> None:
        self._providers, self._cipher, self._size = providers, cipher, size
        self._kept: OrderedDict[UUID, _Kept] = OrderedDict()

    @asynccontextmanager
    async def lease(self, connection: Connection) -> AsyncIterator[OrderPort]:
        fingerprint = (connection.provider, connection.environment, connection.credentials or b"")
        kept = self._kept.get(connection.id)
        if kept is None or kept.fingerprint != fingerprint:
            port = broker(self._providers, self._cipher, connection)  # may refuse: nothing kept
            if kept is not None:
                await self._retire(kept)
            kept = self._kept[connection.id] = _Kept(port, fingerprint)
            while len(self._kept) > self._size:
                await self._retire(self._kept.popitem(last=False)[1])
        self._kept.move_to_end(connection.id)
        kept.users += 1
        try:
            yield kept.port
        finally:
            kept.users -= 1
            if kept.retired and not kept.users:
                await kept.port.aclose()

    async def _retire(self, kept: _Kept) -> None:
        kept.retired = True
        if not kept.users:
            await kept.port.aclose()

    async def aclose(self) -> None:
        kept, self._kept = list(self._kept.values()), OrderedDict()
        for item in kept:
            await self._retire(item)


class TradingService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        providers: ProviderGateway,
        cipher: CredentialCipher,
        clock: Now = utcnow,
    ) -> None:
        self._uow, self._providers, self._cipher, self._clock = uow, providers, cipher, clock

    async def _connection(self, connection_id: UUID, user_id: UUID) -> Connection:
        async with self._uow() as uow:
            connection = await uow.connections.get(connection_id, user_id)
        if connection is None:
            raise NotFound("connection")
        if Capability.TRADING not in self._providers.capabilities(connection.provider):
            raise InvalidInput(f"{connection.provider} connections cannot trade")
        return connection

    async def get(self, connection_id: UUID, user_id: UUID) -> TradingSettings:
        await self._connection(connection_id, user_id)
        async with self._uow() as uow:
            stored = await uow.trading.settings(connection_id)
        return stored or TradingSettings(
            connection_id=connection_id, user_id=user_id, updated_at=self._clock()
        )

    async def configure(self, connection_id: UUID, user_id: UUID, change: TradingChange) -> TradingSettings:
        """Enable/disable trading and set limits (the caller re-confirmed the owner's password)."""
        await self._connection(connection_id, user_id)
        values = check_change(change)
        async with self._uow() as uow:
            current = await uow.trading.settings(connection_id, lock=True) or TradingSettings(
                connection_id=connection_id, user_id=user_id
            )
            for name, value in values.items():
                setattr(current, name, value)
            current.updated_at = self._clock()
            await uow.trading.save_settings(current)
            await uow.commit()
        log.info("trading_configured", connection_id=str(connection_id), enabled=current.enabled)
        return current

    async def halt(self, connection_id: UUID, user_id: UUID, actor: str) -> Halted:
        """Stop new orders now, then cancel the connection's open orders at the broker."""
        connection = await self._connection(connection_id, user_id)
        async with self._uow() as uow:
            current = await uow.trading.settings(connection_id, lock=True) or TradingSettings(
                connection_id=connection_id, user_id=user_id
            )
            current.halted, current.updated_at = True, self._clock()
            await uow.trading.save_settings(current)
            await uow.commit()
            open_orders = await uow.trading.open_orders(connection_id)
        log.warning("trading_halted", connection_id=str(connection_id), actor=actor)
        cancelled, failed = [], []
        if open_orders:
            from finsync.application.orders import cancel_at_broker  # one cancel path for both

            adapter = broker(self._providers, self._cipher, connection)
            try:
                for order in open_orders:
                    if order.broker_order_id is None:  # still being sent (or settled): not cancellable yet
                        failed.append(order.id)
                        continue
                    try:
                        await cancel_at_broker(self._uow, adapter, order, actor, self._clock)
                        cancelled.append(order.id)
                    except ProviderError:
                        failed.append(order.id)
            finally:
                await adapter.aclose()
        return Halted(current, cancelled, failed)

    async def resume(self, connection_id: UUID, user_id: UUID) -> TradingSettings:
        await self._connection(connection_id, user_id)
        async with self._uow() as uow:
            current = await uow.trading.settings(connection_id, lock=True)
            if current is None:
                current = TradingSettings(connection_id=connection_id, user_id=user_id)
            current.halted, current.updated_at = False, self._clock()
            await uow.trading.save_settings(current)
            await uow.commit()
        return current


def check_change(change: TradingChange) -> dict[str, Any]:
    unknown = change.given - LIMIT_FIELDS
    if unknown:
        raise InvalidInput(f"unknown trading settings: {', '.join(sorted(unknown))}")
    values = {name: getattr(change, name) for name in change.given}
    if "enabled" in values and values["enabled"] is None:
        raise InvalidInput("trading.enabled must be true or false")
    for name in ("max_order_notional", "max_notional_per_day"):
        value = values.get(name)
        if value is not None and (not value.is_finite() or value <= 0):
            raise InvalidInput(f"trading.{name} must be a positive amount")
    count = values.get("max_orders_per_day")
    if count is not None and count < 1:
        raise InvalidInput("trading.max_orders_per_day must be at least 1")
    symbols = values.get("symbols")
    if symbols is not None:
        cleaned = [s.strip() for s in symbols]
        if len(cleaned) > MAX_SYMBOLS or any(not s or len(s) > 64 for s in cleaned):
            raise InvalidInput(f"trading.symbols: at most {MAX_SYMBOLS} symbols of 1 to 64 characters")
        values["symbols"] = sorted(set(cleaned))
    return values
