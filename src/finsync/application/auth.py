"""Registration, login, refresh-token rotation and logout."""

from __future__ import annotations

import hashlib
import secrets
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import structlog

from finsync.domain.entities import RefreshToken, User, new_id, utcnow
from finsync.domain.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidInput,
    RegistrationClosed,
    TooManyAttempts,
)
from finsync.domain.ports import AccessTokens, Clock, PasswordHasher, UnitOfWork, UnitOfWorkFactory

log = structlog.get_logger(__name__)
MIN_PASSWORD_LENGTH = 10


def hash_token(token: str) -> str:
    """Refresh tokens are high-entropy, so a plain SHA-256 suffices and allows lookup by hash."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(slots=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str


class LoginThrottle:
    """Sliding-window limit on failed logins per account and per client address (per process)."""

    def __init__(self, per_account: int, per_address: int, window_seconds: int, clock: Clock) -> None:
        self._limits = {"account": per_account, "address": per_address}
        self._window = timedelta(seconds=window_seconds)
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[datetime]] = defaultdict(deque)

    def _recent(self, key: tuple[str, str]) -> deque[datetime]:
        failures, horizon = self._failures[key], self._clock() - self._window
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures

    def check(self, email: str, address: str) -> None:
        for key in (("account", email), ("address", address)):
            failures = self._recent(key)
            if len(failures) >= self._limits[key[0]]:
                retry = (failures[0] + self._window - self._clock()).total_seconds()
                raise TooManyAttempts("too many failed logins; try again later", retry_after=max(retry, 1.0))

    def failed(self, email: str, address: str) -> None:
        now = self._clock()
        for key in (("account", email), ("address", address)):
            self._failures[key].append(now)

    def succeeded(self, email: str) -> None:
        self._failures.pop(("account", email), None)


class AuthService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        hasher: PasswordHasher,
        tokens: AccessTokens,
        throttle: LoginThrottle,
        *,
        refresh_days: int,
        registration_open: bool,
        clock: Clock = utcnow,
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._tokens = tokens
        self._throttle = throttle
        self._refresh_ttl = timedelta(days=refresh_days)
        self._registration_open = registration_open
        self._clock = clock

    async def register(self, email: str, password: str) -> User:
        email = email.strip().lower()
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidInput(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
        async with self._uow() as uow:
            if not self._registration_open and await uow.users.count() > 0:
                raise RegistrationClosed("this finsync instance does not accept new users")
            if await uow.users.get_by_email(email) is not None:
                raise Conflict("a user with this email already exists")
            user = User(email=email, password_hash=self._hasher.hash(password), created_at=self._clock())
            await uow.users.add(user)
            await uow.commit()
        log.info("user_registered", user_id=str(user.id))
        return user

    async def login(self, email: str, password: str, address: str) -> TokenPair:
        email = email.strip().lower()
        self._throttle.check(email, address)
        async with self._uow() as uow:
            user = await uow.users.get_by_email(email)
            if user is None or not user.is_active or not self._hasher.verify(password, user.password_hash):
                self._throttle.failed(email, address)
                log.info("login_failed", address=address)
                raise AuthenticationFailed("incorrect email or password")
            self._throttle.succeeded(email)
            pair = await self._issue(uow, user.id, family_id=new_id())
            await uow.commit()
        return pair

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate: each refresh token works once; presenting a used one revokes its whole chain."""
        now = self._clock()
        async with self._uow() as uow:
            stored = await uow.refresh_tokens.get_by_hash(hash_token(refresh_token))
            if stored is None or stored.revoked_at is not None or stored.expires_at <= now:
                raise AuthenticationFailed("refresh token is invalid or expired")
            if stored.used_at is not None or not await uow.refresh_tokens.mark_used(stored.id, now):
                await uow.refresh_tokens.revoke_family(stored.family_id, now)
                await uow.commit()
                log.warning("refresh_token_reuse", user_id=str(stored.user_id))
                raise AuthenticationFailed("refresh token was already used; please log in again")
            pair = await self._issue(uow, stored.user_id, family_id=stored.family_id)
            await uow.commit()
        return pair

    async def logout(self, refresh_token: str) -> None:
        async with self._uow() as uow:
            stored = await uow.refresh_tokens.get_by_hash(hash_token(refresh_token))
            if stored is not None:
                await uow.refresh_tokens.revoke_family(stored.family_id, self._clock())
                await uow.commit()

    async def _issue(self, uow: UnitOfWork, user_id: UUID, family_id: UUID) -> TokenPair:
        now = self._clock()
        access, expires_in = self._tokens.issue(user_id, now)
        opaque = secrets.token_urlsafe(32)
        token = RefreshToken(
            user_id=user_id,
            token_hash=hash_token(opaque),
            family_id=family_id,
            expires_at=now + self._refresh_ttl,
            created_at=now,
        )
        await uow.refresh_tokens.add(token)
        return TokenPair(access_token=access, expires_in=expires_in, refresh_token=opaque)
