"""Positions for bots: read from the broker now (``live``) or as of the last sync, with each
symbol's realised P&L from the account's trades by FIFO lots and its unrealised P&L against
the FIFO cost of what is held, in the account's currency."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from finsync.application.orders import Caller
from finsync.application.sync import same_credentials, session_of
from finsync.domain.entities import Connection
from finsync.domain.enums import TransactionStatus, TransactionType
from finsync.domain.errors import InvalidInput, NotFound
from finsync.domain.fifo import FifoBook
from finsync.domain.gains import Trade
from finsync.domain.ports import (
    CredentialCipher,
    HoldingsSource,
    PageRequest,
    ProviderGateway,
    TransactionFilter,
    UnitOfWorkFactory,
)
from finsync.domain.records import ProviderAccount

PAGE = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class LivePosition:
    symbol: str
    quantity: Decimal
    currency: str  # the account's: of market_value, cost and both P&Ls
    price_currency: str  # of current_price (a share's own trading currency)
    current_price: Decimal | None
    market_value: Decimal | None
    fifo_cost: Decimal | None  # None: the trades finsync holds do not explain the quantity held
    realised_pnl: Decimal
    unrealised_pnl: Decimal | None


class LivePositionsService:
    def __init__(self, uow: UnitOfWorkFactory, providers: ProviderGateway, cipher: CredentialCipher) -> None:
        self._uow, self._providers, self._cipher = uow, providers, cipher

    async def positions(self, caller: Caller, account_id: UUID, *, live: bool) -> list[LivePosition]:
        async with self._uow() as uow:
            account = await uow.accounts.get(account_id, caller.user_id)
            connection = None if account is None else await uow.connections.get(account.connection_id)
            if account is None or connection is None:
                raise NotFound("account")
            caller.check_read(connection.id)
            # Pages come newest first: every page is read before any trade is booked, so the
            # older pages' buys are lots before the newer pages' sales match against them.
            booked: list[Trade] = []
            page = PageRequest(limit=PAGE)
            trades = TransactionFilter(account_id=account.id, type=TransactionType.TRADE)
            while True:
                found = await uow.transactions.find(caller.user_id, trades, page)
                booked.extend(
                    Trade(t.transaction_date, t.symbol, t.subtype, t.quantity, t.amount)
                    for t in found.items
                    if t.symbol and t.quantity and t.status is not TransactionStatus.CANCELLED
                )
                if found.next_key is None:
                    break
                page = PageRequest(limit=PAGE, after=found.next_key)
            book = FifoBook()
            book.apply(reversed(booked))  # oldest first
            stored = (
                []
                if live
                else (await uow.holdings.find(caller.user_id, account.id, PageRequest(limit=PAGE))).items
            )
        if live:
            session = session_of(connection, self._cipher)
            original = dict(session.credentials)
            adapter = self._providers.adapter(connection.provider, session)
            try:
                if not isinstance(adapter, HoldingsSource):
                    raise InvalidInput(f"{connection.provider} has no positions to read")
                target = ProviderAccount(
                    provider_account_id=account.provider_account_id,
                    name=account.name,
                    type=account.type,
                    currency=account.currency,
                )
                held = [
                    (h.symbol, h.quantity, h.price_currency or h.currency, h.current_price, h.market_value)
                    for h in await adapter.fetch_holdings(target)
                ]
            finally:
                await adapter.aclose()
                if session.credentials != original:  # a token refreshed (and maybe rotated) meanwhile
                    await self._keep_credentials(connection, session.credentials)
        else:
            held = [(h.symbol, h.quantity, h.price_currency, h.current_price, h.market_value) for h in stored]
        out = []
        for symbol, quantity, price_currency, price, value in held:
            explained = book.quantity(symbol) == quantity and symbol not in book.unmatched
            cost = book.cost(symbol) if explained else None
            out.append(
                LivePosition(
                    symbol=symbol,
                    quantity=quantity,
                    currency=account.currency,
                    price_currency=price_currency,
                    current_price=price,
                    market_value=value,
                    fifo_cost=cost,
                    realised_pnl=book.realised.get(symbol, Decimal(0)),
                    unrealised_pnl=None if cost is None or value is None else value - cost,
                )
            )
        return out

    async def _keep_credentials(self, connection: Connection, credentials: dict[str, Any]) -> None:
        """Store tokens the adapter renewed: a rotated refresh token spends the old one (Schwab),
        so the next sync could not log in with what was stored. A connection re-authorised or
        given new credentials meanwhile keeps those (a key rotation meanwhile changed no credentials)."""
        async with self._uow() as uow:
            current = await uow.connections.get(connection.id, lock=True)
            if current is None or not same_credentials(
                self._cipher, current.credentials, connection.credentials
            ):
                return
            current.credentials = self._cipher.encrypt(credentials)
            await uow.connections.save(current)
            await uow.commit()
