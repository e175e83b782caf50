"""Registration, login, sessions (refresh-token chains), password changes and logout."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import structlog
from email_validator import EmailNotValidError, validate_email

from finsync.application.throttle import LoginThrottle
from finsync.domain.entities import AuthSession, RefreshToken, User, new_id, utcnow
from finsync.domain.errors import (
    AuthenticationFailed,
    InvalidInput,
    NotFound,
    RegistrationClosed,
    WrongPassword,
)
from finsync.domain.ports import (
    AccessClaims,
    AccessTokens,
    Now,
    PasswordHasher,
    PasswordPolicy,
    UnitOfWork,
    UnitOfWorkFactory,
)

log = structlog.get_logger(__name__)
LOGIN_FAILED = "incorrect email or password"
MAX_EMAIL = 320  # the users.email column and the registration schema


def canonical_email(email: str) -> str:
    """One spelling per mailbox, whichever way in (API, command line, login form): the address
    as the registration schema normalises it (NFC; an internationalised domain in Unicode,
    full-width letters folded), then lower case. What does not parse is only trimmed and
    lowered (a login with a mistyped address simply finds nobody)."""
    typed = email.strip()
    if len(typed) <= MAX_EMAIL:  # a longer one is nobody's: not worth parsing (a login form is 1 MiB)
        with contextlib.suppress(EmailNotValidError):
            typed = validate_email(typed, check_deliverability=False).normalized
    return unicodedata.normalize("NFC", typed.lower())


async def find_user(uow: UnitOfWork, email: str) -> User | None:
    """The user with this address in any spelling; also one stored before addresses were
    normalised alike everywhere (by ``finsync users create``: only trimmed and lowered)."""
    spellings = dict.fromkeys((canonical_email(email), email.strip().lower()))
    # Both looked up whatever the first finds: the time taken does not tell whether it exists.
    found = [await uow.users.get_by_email(spelling) for spelling in spellings]
    return next((user for user in found if user is not None), None)


def hash_token(token: str) -> str:
    """Refresh tokens are high-entropy, so a plain SHA-256 suffices and allows lookup by hash."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(slots=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str


@dataclass(frozen=True, slots=True)
class Client:
    """Where a request came from (after trusted proxies), recorded on the session."""

    address: str
    user_agent: str | None = None

    @classmethod
    def of(cls, address: str | None, user_agent: str | None) -> Client:
        """Cut to what the session columns hold."""
        return cls((address or "unknown")[:45], (user_agent or "")[:200] or None)


class UserAuthService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        hasher: PasswordHasher,
        tokens: AccessTokens,
        throttle: LoginThrottle,
        policy: PasswordPolicy,
        *,
        refresh_days: int,
        registration_open: bool,
        clock: Now = utcnow,
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._tokens = tokens
        self._throttle = throttle
        self._policy = policy
        self._refresh_ttl = timedelta(days=refresh_days)
        self._registration_open = registration_open
        self._clock = clock
        self._dummy_hash: str | None = None

    async def register(self, email: str, password: str) -> User:
        email = canonical_email(email)
        await self._check_password(password, email)
        if not self._registration_open:
            async with self._uow() as uow:  # refuse early, before spending a hash
                await self._registration_allowed(uow)
        user = User(email=email, password_hash=await self._hasher.hash(password), created_at=self._clock())
        async with self._uow() as uow:
            if not self._registration_open:
                await uow.users.lock_registration()
                await self._registration_allowed(uow)
            await uow.users.add(user)  # Conflict when the email is taken
            await uow.commit()
        log.info("user_registered", user_id=str(user.id))
        return user

    async def login(self, typed: str, password: str, client: Client) -> TokenPair:
        email = canonical_email(typed)
        async with self._uow() as uow:
            await self._throttle.admit(uow, email, client.address)
            user = await find_user(uow, typed)
            await uow.commit()
        # Unknown and inactive accounts cost a hash too, so timing does not tell which emails exist.
        known = user if user is not None and user.is_active else None
        stored = known.password_hash if known is not None else await self._dummy()
        if not await self._hasher.verify(password, stored) or known is None:
            log.info("login_failed", address=client.address)
            raise AuthenticationFailed(LOGIN_FAILED)
        async with self._uow() as uow:
            await self._throttle.succeeded(uow, email, client.address)
            # The password may have changed (or the user been disabled) while it was checked: a
            # session started now would outlive the change that was to end every other one.
            if not await uow.users.unchanged(known.id, known.password_hash):
                log.info("login_failed", address=client.address)
                raise AuthenticationFailed(LOGIN_FAILED)
            pair = await self._start_session(uow, known.id, client)
            await uow.commit()
        return pair

    async def refresh(self, refresh_token: str, client: Client) -> TokenPair:
        """Rotate: each refresh token works once; presenting a used one revokes its whole chain."""
        now = self._clock()
        async with self._uow() as uow:
            stored = await uow.refresh_tokens.get_by_hash(hash_token(refresh_token))
            if stored is None or stored.revoked_at is not None or stored.expires_at <= now:
                raise AuthenticationFailed("refresh token is invalid or expired")
            owner = await uow.users.get(stored.user_id)
            if owner is None or not owner.is_active:  # disabled however it happened
                raise AuthenticationFailed("this account is disabled")
            if stored.used_at is not None or not await uow.refresh_tokens.mark_used(stored.id, now):
                await uow.refresh_tokens.revoke_family(stored.family_id, now)
                await uow.commit()
                log.warning("refresh_token_reuse", user_id=str(stored.user_id))
                raise AuthenticationFailed("refresh token was already used; please log in again")
            pair = await self._issue(uow, stored.user_id, stored.family_id)
            # A revocation that ran meanwhile could not see the token just issued: the session
            # row says whether the chain still lives (its lock is taken after the token's).
            if not await uow.sessions.touch(
                stored.family_id, now, now + self._refresh_ttl, client.address, client.user_agent
            ):
                raise AuthenticationFailed("this session has ended; please log in again")
            await uow.commit()
        return pair

    async def logout(self, refresh_token: str) -> None:
        async with self._uow() as uow:
            stored = await uow.refresh_tokens.get_by_hash(hash_token(refresh_token))
            if stored is not None:
                await uow.refresh_tokens.revoke_family(stored.family_id, self._clock())
                await uow.commit()

    async def sessions(self, user_id: UUID) -> list[AuthSession]:
        async with self._uow() as uow:
            return await uow.sessions.live(user_id, self._clock())

    async def revoke_session(self, user_id: UUID, session_id: UUID) -> None:
        """Another user's session is NotFound, like one that never existed."""
        async with self._uow() as uow:
            if await uow.sessions.get(session_id, user_id) is None:
                raise NotFound("session")
            await uow.sessions.revoke(session_id, self._clock())
            await uow.commit()
        log.info("session_revoked", user_id=str(user_id), session_id=str(session_id))

    async def change_password(
        self, user: User, claims: AccessClaims, current: str, new: str, client: Client
    ) -> None:
        """Needs the current password (throttled like a login); ends every other session."""
        await self.confirm_password(user, current, client)
        await self._check_password(new, user.email)
        new_hash = await self._hasher.hash(new)
        async with self._uow() as uow:
            await uow.users.set_password(user.id, new_hash)
            await uow.sessions.revoke_others(user.id, claims.session_id, self._clock())
            await uow.commit()
        log.info("password_changed", user_id=str(user.id))

    async def confirm_password(self, user: User, password: str, client: Client) -> None:
        """A logged-in user confirms a grave action with their password: throttled like a login,
        so guessing here counts there too. A wrong one is WrongPassword (403), not a 401."""
        async with self._uow() as uow:
            await self._throttle.admit(uow, user.email, client.address)
            await uow.commit()
        if not await self._hasher.verify(password, user.password_hash):
            raise WrongPassword("the password is incorrect")
        async with self._uow() as uow:
            await self._throttle.succeeded(uow, user.email, client.address)
            await uow.commit()

    async def _registration_allowed(self, uow: UnitOfWork) -> None:
        if await uow.users.count() > 0:
            raise RegistrationClosed("this finsync instance does not accept new users")

    async def _check_password(self, password: str, email: str) -> None:
        local = email.split("@", 1)[0]
        problem = await asyncio.to_thread(self._policy.problem, password, [email, local, "finsync"])
        if problem is not None:
            raise InvalidInput(problem)

    async def _dummy(self) -> str:
        """A hash of a random password with the real parameters: verifying against it costs the same."""
        if self._dummy_hash is None:
            self._dummy_hash = await self._hasher.hash(secrets.token_urlsafe(32))
        return self._dummy_hash

    async def _start_session(self, uow: UnitOfWork, user_id: UUID, client: Client) -> TokenPair:
        now = self._clock()
        session = AuthSession(
            user_id=user_id,
            id=new_id(),
            created_at=now,
            last_used_at=now,
            expires_at=now + self._refresh_ttl,
            address=client.address,
            user_agent=client.user_agent,
        )
        await uow.sessions.add(session)
        return await self._issue(uow, user_id, session.id)

    async def _issue(self, uow: UnitOfWork, user_id: UUID, session_id: UUID) -> TokenPair:
        now = self._clock()
        access, expires_in = self._tokens.issue(user_id, session_id, now)
        opaque = secrets.token_urlsafe(32)
        token = RefreshToken(
            user_id=user_id,
            token_hash=hash_token(opaque),
            family_id=session_id,
            expires_at=now + self._refresh_ttl,
            created_at=now,
        )
        await uow.refresh_tokens.add(token)
        return TokenPair(access_token=access, expires_in=expires_in, refresh_token=opaque)
