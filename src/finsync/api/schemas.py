"""Request/response schemas. Money is a decimal *string* plus a currency code: exact in JSON."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, validate_email
from pydantic_core import PydanticCustomError

from finsync.api.trading_schemas import TradingSettingsIn
from finsync.api.wire import DateTimeInput, DecimalText, UtcDateTime
from finsync.domain.enums import (
    AccountType,
    AssetType,
    AuthType,
    Capability,
    ConnectionStatus,
    ProviderCategory,
    SnapshotSource,
    SyncStatus,
    SyncTrigger,
    TransactionStatus,
    TransactionSubtype,
    TransactionType,
)
from finsync.domain.errors import InvalidInput
from finsync.domain.webhooks import Attention


class Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _mailbox(value: str) -> str:
    """The document promises RFC 5322 syntax (`format: email`); refusing what cannot receive mail
    (special-use domains such as .test or .local, IP literals) is our rule, answered as one."""
    try:
        return validate_email(value)[1]
    except PydanticCustomError as exc:
        raise InvalidInput(f"email: {exc.message()}") from None


class UserCreate(BaseModel):
    email: Annotated[
        str, Field(max_length=320, json_schema_extra={"format": "email"}), AfterValidator(_mailbox)
    ]
    password: str = Field(
        min_length=12,
        max_length=1024,
        description="At least 12 characters and not easy to guess: common and breached passwords, "
        "your email, repeats and sequences are refused (NIST SP 800-63B); no composition rules",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "ada@example.com", "password": "correct horse battery staple"}]
        }
    )


class UserPublic(Public):
    id: UUID
    email: str
    created_at: UtcDateTime


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires")
    refresh_token: str = Field(description="Opaque, single use: each refresh returns a new one")


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=10, max_length=200)


class CredentialFieldOut(Public):
    name: str
    label: str
    secret: bool
    required: bool
    help: str
    expiry: bool = Field(
        default=False,
        description="A date (YYYY-MM-DD) when the credentials stop working, e.g. an IBKR Flex "
        "token's expiry: stored as the connection's `expires_at`, never as a credential",
    )


class ProviderOut(Public):
    slug: str
    display_name: str
    category: ProviderCategory
    auth_type: AuthType
    capabilities: list[Capability]
    description: str
    docs_url: str
    institutions: list[str]
    environments: list[str]
    credential_fields: list[CredentialFieldOut]
    configured: bool = Field(description="Whether this deployment has the settings the provider needs")
    unavailable_reason: str | None = None


class InstitutionOut(BaseModel):
    id: str
    name: str
    bic: str | None = None
    transaction_total_days: int | None = None
    countries: list[str] = Field(default_factory=list)
    logo: str | None = None
    max_access_valid_for_days: int | None = None


ATTENTION_RULES = (
    "Why this connection needs you, or null. The first that applies: "
    "`needs_reauth`: status `needs_reauth`, or `expires_at` has passed (reauthorise, or PATCH new "
    "credentials for an API key); "
    "`failing`: status `error` after at least 2 consecutive failed syncs (retries continue with "
    "back-off; `last_error` says why); "
    "`expiring`: `expires_at` is within 7 days; "
    "`rate_limited`: the last sync was refused by the provider's rate limit (the next one waits for "
    "its reset). GET /connections?attention=true lists the connections where this is not null."
)


class ConnectionPublic(Public):
    id: UUID
    provider: str
    name: str
    status: ConnectionStatus
    environment: str | None
    expires_at: UtcDateTime | None = Field(
        description="When the connection must be reauthorised by: GoCardless's 90-day consent, "
        "Schwab's 7-day refresh token, or, for tokens whose lifetime finsync cannot read (API "
        "keys such as an IBKR Flex token), the date you set with PATCH; null: no known expiry"
    )
    attention: Attention | None = Field(default=None, description=ATTENTION_RULES)
    last_synced_at: UtcDateTime | None = Field(description="End of the last successful sync (read-only)")
    last_error: str | None = Field(description="Why the last sync failed; cleared by a success")
    provider_messages: list[str] | None = Field(
        default=None,
        description="What the provider said during the last sync, in its words (e.g. SimpleFIN's "
        "bridge: 'log in again at the bridge'), or when the key was checked (an exchange key that may "
        "trade: 'a read-only key is enough'); null when it said nothing. Replaced by every sync",
    )
    sync_interval_minutes: int | None = Field(
        default=None, description="Minutes between automatic syncs; null for statement files (never)"
    )
    sync_enabled: bool = Field(default=True, description="False pauses automatic syncs")
    next_sync_at: UtcDateTime | None = Field(
        default=None,
        description="When the next automatic sync is due (read-only): the interval after the last "
        "sync, jittered; sooner or later after a failure (back-off, or a provider's rate-limit reset)",
    )
    created_at: UtcDateTime
    updated_at: UtcDateTime

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "01932c4e-8f00-7a3c-9d1e-2b3c4d5e6f70",
                    "provider": "trading212",
                    "name": "ISA",
                    "status": "active",
                    "environment": "live",
                    "expires_at": None,
                    "attention": None,
                    "last_synced_at": "2026-11-21T09:00:00Z",
                    "last_error": None,
                    "sync_interval_minutes": 60,
                    "sync_enabled": True,
                    "next_sync_at": "2026-11-21T10:02:41Z",
                    "created_at": "2026-11-01T10:00:00Z",
                    "updated_at": "2026-11-21T09:00:00Z",
                }
            ]
        },
    )


class ConnectionCreate(BaseModel):
    provider: str = Field(description="Provider slug from GET /api/v1/providers")
    name: str | None = Field(default=None, max_length=200, description="Defaults to the provider's name")
    environment: str | None = Field(
        default=None, description="One of the provider's environments, e.g. demo/live"
    )
    credentials: dict[str, str] | None = Field(
        default=None,
        description="API-key providers only: the provider's credential fields. Never returned. A field "
        "with `expiry: true` (IBKR's `token_expires_on`) is a date that becomes `expires_at`",
    )
    options: dict[str, str] | None = Field(
        default=None, description='Redirect providers only, e.g. {"institution_id": ...} for a bank link'
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "provider": "trading212",
                    "name": "My ISA",
                    "environment": "live",
                    "credentials": {"api_key": "<your key>", "api_secret": "<your secret>"},
                },
                {
                    "provider": "alpaca",
                    "environment": "paper",
                    "credentials": {"key_id": "PK...", "secret_key": "..."},
                },
                {
                    "provider": "ibkr",
                    "credentials": {
                        "token": "<Flex token>",
                        "query_id": "123456",
                        "token_expires_on": "2027-05-01",
                    },
                },
            ]
        }
    )


class ConnectionUpdate(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    credentials: dict[str, str] | None = Field(default=None, description="Replaces the stored credentials")
    sync_interval_minutes: int | None = Field(
        default=None,
        description="Minutes between automatic syncs, from the provider's minimum (see "
        "GET /api/v1/providers) to 10080 (7 days); null resets to the provider's default",
    )
    sync_enabled: bool | None = Field(default=None, description="False pauses automatic syncs, true resumes")
    expires_at: DateTimeInput | None = Field(
        default=None,
        description="API-key connections only: when the token must be renewed, for providers whose "
        "token lifetime finsync cannot read (e.g. an IBKR Flex token); in the future, at most 5 "
        "years ahead; no offset = UTC; null clears it. New credentials clear it unless the same "
        "PATCH sets it. Drives `attention: expiring` and the `connection.expiring` webhook",
    )
    trading: TradingSettingsIn | None = Field(
        default=None,
        description="Trading switches and limits (brokers with the `trading` capability); needs "
        "`password`. Live environments also need FINSYNC_LIVE_TRADING=enabled on the server",
    )
    password: str | None = Field(
        default=None, max_length=1024, description="Your password: required to change `trading`"
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "Trading 212 ISA"},
                {"expires_at": "2027-05-01T00:00:00Z"},
                {"sync_interval_minutes": 240},
                {"sync_enabled": False},
                {"sync_interval_minutes": None},
                {"trading": {"enabled": True, "max_order_notional": "500.00"}, "password": "…"},
            ]
        }
    )


class ConnectionCreated(ConnectionPublic):
    sync_run_id: UUID | None = Field(description="The initial sync, already started (API-key providers)")
    authorization_url: str | None = Field(description="Redirect providers: send the person's browser here")

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "01932c4e-8f00-7a3c-9d1e-2b3c4d5e6f70",
                    "provider": "schwab",
                    "name": "Schwab brokerage",
                    "status": "pending",
                    "environment": None,
                    "expires_at": None,
                    "attention": None,
                    "last_synced_at": None,
                    "last_error": None,
                    "sync_interval_minutes": 60,
                    "sync_enabled": True,
                    "next_sync_at": "2026-11-21T10:03:12Z",
                    "created_at": "2026-11-21T09:00:00Z",
                    "updated_at": "2026-11-21T09:00:00Z",
                    "sync_run_id": None,
                    "authorization_url": "https://api.schwabapi.com/v1/oauth/authorize?client_id=...&state=...",
                }
            ]
        },
    )


class AccountPublic(Public):
    id: UUID
    connection_id: UUID
    provider_account_id: str
    name: str
    type: AccountType
    currency: str
    institution: str | None
    balance: DecimalText | None
    available_balance: DecimalText | None
    cash_value: DecimalText | None
    holdings_value: DecimalText | None
    balance_at: UtcDateTime | None
    iban: str | None = Field(
        default=None,
        description="The account's IBAN (upper case, no spaces) when its provider sends a valid one: "
        "how the same account reached through two providers is recognised",
    )
    created_at: UtcDateTime
    updated_at: UtcDateTime

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "01932c4e-9a00-7b1c-8d2e-3c4d5e6f7a81",
                    "connection_id": "01932c4e-8f00-7a3c-9d1e-2b3c4d5e6f70",
                    "provider_account_id": "31415926",
                    "name": "Trading 212 ISA",
                    "type": "isa",
                    "currency": "GBP",
                    "institution": "Trading 212",
                    "balance": "10523.87",
                    "available_balance": "1523.37",
                    "cash_value": "1648.87",
                    "holdings_value": "8875.00",
                    "balance_at": "2026-11-21T09:00:00Z",
                    "created_at": "2026-11-01T10:00:05Z",
                    "updated_at": "2026-11-21T09:00:01Z",
                }
            ]
        },
    )


class HoldingPublic(Public):
    id: UUID
    account_id: UUID
    symbol: str
    name: str | None
    isin: str | None
    cusip: str | None
    asset_type: AssetType
    quantity: DecimalText
    currency: str = Field(description="Currency of market_value and unrealized_pnl (usually the account's)")
    price_currency: str = Field(
        description="Currency of average_cost and current_price: the instrument's trading currency "
        "(e.g. USD for a US share in a GBP account; GBX is pence sterling). When it differs from "
        "currency, quantity * current_price equals market_value only after converting between the two."
    )
    average_cost: DecimalText | None
    current_price: DecimalText | None
    market_value: DecimalText | None
    unrealized_pnl: DecimalText | None
    updated_at: UtcDateTime

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "01932c4f-1c00-7d3e-8f4a-5e6f7a8b9ca3",
                    "account_id": "01932c4e-9a00-7b1c-8d2e-3c4d5e6f7a81",
                    "symbol": "VWRL",
                    "name": "Vanguard FTSE All-World",
                    "isin": "IE00B3RBWM25",
                    "cusip": None,
                    "asset_type": "etf",
                    "quantity": "40",
                    "currency": "GBP",
                    "price_currency": "GBP",
                    "average_cost": "98.10",
                    "current_price": "112.40",
                    "market_value": "4496.00",
                    "unrealized_pnl": "572.00",
                    "updated_at": "2026-11-21T09:00:01Z",
                }
            ]
        },
    )


class TransactionPublic(Public):
    id: UUID
    account_id: UUID
    provider_transaction_id: str
    type: TransactionType
    subtype: TransactionSubtype
    status: TransactionStatus
    amount: DecimalText = Field(description="Positive = money into the account, negative = out")
    currency: str = Field(
        description="ISO-4217 code, or an exchange's asset code (USDT, BTC) for a crypto leg: "
        "a coin is not a currency, and converting analytics leave such rows out"
    )
    transaction_date: date
    settlement_date: date | None
    symbol: str | None
    quantity: DecimalText | None
    unit_price: DecimalText | None
    fees: DecimalText | None
    description: str | None
    raw: dict[str, Any] = Field(description="The provider's record as received, for audit")
    created_at: UtcDateTime
    updated_at: UtcDateTime

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "01932c4f-0b00-7c2d-9e3f-4d5e6f7a8b92",
                    "account_id": "01932c4e-9a00-7b1c-8d2e-3c4d5e6f7a81",
                    "provider_transaction_id": "order:40000000123",
                    "type": "trade",
                    "subtype": "buy",
                    "status": "settled",
                    "amount": "-465.29",
                    "currency": "GBP",
                    "transaction_date": "2026-11-20",
                    "settlement_date": None,
                    "symbol": "AAPL_US_EQ",
                    "quantity": "2.5",
                    "unit_price": "185.5",
                    "fees": "0.69",
                    "description": "Buy 2.5 AAPL_US_EQ",
                    "raw": {"order": {"id": 40000000123}},
                    "created_at": "2026-11-21T09:00:01Z",
                    "updated_at": "2026-11-21T09:00:01Z",
                }
            ]
        },
    )


class SnapshotPublic(Public):
    id: UUID
    account_id: UUID
    sync_run_id: UUID | None
    source: SnapshotSource
    taken_at: UtcDateTime
    currency: str
    balance: DecimalText | None
    available_balance: DecimalText | None
    cash_value: DecimalText | None
    holdings_value: DecimalText | None


class SyncRunPublic(Public):
    id: UUID
    connection_id: UUID
    trigger: SyncTrigger
    status: SyncStatus = Field(description="queued → running (a worker picked it up) → succeeded | failed")
    queued_at: UtcDateTime | None = Field(
        default=None, description="When the sync was requested or scheduled"
    )
    started_at: UtcDateTime = Field(description="When a worker picked it up (the request time while queued)")
    finished_at: UtcDateTime | None
    counts: dict[str, int] = Field(
        description="inserted/updated/unchanged/deleted per entity, snapshots, timing"
    )
    warnings: list[str] = Field(
        description="Notes that did not fail the run: parts of an imported file read leniently, or "
        "the provider's messages for you (e.g. SimpleFIN Bridge asking you to log in to a bank again)"
    )
    error: str | None
    error_type: str | None

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "01932c4f-2d00-7e4f-9a5b-6f7a8b9cadb4",
                    "connection_id": "01932c4e-8f00-7a3c-9d1e-2b3c4d5e6f70",
                    "trigger": "manual",
                    "status": "succeeded",
                    "started_at": "2026-11-21T09:00:00Z",
                    "finished_at": "2026-11-21T09:00:02Z",
                    "counts": {
                        "accounts_unchanged": 1,
                        "transactions_inserted": 3,
                        "transactions_unchanged": 497,
                        "snapshots": 1,
                        "duration_ms": 1840,
                    },
                    "warnings": [],
                    "error": None,
                    "error_type": None,
                }
            ]
        },
    )


class CurrencyTotalOut(Public):
    currency: str
    total: DecimalText = Field(description="Sum of the known balances in this currency")
    accounts: int = Field(description="How many accounts the total adds up (those with a known balance)")


class AccountRefOut(Public):
    """An account named where a figure leaves it out."""

    id: UUID
    name: str
    type: AccountType
    currency: str
    connection_id: UUID


class NetWorthOut(BaseModel):
    """Latest known balance of every account, totalled per currency (no FX conversion).

    An account whose balance is unknown (a provider or statement that reports none) is not
    counted as 0: it is left out of the totals and listed in `accounts_without_balance`, so a
    client can say the figure is incomplete."""

    totals: list[CurrencyTotalOut]
    accounts_without_balance: list[AccountRefOut] = Field(
        description="Accounts left out of the totals because their balance is unknown"
    )
    as_of: UtcDateTime

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "totals": [
                        {"currency": "GBP", "total": "25410.22", "accounts": 3},
                        {"currency": "USD", "total": "3351.45", "accounts": 2},
                    ],
                    "accounts_without_balance": [
                        {
                            "id": "01932c4e-9a00-7b1c-8d2e-3c4d5e6f7a81",
                            "name": "Old savings",
                            "type": "savings",
                            "currency": "GBP",
                            "connection_id": "01932c4e-8f00-7a3c-9d1e-2b3c4d5e6f70",
                        }
                    ],
                    "as_of": "2026-11-21T09:00:00Z",
                }
            ]
        }
    )


class HealthOut(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
