"""Accounts, transactions, holdings, balance snapshots and net worth."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from finsync.api import valued
from finsync.api.analytics_schemas import AccountValued, HoldingValued, NetWorthValued, TransactionOut
from finsync.api.deps import ContainerDep, CurrentUser, PageDep, UowDep, bounded
from finsync.api.errors import responses
from finsync.api.listing import transactions_body_of
from finsync.api.pagination import M, PageOut, encode_cursor, to_page
from finsync.api.routers.analytics import CurrencyQuery
from finsync.api.schemas import SnapshotPublic
from finsync.api.wire import QueryDate, QueryDateTime
from finsync.bootstrap import Container
from finsync.domain.entities import Account
from finsync.domain.enums import AccountType, TransactionStatus, TransactionSubtype, TransactionType
from finsync.domain.errors import InvalidInput, NotFound
from finsync.domain.ports import AccountFilter, Page, PageRequest, TransactionFilter, UnitOfWork

router = APIRouter(tags=["data"])


async def _own_account(uow: UnitOfWork, account_id: UUID, user_id: UUID) -> Account:
    account = await uow.accounts.get(account_id, user_id)
    if account is None:
        raise NotFound("account")
    return account


@router.get("/accounts", response_model=PageOut[AccountValued], responses=responses(NotFound, InvalidInput))
@bounded
async def list_accounts(
    user: CurrentUser,
    uow: UowDep,
    page: PageDep,
    container: ContainerDep,
    connection_id: Annotated[UUID | None, Query(description="Only this connection's accounts")] = None,
    type: Annotated[AccountType | None, Query(description="Only accounts of this type")] = None,
    currency: CurrencyQuery = None,
) -> PageOut[AccountValued]:
    """Your accounts across all connections (with ?currency=, each balance converted)."""
    if connection_id is not None and await uow.connections.get(connection_id, user.id) is None:
        raise NotFound("connection")
    filters = AccountFilter(connection_id=connection_id, type=type)
    found = await uow.accounts.find(user.id, filters, page)
    return _page(found, await valued.accounts_in(uow, container, found.items, currency))


@router.get(
    "/accounts/{account_id}", response_model=AccountValued, responses=responses(NotFound, InvalidInput)
)
@bounded
async def get_account(
    account_id: UUID, user: CurrentUser, uow: UowDep, container: ContainerDep, currency: CurrencyQuery = None
) -> AccountValued:
    """One account with its latest balances (with ?currency=, converted)."""
    account = await _own_account(uow, account_id, user.id)
    return (await valued.accounts_in(uow, container, [account], currency))[0]


_NO_NUL = r"^[^\x00]*$"
TextQuery = Annotated[
    str | None,
    Query(max_length=200, pattern=_NO_NUL, description="Text in the description or symbol (any case)"),
]
SymbolQuery = Annotated[
    str | None, Query(max_length=64, pattern=_NO_NUL, description="Exactly this symbol, e.g. AAPL")
]


async def _transaction_filter(
    date_from: Annotated[QueryDate | None, Query(description="On or after this date")] = None,
    date_to: Annotated[QueryDate | None, Query(description="On or before this date")] = None,
    type: TransactionType | None = None,
    subtype: TransactionSubtype | None = None,
    status: TransactionStatus | None = None,
    symbol: SymbolQuery = None,
    q: TextQuery = None,
    category_id: Annotated[UUID | None, Query(description="A category and its subcategories")] = None,
    tag: Annotated[
        str | None, Query(max_length=40, pattern=_NO_NUL, description="Transactions carrying this tag")
    ] = None,
) -> TransactionFilter:
    """The query parameters both transaction lists share, checked once (async: no thread-pool
    hop per request)."""
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
        category_ids=None if category_id is None else (category_id,),
        tag=None if tag is None else tag.strip().lower(),
    )


TransactionFilterDep = Annotated[TransactionFilter, Depends(_transaction_filter)]


async def _with_subcategories(
    uow: UnitOfWork, container: ContainerDep, user_id: UUID, filters: TransactionFilter
) -> TransactionFilter:
    if not filters.category_ids:
        return filters
    ids = await container.labels.category_ids(uow, user_id, filters.category_ids[0])
    return replace(filters, category_ids=ids)


@router.get(
    "/transactions", response_model=PageOut[TransactionOut], responses=responses(InvalidInput, NotFound)
)
@bounded
async def list_transactions(
    request: Request,
    user: CurrentUser,
    uow: UowDep,
    page: PageDep,
    filters: TransactionFilterDep,
    account_id: UUID | None = None,
) -> Response:
    """Transactions across your accounts, newest first, with filters (category, tag, ...)."""
    return await _transactions(uow, request, user.id, replace(filters, account_id=account_id), page)


@router.get(
    "/accounts/{account_id}/transactions",
    response_model=PageOut[TransactionOut],
    responses=responses(NotFound, InvalidInput),
)
@bounded
async def list_account_transactions(
    request: Request,
    account_id: UUID,
    user: CurrentUser,
    uow: UowDep,
    page: PageDep,
    filters: TransactionFilterDep,
) -> Response:
    """One account's transactions, newest first."""
    return await _transactions(uow, request, user.id, replace(filters, account_id=account_id), page)


async def _transactions(
    uow: UnitOfWork, request: Request, user_id: UUID, filters: TransactionFilter, page: PageRequest
) -> Response:
    """A page of the user's transactions (of one of their accounts, if ``filters`` name one).

    The page query itself checks the account's owner, so a page with rows needs no separate
    account look-up; only an empty one asks whether the account exists (404) or is empty.
    The container comes from the app, not ``ContainerDep``: a dependency level less a page."""
    container: Container = request.app.state.container
    filters = await _with_subcategories(uow, container, user_id, filters)
    body, count = await transactions_body_of(uow, user_id, filters, page)
    if not count and filters.account_id is not None:
        await _own_account(uow, filters.account_id, user_id)
    return Response(body, media_type="application/json")


@router.get("/holdings", response_model=PageOut[HoldingValued], responses=responses(NotFound, InvalidInput))
@bounded
async def list_holdings(
    user: CurrentUser,
    uow: UowDep,
    page: PageDep,
    container: ContainerDep,
    account_id: Annotated[UUID | None, Query(description="Only this account's positions")] = None,
    currency: CurrencyQuery = None,
) -> PageOut[HoldingValued]:
    """Positions across all your accounts, or one account's with `account_id` (with ?currency=,
    valued at market closes where known)."""
    if account_id is not None:
        await _own_account(uow, account_id, user.id)
    found = await uow.holdings.find(user.id, account_id, page)
    return _page(found, await valued.holdings_in(uow, container, found.items, currency))


@router.get(
    "/accounts/{account_id}/holdings",
    response_model=PageOut[HoldingValued],
    responses=responses(NotFound, InvalidInput),
)
@bounded
async def list_account_holdings(
    account_id: UUID,
    user: CurrentUser,
    uow: UowDep,
    page: PageDep,
    container: ContainerDep,
    currency: CurrencyQuery = None,
) -> PageOut[HoldingValued]:
    """One account's positions as of its last sync (with ?currency=, valued)."""
    await _own_account(uow, account_id, user.id)
    found = await uow.holdings.find(user.id, account_id, page)
    return _page(found, await valued.holdings_in(uow, container, found.items, currency))


@router.get(
    "/accounts/{account_id}/balance-snapshots",
    response_model=PageOut[SnapshotPublic],
    responses=responses(NotFound, InvalidInput),
)
@bounded
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


@router.get("/net-worth", response_model=NetWorthValued, responses=responses(InvalidInput))
async def net_worth(
    user: CurrentUser, uow: UowDep, container: ContainerDep, currency: CurrencyQuery = None
) -> NetWorthValued:
    """Net worth in your base currency (or ?currency=): assets, liabilities, breakdowns, and the
    totals of known balances per currency. Accounts whose balance is unknown are left out of the
    totals (never counted as 0) and listed in `accounts_without_balance`; accounts without a rate
    are listed, not summed."""
    return await valued.net_worth(uow, container, user, currency)


def _page(found: Page[Any], items: list[M]) -> PageOut[M]:
    return PageOut[M](items=items, next_cursor=encode_cursor(found.next_key) if found.next_key else None)
