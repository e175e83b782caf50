"""Accounts, transactions, holdings, balance snapshots and net worth."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query

from finsync.api.deps import ContainerDep, CurrentUser, PageDep, UowDep
from finsync.api.errors import responses
from finsync.api.pagination import PageOut, to_page
from finsync.api.schemas import (
    AccountPublic,
    AccountRefOut,
    CurrencyTotalOut,
    HoldingPublic,
    NetWorthOut,
    SnapshotPublic,
    TransactionPublic,
)
from finsync.api.wire import QueryDate, QueryDateTime
from finsync.domain.entities import Account
from finsync.domain.enums import AccountType, TransactionStatus, TransactionSubtype, TransactionType
from finsync.domain.errors import InvalidInput, NotFound
from finsync.domain.ports import AccountFilter, TransactionFilter, UnitOfWork

router = APIRouter(tags=["data"])


async def _own_account(uow: UnitOfWork, account_id: UUID, user_id: UUID) -> Account:
    account = await uow.accounts.get(account_id, user_id)
    if account is None:
        raise NotFound("account")
    return account


@router.get("/accounts", response_model=PageOut[AccountPublic], responses=responses(NotFound))
async def list_accounts(
    user: CurrentUser,
    uow: UowDep,
    page: PageDep,
    connection_id: Annotated[UUID | None, Query(description="Only this connection's accounts")] = None,
    type: Annotated[AccountType | None, Query(description="Only accounts of this type")] = None,
) -> PageOut[AccountPublic]:
    """Your accounts across all connections."""
    if connection_id is not None and await uow.connections.get(connection_id, user.id) is None:
        raise NotFound("connection")
    filters = AccountFilter(connection_id=connection_id, type=type)
    return to_page(await uow.accounts.find(user.id, filters, page), AccountPublic)


@router.get("/accounts/{account_id}", response_model=AccountPublic, responses=responses(NotFound))
async def get_account(account_id: UUID, user: CurrentUser, uow: UowDep) -> AccountPublic:
    """One account with its latest balances."""
    return AccountPublic.model_validate(await _own_account(uow, account_id, user.id))


_NO_NUL = r"^[^\x00]*$"
TextQuery = Annotated[
    str | None,
    Query(max_length=200, pattern=_NO_NUL, description="Text in the description or symbol (any case)"),
]
SymbolQuery = Annotated[
    str | None, Query(max_length=64, pattern=_NO_NUL, description="Exactly this symbol, e.g. AAPL")
]


def _transaction_filter(
    date_from: Annotated[QueryDate | None, Query(description="On or after this date")] = None,
    date_to: Annotated[QueryDate | None, Query(description="On or before this date")] = None,
    type: TransactionType | None = None,
    subtype: TransactionSubtype | None = None,
    status: TransactionStatus | None = None,
    symbol: SymbolQuery = None,
    q: TextQuery = None,
) -> TransactionFilter:
    """The query parameters both transaction lists share, checked once."""
    if date_from and date_to and date_from > date_to:
        raise InvalidInput("date_from is after date_to")
    return TransactionFilter(
        date_from=date_from,
        date_to=date_to,
        type=type,
        subtype=subtype,
        status=status,
        symbol=symbol,
        text=q,
    )


TransactionFilterDep = Annotated[TransactionFilter, Depends(_transaction_filter)]


@router.get(
    "/transactions", response_model=PageOut[TransactionPublic], responses=responses(InvalidInput, NotFound)
)
async def list_transactions(
    user: CurrentUser,
    uow: UowDep,
    page: PageDep,
    filters: TransactionFilterDep,
    account_id: UUID | None = None,
) -> PageOut[TransactionPublic]:
    """Transactions across your accounts, newest first, with filters."""
    if account_id is not None:
        await _own_account(uow, account_id, user.id)
    found = await uow.transactions.find(user.id, replace(filters, account_id=account_id), page)
    return to_page(found, TransactionPublic)


@router.get(
    "/accounts/{account_id}/transactions",
    response_model=PageOut[TransactionPublic],
    responses=responses(NotFound, InvalidInput),
)
async def list_account_transactions(
    account_id: UUID, user: CurrentUser, uow: UowDep, page: PageDep, filters: TransactionFilterDep
) -> PageOut[TransactionPublic]:
    """One account's transactions, newest first."""
    await _own_account(uow, account_id, user.id)
    found = await uow.transactions.find(user.id, replace(filters, account_id=account_id), page)
    return to_page(found, TransactionPublic)


@router.get("/holdings", response_model=PageOut[HoldingPublic], responses=responses(NotFound))
async def list_holdings(
    user: CurrentUser,
    uow: UowDep,
    page: PageDep,
    account_id: Annotated[UUID | None, Query(description="Only this account's positions")] = None,
) -> PageOut[HoldingPublic]:
    """Positions across all your accounts, or one account's with `account_id`."""
    if account_id is not None:
        await _own_account(uow, account_id, user.id)
    return to_page(await uow.holdings.find(user.id, account_id, page), HoldingPublic)


@router.get(
    "/accounts/{account_id}/holdings", response_model=PageOut[HoldingPublic], responses=responses(NotFound)
)
async def list_account_holdings(
    account_id: UUID, user: CurrentUser, uow: UowDep, page: PageDep
) -> PageOut[HoldingPublic]:
    """One account's positions as of its last sync."""
    await _own_account(uow, account_id, user.id)
    return to_page(await uow.holdings.find(user.id, account_id, page), HoldingPublic)


@router.get(
    "/accounts/{account_id}/balance-snapshots",
    response_model=PageOut[SnapshotPublic],
    responses=responses(NotFound, InvalidInput),
)
async def list_snapshots(
    account_id: UUID,
    user: CurrentUser,
    uow: UowDep,
    page: PageDep,
    since: Annotated[QueryDateTime | None, Query(description="Taken at or after (no offset = UTC)")] = None,
    until: Annotated[QueryDateTime | None, Query(description="Taken at or before (no offset = UTC)")] = None,
) -> PageOut[SnapshotPublic]:
    """Balance history: one snapshot per sync or import, newest first."""
    await _own_account(uow, account_id, user.id)
    try:  # naive means UTC; far-out values must answer 422, not overflow into a 500
        since, until = (
            None if v is None else v.replace(tzinfo=v.tzinfo or UTC).astimezone(UTC) for v in (since, until)
        )
    except (OverflowError, ValueError) as exc:
        raise InvalidInput("since/until is out of range") from exc
    return to_page(await uow.snapshots.find(user.id, account_id, since, until, page), SnapshotPublic)


@router.get("/net-worth", response_model=NetWorthOut)
async def net_worth(user: CurrentUser, uow: UowDep, container: ContainerDep) -> NetWorthOut:
    """Latest known balance of every account, totalled per currency. Accounts whose balance is
    unknown are left out of the totals (never counted as 0) and listed in `accounts_without_balance`."""
    found = await uow.accounts.totals_by_currency(user.id)
    return NetWorthOut(
        totals=[CurrencyTotalOut.model_validate(t) for t in found.totals],
        accounts_without_balance=[AccountRefOut.model_validate(a) for a in found.without_balance],
        as_of=container.clock(),
    )
