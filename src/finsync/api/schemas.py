"""Request/response schemas. Money is a decimal *string* plus a currency code: exact in JSON."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, EmailStr, Field

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


class Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class UserCreate(BaseModel):
    email: EmailStr
    password: str = Field(min_length=10, max_length=1024, description="At least 10 characters")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "ada@example.com", "password": "correct horse battery"}]}
    )


class UserPublic(Public):
    id: UUID
    email: str
    created_at: datetime


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


class ConnectionPublic(Public):
    id: UUID
    provider: str
    name: str
    status: ConnectionStatus
    environment: str | None
    expires_at: datetime | None = Field(description="When consent or the refresh token lapses, if it does")
    last_synced_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class ConnectionCreate(BaseModel):
    provider: str = Field(description="Provider slug from GET /api/v1/providers")
    name: str | None = Field(default=None, max_length=200, description="Defaults to the provider's name")
    environment: str | None = Field(
        default=None, description="One of the provider's environments, e.g. demo/live"
    )
    credentials: dict[str, str] | None = Field(
        default=None, description="API-key providers only: the provider's credential fields. Never returned."
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
            ]
        }
    )


class ConnectionUpdate(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    credentials: dict[str, str] | None = Field(default=None, description="Replaces the stored credentials")

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Trading 212 ISA"}]})


class ConnectionCreated(ConnectionPublic):
    sync_run_id: UUID | None = Field(description="The initial sync, already started (API-key providers)")
    authorization_url: str | None = Field(description="Redirect providers: send the person's browser here")


class AccountPublic(Public):
    id: UUID
    connection_id: UUID
    provider_account_id: str
    name: str
    type: AccountType
    currency: str
    institution: str | None
    balance: Decimal | None
    available_balance: Decimal | None
    cash_value: Decimal | None
    holdings_value: Decimal | None
    balance_at: datetime | None
    created_at: datetime
    updated_at: datetime


class HoldingPublic(Public):
    id: UUID
    account_id: UUID
    symbol: str
    name: str | None
    isin: str | None
    cusip: str | None
    asset_type: AssetType
    quantity: Decimal
    currency: str
    average_cost: Decimal | None
    current_price: Decimal | None
    market_value: Decimal | None
    unrealized_pnl: Decimal | None
    updated_at: datetime


class TransactionPublic(Public):
    id: UUID
    account_id: UUID
    provider_transaction_id: str
    type: TransactionType
    subtype: TransactionSubtype
    status: TransactionStatus
    amount: Decimal = Field(description="Positive = money into the account, negative = out")
    currency: str
    transaction_date: date
    settlement_date: date | None
    symbol: str | None
    quantity: Decimal | None
    unit_price: Decimal | None
    fees: Decimal | None
    description: str | None
    raw: dict[str, Any] = Field(description="The provider's record as received, for audit")
    created_at: datetime
    updated_at: datetime


class SnapshotPublic(Public):
    id: UUID
    account_id: UUID
    sync_run_id: UUID | None
    source: SnapshotSource
    taken_at: datetime
    currency: str
    balance: Decimal | None
    available_balance: Decimal | None
    cash_value: Decimal | None
    holdings_value: Decimal | None


class SyncRunPublic(Public):
    id: UUID
    connection_id: UUID
    trigger: SyncTrigger
    status: SyncStatus
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, int] = Field(
        description="inserted/updated/unchanged/deleted per entity, snapshots, timing"
    )
    warnings: list[str]
    error: str | None
    error_type: str | None


class CurrencyTotalOut(Public):
    currency: str
    total: Decimal
    accounts: int


class NetWorthOut(BaseModel):
    """Latest balance of every account, totalled per currency (no FX conversion)."""

    totals: list[CurrencyTotalOut]
    as_of: datetime


class HealthOut(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
