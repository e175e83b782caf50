"""Registration, login, token refresh, logout, sessions and password changes."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field

from finsync.api.deps import AuthenticatedDep, ClientDep, ContainerDep, CurrentUser, bounded
from finsync.api.errors import responses
from finsync.api.schemas import RefreshIn, TokenOut, UserCreate, UserPublic
from finsync.api.wire import UtcDateTime
from finsync.domain.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidInput,
    NotFound,
    RegistrationClosed,
    TooManyAttempts,
    WrongPassword,
)

router = APIRouter(tags=["auth"])


class SessionOut(BaseModel):
    """A login on some device: its refresh-token chain and the access tokens issued from it."""

    id: UUID
    created_at: UtcDateTime
    last_used_at: UtcDateTime = Field(description="Login or latest token refresh")
    expires_at: UtcDateTime = Field(description="When the session ends unless refreshed")
    address: str | None = Field(description="Client address at login or latest refresh")
    user_agent: str | None
    current: bool = Field(description="The session of the access token making this request")


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(
        max_length=1024, description="Same rule as at registration: 12+ characters, not easy to guess"
    )


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses=responses(Conflict, InvalidInput, RegistrationClosed),
)
async def register(body: UserCreate, container: ContainerDep) -> UserPublic:
    """Register a user (closed after the first user when FINSYNC_REGISTRATION=first_user_only).

    Passwords follow NIST SP 800-63B: at least 12 characters, refused when common, breached or
    otherwise easy to guess (e.g. your email, repeats, sequences); no composition rules."""
    user = await container.user_auth.register(body.email, body.password)
    return UserPublic.model_validate(user)


@router.get("/users/me", response_model=UserPublic, responses=responses(AuthenticationFailed))
@bounded
async def me(user: CurrentUser) -> UserPublic:
    """The logged-in user."""
    return UserPublic.model_validate(user)


@router.post(
    "/auth/token", response_model=TokenOut, responses=responses(AuthenticationFailed, TooManyAttempts)
)
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], client: ClientDep, container: ContainerDep
) -> TokenOut:
    """Log in with the OAuth2 password form (`username` = email): access token + refresh token.

    Each login starts a session (see `/users/me/sessions`). Repeated failures answer 429 with
    `Retry-After`: per client, per account from that client, and (slowing, never locking) per account."""
    pair = await container.user_auth.login(form.username, form.password, client)
    return TokenOut(
        access_token=pair.access_token, expires_in=pair.expires_in, refresh_token=pair.refresh_token
    )


@router.post("/auth/refresh", response_model=TokenOut, responses=responses(AuthenticationFailed))
async def refresh(body: RefreshIn, client: ClientDep, container: ContainerDep) -> TokenOut:
    """Exchange a refresh token for new tokens; reusing an old one revokes the whole session."""
    pair = await container.user_auth.refresh(body.refresh_token, client)
    return TokenOut(
        access_token=pair.access_token, expires_in=pair.expires_in, refresh_token=pair.refresh_token
    )


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(body: RefreshIn, container: ContainerDep) -> None:
    """End the refresh token's session: its refresh tokens and access tokens stop working at once."""
    await container.user_auth.logout(body.refresh_token)


@router.get("/users/me/sessions", response_model=list[SessionOut], responses=responses(AuthenticationFailed))
async def list_sessions(auth: AuthenticatedDep, container: ContainerDep) -> list[SessionOut]:
    """The logged-in user's live sessions, oldest first."""
    return [
        SessionOut(
            id=s.id,
            created_at=s.created_at,
            last_used_at=s.last_used_at,
            expires_at=s.expires_at,
            address=s.address,
            user_agent=s.user_agent,
            current=s.id == auth.claims.session_id,
        )
        for s in await container.user_auth.sessions(auth.user.id)
    ]


@router.delete(
    "/users/me/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(AuthenticationFailed, NotFound),
)
async def revoke_session(session_id: UUID, auth: AuthenticatedDep, container: ContainerDep) -> None:
    """End one of your sessions (the current one too: that is a logout). Not yours: 404."""
    await container.user_auth.revoke_session(auth.user.id, session_id)


@router.post(
    "/users/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(AuthenticationFailed, WrongPassword, InvalidInput, TooManyAttempts),
)
async def change_password(
    body: PasswordChange, auth: AuthenticatedDep, client: ClientDep, container: ContainerDep
) -> None:
    """Change your password: needs the current one; every other session ends, this one stays."""
    await container.user_auth.change_password(
        auth.user, auth.claims, body.current_password, body.new_password, client
    )
