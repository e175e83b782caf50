"""Annotated dependency aliases used by every router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from finsync.api.pagination import page_request
from finsync.application.user_auth import Client
from finsync.bootstrap import Container
from finsync.config import Settings
from finsync.domain.entities import User
from finsync.domain.errors import AuthenticationFailed
from finsync.domain.ports import AccessClaims, PageRequest, UnitOfWork

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


async def get_settings(container: ContainerDep) -> Settings:
    return container.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_uow(container: ContainerDep) -> AsyncIterator[UnitOfWork]:
    """A read-mostly unit of work for the request; writes go through use cases that commit."""
    async with container.uow() as uow:
        yield uow


UowDep = Annotated[UnitOfWork, Depends(get_uow)]


@dataclass(frozen=True, slots=True)
class Authenticated:
    user: User
    claims: AccessClaims


async def get_authenticated(
    container: ContainerDep, token: Annotated[str | None, Depends(oauth2)]
) -> Authenticated:
    """The token's user, if its session is still live: one query (user joined with session)."""
    if not token:
        raise AuthenticationFailed("missing bearer token")
    claims = container.tokens.verify(token)
    async with container.uow() as uow:
        user = await uow.users.get_in_session(claims.user_id, claims.session_id, container.clock())
    if user is None:
        raise AuthenticationFailed("this session has ended; please log in again")
    return Authenticated(user, claims)


AuthenticatedDep = Annotated[Authenticated, Depends(get_authenticated)]


async def get_current_user(auth: AuthenticatedDep) -> User:
    return auth.user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_client(request: Request) -> Client:
    """The caller's address (after trusted proxies only) and user agent."""
    return Client.of(request.client.host if request.client else None, request.headers.get("user-agent"))


ClientDep = Annotated[Client, Depends(get_client)]
PageDep = Annotated[PageRequest, Depends(page_request)]
