"""Wires ports to adapters: the one place that knows every concrete class."""

from __future__ import annotations

import math
from asyncio import CancelledError
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from finsync.application.api_tokens import ApiTokenService
from finsync.application.cash_flow import CashFlowService
from finsync.application.connections import ConnectionService
from finsync.application.idempotency import IdempotencyService
from finsync.application.imports import ImportService
from finsync.application.labels import LabelService
from finsync.application.live_positions import LivePositionsService
from finsync.application.market_data import MarketDataService
from finsync.application.net_worth import NetWorthService
from finsync.application.operators import KeyRotation, UserAdmin
from finsync.application.order_stream import OrderStream
from finsync.application.orders import OrderService
from finsync.application.performance import PerformanceService
from finsync.application.provider_authorization import ProviderAuthorizationService
from finsync.application.schedule import Scheduler
from finsync.application.sync import SyncService
from finsync.application.sync_job import SyncRunner
from finsync.application.throttle import LoginThrottle, ThrottlePolicy
from finsync.application.trading import TradingService
from finsync.application.user_auth import UserAuthService
from finsync.application.userdata import UserDataService
from finsync.application.webhooks import WebhookDeliverer, WebhookEvents, WebhookService
from finsync.config import Registration, Settings
from finsync.domain.entities import utcnow
from finsync.domain.jobs import DeliverWebhook, JobRegistry, JobType, RetryPolicy, SyncConnection
from finsync.domain.market import MarketSources
from finsync.domain.ports import (
    AccessTokens,
    CredentialCipher,
    KeyRotator,
    Now,
    OrderDesk,
    PasswordPolicy,
    SessionCheck,
    UnitOfWorkFactory,
)
from finsync.infrastructure.db import sqlite_functions
from finsync.infrastructure.db.engine import create_engine, create_inline_reader, session_factory
from finsync.infrastructure.db.live_session import checking_session
from finsync.infrastructure.db.order_desk import SqlOrderDesk
from finsync.infrastructure.db.raw import DriverPool
from finsync.infrastructure.db.uow import SqlUnitOfWork
from finsync.infrastructure.jobs import ConcurrencyCaps, JobBackend, job_backend
from finsync.infrastructure.keys import resolve_secrets
from finsync.infrastructure.logs import configure_logging
from finsync.infrastructure.market import source_factory
from finsync.infrastructure.order_feed import LocalOrderFeed, order_feed
from finsync.infrastructure.passwords import NistPasswordPolicy
from finsync.infrastructure.provider_gateway import BankDirectory, RegistryGateway
from finsync.infrastructure.ratelimits import PgBuckets
from finsync.infrastructure.security import (
    Argon2PasswordHasher,
    BlockingHasher,
    FernetCipher,
    JwtAccessTokens,
    ThreadedHasher,
)
from finsync.infrastructure.webhooks import HttpWebhookSender
from finsync.providers.ratelimit import BucketStore
from finsync.providers.registry import ProviderRegistry

__all__ = ["Container", "build", "configure_logging"]
# Daily, UTC: after the ECB's reference rates (about 16:00 CET) and after the European close.
MARKET_DATA_CRON = "30 16 * * *"

JobQueueFactory = Callable[[JobRegistry], JobBackend]
"""Builds the job queue over the job types ``build`` registers (their handlers need the container)."""
MarketSourceFactory = Callable[[date], MarketSources]


class RotatingCipher(CredentialCipher, KeyRotator, Protocol):
    """Encrypts credentials at rest and re-encrypts old values with the newest key."""


@dataclass(kw_only=True)
class Container:
    """Every use case and adapter of one process, built by ``build`` (tests override parts there)."""

    settings: Settings
    engine: AsyncEngine
    uow: UnitOfWorkFactory
    registry: ProviderRegistry
    providers: RegistryGateway
    cipher: RotatingCipher
    tokens: AccessTokens
    user_auth: UserAuthService
    sync: SyncService
    connections: ConnectionService
    provider_authorization: ProviderAuthorizationService
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
    userdata: UserDataService
    users: UserAdmin
    keys: KeyRotation
    webhooks: WebhookService
    deliverer: WebhookDeliverer
    trading: TradingService
    orders: OrderService
    api_tokens: ApiTokenService
    live_positions: LivePositionsService
    order_feed: LocalOrderFeed
    order_stream: OrderStream
    # The API's per-request unit of work (reads only): autocommit on PostgreSQL, see ``build``.
    read_uow: UnitOfWorkFactory
    # asyncpg connections under ``read_uow``'s hottest reads (PostgreSQL; see ``db.raw``).
    reader: DriverPool | None = None
    # Reads of bounded cost (the fast lane's: a user, a page sought in an index): on a SQLite
    # file, on connections that run on the event loop's thread (``db.inline_sqlite``); None
    # elsewhere, where ``read_uow`` serves them.
    bounded_read_uow: UnitOfWorkFactory | None = None
    inline_engine: AsyncEngine | None = None
    clock: Now = utcnow

    def one_read_connection(self) -> AbstractAsyncContextManager[None]:
        """PostgreSQL: the read unit of work's raw statements run inside share one driver
        connection, checked out once (``DriverPool.pinned``: a few statements in a row with
        nothing else between them); elsewhere nothing to share."""
        return nullcontext() if self.reader is None else self.reader.pinned()

    def checking_session(self, check: SessionCheck) -> AbstractContextManager[SessionCheck]:
        """Reads inside may answer ``check`` in their own statement (``db.live_session``):
        the fast lane's page on PostgreSQL, one round trip instead of two."""
        return checking_session(check)

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
        await self.order_feed.aclose()
        await self.jobs.aclose()
        await self.orders.aclose()
        if self.reader is not None:
            await self.reader.aclose()
        if self.inline_engine is not None:
            await self.inline_engine.dispose()
        await self.engine.dispose()


def database_engine(settings: Settings) -> AsyncEngine:
    """The engine ``build`` makes when given none (a caller that keeps one across containers,
    as the tests do, makes it here so it is the same)."""
    pool = (
        {}
        if settings.is_sqlite
        else {"pool_size": settings.database_pool_size, "max_overflow": settings.database_max_overflow}
    )
    engine = create_engine(settings.database_url, **pool)
    sqlite_functions.install(engine)  # exact decimal sums for analytics on SQLite
    return engine


def build(
    settings: Settings,
    *,
    clock: Now = utcnow,
    registry: ProviderRegistry | None = None,
    hasher: BlockingHasher | None = None,
    password_policy: PasswordPolicy | None = None,
    cipher: RotatingCipher | None = None,
    tokens: AccessTokens | None = None,
    engine: AsyncEngine | None = None,
    job_queue: JobQueueFactory | None = None,
    uow: UnitOfWorkFactory | None = None,
    rate_budgets: BucketStore | None = None,
    market_sources: MarketSourceFactory | None = None,
    adapter_options: dict[str, Any] | None = None,
    market_options: dict[str, Any] | None = None,
    webhook_options: dict[str, Any] | None = None,
) -> Container:
    """Wire one process. Every dependency is a keyword with the production default, so a test
    swaps exactly what it needs (a cheap hasher, a settable clock, a fake registry) and keeps
    the rest real. ``adapter_options`` reach every provider factory (tests: transports, virtual
    clocks); ``market_options`` go to the default market sources' HTTP layer; ``webhook_options``
    to the webhook sender (tests: a DNS resolver)."""
    keys, jwt_secret = resolve_secrets(settings)
    engine = engine or database_engine(settings)
    job_types = JobRegistry()
    jobs = (job_queue or default_job_queue(settings))(job_types)
    feed = order_feed(settings.database_url, settings.order_events_queue_size)
    if uow is None:
        sessions = session_factory(engine)
        # Requests read through autocommit sessions on PostgreSQL: under READ COMMITTED every
        # statement takes its own snapshot anyway, so the BEGIN and ROLLBACK round trips bought
        # a read nothing (they were two of a page's four). Writes keep their transactions.
        postgres = engine.dialect.name == "postgresql"
        reads = (
            session_factory(engine.execution_options(isolation_level="AUTOCOMMIT")) if postgres else sessions
        )
        reader = DriverPool(engine, settings.database_read_pool_size) if postgres else None
        uow = partial(SqlUnitOfWork, sessions, jobs, feed)
        read_uow: UnitOfWorkFactory = partial(SqlUnitOfWork, reads, jobs, feed, reader)
        desk: OrderDesk | None = SqlOrderDesk(engine, feed)
        inline = create_inline_reader(engine)
        bounded = None if inline is None else partial(SqlUnitOfWork, session_factory(inline), jobs, feed)
    else:  # a unit of work made for a test: orders go through it
        read_uow, desk, reader, inline, bounded = uow, None, None, None, None

    registry = registry or ProviderRegistry.default()
    if rate_budgets is None and settings.shared_rate_limits and not settings.is_sqlite:
        rate_budgets = PgBuckets(engine)  # several processes share them; SQLite has one process
    gateway = RegistryGateway(registry, settings, adapter_options or {}, rate_budgets)
    cipher = cipher or FernetCipher(keys)
    tokens = tokens or JwtAccessTokens(jwt_secret, settings.access_token_minutes, clock)
    policy = ThrottlePolicy(
        per_pair=settings.login_attempts_per_account,
        per_client=settings.login_attempts_per_address,
        window=timedelta(seconds=settings.login_window_seconds),
        backoff_after=settings.login_backoff_after,
        backoff_max=timedelta(seconds=settings.login_backoff_max_seconds),
        known_for=timedelta(days=settings.login_known_client_days),
    )
    threaded = ThreadedHasher(hasher or Argon2PasswordHasher(), settings.password_hash_concurrency)
    user_auth = UserAuthService(
        uow,
        threaded,
        tokens,
        LoginThrottle(policy, clock),
        password_policy or NistPasswordPolicy(),
        refresh_days=settings.refresh_token_days,
        registration_open=settings.registration is Registration.OPEN,
        clock=clock,
    )
    sync = SyncService(uow, gateway, cipher, clock)
    events = WebhookEvents(clock)
    runner = SyncRunner(uow, gateway, cipher, clock, events=events)
    scheduler = Scheduler(
        uow,
        gateway,
        jobs,
        clock,
        batch=settings.scheduler_batch,
        grace=timedelta(seconds=settings.run_grace_seconds),
        events=events,
    )
    sender = HttpWebhookSender(
        settings.webhook_allowed_hosts,
        timeout=settings.webhook_timeout_seconds,
        **(webhook_options or {}),
    )
    deliverer = WebhookDeliverer(
        uow,
        cipher,
        sender,
        jobs,
        events,
        clock,
        max_attempts=settings.webhook_max_attempts,
        keep=timedelta(days=settings.webhook_retention_days),
        batch=settings.scheduler_batch,
    )
    market_data = MarketDataService(
        uow,
        market_sources or source_factory(settings, **(market_options or {})),
        settings.market_backfill_days,
        clock,
    )
    live = settings.live_trading == "enabled"
    pages = bounded or read_uow  # a page of a list: bounded reads
    orders = OrderService(
        uow, gateway, cipher, live_trading=live, clock=clock, desk=desk, pages=pages, reads=read_uow
    )
    register_jobs(job_types, runner, scheduler, market_data, settings, deliverer)
    job_types.every(settings.order_poll_seconds, "follow_open_orders", orders.follow_open)
    idempotency = IdempotencyService(uow, clock, batch=settings.scheduler_batch)
    job_types.every(3600, "prune_idempotency_keys", idempotency.prune)
    callback = f"{settings.public_url.rstrip('/')}/api/v1/connections/callback"
    provider_authorization = ProviderAuthorizationService(uow, gateway, cipher, sync, callback, clock)
    return Container(
        settings=settings,
        engine=engine,
        uow=uow,
        read_uow=read_uow,
        reader=reader,
        bounded_read_uow=bounded,
        inline_engine=inline,
        registry=registry,
        providers=gateway,
        cipher=cipher,
        tokens=tokens,
        user_auth=user_auth,
        sync=sync,
        connections=ConnectionService(uow, gateway, cipher, sync, provider_authorization, clock),
        provider_authorization=provider_authorization,
        jobs=jobs,
        institutions=BankDirectory(gateway, settings),
        imports=ImportService(
            uow, registry.file_formats(), settings.upload_limit_bytes, clock, events=events
        ),
        idempotency=idempotency,
        runner=runner,
        scheduler=scheduler,
        job_types=job_types,
        market_data=market_data,
        net_worth=NetWorthService(settings.base_currency, clock),
        cash_flow=CashFlowService(settings.base_currency),
        performance=PerformanceService(settings.base_currency, clock),
        labels=LabelService(uow, clock),
        userdata=UserDataService(uow, clock),
        users=UserAdmin(uow, clock),
        keys=KeyRotation(uow, cipher, cipher),
        webhooks=WebhookService(uow, cipher, sender, clock, pages=pages),
        deliverer=deliverer,
        trading=TradingService(uow, gateway, cipher, clock),
        orders=orders,
        order_feed=feed,
        order_stream=OrderStream(read_uow, feed, settings.order_events_heartbeat_seconds),
        api_tokens=ApiTokenService(uow, gateway, clock),
        live_positions=LivePositionsService(uow, gateway, cipher),
        clock=clock,
    )


def default_job_queue(settings: Settings) -> JobQueueFactory:
    """In-process asyncio jobs on SQLite, procrastinate workers on PostgreSQL."""

    def make(job_types: JobRegistry) -> JobBackend:
        return job_backend(
            job_types,
            settings.database_url,
            concurrency=settings.worker_concurrency,
            caps=ConcurrencyCaps(settings.provider_max_concurrency),
            pool_size=settings.job_pool_size,
            heartbeat_seconds=settings.job_heartbeat_seconds,
            stall_seconds=settings.job_stall_seconds,
            poll_seconds=settings.job_poll_seconds,
        )

    return make


def register_jobs(
    registry: JobRegistry,
    runner: SyncRunner,
    scheduler: Scheduler,
    market_data: MarketDataService,
    settings: Settings,
    deliverer: WebhookDeliverer,
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
    registry.register(
        JobType(
            job=DeliverWebhook,
            handler=deliverer.deliver,
            # Attempts are counted on the delivery row (the handler fails it after the last one);
            # the queue only spaces them out: exponential back-off with jitter.
            retry=RetryPolicy(
                max_attempts=settings.webhook_max_attempts,
                base_seconds=settings.webhook_retry_base_seconds,
                cap_seconds=settings.webhook_retry_cap_seconds,
            ),
            lock=lambda job: DeliverWebhook.lock_of(job.delivery_id),
            queueing_lock=lambda job: DeliverWebhook.lock_of(job.delivery_id),
            concurrency_key=lambda job: "webhooks",
        )
    )
    tick = settings.scheduler_tick_seconds
    registry.every(settings.webhook_expiry_check_seconds, "notify_expiring", deliverer.notify_expiring)
    registry.every(max(tick, 300), "requeue_lost_webhooks", deliverer.requeue_lost)
    registry.every(3600, "prune_webhook_deliveries", deliverer.prune)
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
