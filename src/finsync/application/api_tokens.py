"""Scoped API tokens for bots: shown once, stored as a SHA-256 digest, revocable.

Scopes: ``read`` (GETs of the user's data) and ``trade:<connection id>`` (orders on that
connection, which must be one of the user's and able to trade). A token never changes
the user's settings, connections, password or tokens: those need a login.
"""

from __future__ import annotations

import hashlib
import secrets
from uuid import UUID

import structlog

from finsync.domain.entities import User, utcnow
from finsync.domain.enums import Capability
from finsync.domain.errors import AuthenticationFailed, InvalidInput, NotFound
from finsync.domain.ports import Now, ProviderGateway, UnitOfWorkFactory
from finsync.domain.trading import READ_SCOPE, TRADE_PREFIX, ApiToken

log = structlog.get_logger(__name__)
PREFIX = "fst_"  # tells a token from a JWT at a glance (and to secret scanners)
MAX_TOKENS = 50


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def is_api_token(bearer: str) -> bool:
    return bearer.startswith(PREFIX)


class ApiTokenService:
    def __init__(self, uow: UnitOfWorkFactory, providers: ProviderGateway, clock: Now = utcnow) -> None:
        self._uow, self._providers, self._clock = uow, providers, clock

    async def create(self, user_id: UUID, name: str, scopes: list[str]) -> tuple[ApiToken, str]:
        """The token and its secret, which is never shown again."""
        name = name.strip()
        if not name or len(name) > 100:
            raise InvalidInput("name must be 1 to 100 characters")
        wanted = sorted(set(scopes))
        if not wanted:
            raise InvalidInput("a token needs at least one scope: read, trade:<connection id>")
        async with self._uow() as uow:
            for scope in wanted:
                await self._check_scope(uow, user_id, scope)
            if len(await uow.api_tokens.list(user_id)) >= MAX_TOKENS:
                raise InvalidInput(f"at most {MAX_TOKENS} API tokens per user; revoke one first")
            secret = PREFIX + secrets.token_urlsafe(32)
            token = ApiToken(
                user_id=user_id, name=name, token_hash=digest(secret), scopes=wanted, created_at=self._clock()
            )
            await uow.api_tokens.add(token)
            await uow.commit()
        log.info("api_token_created", user_id=str(user_id), token_id=str(token.id), scopes=wanted)
        return token, secret

    async def _check_scope(self, uow: object, user_id: UUID, scope: str) -> None:
        if scope == READ_SCOPE:
            return
        if not scope.startswith(TRADE_PREFIX):
            raise InvalidInput(f"unknown scope {scope!r}: use read or trade:<connection id>")
        try:
            connection_id = UUID(scope.removeprefix(TRADE_PREFIX))
        except ValueError:
            raise InvalidInput(f"scope {scope!r}: trade: takes a connection id") from None
        connection = await uow.connections.get(connection_id, user_id)  # type: ignore[attr-defined]
        if connection is None:
            raise InvalidInput(f"scope {scope!r}: no such connection of yours")
        if Capability.TRADING not in self._providers.capabilities(connection.provider):
            raise InvalidInput(f"scope {scope!r}: {connection.provider} connections cannot trade")

    async def list(self, user_id: UUID) -> list[ApiToken]:
        async with self._uow() as uow:
            return await uow.api_tokens.list(user_id)

    async def revoke(self, user_id: UUID, token_id: UUID) -> None:
        async with self._uow() as uow:
            if not await uow.api_tokens.revoke(token_id, user_id, self._clock()):
                raise NotFound("api token")
            await uow.commit()
        log.info("api_token_revoked", user_id=str(user_id), token_id=str(token_id))

    async def authenticate(self, bearer: str) -> tuple[ApiToken, User]:
        async with self._uow() as uow:
            found = await uow.api_tokens.by_hash(digest(bearer))
        if found is None:
            raise AuthenticationFailed("this API token is unknown or revoked")
        return found
