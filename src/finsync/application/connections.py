"""Connection lifecycle: create (API-key providers validate first), update, delete."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import structlog

from finsync.application.logins import Login, already_connected, connected_as, identify
from finsync.application.provider_authorization import ProviderAuthorizationService
from finsync.application.sync import SyncService, session_of
from finsync.domain.entities import Connection, SyncRun, connection_name, utcnow
from finsync.domain.enums import AuthType, ConnectionStatus, SyncTrigger
from finsync.domain.errors import InvalidInput, NotFound, ProviderNotAvailable
from finsync.domain.ports import (
    NEVER,
    CredentialCipher,
    Now,
    ProviderGateway,
    ProviderInfo,
    ProviderSession,
    UnitOfWorkFactory,
)
from finsync.domain.schedule import SyncSchedule, first_schedule

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleChange:
    """A PATCH of the schedule: ``interval_set`` with ``interval`` None resets to the provider's default."""

    interval_set: bool = False
    interval: int | None = None
    enabled: bool | None = None


@dataclass(frozen=True, slots=True)
class ExpiryChange:
    """A PATCH of ``expires_at`` (None clears it): for API keys whose lifetime finsync cannot read."""

    expires_at: datetime | None


MAX_EXPIRY = timedelta(days=5 * 366)


def _future(value: datetime, now: datetime) -> datetime:
    """A user's expiry date: aware (no offset = UTC), after now, within 5 years."""
    try:
        when = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (OverflowError, ValueError):
        when = None
    if when is None or not now < when <= now + MAX_EXPIRY:
        raise InvalidInput("expires_at must be in the future and at most 5 years ahead")
    return when


def _expiry_of(info: ProviderInfo, creds: dict[str, str], now: datetime) -> datetime | None:
    """Take the provider's expiry field (a date the person typed) out of ``creds``: it becomes
    the connection's ``expires_at`` (start of that day, UTC) and is never stored as a credential."""
    name = info.expiry_credential
    text = creds.pop(name, None) if name else None
    if text is None:
        return None
    try:
        when = datetime.combine(date.fromisoformat(text), datetime.min.time())
    except ValueError:
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInput(f"{name} must be a date such as 2027-05-01") from None
    try:
        return _future(when, now)
    except InvalidInput:
        raise InvalidInput(f"{name} must be a date in the future, at most 5 years ahead") from None


@dataclass(slots=True)
class Created:
    connection: Connection
    sync_run: SyncRun | None = None
    authorization_url: str | None = None


class ConnectionService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        providers: ProviderGateway,
        cipher: CredentialCipher,
        sync: SyncService,
        provider_authorization: ProviderAuthorizationService,
        clock: Now = utcnow,
    ) -> None:
        self._provider_authorization = provider_authorization
        self._uow = uow
        self._providers = providers
        self._cipher = cipher
        self._sync = sync
        self._clock = clock

    def provider(self, slug: str) -> ProviderInfo:
        info = self._providers.info(slug)
        if info is None:
            raise ProviderNotAvailable(f"unknown provider {slug!r}; see GET /api/v1/providers")
        if info.missing_settings:
            missing = ", ".join(info.missing_settings)
            raise ProviderNotAvailable(
                f"this server is not configured for {info.display_name} (set {missing})"
            )
        return info

    @staticmethod
    def _environment(info: ProviderInfo, environment: str | None) -> str | None:
        if not info.environments:
            if environment is not None:
                raise InvalidInput(f"{info.display_name} has no environments")
            return None
        if environment is None:
            return info.environments[0]
        if environment not in info.environments:
            raise InvalidInput(f"environment must be one of: {', '.join(info.environments)}")
        return environment

    @staticmethod
    def _clean(info: ProviderInfo, credentials: dict[str, str] | None) -> dict[str, str]:
        given = {k: v.strip() for k, v in (credentials or {}).items() if v and v.strip()}
        unknown = sorted(set(given) - info.required_credentials - info.optional_credentials)
        if unknown:
            raise InvalidInput(f"unknown credential fields for {info.display_name}: {', '.join(unknown)}")
        missing = sorted(info.required_credentials - set(given))
        if missing:
            raise InvalidInput(f"missing credential fields for {info.display_name}: {', '.join(missing)}")
        return given

    async def _identify(
        self, connection_id: UUID, info: ProviderInfo, env: str | None, creds: dict[str, Any]
    ) -> tuple[Login, dict[str, Any], list[str]]:
        """One cheap authenticated call before anything is stored; the provider's reason surfaces as 422.

        Also the credentials to store: what the validator left in the session, which may replace
        what was pasted (SimpleFIN claims a one-time setup token for an access URL). Such an
        exchange cannot be repeated, so callers store the result in their very next transaction.
        And what the provider said about the key without refusing it (an exchange key that may
        trade: "a read-only key is enough"), for the connection's ``provider_messages``.
        """
        session = ProviderSession(connection_id=connection_id, credentials=dict(creds), environment=env)
        login = await identify(self._providers, info.slug, session)
        return login, session.credentials, list(dict.fromkeys(session.warnings))

    async def create(
        self,
        user_id: UUID,
        slug: str,
        name: str | None,
        environment: str | None,
        credentials: dict[str, str] | None,
        options: dict[str, str] | None = None,
    ) -> Created:
        info = self.provider(slug)
        if info.auth_type is AuthType.API_KEY:
            return await self._create_with_credentials(user_id, info, name, environment, credentials)
        if info.auth_type.in_browser:
            if credentials:
                raise InvalidInput(f"{info.display_name} is connected in the browser; send no credentials")
            connection, url = await self._provider_authorization.create(user_id, info, name, options)
            return Created(connection=connection, authorization_url=url)
        raise InvalidInput(f"{info.display_name} is not connected this way; upload a file to /api/v1/imports")

    async def _create_with_credentials(
        self,
        user_id: UUID,
        info: ProviderInfo,
        name: str | None,
        environment: str | None,
        credentials: dict[str, str] | None,
    ) -> Created:
        env = self._environment(info, environment)
        creds = self._clean(info, credentials)
        now = self._clock()
        expires_at = _expiry_of(info, creds, now)
        connection = Connection(
            user_id=user_id,
            provider=info.slug,
            name=connection_name(name, info.display_name),
            environment=env,
            status=ConnectionStatus.ACTIVE,
            created_at=now,
            updated_at=now,
            expires_at=expires_at,
        )
        connection.sync_interval_minutes, connection.next_sync_at = first_schedule(info.schedule, now)
        login, kept, said = await self._identify(connection.id, info, env, creds)
        connection.provider_messages = said or None
        connection.identity = login.identity
        connection.credentials = self._cipher.encrypt(kept)
        async with self._uow() as uow:
            other = await connected_as(uow, user_id, info.slug, login)
            if other is not None:
                raise already_connected(other)
            if login.identity is None:
                await uow.connections.add(connection)
            elif (stored := await uow.connections.add_or_get(connection)).id != connection.id:
                raise already_connected(stored.id)  # a concurrent request connected it first
            await uow.commit()
        log.info("connection_created", connection_id=str(connection.id), provider=info.slug)
        run = await self._sync.request(connection.id, user_id, SyncTrigger.INITIAL)
        return Created(connection=connection, sync_run=run)

    async def update(
        self,
        connection_id: UUID,
        user_id: UUID,
        name: str | None,
        credentials: dict[str, str] | None,
        schedule: ScheduleChange | None = None,
        expiry: ExpiryChange | None = None,
    ) -> Connection:
        """Rename, change the schedule, set the expiry of an API key, or replace credentials
        (validated like a new connection; the old ones stay on failure)."""
        async with self._uow() as uow:
            current = await uow.connections.get(connection_id, user_id)
        if current is None:
            raise NotFound("connection")
        expires_at = None
        if expiry is not None:
            info = self._providers.info(current.provider)
            if info is None or info.auth_type is not AuthType.API_KEY:
                raise InvalidInput(
                    "expires_at can be set only for API-key connections; others learn it from the provider"
                )
            if expiry.expires_at is not None:
                expires_at = _future(expiry.expires_at, self._clock())
        plan = self._schedule_of(current.provider)
        if schedule is not None and schedule.interval_set and schedule.interval is not None:
            plan.check(schedule.interval)
        if (
            schedule is not None
            and plan.default_minutes is None
            and (schedule.interval_set or schedule.enabled)
        ):
            raise InvalidInput(
                "statement-file connections are updated by uploading files; they have no schedule"
            )
        if name is not None and not connection_name(name, ""):
            raise InvalidInput("name must not be empty")
        encrypted, login, said, new_expiry = None, Login(), list[str](), None
        if credentials is not None:
            info = self.provider(current.provider)
            if info.auth_type is not AuthType.API_KEY:
                raise InvalidInput(f"{info.display_name} credentials are renewed with POST .../reauthorize")
            creds = self._clean(info, credentials)
            new_expiry = _expiry_of(info, creds, self._clock())
            login, kept, said = await self._identify(current.id, info, current.environment, creds)
            encrypted = self._cipher.encrypt(kept)
        async with self._uow() as uow:  # re-read: a sync may have moved state on while we validated
            connection = await uow.connections.get(connection_id, user_id, lock=True)
            if connection is None:
                raise NotFound("connection")
            if encrypted is not None:
                other = await connected_as(uow, user_id, connection.provider, login, exclude=connection.id)
                if other is not None:
                    raise already_connected(other)
                connection.credentials = encrypted
                connection.provider_messages = said or None
                connection.identity = login.identity or connection.identity
                connection.status = ConnectionStatus.ACTIVE
                connection.last_error = None
                connection.last_error_code = None
                connection.failure_count = 0
                connection.expires_at = new_expiry  # the old key's expiry is not the new one's
                connection.authorized_at = self._clock()
            if expiry is not None:
                connection.expires_at = expires_at
                connection.authorized_at = self._clock()
            if name is not None:
                connection.name = connection_name(name, connection.name)
            if schedule is not None:
                self._reschedule(connection, plan, schedule)
            connection.updated_at = self._clock()
            await uow.connections.save(connection)
            await uow.commit()
        return connection

    def _schedule_of(self, provider: str) -> SyncSchedule:
        info = self._providers.info(provider)
        return info.schedule if info is not None else NEVER

    def _reschedule(self, connection: Connection, plan: SyncSchedule, change: ScheduleChange) -> None:
        """A new interval counts from the last sync (due now when that is longer ago), but never
        brings forward a retry the last failure put off (its back-off, a rate limit's reset)."""
        if change.enabled is not None:
            connection.sync_enabled = change.enabled
        if change.interval_set:
            connection.sync_interval_minutes = change.interval or plan.default_minutes
            now = self._clock()
            after = plan.next_at(connection.last_synced_at or now, connection.sync_interval_minutes)
            if after is not None and connection.last_error_code and connection.next_sync_at:
                after = max(after, connection.next_sync_at)  # the last sync failed: its retry stands
            connection.next_sync_at = None if after is None else max(after, now)

    async def delete(self, connection_id: UUID, user_id: UUID) -> None:
        """Deletes the connection with its accounts, holdings, transactions, snapshots and runs."""
        async with self._uow() as uow:
            connection = await uow.connections.get(connection_id, user_id, lock=True)
            if connection is None:
                raise NotFound("connection")
            await uow.connections.delete(connection_id)
            await uow.commit()
        log.info("connection_deleted", connection_id=str(connection_id))
        await self._revoke(connection)

    async def _revoke(self, connection: Connection) -> None:
        """End the consent at the provider (e.g. a bank session). Best effort, after the commit:
        the connection is gone either way, and an unreachable provider must not keep it."""
        try:
            await self._providers.revoke(connection.provider, session_of(connection, self._cipher))
        except Exception as exc:  # logged without its text: provider errors may echo identifiers
            log.warning(
                "connection_revoke_failed",
                connection_id=str(connection.id),
                provider=connection.provider,
                error=type(exc).__name__,
            )
