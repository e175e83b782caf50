"""Annotated dependency aliases used by every router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import OAuth2PasswordBearer

from finsync.api.pagination import page_request
from finsync.application.user_auth import Client
from finsync.bootstrap import Container
from finsync.config import Settings
from finsync.domain.entities import User
from finsync.domain.errors import AuthenticationFailed
from finsync.domain.ports import AccessClaims, PageRequest, PersonPresent, UnitOfWork

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


async def get_settings(container: ContainerDep) -> Settings:
    return container.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_uow(container: ContainerDep) -> AsyncIterator[UnitOfWork]:
    """The request's unit of work, for reads only (never committed; autocommit on PostgreSQL):
    writes go through use cases with their own."""
    async with container.read_uow() as uow:
        yield uow


UowDep = Annotated[UnitOfWork, Depends(get_uow)]


@dataclass(frozen=True, slots=True)
class Authenticated:
    user: User
    claims: AccessClaims


async def get_authenticated(
    request: Request, container: ContainerDep, uow: UowDep, token: Annotated[str | None, Depends(oauth2)]
) -> Authenticated:
    """The token's user, if its session is still live: one query (user joined with session),
    in the request's unit of work: a read route's own queries follow in the same transaction
    on the same connection (one checkout per request, not two). A route that does not read
    through it (writes go through use cases with their own unit of work) gets the connection
    back to the pool at once."""
    if not token:
        raise AuthenticationFailed("missing bearer token")
    claims = container.tokens.verify(token)
    user = await uow.users.get_in_session(claims.user_id, claims.session_id, container.clock())
    if not _reads_request_uow(request.scope.get("route")):
        await uow.rollback()  # ends the read transaction: its connection goes back to the pool
    if user is None:
        raise AuthenticationFailed("this session has ended; please log in again")
    return Authenticated(user, claims)


_AUTH_CALLS: set[object] = set()


def _reads_request_uow(route: object) -> bool:
    """Whether ``route`` uses the request's unit of work for more than authentication
    (looked up once per route in its dependency tree)."""
    if route is None:
        return True
    known: bool | None = getattr(route, "_finsync_reads_uow", None)
    if known is None:
        dependant = getattr(route, "dependant", None)
        known = dependant is None or _needs_uow(dependant)
        route._finsync_reads_uow = known  # type: ignore[attr-defined]  # routes are not hashable
    return known


def _needs_uow(dependant: Dependant) -> bool:
    for sub in dependant.dependencies:
        if sub.call is get_uow:
            return True
        if sub.call not in _AUTH_CALLS and _needs_uow(sub):
            return True
    return False


AuthenticatedDep = Annotated[Authenticated, Depends(get_authenticated)]


async def get_current_user(auth: AuthenticatedDep) -> User:
    return auth.user


CurrentUser = Annotated[User, Depends(get_current_user)]
_AUTH_CALLS.update({get_authenticated, get_current_user})


async def get_client(request: Request) -> Client:
    """The caller's address (after trusted proxies only) and user agent."""
    return Client.of(request.client.host if request.client else None, request.headers.get("user-agent"))


ClientDep = Annotated[Client, Depends(get_client)]


async def get_present(client: ClientDep) -> PersonPresent | None:
    """The person behind this request, for a sync they ask for (None: no known address)."""
    return None if client.address == "unknown" else PersonPresent(client.address, client.user_agent)


PresentDep = Annotated[PersonPresent | None, Depends(get_present)]
PageDep = Annotated[PageRequest, Depends(page_request)]
