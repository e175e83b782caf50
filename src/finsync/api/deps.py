"""Annotated dependency aliases used by every router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from finsync.api.pagination import page_request
from finsync.bootstrap import Container
from finsync.config import Settings
from finsync.domain.entities import User
from finsync.domain.errors import AuthenticationFailed
from finsync.domain.ports import PageRequest, UnitOfWork

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


async def get_current_user(container: ContainerDep, token: Annotated[str | None, Depends(oauth2)]) -> User:
    if not token:
        raise AuthenticationFailed("missing bearer token")
    user_id: UUID = container.tokens.verify(token)
    async with container.uow() as uow:
        user = await uow.users.get(user_id)
    if user is None or not user.is_active:
        raise AuthenticationFailed("user no longer exists")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]
PageDep = Annotated[PageRequest, Depends(page_request)]
