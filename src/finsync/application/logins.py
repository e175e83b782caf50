"""Who a set of credentials logs in as, so the same provider login is never connected twice.

An adapter's ``validate()`` makes one cheap authenticated call and returns the provider
account keys the login reaches. Their digest is the connection's ``identity``, unique per
user and provider in the database; the accounts' own unique key (user, provider, account
id) catches logins whose identity was never known (connected before, or a provider that
cannot tell before its first sync).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from finsync.domain.errors import AlreadyConnected
from finsync.domain.ports import KeyValidator, ProviderGateway, ProviderSession, UnitOfWork


@dataclass(frozen=True, slots=True)
class Login:
    keys: tuple[str, ...] = ()

    @property
    def identity(self) -> str | None:
        if not self.keys:
            return None
        return hashlib.sha256("\x1f".join(sorted(self.keys)).encode()).hexdigest()


async def identify(providers: ProviderGateway, provider: str, session: ProviderSession) -> Login:
    """Validate the credentials with the provider; the login's account keys when it can tell."""
    adapter = providers.adapter(provider, session)
    try:
        # The registry holds adapters to their declared abilities: no validator means none declared.
        keys: Sequence[str] = await adapter.validate() if isinstance(adapter, KeyValidator) else ()
    finally:
        await adapter.aclose()
    return Login(tuple(sorted(set(keys))))


async def connected_as(
    uow: UnitOfWork, user_id: UUID, provider: str, login: Login, exclude: UUID | None = None
) -> UUID | None:
    """The user's other connection that already has this login (by identity or by its accounts)."""
    if login.identity is not None:
        other = await uow.connections.by_identity(user_id, provider, login.identity)
        if other is not None and other.id != exclude:
            return other.id
    return await uow.accounts.held_by(user_id, provider, list(login.keys), exclude)


def already_connected(connection_id: UUID) -> AlreadyConnected:
    return AlreadyConnected(
        f"this login is already connected as connection {connection_id}; use that one "
        "(re-authorise it or replace its credentials) instead of connecting it again",
        connection_id=connection_id,
    )
