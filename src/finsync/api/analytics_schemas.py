"""Response and request schemas of valuation, analytics, categories, rules and transfers.

Amounts are decimal strings, always in fixed-point notation (never ``1E+2``).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator

from finsync.api.schemas import AccountPublic, HoldingPublic, TransactionPublic
from finsync.api.wire import DecimalInput, DecimalText, UtcDateTime
from finsync.domain.analytics_ports import Interval
from finsync.domain.categories import MAX_TAGS, CategoryKind, TransferStatus

Day = date  # for models with a field named ``date``
Amount = DecimalText
CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO-4217 code, e.g. EUR")]


class ConvertedOut(BaseModel):
    """An amount in the requested currency, with the rate used and the ECB fixing day it came from."""

    amount: Amount
    currency: str
    rate: Amount = Field(description="Units of `currency` per unit of the original currency")
    rate_date: date | None = Field(description="Day of the fixing used (the last on or before the day asked)")


class AccountReachOut(BaseModel):
    """Another account of yours with the same IBAN and currency, through another connection."""

    account_id: UUID
    connection_id: UUID
    provider: str


DUPLICATE_RULE = (
    "Set when another connection reaches the same account (same IBAN and currency), e.g. after "
    "moving from GoCardless to Enable Banking: the id of the account that counts in net worth "
    "instead of this one. Which one counts: the account of a healthy connection (status active, "
    "consent not lapsed) over one of a lapsed connection, then the newer connection's. Net "
    "worth, its history and portfolio performance count the pair once; transactions of both "
    "stay listed. Delete the connection you no longer use."
)


class AccountValued(AccountPublic):
    converted: ConvertedOut | None = Field(
        default=None, description="With ?currency=: the balance converted (null when no rate exists)"
    )
    duplicate_of: UUID | None = Field(default=None, description=DUPLICATE_RULE)
    also_reached_through: list[AccountReachOut] = Field(
        default_factory=list,
        description="The other accounts, through other connections, with this account's IBAN and "
        "currency (filled on both sides, whichever connection came first)",
    )


class ValueConversionOut(BaseModel):
    """How the provider's value of a holding was converted from its ``price_currency``."""

    rate: Amount = Field(description="Units of the holding's `currency` per unit of its `price_currency`")
    rate_date: date | None = Field(
        description="Day of the reference fixing used (the last on or before the sync)"
    )
    source: str = Field(description="Where the rate comes from, e.g. `ECB reference rate`")


class HoldingValued(HoldingPublic):
    value_conversion: ValueConversionOut | None = Field(
        default=None,
        description="Set when market_value was converted from price_currency at a stored reference rate "
        "at sync time: e.g. Binance, which has no USD markets, valued in EUR for a USD account",
    )
    valuation_source: str | None = Field(
        default=None, description="With ?currency=: `market:<source>` (our close) or `provider` (theirs)"
    )
    valuation_price: Amount | None = Field(default=None, description="With ?currency=: the price used")
    valuation_price_currency: str | None = Field(default=None, description="Currency of valuation_price")
    valuation_date: date | None = Field(default=None, description="Day of the price used")
    converted: ConvertedOut | None = None


class AccountWorthOut(BaseModel):
    account_id: UUID
    name: str
    type: str
    category: str = Field(description="cash, investments, retirement, crypto, credit, loans or other")
    provider: str
    currency: str
    value: ConvertedOut
    valued_by: str = Field(description="`holdings` (revalued at market closes) or `balance`")


class AccountRef(BaseModel):
    id: UUID
    name: str
    type: str
    currency: str
    connection_id: UUID


class AccountCountedElsewhere(AccountRef):
    duplicate_of: UUID = Field(description="The account counted instead (see GET /accounts/{id})")


class CurrencyTotalValued(BaseModel):
    currency: str
    total: Amount
    accounts: int


class NetWorthValued(BaseModel):
    """Net worth in one currency (the base currency unless ?currency=), with its breakdowns."""

    as_of: UtcDateTime
    totals: list[CurrencyTotalValued] = Field(description="Per original currency, unconverted")
    currency: str
    total: Amount
    assets: Amount
    liabilities: Amount = Field(description="Negative: credit cards, loans and overdrafts")
    accounts: list[AccountWorthOut]
    by_category: dict[str, Amount]
    by_provider: dict[str, Amount]
    accounts_without_balance: list[AccountRef] = Field(description="Unknown balance: left out of totals")
    accounts_without_rate: list[AccountRef] = Field(description="No FX rate to the currency: left out")
    accounts_counted_elsewhere: list[AccountCountedElsewhere] = Field(
        default_factory=list,
        description="Left out of every figure here (totals included): the same account (IBAN and "
        "currency) is counted through another connection, named by `duplicate_of`",
    )


class PointOut(BaseModel):
    date: Day
    value: Amount


class HistoryOut(BaseModel):
    currency: str
    interval: Interval
    points: list[PointOut] = Field(description="Value at the end of each period (the last one ends at `to`)")
    missing_rates: list[str] = Field(description="Currencies left out of some points for want of a rate")
    revalued_accounts: list[UUID] = Field(description="Accounts valued from recorded holdings and closes")


class GroupOut(BaseModel):
    key: str | None = Field(description="Category id, account id, payee or symbol; null = none")
    name: str | None = None
    values: dict[str, Amount]
    count: int


class PeriodOut(BaseModel):
    period: date = Field(description="First day of the period")
    values: dict[str, Amount]
    count: int
    groups: list[GroupOut]


class ReportOut(BaseModel):
    currency: str
    interval: Interval
    group_by: str | None
    periods: list[PeriodOut]
    unconverted_transactions: int = Field(description="Left out: no FX rate for their currency on their day")


class FigureOut(BaseModel):
    value: Amount | None = Field(description="A fraction: 0.0834 = 8.34 %")
    reason: str | None = Field(default=None, description="Why there is no value")


class PerformanceOut(BaseModel):
    account_id: UUID | None
    currency: str
    start: date
    end: date
    start_value: Amount | None
    end_value: Amount | None
    net_flows: Amount = Field(description="External money in (+) and out (-) during the period")
    time_weighted_return: FigureOut
    method: str = Field(description="How the time-weighted return is computed (see docs/analytics.md)")
    money_weighted_return: FigureOut = Field(description="XIRR, annualised (actual/365)")
    total_gain: Amount | None
    realised_gain: Amount
    unrealised_gain: FigureOut
    valuations: int


class GapOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    start: date
    end: date
    start_balance: Amount = Field(description="Credit cards and loans: -|balance|, as in net worth")
    end_balance: Amount = Field(description="Credit cards and loans: -|balance|, as in net worth")
    transactions_total: Amount
    transactions: int
    difference: Amount = Field(description="Balance change the transactions do not explain")


class QuantityGapOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    symbol: str
    start: date
    end: date
    quantity_change: Amount
    trades_quantity: Amount
    difference: Amount


class ReconciliationOut(BaseModel):
    account_id: UUID
    currency: str
    periods_checked: int
    gaps: list[GapOut]
    quantity_periods_checked: int
    quantity_gaps: list[QuantityGapOut]


class RateOut(BaseModel):
    base: str
    quote: str
    rate: Amount
    date: Day = Field(description="The day asked for")
    rate_date: Day | None = Field(description="The fixing used: the last on or before `date`")


class PreferencesIn(BaseModel):
    base_currency: CurrencyCode


class MeOut(BaseModel):
    id: UUID
    email: str
    base_currency: str = Field(description="The user's choice, else the server's default")
    created_at: UtcDateTime


class CategoryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: UUID
    name: str
    kind: CategoryKind
    parent_id: UUID | None


class CategoryIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    kind: CategoryKind = CategoryKind.EXPENSE
    parent_id: UUID | None = None


class CategoryPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    kind: CategoryKind | None = None
    parent_id: UUID | None = None


Text = Annotated[str, Field(min_length=1, max_length=200)]


class ConditionsIn(BaseModel):
    """All given conditions must hold; text matches are case-insensitive substrings."""

    description_contains: Text | None = None
    payee_contains: Text | None = Field(
        default=None, description="Matches the payee: the description before ' / '"
    )
    amount_min: DecimalInput | None = Field(default=None, description="Signed: spending is negative")
    amount_max: DecimalInput | None = None
    account_id: UUID | None = None


class RuleIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    conditions: ConditionsIn
    category_id: UUID | None = None
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS)
    priority: StrictInt = Field(default=100, ge=0, le=1_000_000, description="Lower runs first")
    enabled: StrictBool = True


class RulePatch(BaseModel):
    """Only the fields sent change; `conditions`, when sent, replaces them all."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    conditions: ConditionsIn | None = None
    category_id: UUID | None = None
    tags: list[str] | None = Field(default=None, max_length=MAX_TAGS)
    priority: StrictInt | None = Field(default=None, ge=0, le=1_000_000)
    enabled: StrictBool | None = None


class ConditionsOut(BaseModel):
    description_contains: str | None
    payee_contains: str | None
    amount_min: Amount | None
    amount_max: Amount | None
    account_id: UUID | None


class RuleOut(BaseModel):
    id: UUID
    name: str
    conditions: ConditionsOut
    category_id: UUID | None
    tags: list[str]
    priority: int
    enabled: bool
    created_at: UtcDateTime
    updated_at: UtcDateTime


class AppliedOut(BaseModel):
    changed: int = Field(description="Transactions whose category or tags changed")


class TransactionOut(TransactionPublic):
    category_id: UUID | None = None
    category_set_by: str | None = Field(default=None, description="`user` or `rule`")
    tags: list[str] = Field(default_factory=list)
    notes: str | None = None
    excluded_from_analytics: StrictBool = False

    @field_validator("tags", mode="before")
    @classmethod
    def _no_tags(cls, value: object) -> object:
        return [] if value is None else value

    @field_validator("excluded_from_analytics", mode="before")
    @classmethod
    def _not_excluded(cls, value: object) -> object:
        return False if value is None else value


class TransactionPatch(BaseModel):
    """User fields only; a re-sync or re-import never changes them."""

    category_id: UUID | None = None
    tags: list[str] | None = Field(default=None, max_length=MAX_TAGS)
    notes: str | None = Field(default=None, max_length=2000)
    excluded_from_analytics: StrictBool | None = None  # true/false only, never "yes" or 0


class TransferOut(BaseModel):
    id: UUID
    outflow_id: UUID
    inflow_id: UUID
    status: TransferStatus
    amount: Amount | None
    currency: str | None
    outflow_date: date | None
    inflow_date: date | None
    created_at: UtcDateTime


class TransferIn(BaseModel):
    outflow_id: UUID
    inflow_id: UUID


class DetectedOut(BaseModel):
    linked: int
