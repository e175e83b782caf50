"""Settings from the environment (prefix ``FINSYNC_``) and an optional ``.env`` file."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Registration(StrEnum):
    OPEN = "open"
    FIRST_USER_ONLY = "first_user_only"  # closed after the first user registers


class LogFormat(StrEnum):
    CONSOLE = "console"
    JSON = "json"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FINSYNC_", env_file=".env", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/finsync.db"
    # PostgreSQL connections one process keeps open. A request beyond the pool opens an overflow
    # connection and closes it after use: under steady load beyond the pool, a fifth of requests
    # paid a whole connect (TLS and authentication included), so the pool covers the usual load.
    database_pool_size: int = Field(default=20, ge=1)
    database_max_overflow: int = Field(default=5, ge=0)
    # The API's hottest reads (authentication, list pages) run on a pool of asyncpg connections beside
    # SQLAlchemy's (``infrastructure/db/raw.py``): each request holds one only for those statements.
    database_read_pool_size: int = Field(default=10, ge=1)
    # The busiest reads answered before FastAPI's request handling (``api/fastlane.py``); off:
    # every request takes FastAPI's whole path (the same answers, more CPU).
    fast_reads: bool = True
    data_dir: Path = Path("var")
    # Fernet keys, newest first: MultiFernet encrypts with the first, decrypts with any.
    encryption_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    jwt_secret: SecretStr | None = None
    access_token_minutes: int = 15
    refresh_token_days: int = 30
    registration: Registration = Registration.OPEN
    # FINSYNC_LIVE_TRADING=enabled lets connections whose owner enabled trading place live
    # orders; anything else keeps every live order refused (demo/paper still trade).
    live_trading: str = "disabled"
    # GET /orders/events (docs/trading.md): a comment after this many quiet seconds keeps proxies
    # from closing the stream; a stream this many changes behind is dropped (it reconnects).
    order_events_heartbeat_seconds: float = Field(default=15.0, gt=0)
    order_events_queue_size: int = Field(default=256, ge=1)
    # How often orders not final yet are followed at their brokers (the worker; in process on SQLite).
    order_poll_seconds: int = Field(default=15, ge=1)
    upload_limit_bytes: int = 50 * 1024 * 1024
    # Every request body but an upload; checked while it streams, before anything parses it.
    body_limit_bytes: int = 1024 * 1024
    log_format: LogFormat = LogFormat.CONSOLE
    log_level: str = "INFO"
    # Failed logins per (account, client) and per client within the window; then 429 until it ends.
    login_attempts_per_account: int = 5
    login_attempts_per_address: int = 20
    login_window_seconds: int = 300
    # Account-wide failures (from any client) after which clients that never logged in to the
    # account wait 1, 2, 4 ... seconds (at most the max) between tries; its known clients never do.
    login_backoff_after: int = 10
    login_backoff_max_seconds: int = 60
    login_known_client_days: int = 30
    password_hash_concurrency: int = 2
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (IPs or CIDRs); none by default.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    docs_enabled: bool = True
    public_url: str = "http://127.0.0.1:8000"
    client_redirect_url: str | None = None
    # Provider hosts and keys live in each provider's own settings model (FINSYNC_<SLUG>_*,
    # e.g. FINSYNC_SCHWAB_APP_KEY); this is the timeout they default to.
    provider_timeout_seconds: float = 30.0
    # Per-provider overrides by slug (tests, embedding): {"trading212": {"live_url": ...}}. A
    # provider with its own settings model reads FINSYNC_<SLUG>_<FIELD> from the environment.
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Jobs and schedules (docs/operations.md): in-process on SQLite, procrastinate on PostgreSQL.
    worker_concurrency: int = 10  # jobs one worker process runs at once (`finsync worker --concurrency`)
    provider_max_concurrency: int = 5  # per process and provider: an outage cannot fill every slot
    scheduler_tick_seconds: int = 60  # how often due connections are claimed
    scheduler_batch: int = 500  # connections claimed per transaction
    job_heartbeat_seconds: float = 10.0  # procrastinate worker heartbeat
    job_stall_seconds: float = 30.0  # no heartbeat for this long: the worker is dead, its jobs are retried
    job_poll_seconds: float = 1.0  # a worker looks for due jobs (retries, stalled ones) this often
    job_pool_size: int = 3  # psycopg connections of an API process (procrastinate, beside asyncpg's)
    run_grace_seconds: int = 120  # a queued run without a job for this long is closed as failed
    shared_rate_limits: bool = True  # PostgreSQL: provider budgets shared by every process
    # Webhooks (docs/webhooks.md). Targets must be https and public; loopback, private and
    # link-local ones (and plain http) only when listed here: host names, IPs or CIDRs.
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_timeout_seconds: float = 10.0  # per attempt: connect and answer
    webhook_max_attempts: int = 8  # then the delivery is failed (each attempt is recorded)
    webhook_retry_base_seconds: float = 30.0  # back-off: attempt n waits up to base * 2**n ...
    webhook_retry_cap_seconds: float = 6 * 3600.0  # ... at most this
    webhook_expiry_check_seconds: int = 900  # how often connection.expiring notices are looked for
    webhook_retention_days: int = 30  # finished deliveries (with their attempts) are kept this long
    # Analytics: the currency totals are given in when a user has not chosen one.
    base_currency: str = "EUR"
    # Market data sources, in fallback order (see docs/analytics.md).
    market_fx_sources: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["ecb"])
    market_price_sources: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["yahoo", "tiingo", "alphavantage", "coingecko"]
    )
    market_backfill_days: int = 365  # history fetched when an instrument first appears
    ecb_url: str = "https://www.ecb.europa.eu/stats/eurofxref"
    frankfurter_url: str = "https://api.frankfurter.app"
    yahoo_url: str = "https://query1.finance.yahoo.com"
    tiingo_url: str = "https://api.tiingo.com"
    tiingo_api_key: SecretStr | None = None
    alphavantage_url: str = "https://www.alphavantage.co"
    alphavantage_api_key: SecretStr | None = None
    coingecko_url: str = "https://api.coingecko.com/api/v3"
    coingecko_api_key: SecretStr | None = None

    @field_validator(
        "encryption_keys", "trusted_proxies", "cors_origins", "webhook_allowed_hosts", mode="before"
    )
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            ipaddress.ip_network(entry, strict=False)  # ValueError names the bad entry at start-up
        return value

    @field_validator("webhook_allowed_hosts")
    @classmethod
    def _targets(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                if not entry.replace("-", "").replace(".", "").replace("_", "").isalnum():
                    raise ValueError(
                        f"FINSYNC_WEBHOOK_ALLOWED_HOSTS: {entry!r} is neither a host name nor an IP/CIDR"
                    ) from None
        return [entry.lower() for entry in value]

    @field_validator("market_fx_sources", "market_price_sources", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("base_currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if len(value) != 3 or not value.isalpha():
            raise ValueError("FINSYNC_BASE_CURRENCY must be an ISO-4217 code such as EUR")
        return value.upper()

    @cached_property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
