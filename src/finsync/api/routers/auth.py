"""Registration, login, token refresh and logout."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from finsync.api.deps import ContainerDep, CurrentUser
from finsync.api.errors import responses
from finsync.api.schemas import RefreshIn, TokenOut, UserCreate, UserPublic
from finsync.domain.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidInput,
    RegistrationClosed,
    TooManyAttempts,
)

router = APIRouter(tags=["auth"])


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses=responses(Conflict, InvalidInput, RegistrationClosed),
)
async def register(body: UserCreate, container: ContainerDep) -> UserPublic:
    """Register a user (closed after the first user when FINSYNC_REGISTRATION=first_user_only)."""
    user = await container.auth.register(body.email, body.password)
    return UserPublic.model_validate(user)


@router.get("/users/me", response_model=UserPublic, responses=responses(AuthenticationFailed))
async def me(user: CurrentUser) -> UserPublic:
    """The logged-in user."""
    return UserPublic.model_validate(user)


@router.post(
    "/auth/token", response_model=TokenOut, responses=responses(AuthenticationFailed, TooManyAttempts)
)
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request, container: ContainerDep
) -> TokenOut:
    """Log in with the OAuth2 password form (`username` = email): access token + refresh token."""
    address = request.client.host if request.client else "unknown"
    pair = await container.auth.login(form.username, form.password, address)
    return TokenOut(
        access_token=pair.access_token, expires_in=pair.expires_in, refresh_token=pair.refresh_token
    )


@router.post("/auth/refresh", response_model=TokenOut, responses=responses(AuthenticationFailed))
async def refresh(body: RefreshIn, container: ContainerDep) -> TokenOut:
    """Exchange a refresh token for new tokens; reusing an old one revokes the whole chain."""
    pair = await container.auth.refresh(body.refresh_token)
    return TokenOut(
        access_token=pair.access_token, expires_in=pair.expires_in, refresh_token=pair.refresh_token
    )


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(body: RefreshIn, container: ContainerDep) -> None:
    """Revoke the refresh token and its chain. Access tokens expire on their own within 15 minutes."""
    await container.auth.logout(body.refresh_token)
