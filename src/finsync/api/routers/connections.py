"""Connections, their sync runs, and manual syncs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, status
from fastapi.responses import JSONResponse

from finsync.api.deps import ClientDep, ContainerDep, CurrentUser, PageDep, PresentDep, UowDep, bounded
from finsync.api.errors import responses
from finsync.api.idempotency import IdempotencyKey, answer, digest, respond
from finsync.api.pagination import PageOut, encode_cursor, to_page
from finsync.api.schemas import (
    ConnectionCreate,
    ConnectionCreated,
    ConnectionPublic,
    ConnectionUpdate,
    SyncRunPublic,
)
from finsync.application.connections import ExpiryChange, ScheduleChange
from finsync.application.idempotency import Answer
from finsync.application.trading import TradingChange, check_change
from finsync.domain.entities import Connection
from finsync.domain.enums import ConnectionStatus, SyncTrigger
from finsync.domain.errors import (
    Conflict,
    InvalidInput,
    NeedsReauthorization,
    NotFound,
    ProviderAuthError,
    ProviderNotAvailable,
    RateLimited,
    TooManyAttempts,
    Unavailable,
    WrongPassword,
)
from finsync.domain.webhooks import attention as needs

router = APIRouter(tags=["connections"])


@router.get("/connections", response_model=PageOut[ConnectionPublic])
@bounded
async def list_connections(
    user: CurrentUser,
    uow: UowDep,
    page: PageDep,
    container: ContainerDep,
    status: Annotated[ConnectionStatus | None, Query()] = None,
    attention: Annotated[
        bool | None,
        Query(
            description="true: only connections that need you (`attention` is not null: "
            "needs_reauth, failing, expiring within 7 days, rate_limited); false or absent: all"
        ),
    ] = None,
) -> PageOut[ConnectionPublic]:
    """Your connections, oldest first; each says whether and why it needs you (`attention`)."""
    now = container.clock()
    found = await uow.connections.find(user.id, page, status, now if attention else None)
    items = [public(c, now) for c in found.items]
    return PageOut[ConnectionPublic](
        items=items, next_cursor=encode_cursor(found.next_key) if found.next_key else None
    )


def public(connection: Connection, now: datetime) -> ConnectionPublic:
    out = ConnectionPublic.model_validate(connection)
    out.attention = needs(connection, now)
    return out


@router.post(
    "/connections",
    status_code=status.HTTP_201_CREATED,
    response_model=ConnectionCreated,
    responses=responses(InvalidInput, ProviderNotAvailable, ProviderAuthError, Unavailable, Conflict),
)
async def create_connection(
    body: ConnectionCreate, user: CurrentUser, container: ContainerDep, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Connect a provider. API-key providers: credentials are checked with one call before anything
    is stored (a rejected key answers 422 with the provider's reason), then the first sync starts.
    A login that is already connected answers 409 with the existing connection's `connection_id`."""

    async def run() -> Answer:
        created = await container.connections.create(
            user.id, body.provider, body.name, body.environment, body.credentials, body.options
        )
        run_id = created.sync_run.id if created.sync_run else None
        connection, url = created.connection, created.authorization_url
        out = _created(connection, run_id, url, container.clock())
        return answer(status.HTTP_201_CREATED, out, connection.id)

    request = digest("POST", "/connections", body.model_dump_json().encode())
    return respond(await container.idempotency.run(user.id, idempotency_key, request, run))


def _created(
    connection: Connection, run_id: UUID | None, url: str | None, now: datetime
) -> ConnectionCreated:
    fields = public(connection, now).model_dump()
    return ConnectionCreated.model_validate(fields | {"sync_run_id": run_id, "authorization_url": url})


@router.patch(
    "/connections/{connection_id}",
    response_model=ConnectionPublic,
    responses=responses(
        NotFound, InvalidInput, ProviderAuthError, Unavailable, WrongPassword, TooManyAttempts
    ),
)
async def update_connection(
    connection_id: UUID, body: ConnectionUpdate, user: CurrentUser, container: ContainerDep, client: ClientDep
) -> ConnectionPublic:
    """Rename a connection, change its sync schedule (`sync_interval_minutes`, `sync_enabled`),
    set when an API key must be renewed (`expires_at`), replace its credentials (validated
    with the provider first), or set its trading switches and limits (`trading`, with your
    `password`; see docs/trading.md). An interval outside the provider's bounds answers 422 and
    changes nothing."""
    fields = body.model_fields_set
    trading = None
    if body.trading is not None:
        trading = TradingChange(given=frozenset(body.trading.model_fields_set), **body.trading.model_dump())
        check_change(trading)  # refused before anything is stored
        if not body.password:
            raise InvalidInput("changing trading settings needs your password")
        await container.user_auth.confirm_password(user, body.password, client)
        await container.trading.get(connection_id, user.id)  # a connection that can trade
    fields = fields - {"trading", "password"}
    schedule = None
    if {"sync_interval_minutes", "sync_enabled"} & fields:
        schedule = ScheduleChange(
            interval_set="sync_interval_minutes" in fields,
            interval=body.sync_interval_minutes,
            enabled=body.sync_enabled,
        )
    expiry = ExpiryChange(body.expires_at) if "expires_at" in fields else None
    connection = await container.connections.update(
        connection_id, user.id, body.name, body.credentials, schedule, expiry
    )
    if trading is not None:
        await container.trading.configure(connection_id, user.id, trading)
    return public(connection, container.clock())


@router.get("/connections/{connection_id}", response_model=ConnectionPublic, responses=responses(NotFound))
async def get_connection(
    connection_id: UUID, user: CurrentUser, uow: UowDep, container: ContainerDep
) -> ConnectionPublic:
    """One connection with its status, expiry, attention reason, last error and schedule."""
    connection = await uow.connections.get(connection_id, user.id)
    if connection is None:
        raise NotFound("connection")
    return public(connection, container.clock())


@router.delete(
    "/connections/{connection_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(NotFound)
)
async def delete_connection(connection_id: UUID, user: CurrentUser, container: ContainerDep) -> None:
    """Delete a connection **and all its accounts, holdings, transactions, snapshots and sync runs**."""
    await container.connections.delete(connection_id, user.id)


@router.get(
    "/connections/{connection_id}/sync-runs",
    response_model=PageOut[SyncRunPublic],
    responses=responses(NotFound),
)
@bounded
async def list_sync_runs(
    connection_id: UUID, user: CurrentUser, uow: UowDep, page: PageDep
) -> PageOut[SyncRunPublic]:
    """The connection's sync and import history, newest first."""
    if await uow.connections.get(connection_id, user.id) is None:
        raise NotFound("connection")
    return to_page(await uow.sync_runs.find(user.id, connection_id, page), SyncRunPublic)


@router.post(
    "/connections/{connection_id}/sync",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SyncRunPublic,
    responses=responses(NotFound, NeedsReauthorization, InvalidInput, RateLimited),
)
async def sync_connection(
    connection_id: UUID, user: CurrentUser, container: ContainerDep, present: PresentDep
) -> SyncRunPublic:
    """Start a sync now; answers with the SyncRun to poll. A sync already running is returned instead.
    A connection that needs reauthorisation answers 409 `needs-reauth` without calling the provider:
    renew it first (`POST .../reauthorize` for OAuth and bank links, `PATCH` new credentials for API keys).
    A statement-file connection answers 422: upload to `/imports` instead. Bank links are told you
    are present (your address and user agent: Enable Banking's PSU headers), so the bank does not
    count the sync against its few background calls a day."""
    run = await container.sync.request(connection_id, user.id, SyncTrigger.MANUAL, present)
    return SyncRunPublic.model_validate(run)


@router.post(
    "/connections/{connection_id}/reauthorize",
    response_model=ConnectionCreated,
    responses=responses(NotFound, InvalidInput, ProviderNotAvailable),
)
async def reauthorize_connection(
    connection_id: UUID, user: CurrentUser, container: ContainerDep
) -> ConnectionCreated:
    """Restart the browser consent for an OAuth or bank-link connection; its accounts and history are kept."""
    connection, url = await container.provider_authorization.reauthorize(connection_id, user.id)
    return _created(connection, None, url, container.clock())


@router.get("/sync-runs/{run_id}", response_model=SyncRunPublic, responses=responses(NotFound))
async def get_sync_run(run_id: UUID, user: CurrentUser, uow: UowDep) -> SyncRunPublic:
    """Progress and counts of one sync or import."""
    run = await uow.sync_runs.get(run_id, user.id)
    if run is None:
        raise NotFound("sync run")
    return SyncRunPublic.model_validate(run)
