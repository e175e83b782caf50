"""Wires ports to adapters: the one place that knows every concrete class."""

from __future__ import annotations

import math
import time
from asyncio import CancelledError
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from finsync.application.auth import AuthService
from finsync.application.authorization import AuthorizationService
from finsync.application.cash_flow import CashFlowService
from finsync.application.connections import ConnectionService
from finsync.application.idempotency import IdempotencyService
from finsync.application.imports import ImportService
from finsync.application.labels import LabelService
from finsync.application.market_data import MarketDataService
from finsync.application.net_worth import NetWorthService
from finsync.application.operators import KeyRotation, UserAdmin
from finsync.application.performance import PerformanceService
from finsync.application.schedule import Scheduler
from finsync.application.sync import SyncService
from finsync.application.sync_job import SyncRunner
from finsync.application.throttle import LoginThrottle, ThrottlePolicy
from finsync.application.userdata import UserDataService
from finsync.config import Registration, Settings
from finsync.domain.entities import utcnow
from finsync.domain.enums import Capability
from finsync.domain.errors import ProviderNotAvailable
from finsync.domain.jobs import JobRegistry, JobType, RetryPolicy, SyncConnection
from finsync.domain.ports import (
    Clock,
    ProviderAdapter,
    ProviderInfo,
    ProviderSession,
    RedirectFlow,
    UnitOfWork,
)
from finsync.infrastructure.db import sqlite_functions
from finsync.infrastructure.db.engine import create_engine, session_factory
from finsync.infrastructure.db.uow import SqlUnitOfWork
from finsync.infrastructure.jobs import ConcurrencyCaps, JobBackend, job_backend
from finsync.infrastructure.keys import load_or_create_secret
from finsync.infrastructure.logs import configure_logging
from finsync.infrastructure.market import source_factory
from finsync.infrastructure.passwords import NistPasswordPolicy
from finsync.infrastructure.ratelimits import PgBuckets
from finsync.infrastructure.security import (
    Argon2PasswordHasher,
    BlockingHasher,
    FernetCipher,
    JwtAccessTokens,
    ThreadedHasher,
)
from finsync.providers.ratelimit import BUCKET_STORE, BucketStore
from finsync.providers.registry import ProviderMetadata, ProviderRegistry

__all__ = ["Container", "build", "configure_logging"]
# Daily, UTC: after the ECB's reference rates (about 16:00 CET) and after the European close.
MARKET_DATA_CRON = "30 16 * * *"


class ConfigurationError(RuntimeError):
    """The deployment's settings cannot work; the message says what to set (never a secret)."""


class RegistryGateway:
    """ProviderGateway over the registry; ``adapter_options`` lets tests inject clocks/transports."""

    def __init__(
        self,
        registry: ProviderRegistry,
        settings: Settings,
        adapter_options: dict[str, Any],
        buckets: BucketStore | None = None,
    ) -> None:
        self.registry = registry
        self._settings = settings
        self._options = adapter_options
        self._resources: dict[str, dict[str, Any]] = {}
        self._buckets = buckets

    @contextmanager
    def _shared_budgets(self) -> Iterator[None]:
        """Provider HTTP clients built inside take their rate budgets from the shared store."""
        token = BUCKET_STORE.set(self._buckets)
        try:
            yield
        finally:
            BUCKET_STORE.reset(token)

    def _meta(self, provider: str) -> ProviderMetadata:
        meta = self.registry.get(provider)
        if meta is None:
            raise ProviderNotAvailable(f"provider {provider!r} is not available on this server")
        return meta

    def options(self, provider: str) -> dict[str, Any]:
        """Test/deployment options plus the provider's per-process resources (built once)."""
        meta = self._meta(provider)
        if meta.resources is not None and provider not in self._resources:
            self._resources[provider] = meta.resources(self._settings, **self._options)
        return self._options | self._resources.get(provider, {})

    def flow(self, provider: str, options: dict[str, Any]) -> RedirectFlow:
        meta = self._meta(provider)
        if meta.flow_factory is None:
            raise ProviderNotAvailable(f"{meta.display_name} has no browser authorisation flow")
        with self._shared_budgets():
            flow: RedirectFlow = meta.flow_factory(self._settings, options, **self.options(provider))
        return flow

    def info(self, provider: str) -> ProviderInfo | None:
        meta = self.registry.get(provider)
        if meta is None:
            return None
        fields = meta.credential_fields
        return ProviderInfo(
            slug=meta.slug,
            display_name=meta.display_name,
            auth_type=meta.auth_type,
            capabilities=meta.capabilities,
            required_credentials=frozenset(f.name for f in fields if f.required),
            optional_credentials=frozenset(f.name for f in fields if not f.required),
            environments=meta.environments,
            missing_settings=tuple(meta.missing_settings(self._settings)),
            state_param=meta.state_param,
            schedule=meta.sync_schedule,
        )

    def capabilities(self, provider: str) -> frozenset[Capability]:
        meta = self.registry.get(provider)
        return meta.capabilities if meta is not None else frozenset()

    def adapter(self, provider: str, session: ProviderSession) -> ProviderAdapter:
        meta = self._meta(provider)
        if meta.adapter_factory is None:
            raise ProviderNotAvailable(f"{meta.display_name} has no sync adapter")
        with self._shared_budgets():
            adapter: ProviderAdapter = meta.adapter_factory(session, self._settings, **self.options(provider))
        return adapter


class BankDirectory:
    """GoCardless institutions per country, cached for a day (the list changes rarely)."""

    TTL = 86_400.0

    def __init__(self, gateway: RegistryGateway, settings: Settings) -> None:
        self._gateway = gateway
        self._settings = settings
        self._cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    async def __call__(self, country: str) -> list[dict[str, Any]]:
        from finsync.providers.gocardless import institutions

        hit = self._cache.get(country)
        if hit is not None and time.monotonic() - hit[0] < self.TTL:
            return hit[1]
        banks = await institutions(self._settings, country, **self._gateway.options("gocardless"))
        self._cache[country] = (time.monotonic(), banks)
        return banks


def resolve_secrets(settings: Settings) -> tuple[list[str], str]:
    """Embedded default: generate secrets on first run. Production: refuse to start without them."""
    keys = [k.get_secret_value() for k in settings.encryption_keys]
    jwt_secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
    if settings.is_sqlite:
        if not keys:
            keys = [load_or_create_secret(settings.data_dir / "encryption.key", "fernet")]
        if not jwt_secret:
            jwt_secret = load_or_create_secret(settings.data_dir / "jwt.secret", "token")
    missing = [
        name for name, v in (("FINSYNC_ENCRYPTION_KEYS", keys), ("FINSYNC_JWT_SECRET", jwt_secret)) if not v
    ]
    if missing:
        raise ConfigurationError(
            f"{' and '.join(missing)} must be set when using PostgreSQL (see docs/configuration.md)"
        )
    if len(jwt_secret) < 32:
        raise ConfigurationError(
            "FINSYNC_JWT_SECRET must be at least 32 characters (see docs/configuration.md)"
        )
    for position, key in enumerate(keys, 1):
        try:
            FernetCipher([key])
        except ValueError:  # the message names the key's position, never its value
            raise ConfigurationError(
                f"FINSYNC_ENCRYPTION_KEYS: key {position} is not a Fernet key "
                "(32 url-safe base64-encoded bytes; see docs/configuration.md)"
            ) from None
    return keys, jwt_secret


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    uow: Callable[[], UnitOfWork]
    registry: ProviderRegistry
    providers: RegistryGateway
    cipher: FernetCipher
    tokens: JwtAccessTokens
    auth: AuthService
    sync: SyncService
    connections: ConnectionService
    authorization: AuthorizationService
    jobs: JobBackend
    institutions: BankDirectory
    imports: ImportService
    idempotency: IdempotencyService
    runner: SyncRunner
    scheduler: Scheduler
    job_types: JobRegistry
    market_data: MarketDataService
    net_worth: NetWorthService
    cash_flow: CashFlowService
    performance: PerformanceService
    labels: LabelService
    clock: Clock = field(default=utcnow)
    userdata: UserDataService = field(init=False)
    users: UserAdmin = field(init=False)
    keys: KeyRotation = field(init=False)

    async def database_problem(self) -> str | None:
        """None when the database answers, else the kind of failure (for readiness probes)."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            return type(exc).__name__
        return None

    async def start_jobs(self) -> None:
        """In a process that runs jobs itself (SQLite): runs left queued or running by a previous
        process have no job any more (one process per database), then the periodic use cases
        start. On PostgreSQL this does nothing: workers own jobs, and a start closes no run."""
        if self.settings.is_sqlite:
            await self.scheduler.reap_stale_runs(grace=timedelta(0))
        self.jobs.start()

    async def run_worker(self, concurrency: int | None = None, *, signals: bool = False) -> None:
        """Run jobs and the periodic use cases until stopped (``finsync worker``)."""
        await self.jobs.run_worker(concurrency or self.settings.worker_concurrency, signals=signals)

    async def aclose(self) -> None:
        await self.jobs.aclose()
        await self.engine.dispose()


def build(
    settings: Settings,
    *,
    registry: ProviderRegistry | None = None,
    clock: Clock = utcnow,
    adapter_options: dict[str, Any] | None = None,
    hasher: BlockingHasher | None = None,
    market_options: dict[str, Any] | None = None,
) -> Container:
    """``market_options`` go to the market data sources' HTTP layer (tests: a virtual clock)."""
    keys, jwt_secret = resolve_secrets(settings)
    engine = create_engine(settings.database_url)
    sqlite_functions.install(engine)  # exact decimal sums for analytics on SQLite
    sessions = session_factory(engine)
    job_types = JobRegistry()
    jobs = job_backend(
        job_types,
        settings.database_url,
        concurrency=settings.worker_concurrency,
        caps=ConcurrencyCaps(settings.provider_max_concurrency),
        pool_size=settings.job_pool_size,
        heartbeat_seconds=settings.job_heartbeat_seconds,
        stall_seconds=settings.job_stall_seconds,
        poll_seconds=settings.job_poll_seconds,
    )

    def uow() -> UnitOfWork:
        return SqlUnitOfWork(sessions, jobs)

    registry = registry or ProviderRegistry.default()
    shared = settings.shared_rate_limits and not settings.is_sqlite  # one process on SQLite
    gateway = RegistryGateway(
        registry, settings, adapter_options or {}, PgBuckets(engine) if shared else None
    )
    cipher = FernetCipher(keys)
    tokens = JwtAccessTokens(jwt_secret, settings.access_token_minutes, clock)
    policy = ThrottlePolicy(
        per_pair=settings.login_attempts_per_account,
        per_client=settings.login_attempts_per_address,
        window=timedelta(seconds=settings.login_window_seconds),
        backoff_after=settings.login_backoff_after,
        backoff_max=timedelta(seconds=settings.login_backoff_max_seconds),
        known_for=timedelta(days=settings.login_known_client_days),
    )
    threaded = ThreadedHasher(hasher or Argon2PasswordHasher(), settings.password_hash_concurrency)
    auth = AuthService(
        uow,
        threaded,
        tokens,
        LoginThrottle(policy, clock),
        NistPasswordPolicy(),
        refresh_days=settings.refresh_token_days,
        registration_open=settings.registration is Registration.OPEN,
        clock=clock,
    )
    sync = SyncService(uow, gateway, cipher, clock)
    runner = SyncRunner(uow, gateway, cipher, clock)
    scheduler = Scheduler(
        uow,
        gateway,
        jobs,
        clock,
        batch=settings.scheduler_batch,
        grace=timedelta(seconds=settings.run_grace_seconds),
    )
    market_data = MarketDataService(
        uow, source_factory(settings, **(market_options or {})), settings.market_backfill_days, clock
    )
    register_jobs(job_types, runner, scheduler, market_data, settings)
    callback = f"{settings.public_url.rstrip('/')}/api/v1/connections/callback"
    authorization = AuthorizationService(uow, gateway, cipher, sync, callback, clock)
    connections = ConnectionService(uow, gateway, cipher, sync, authorization, clock)
    container = Container(
        settings=settings,
        engine=engine,
        uow=uow,
        registry=registry,
        providers=gateway,
        cipher=cipher,
        tokens=tokens,
        auth=auth,
        sync=sync,
        connections=connections,
        authorization=authorization,
        jobs=jobs,
        institutions=BankDirectory(gateway, settings),
        imports=ImportService(uow, registry.file_formats(), settings.upload_limit_bytes, clock),
        idempotency=IdempotencyService(uow, clock),
        runner=runner,
        scheduler=scheduler,
        job_types=job_types,
        market_data=market_data,
        net_worth=NetWorthService(settings.base_currency, clock),
        cash_flow=CashFlowService(settings.base_currency),
        performance=PerformanceService(settings.base_currency, clock),
        labels=LabelService(uow, clock),
        clock=clock,
    )
    container.userdata = UserDataService(uow, clock)
    container.users = UserAdmin(uow, clock)
    container.keys = KeyRotation(uow, cipher, cipher)
    return container


def register_jobs(
    registry: JobRegistry,
    runner: SyncRunner,
    scheduler: Scheduler,
    market_data: MarketDataService,
    settings: Settings,
) -> None:
    """Every job type and periodic use case; a new one (e.g. webhook delivery) is one more entry."""
    registry.register(
        JobType(
            job=SyncConnection,
            handler=runner.run,
            # Provider faults never raise (they are the run's outcome); what does is the database
            # or a worker shut down mid-sync: try again, with back-off.
            retry=RetryPolicy(
                max_attempts=10, base_seconds=5, cap_seconds=600, retry_on=(Exception, CancelledError)
            ),
            lock=lambda job: SyncConnection.lock_of(job.connection_id),
            queueing_lock=lambda job: SyncConnection.lock_of(job.connection_id),
            concurrency_key=lambda job: f"provider:{job.provider}",
        )
    )
    tick = settings.scheduler_tick_seconds
    registry.every(tick, "enqueue_due", scheduler.enqueue_due)
    # Each periodic task costs every worker a deferral attempt and one job per run: only the
    # scheduler needs the tick. Expiry is a matter of minutes; the reaper can act only once a
    # worker has missed heartbeats for the stall limit anyway.
    registry.every(max(tick, 60), "expire_lapsed", scheduler.expire_lapsed)
    reap = max(tick, math.ceil(settings.job_stall_seconds))
    registry.every(reap, "reap_stale_runs", scheduler.reap_stale_runs)

    async def refresh_market_data(at: datetime) -> None:  # the slot's day, even if run late
        await market_data.refresh_market_data(at.date())

    registry.at(MARKET_DATA_CRON, "refresh_market_data", refresh_market_data)
