"""The browser round trip shared by every OAuth 2.0 and bank-link provider.

finsync owns the ``state``: random, single use, expiring after 10 minutes, stored
only as a SHA-256 and bound server-side to the user, the connection and the
provider's flow data (PKCE verifier, requisition id), which is encrypted at rest.
The provider half (``RedirectFlow``) only builds URLs and exchanges codes.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import structlog

from finsync.application.logins import Login, connected_as, identify
from finsync.application.sync import SyncService
from finsync.domain.entities import AuthFlow, Connection, connection_name, utcnow
from finsync.domain.enums import ConnectionStatus, SyncTrigger
from finsync.domain.errors import Conflict, ConsentDenied, FinsyncError, InvalidInput, NotFound
from finsync.domain.ports import (
    CredentialCipher,
    Now,
    PersonPresent,
    ProviderGateway,
    ProviderInfo,
    ProviderSession,
    UnitOfWorkFactory,
)
from finsync.domain.schedule import first_schedule

log = structlog.get_logger(__name__)
STATE_TTL = timedelta(minutes=10)
FLOW_OPTIONS = "flow_options"  # connection.state key: what the person chose (e.g. their bank)


@dataclass(frozen=True, slots=True)
class CallbackOutcome:
    """What the browser is told: a connection id on success, else a stable error code."""

    connection_id: UUID | None
    error: str | None = None
    message: str | None = None
    # The login was already connected: that connection was re-authorised instead of a new one.
    reauthorized: bool = False


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


class ProviderAuthorizationService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        providers: ProviderGateway,
        cipher: CredentialCipher,
        sync: SyncService,
        callback_url: str,
        clock: Now = utcnow,
    ) -> None:
        self._uow = uow
        self._providers = providers
        self._cipher = cipher
        self._sync = sync
        self._callback_url = callback_url.rstrip("/")
        self._clock = clock

    def redirect_uri(self, provider: str) -> str:
        return f"{self._callback_url}/{provider}"

    async def start(self, connection: Connection, options: dict[str, Any], *, new: bool) -> str:
        """Begin (or restart) the browser flow for a connection; returns the authorization URL.

        A ``new`` connection is stored together with its flow. An existing one is only
        re-checked: deleted while the provider was called, it stays deleted (NotFound).
        """
        state = secrets.token_urlsafe(32)
        flow = self._providers.flow(connection.provider, options)
        started = await flow.start(state=state, redirect_uri=self.redirect_uri(connection.provider))
        now = self._clock()
        record = AuthFlow(
            state_hash=_hash(state),
            user_id=connection.user_id,
            connection_id=connection.id,
            provider=connection.provider,
            flow_data=self._cipher.encrypt(started.flow_data),
            expires_at=now + STATE_TTL,
            created_at=now,
        )
        async with self._uow() as uow:
            if new:
                await uow.connections.add(connection)
            elif await uow.connections.get(connection.id, connection.user_id) is None:
                raise NotFound("connection")
            await uow.auth_flows.add(record)
            await uow.commit()
        log.info("authorization_started", connection_id=str(connection.id), provider=connection.provider)
        return started.url

    async def create(
        self, user_id: UUID, info: ProviderInfo, name: str | None, options: dict[str, str] | None
    ) -> tuple[Connection, str]:
        """A new pending connection and its first browser flow (ConnectionService picked the auth type)."""
        now = self._clock()
        connection = Connection(
            user_id=user_id,
            provider=info.slug,
            name=connection_name(name, info.display_name),
            status=ConnectionStatus.PENDING,
            state={FLOW_OPTIONS: dict(options or {})},
            created_at=now,
            updated_at=now,
        )
        connection.sync_interval_minutes, connection.next_sync_at = first_schedule(info.schedule, now)
        return connection, await self.start(connection, dict(options or {}), new=True)

    async def reauthorize(self, connection_id: UUID, user_id: UUID) -> tuple[Connection, str]:
        """New consent for an existing connection: accounts and history stay and continue."""
        async with self._uow() as uow:
            connection = await uow.connections.get(connection_id, user_id)
        if connection is None:
            raise NotFound("connection")
        info = self._providers.info(connection.provider)
        if info is None or not info.auth_type.in_browser:
            raise InvalidInput("only OAuth and bank-link connections are re-authorised in the browser")
        options = dict(connection.state.get(FLOW_OPTIONS) or {})
        return connection, await self.start(connection, options, new=False)

    async def complete(
        self, provider: str, params: dict[str, str], present: PersonPresent | None = None
    ) -> CallbackOutcome:
        """Handle the browser's return. Never raises: every failure becomes an error code.
        ``present``: the person's browser, there for the first sync (see ``SyncService.request``)."""
        info = self._providers.info(provider)
        state = params.get(info.state_param if info else "state")
        if not state:
            return CallbackOutcome(None, "missing_state", "The provider returned without a state.")
        now = self._clock()
        async with self._uow() as uow:
            flow = await uow.auth_flows.get_by_state_hash(_hash(state))
            if flow is None or flow.provider != provider:
                log.warning("authorization_unknown_state", provider=provider)
                return CallbackOutcome(None, "invalid_state", "This sign-in link is not valid.")
            claimed = await uow.auth_flows.claim(flow.id, now)
            await uow.commit()  # single use holds even if everything below fails
        if not claimed:
            return await self._fail(flow, "state_reused", "This sign-in link was already used; start again.")
        if flow.expires_at <= now:
            return await self._fail(
                flow, "state_expired", "The sign-in took longer than 10 minutes; start again."
            )
        try:
            result = await self._providers.flow(provider, {}).complete(
                params=params,
                flow_data=self._cipher.decrypt(flow.flow_data) if flow.flow_data else {},
                redirect_uri=self.redirect_uri(provider),
            )
        except ConsentDenied as exc:
            return await self._fail(flow, "access_denied", f"Access was not granted ({exc.reason}).")
        except FinsyncError as exc:
            return await self._fail(flow, "authorization_failed", exc.detail)
        except Exception:  # the browser must get a page, never a 500 with the state spent
            log.exception("authorization_crashed", provider=provider)
            return await self._fail(flow, "authorization_failed", "The provider's answer could not be read.")
        return await self._activate(flow, result.credentials, result.expires_at, present)

    async def _activate(
        self,
        flow: AuthFlow,
        credentials: dict[str, Any],
        expires_at: datetime | None,
        present: PersonPresent | None = None,
    ) -> CallbackOutcome:
        session = ProviderSession(connection_id=flow.connection_id, credentials=credentials)
        try:
            login = await identify(self._providers, flow.provider, session)
        except FinsyncError as exc:  # connected all the same; its first sync will say more
            log.warning("authorization_login_unidentified", provider=flow.provider, error=exc.detail)
            login = Login()
        for attempt in (1, 2):  # a concurrent callback of the same login may win the identity
            try:
                outcome, first = await self._store(flow, session.credentials, expires_at, login)
                break
            except Conflict:
                if attempt == 2:
                    raise
        if outcome.error is None and outcome.connection_id is not None:
            trigger = SyncTrigger.INITIAL if first else SyncTrigger.MANUAL
            try:
                await self._sync.request(outcome.connection_id, flow.user_id, trigger, present)
            except FinsyncError as exc:  # connected all the same; the sync can be retried later
                log.warning(
                    "post_authorization_sync_not_started",
                    connection_id=str(outcome.connection_id),
                    error=exc.detail,
                )
        return outcome

    async def _store(
        self, flow: AuthFlow, credentials: dict[str, Any], expires_at: datetime | None, login: Login
    ) -> tuple[CallbackOutcome, bool]:
        """Activate the flow's connection; or, when the login is already another connection's,
        re-authorise that one (a new connection is then dropped: its accounts would be copies).
        Also says whether the activated connection has never synced (its sync is the initial one)."""
        async with self._uow() as uow:
            connection = await uow.connections.get(flow.connection_id, flow.user_id, lock=True)
            if connection is None:
                deleted = CallbackOutcome(None, "connection_deleted", "The connection was deleted meanwhile.")
                return deleted, False
            other = await connected_as(uow, flow.user_id, flow.provider, login, exclude=connection.id)
            target = connection
            established = connection.last_synced_at is not None  # a re-consent, not a new one
            if other is not None and not established:
                target = await uow.connections.get(other, flow.user_id, lock=True) or connection
                await uow.connections.delete(connection.id)
            if other is not None and established:
                conflict = f"This login is already connected as connection {other}."
            else:
                conflict = None
                first = target.last_synced_at is None
                target.credentials = self._cipher.encrypt(credentials)
                target.identity = login.identity or target.identity
                target.status = ConnectionStatus.ACTIVE
                target.expires_at = expires_at
                target.authorized_at = self._clock()
                target.last_error = None
                target.last_error_code = None
                target.updated_at = self._clock()
                await uow.connections.save(target)
                await uow.commit()
        if conflict is not None:
            return await self._fail(flow, "already_connected", conflict), False
        log.info(
            "authorization_completed",
            connection_id=str(target.id),
            provider=target.provider,
            reauthorized=target is not connection,
        )
        if target is connection:
            return CallbackOutcome(target.id), first
        message = "This login was already connected: that connection was re-authorised and continues."
        return CallbackOutcome(target.id, message=message, reauthorized=True), first

    async def _fail(self, flow: AuthFlow, code: str, message: str) -> CallbackOutcome:
        """Nothing is activated; a pending connection records why, an active one is left alone."""
        async with self._uow() as uow:
            connection = await uow.connections.get(flow.connection_id, flow.user_id, lock=True)
            if connection is not None and connection.status is not ConnectionStatus.ACTIVE:
                connection.last_error = message
                connection.updated_at = self._clock()
                await uow.connections.save(connection)
                await uow.commit()
        log.warning("authorization_failed", connection_id=str(flow.connection_id), code=code)
        return CallbackOutcome(flow.connection_id, code, message)
