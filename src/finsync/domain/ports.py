"""Ports the application talks to; infrastructure and providers implement them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar, runtime_checkable
from uuid import UUID

from finsync.domain.csvmapping import ColumnMapping, ImportMapping
from finsync.domain.entities import (
    Account,
    AuthFlow,
    AuthSession,
    BalanceSnapshot,
    Connection,
    Holding,
    IdempotencyRecord,
    LoginAttempts,
    RefreshToken,
    SyncRun,
    Transaction,
    User,
)
from finsync.domain.enums import (
    AccountType,
    AuthType,
    Capability,
    ConnectionStatus,
    TransactionStatus,
    TransactionSubtype,
    TransactionType,
)
from finsync.domain.fx import Rate
from finsync.domain.jobs import Job
from finsync.domain.reach import Reach
from finsync.domain.records import (
    DeferredTransactions,
    ProviderAccount,
    ProviderHolding,
    ProviderTransaction,
    TransactionBatch,
    UpsertCounts,
)
from finsync.domain.schedule import SyncSchedule
from finsync.domain.trading import (
    ApiToken,
    BrokerOrder,
    Expected,
    Order,
    OrderContext,
    OrderEvent,
    OrderRequest,
    OrderStatusChange,
    Placement,
    StatusNote,
    TradingSettings,
)
from finsync.domain.webhooks import SendResult, Webhook, WebhookAttempt, WebhookDelivery

if TYPE_CHECKING:
    from finsync.domain.analytics_ports import (
        AnalyticsRepository,
        CategoryRepository,
        LabelRepository,
        MarketRepository,
        PositionRepository,
        RuleRepository,
        TransferRepository,
    )
    from finsync.domain.categories import Rule

T = TypeVar("T")
NEVER = SyncSchedule(default_minutes=None)
Now = Callable[[], datetime]
"""What time it is (aware, UTC) for timestamps the use cases write; tests pass a settable one.
Not to be confused with ``providers.ratelimit.Clock`` (float seconds plus ``sleep``), which
paces provider HTTP calls."""


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Keyset page: ``after`` is the sort key of the last item already seen."""

    limit: int = 50
    after: tuple[str, ...] | None = None


@dataclass(slots=True)
class Page(Generic[T]):
    items: list[T]
    next_key: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionFilter:
    account_id: UUID | None = None
    date_from: date | None = None
    date_to: date | None = None
    type: TransactionType | None = None
    subtype: TransactionSubtype | None = None
    status: TransactionStatus | None = None
    symbol: str | None = None
    text: str | None = None
    category_ids: tuple[UUID, ...] | None = None  # a category and its subcategories
    tag: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountFilter:
    connection_id: UUID | None = None
    type: AccountType | None = None


@dataclass(slots=True)
class CurrencyTotal:
    currency: str
    total: Decimal
    accounts: int


@dataclass(slots=True)
class CurrencyTotals:
    """Known balances summed per currency; an unknown balance is listed, never counted as 0."""

    totals: list[CurrencyTotal]
    without_balance: list[Account]


class UserRepository(Protocol):
    async def add(self, user: User) -> None:
        """Raises Conflict when the email is taken (also by a concurrent registration)."""
        ...

    async def get(self, user_id: UUID) -> User | None: ...
    async def get_by_email(self, email: str) -> User | None: ...
    async def get_in_session(self, user_id: UUID, session_id: UUID, now: datetime) -> User | None:
        """The active user, if the session is theirs and live: one query, for every request."""
        ...

    async def count(self) -> int: ...
    async def lock_registration(self) -> None:
        """Serialise registrations until the transaction ends (a database lock)."""
        ...

    async def set_password(self, user_id: UUID, password_hash: str) -> None: ...
    async def unchanged(self, user_id: UUID, password_hash: str) -> bool:
        """Whether the user is still active with this password hash; the row stays locked until
        the transaction ends (PostgreSQL; SQLite has one writer), so a concurrent password
        change or disable waits, and then sees what this transaction wrote."""
        ...

    async def set_base_currency(self, user_id: UUID, currency: str) -> None: ...


class SessionRepository(Protocol):
    async def add(self, session: AuthSession) -> None: ...
    async def get(self, session_id: UUID, user_id: UUID) -> AuthSession | None: ...
    async def live(self, user_id: UUID, now: datetime) -> list[AuthSession]: ...
    async def touch(
        self,
        session_id: UUID,
        when: datetime,
        expires_at: datetime,
        address: str | None,
        user_agent: str | None,
    ) -> bool:
        """Extends a live session; False when it has ended (revoked)."""
        ...

    async def revoke(self, session_id: UUID, when: datetime) -> None:
        """Ends the session and its whole refresh chain."""
        ...

    async def revoke_others(self, user_id: UUID, keep: UUID | None, when: datetime) -> None: ...


class LoginAttemptRepository(Protocol):
    async def lock(self, keys: Sequence[str], now: datetime) -> dict[str, LoginAttempts]:
        """The keys' rows (blank for new keys), locked until the transaction ends; prunes expired rows."""
        ...

    async def save(self, rows: Sequence[LoginAttempts]) -> None: ...


class RefreshTokenRepository(Protocol):
    async def add(self, token: RefreshToken) -> None: ...
    async def get_by_hash(self, token_hash: str) -> RefreshToken | None: ...
    async def mark_used(self, token_id: UUID, when: datetime) -> bool: ...
    async def revoke_family(self, family_id: UUID, when: datetime) -> None: ...


@dataclass(frozen=True, slots=True)
class DueConnection:
    """What the scheduler needs of a due connection: a tick claims a thousand, and reading (and
    decoding) whole rows with their credentials and state was most of its cost."""

    id: UUID
    user_id: UUID
    provider: str
    sync_interval_minutes: int | None


class ConnectionRepository(Protocol):
    async def add(self, connection: Connection) -> None: ...
    async def get(
        self, connection_id: UUID, user_id: UUID | None = None, *, lock: bool = False
    ) -> Connection | None: ...
    async def find(
        self,
        user_id: UUID,
        page: PageRequest,
        status: ConnectionStatus | None = None,
        attention_at: datetime | None = None,
    ) -> Page[Connection]:
        """``attention_at``: only connections needing their user at that time
        (``finsync.domain.webhooks.attention``)."""
        ...

    async def written(self, user_id: UUID, page: PageRequest, now: datetime) -> WrittenPage | None:
        """``find``'s page (no filter) written as JSON by the database where it can."""
        ...

    async def save(self, connection: Connection) -> None: ...
    async def delete(self, connection_id: UUID) -> None: ...
    async def expire_lapsed(self, user_id: UUID | None, now: datetime) -> list[Connection]:
        """Active connections past ``expires_at`` → needs_reauth; the ones changed."""
        ...

    async def expiring(self, now: datetime, within: timedelta, limit: int) -> list[Connection]:
        """Active or failing connections whose ``expires_at`` is in ``(now, now + within]``,
        of users who have a webhook (only they are told)."""
        ...

    async def claim_due(self, now: datetime, limit: int) -> list[DueConnection]:
        """Up to ``limit`` enabled, schedulable connections with ``next_sync_at <= now``, locked;
        rows another transaction holds are skipped (``FOR UPDATE SKIP LOCKED``), not waited for."""
        ...

    async def reschedule_and_queue(
        self,
        next_at: Sequence[tuple[UUID, datetime | None]],
        runs: Sequence[SyncRun],
        *,
        claimed_at: datetime,
    ) -> list[SyncRun]:
        """A tick's writes for the connections it claimed: each one's ``next_sync_at`` set (None:
        never again), and ``runs`` inserted unless their connection has an active run
        (``SyncRunRepository.add_many_if_idle``); the runs inserted. ``claimed_at``: the ``now``
        of the ``claim_due`` that returned them (still due then: the claim holds their rows)."""
        ...

    async def add_or_get(self, connection: Connection) -> Connection:
        """Insert unless one with the same user, provider and identity exists; the stored one."""
        ...

    async def by_identity(
        self, user_id: UUID, provider: str, identity: str, *, lock: bool = False
    ) -> Connection | None: ...


class AuthFlowRepository(Protocol):
    async def add(self, flow: AuthFlow) -> None: ...
    async def get_by_state_hash(self, state_hash: str) -> AuthFlow | None: ...
    async def claim(self, flow_id: UUID, when: datetime) -> bool: ...


class AccountRepository(Protocol):
    async def upsert(
        self, connection: Connection, accounts: Sequence[ProviderAccount]
    ) -> tuple[list[Account], UpsertCounts]: ...
    async def held_by(
        self, user_id: UUID, provider: str | None, ids: Sequence[str], exclude: UUID | None = None
    ) -> UUID | None:
        """The connection through which the user holds any of these provider accounts
        (of ``provider``, or of any provider when None)."""
        ...

    async def get(self, account_id: UUID, user_id: UUID) -> Account | None: ...
    async def for_connection(self, connection_id: UUID, *, lock: bool = False) -> list[Account]:
        """``lock``: hold the connection's accounts (in id order) until commit, as writers do."""
        ...

    async def find(self, user_id: UUID, filters: AccountFilter, page: PageRequest) -> Page[Account]: ...
    async def written(self, user_id: UUID, page: PageRequest) -> WrittenPage | None:
        """``find``'s page (no filter) written as JSON by the database where it can; None also
        for a page holding an account another connection reaches too (``reaches``)."""
        ...

    async def reaches(self, user_id: UUID) -> list[Reach]:
        """The user's accounts whose IBAN and currency another connection's account carries too."""
        ...

    async def totals_by_currency(self, user_id: UUID, exclude: Collection[UUID] = ()) -> CurrencyTotals: ...


class HoldingRepository(Protocol):
    async def replace(self, account: Account, holdings: Sequence[ProviderHolding]) -> UpsertCounts: ...
    async def find(self, user_id: UUID, account_id: UUID | None, page: PageRequest) -> Page[Holding]: ...
    async def written(self, user_id: UUID, account_id: UUID | None, page: PageRequest) -> WrittenPage | None:
        """``find``'s page written as JSON by the database where it can (see ``WrittenPage``)."""
        ...


@dataclass(frozen=True, slots=True)
class WrittenPage:
    """A page whose items the database wrote as JSON: ``items`` is the text between the
    array's brackets (the items joined by commas), ``count`` how many there are. Repositories
    give one (``listed_json``, ``written``) for reads on PostgreSQL, else None."""

    items: str
    count: int
    next_key: tuple[str, ...] | None = None


@dataclass(slots=True)
class SessionCheck:
    """Whether a token's session is live (the user active, the session neither revoked nor
    expired at ``now``), asked by the statement that reads a page rather than by one of its
    own: where a page's statement can carry it (PostgreSQL's written pages), it sets ``live``;
    None means no statement did, and the caller asks on its own."""

    user_id: UUID
    session_id: UUID
    now: datetime
    live: bool | None = None


@dataclass(slots=True)
class ListedTransaction:
    """A transaction as the list endpoints answer it, fields in the response's order: the
    stored values only (no entity, no enums rebuilt), and the provider's record as the JSON
    text the database holds, passed through to the response instead of decoded and encoded
    again for every row."""

    id: UUID
    account_id: UUID
    provider_transaction_id: str
    type: str
    subtype: str
    status: str
    amount: Decimal
    currency: str
    transaction_date: date
    settlement_date: date | None
    symbol: str | None
    quantity: Decimal | None
    unit_price: Decimal | None
    fees: Decimal | None
    description: str | None
    raw_json: str
    created_at: datetime
    updated_at: datetime
    category_id: UUID | None
    category_set_by: str | None
    tags: list[str] | None
    notes: str | None
    excluded_from_analytics: bool | None


class TransactionRepository(Protocol):
    async def upsert(
        self, account: Account, transactions: Sequence[ProviderTransaction], rules: Sequence[Rule] = ()
    ) -> UpsertCounts:
        """Insert new, update changed, skip unchanged; new rows get what ``rules`` decide."""
        ...

    async def upsert_deferred(
        self, account: Account, group: DeferredTransactions, rules: Sequence[Rule] = ()
    ) -> UpsertCounts:
        """Like ``upsert``, building only the group's items that are new or changed."""
        ...

    async def drop_stale_pending(self, account: Account, batch: TransactionBatch) -> int: ...
    async def between(self, account_id: UUID, first: date, last: date) -> list[ProviderTransaction]:
        """The account's stored transactions dated first..last (the fields sources share)."""
        ...

    async def get(self, transaction_id: UUID, user_id: UUID) -> Transaction | None: ...
    async def find(
        self, user_id: UUID, filters: TransactionFilter, page: PageRequest
    ) -> Page[Transaction]: ...
    async def listed(
        self, user_id: UUID, filters: TransactionFilter, page: PageRequest
    ) -> Page[ListedTransaction]:
        """Like ``find``, as the list endpoints answer (what they return, nothing more)."""
        ...

    async def listed_json(
        self, user_id: UUID, filters: TransactionFilter, page: PageRequest
    ) -> WrittenPage | None:
        """``listed``'s page, its items as their response JSON written by the database; None
        where the database does not write it (then ``listed``)."""
        ...

    async def count_for(self, account_id: UUID) -> int: ...


class SnapshotRepository(Protocol):
    async def add_many(self, snapshots: Sequence[BalanceSnapshot]) -> int:
        """Add those not identical to the latest stored one of the same account and time; how many."""
        ...

    async def find(
        self,
        user_id: UUID,
        account_id: UUID,
        since: datetime | None,
        until: datetime | None,
        page: PageRequest,
    ) -> Page[BalanceSnapshot]: ...
    async def written(self, user_id: UUID, account_id: UUID, page: PageRequest) -> WrittenPage | None:
        """``find``'s page (no time bounds) written as JSON by the database where it can."""
        ...


class SyncRunRepository(Protocol):
    async def add(self, run: SyncRun) -> None: ...
    async def add_if_idle(self, run: SyncRun) -> bool: ...
    async def save(self, run: SyncRun) -> None: ...
    async def get(self, run_id: UUID, user_id: UUID | None = None, *, lock: bool = False) -> SyncRun | None:
        """``lock``: read for writing; a concurrent writer of the run (the reaper) waits."""
        ...

    async def find(self, user_id: UUID, connection_id: UUID, page: PageRequest) -> Page[SyncRun]: ...
    async def written(self, user_id: UUID, connection_id: UUID, page: PageRequest) -> WrittenPage | None:
        """``find``'s page written as JSON by the database where it can (see ``WrittenPage``)."""
        ...

    async def active_for(self, connection_id: UUID) -> SyncRun | None:
        """The connection's queued or running run, if any (at most one: a unique index)."""
        ...

    async def add_many_if_idle(self, runs: Sequence[SyncRun]) -> list[SyncRun]:
        """Insert those whose connection has no active run; the ones inserted."""
        ...

    async def start(self, run_id: UUID, when: datetime) -> SyncRun | None:
        """A worker picked the run up: queued (or interrupted running) → running, attempts + 1.
        None when the run is gone or already finished."""
        ...

    async def stale(self, before: datetime, limit: int) -> list[SyncRun]:
        """Active runs queued or started before ``before``: candidates for the reaper."""
        ...

    async def close_lost(self, run_ids: Sequence[UUID], when: datetime, error: str) -> list[UUID]:
        """Fail those of these runs that are still queued or running; the ids of those failed."""
        ...


class WebhookRepository(Protocol):
    async def add(self, webhook: Webhook) -> None: ...
    async def get(self, webhook_id: UUID, user_id: UUID | None = None) -> Webhook | None: ...
    async def find(self, user_id: UUID, page: PageRequest) -> Page[Webhook]: ...
    async def written(self, user_id: UUID, page: PageRequest) -> WrittenPage | None:
        """``find``'s page written as JSON by the database where it can (see ``WrittenPage``)."""
        ...

    async def count(self, user_id: UUID, *, lock: bool = False) -> int:
        """The user's webhooks; ``lock``: other locking counts for this user wait until this
        transaction ends (a limit checked on the count then holds under concurrency)."""
        ...

    async def set_secret(self, webhook_id: UUID, secret: bytes, when: datetime) -> None: ...
    async def delete(self, webhook_id: UUID) -> None:
        """With its deliveries and their attempts."""
        ...

    async def subscribed(self, user_id: UUID, event: str) -> list[UUID]:
        """The user's webhooks that want this event type."""
        ...

    async def add_deliveries(self, deliveries: Sequence[WebhookDelivery]) -> list[UUID]:
        """Insert, skipping those whose (webhook, dedupe_key) was delivered before; the ids added."""
        ...

    async def delivery(self, delivery_id: UUID, *, lock: bool = False) -> WebhookDelivery | None: ...
    async def deliveries(
        self, user_id: UUID, webhook_id: UUID, page: PageRequest
    ) -> Page[WebhookDelivery]: ...
    async def written_deliveries(
        self, user_id: UUID, webhook_id: UUID, page: PageRequest
    ) -> WrittenPage | None:
        """``deliveries``' page with their attempts, written as JSON by the database where it can."""
        ...

    async def attempts_of(self, delivery_ids: Sequence[UUID]) -> list[WebhookAttempt]: ...
    async def record_attempt(self, delivery: WebhookDelivery, attempt: WebhookAttempt) -> None:
        """Store the attempt and the delivery's new status, attempts and times."""
        ...

    async def stale_pending(self, before: datetime, limit: int) -> list[WebhookDelivery]:
        """Pending deliveries created before ``before`` (their job may have been lost)."""
        ...

    async def prune(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` finished deliveries created before ``before``, with their
        attempts; how many."""
        ...


class WebhookSender(Protocol):
    """Sends one signed delivery over HTTP; checks targets against the SSRF rules."""

    async def check_url(self, url: str) -> str:
        """The URL, normalised; raises InvalidInput when it may not be a webhook target."""
        ...

    async def send(self, url: str, secret: str, message_id: str, body: bytes) -> SendResult:
        """One attempt, signed at its send time (the receiver's clock judges the timestamp)."""
        ...


class IdempotencyRepository(Protocol):
    async def claim(self, record: IdempotencyRecord) -> bool:
        """Insert unless the user already used the key; True when this call inserted it."""
        ...

    async def get(self, user_id: UUID, key: str) -> IdempotencyRecord | None: ...
    async def complete(
        self, record_id: UUID, status_code: int, response: dict[str, Any], connection_id: UUID | None
    ) -> None: ...
    async def remove(self, record_id: UUID) -> None: ...
    async def prune(self, now: datetime, limit: int) -> int:
        """Delete up to ``limit`` keys expired at ``now``; how many were deleted."""
        ...


@dataclass(frozen=True, slots=True)
class ExportSection:
    """One kind of record in a user's data export, and the fields each record shows."""

    name: str
    fields: tuple[str, ...]
    single: bool = False  # the user's profile: one object rather than a list
    json_fields: frozenset[str] = frozenset()  # their values arrive as JSON text, exactly as stored


class UserDataRepository(Protocol):
    """Everything one user owns, read for export and deleted for erasure.

    Every feature that stores data of a user extends both (docs/operations.md);
    tests/integration/test_userdata.py fails when a table keyed by user_id is not covered.
    """

    def sections(self) -> Sequence[ExportSection]: ...
    async def freeze(self) -> None:
        """Make every later read of this unit of work see one consistent state (call first)."""
        ...

    def export(
        self, user_id: UUID, section: ExportSection, batch: int
    ) -> AsyncIterator[Sequence[Sequence[Any]]]:
        """The section's records of the user (values in ``section.fields`` order), read from the
        database ``batch`` at a time. Money arrives as text or Decimal, JSON fields as JSON text."""
        ...

    async def erase(self, user_id: UUID) -> dict[str, int]:
        """Delete the user and every row they own; rows deleted per table."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class UserSummary:
    id: UUID
    email: str
    is_active: bool
    created_at: datetime
    connections: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredSecret:
    """One encrypted value at rest: what and whose it is, and its ciphertext (never decrypted here)."""

    kind: str  # "connection" (provider credentials), "auth_flow" (PKCE verifier...), "webhook"
    id: UUID
    owner: str  # the owner's email, for the operator's report
    ciphertext: bytes


class OperatorRepository(Protocol):
    """What the operator's command line needs beyond the per-user repositories."""

    async def users(self) -> list[UserSummary]: ...
    async def set_active(self, user_id: UUID, active: bool, when: datetime) -> None:
        """Enable or disable a user; disabling also revokes every refresh token they hold."""
        ...

    async def secrets(self) -> list[StoredSecret]: ...
    async def replace_secret(self, secret: StoredSecret, ciphertext: bytes) -> bool:
        """Store a re-encrypted value, unless the stored one changed meanwhile (then False)."""
        ...


class ImportMappingRepository(Protocol):
    """Saved CSV column mappings, one per user and header."""

    async def add(self, mapping: ImportMapping) -> None:
        """Raises Conflict when the user already has a mapping for this header."""
        ...

    async def get(self, mapping_id: UUID, user_id: UUID) -> ImportMapping | None: ...
    async def for_header(self, user_id: UUID, signature: str) -> ImportMapping | None: ...
    async def list(self, user_id: UUID) -> list[ImportMapping]: ...
    async def delete(self, mapping_id: UUID, user_id: UUID) -> bool: ...


class TradingRepository(Protocol):
    """Per-connection trading settings, orders and their audit trail (append-only events)."""

    async def settings(self, connection_id: UUID, *, lock: bool = False) -> TradingSettings | None: ...
    async def save_settings(self, settings: TradingSettings) -> None:
        """Insert or replace the connection's settings."""
        ...

    async def add_order(self, order: Order) -> bool:
        """Insert unless the user already used the order's idempotency key (the database's
        unique constraint decides); True when this call inserted it."""
        ...

    async def order(self, order_id: UUID, user_id: UUID | None = None) -> Order | None: ...
    async def account_to_trade(self, account_id: UUID, user_id: UUID) -> tuple[Account, Connection] | None:
        """The user's account with its connection: one read where an order starts."""
        ...

    async def order_by_key(self, user_id: UUID, key: str) -> Order | None: ...
    async def save_order(self, order: Order, expect: Expected | None = None) -> bool:
        """Write the order; with ``expect`` only while its stored status and filled quantity
        are still those (compare-and-set: of two writers of the same change, one records
        it). Answers whether it was written."""
        ...

    async def claim_resend(self, order_id: UUID, now: datetime, lost_before: datetime) -> bool:
        """Take the one resend an order may have, atomically: submit_attempts 1 → 2, status
        ``pending_submit`` sent at ``now`` — only while the stored order is still ``unknown``
        (or ``pending_submit`` since before ``lost_before``: its sender died) with no broker id."""
        ...

    async def orders(
        self, user_id: UUID, page: PageRequest, account_id: UUID | None = None, open_only: bool = False
    ) -> Page[Order]: ...
    async def written(self, user_id: UUID, page: PageRequest) -> WrittenPage | None:
        """``orders``' page (every account, open or not) written as JSON by the database where it
        can."""
        ...

    async def open_orders(self, connection_id: UUID) -> list[Order]: ...
    async def taken_broker_ids(self, connection_id: UUID) -> set[str]: ...
    async def placed_since(self, connection_id: UUID, since: datetime) -> tuple[int, Decimal]:
        """Orders placed on the connection since ``since`` and their estimated notional."""
        ...

    async def add_events(self, *events: OrderEvent) -> None:
        """Append to the audit trail; a ``status`` event is also announced to the order event
        streams once committed (PostgreSQL: ``pg_notify`` in the same transaction)."""
        ...

    async def events(self, order_id: UUID) -> list[OrderEvent]: ...
    async def unsettled_orders(self, limit: int) -> list[Order]:
        """Orders of every user not final yet, oldest first (the broker poller's work)."""
        ...

    async def last_status_event(self, user_id: UUID) -> UUID | None: ...
    async def status_changes(
        self,
        user_id: UUID,
        after: UUID | None,
        also: Collection[UUID] = (),
        connections: Collection[UUID] | None = None,
        limit: int = 500,
    ) -> list[OrderStatusChange]:
        """The user's status events after ``after`` (all when None) or in ``also``, oldest
        first, only of ``connections`` when given."""
        ...


class OrderDesk(Protocol):
    """An order's own way to the database, in as few round trips as it can take: the read
    where an order starts, its insert before the send, and what the broker said after it.
    The same promises as through a unit of work (the row committed before the send, the
    settings row locked while the daily limits are counted, one order per idempotency key);
    cheaper statements (prepared, on the driver's connection)."""

    def held(self) -> AbstractAsyncContextManager[None]:
        """One pooled connection for every call of this task inside (the read and the insert:
        one checkout instead of two), released at exit: never held across a broker call."""
        ...

    async def context(
        self,
        account_id: UUID,
        key: str,
        symbol: str,
        *,
        token_hash: str | None = None,
        user_id: UUID | None = None,
    ) -> OrderContext | None:
        """By an API token's digest (unrevoked, its user active) or a user's id: None when
        neither names an active caller."""
        ...

    async def place(
        self,
        order: Order,
        request: OrderEvent,
        seen: TradingSettings,
        check: Callable[[tuple[int, Decimal]], None] | None,
        kept: OrderContext | None = None,
    ) -> Placement:
        """Insert ``order`` and its request event and commit, under the lock of the
        connection's settings row and only if that row still equals ``seen``. With ``check``
        (daily limits), today's orders and notional on the connection (since midnight UTC of
        ``order.created_at``) are counted under the lock and handed to it; it raises to refuse.
        With ``kept`` (a context kept from an earlier order, not read now), only while its user
        is active, its token unrevoked, and its account and connection unchanged: else CHANGED."""
        ...

    async def record(
        self, order: Order, events: Sequence[OrderEvent], expect: Expected | None = None
    ) -> bool:
        """Save the order and append ``events`` in one commit (a ``status`` event reaches
        the order event streams). With ``expect``, all of it only while the stored status and
        filled quantity are still those: False, nothing written, when another writer changed
        them first."""
        ...


class OrderFeed(Protocol):
    """Status changes announced to the order event streams of this process."""

    def publish(self, notes: Sequence[StatusNote]) -> None: ...
    def subscribe(self, user_id: UUID) -> AbstractAsyncContextManager[OrderSubscription]: ...
    async def aclose(self) -> None: ...


class OrderSubscription(Protocol):
    """One stream's inbox: notes of its user; ``None`` means "look again" (a listener came
    back after an outage). ``overflowed``: the stream fell too far behind and must end."""

    overflowed: bool

    async def next(self) -> list[StatusNote | None]:
        """Wait for at least one note; all that are waiting."""
        ...


class ApiTokenRepository(Protocol):
    async def add(self, token: ApiToken) -> None: ...
    async def by_hash(self, token_hash: str) -> tuple[ApiToken, User] | None:
        """The live (unrevoked) token with this hash and its active user."""
        ...

    async def list(self, user_id: UUID) -> list[ApiToken]: ...
    async def revoke(self, token_id: UUID, user_id: UUID, when: datetime) -> bool: ...


class UnitOfWork(Protocol):
    """One transaction; rolls back on exit unless ``commit`` was awaited."""

    users: UserRepository
    refresh_tokens: RefreshTokenRepository
    sessions: SessionRepository
    login_attempts: LoginAttemptRepository
    connections: ConnectionRepository
    auth_flows: AuthFlowRepository
    accounts: AccountRepository
    holdings: HoldingRepository
    transactions: TransactionRepository
    snapshots: SnapshotRepository
    sync_runs: SyncRunRepository
    idempotency: IdempotencyRepository
    user_data: UserDataRepository
    operators: OperatorRepository
    webhooks: WebhookRepository
    # Analytics (finsync.domain.analytics_ports)
    market: MarketRepository
    positions: PositionRepository
    categories: CategoryRepository
    rules: RuleRepository
    labels: LabelRepository
    transfers: TransferRepository
    analytics: AnalyticsRepository
    import_mappings: ImportMappingRepository
    trading: TradingRepository
    api_tokens: ApiTokenRepository

    async def __aenter__(self) -> Self: ...
    async def __aexit__(self, *exc: object) -> None: ...
    async def commit(self) -> None:
        """Commit, then hand the jobs ``enqueue`` buffered to the job queue."""
        ...

    async def rollback(self) -> None:
        """Roll back and drop the buffered jobs."""
        ...

    def enqueue(self, job: Job) -> None:
        """Buffer a job until this transaction commits: a rollback never leaves a job behind."""
        ...


UnitOfWorkFactory = Callable[[], UnitOfWork]


class PasswordHasher(Protocol):
    """Slow by design (Argon2): implementations keep the work off the event loop."""

    async def hash(self, password: str) -> str: ...
    async def verify(self, password: str, password_hash: str) -> bool: ...


class PasswordPolicy(Protocol):
    def problem(self, password: str, context: Sequence[str]) -> str | None:
        """Why ``password`` is refused (never quoting it), or None. ``context``: the user's own words."""
        ...


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: UUID
    session_id: UUID


class KeyRotator(Protocol):
    """Re-encrypts a stored value with the newest key (after ``decrypt`` proved a key reads it)."""

    def rotate(self, token: bytes) -> bytes: ...


class AccessTokens(Protocol):
    """Short-lived signed access tokens (JWT in production), bound to a session."""

    def issue(self, user_id: UUID, session_id: UUID, now: datetime) -> tuple[str, int]: ...
    def verify(self, token: str) -> AccessClaims: ...


class CredentialCipher(Protocol):
    def encrypt(self, credentials: dict[str, Any]) -> bytes: ...
    def decrypt(self, token: bytes) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class PersonPresent:
    """The person is at the screen for this sync (they pressed sync, or just came back from
    their bank): their address (after trusted proxies) and browser. Bank links forward them,
    so the bank does not count the calls against its few unattended ones a day (PSD2)."""

    ip_address: str
    user_agent: str | None = None


class ReferenceRates(Protocol):
    """Stored reference rates (the ECB's euro fixings, crossed through EUR) on the day of one
    sync: how an adapter values in the connection's currency what the provider prices only in
    another fiat currency (Binance has EUR markets but no USD ones)."""

    async def rate(self, base: str, quote: str) -> Rate | None:
        """``quote`` per 1 ``base`` on the sync's day, or the last earlier fixing when that day has
        none (the rate names its day); None when no fixing of either is stored yet."""
        ...


@dataclass(slots=True, kw_only=True)
class ProviderSession:
    """What an adapter gets for one sync: decrypted credentials and its own persisted state.

    Adapters may mutate ``state`` (cursors) and ``credentials`` (rotated tokens).
    The sync service persists ``state`` only when the sync succeeds — except
    ``state["budget"]`` (calls already spent at the provider), which is kept even
    when a sync fails — and persists rotated credentials in every case.
    """

    connection_id: UUID
    credentials: dict[str, Any]
    environment: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    last_synced_at: datetime | None = None
    # Messages the provider gives for the person (e.g. "log in again at the bridge"); they do
    # not fail the sync and become the sync run's ``warnings``.
    warnings: list[str] = field(default_factory=list)
    # Set when the person asked for this sync and is there (None: a scheduled, unattended one).
    present: PersonPresent | None = None
    # Stored reference rates for this sync's day (None outside a sync, e.g. when a key is checked).
    rates: ReferenceRates | None = None


@runtime_checkable
class ProviderAdapter(Protocol):
    """Fetches one connection's data: what every syncing provider has. Optional abilities are
    the Protocols below; a provider's metadata declares which it has, and the registry's
    compliance checks hold adapters to that (so a misnamed method fails, never skips)."""

    async def fetch_accounts(self) -> list[ProviderAccount]: ...
    async def fetch_transactions(self, account: ProviderAccount) -> TransactionBatch: ...
    async def aclose(self) -> None: ...


@runtime_checkable
class HoldingsSource(Protocol):
    """Capability ``holdings``: positions per account (brokers; banks have none)."""

    async def fetch_holdings(self, account: ProviderAccount) -> list[ProviderHolding]: ...


@runtime_checkable
class KeyValidator(Protocol):
    """Checks pasted credentials with one cheap call before they are stored; returns the
    login's stable account keys (empty when the provider cannot tell)."""

    async def validate(self) -> list[str]: ...


class SendSlot(Protocol):
    """A send reserved on the broker's rate budget before the order is stored (the two round
    trips overlap); ``release`` gives it back when the order is not sent after all."""

    async def release(self) -> None: ...


@runtime_checkable
class OrderPort(Protocol):
    """Capability ``trading``: orders at the broker. ``order_problem`` refuses, without any
    network call, what the broker cannot do; ``find_orders`` lists the broker orders that may be
    the one sent with ``client_order_id`` at ``sent_at`` (reconciliation after an ambiguous
    failure), oldest first."""

    def order_problem(self, order: OrderRequest) -> str | None: ...
    async def reserve_send(self, order: OrderRequest) -> SendSlot | None:
        """A send of ``order`` on the budget, if one is free now (never waits)."""
        ...

    async def place_order(
        self, order: OrderRequest, client_order_id: str, slot: SendSlot | None = None
    ) -> BrokerOrder: ...
    async def find_orders(
        self, order: OrderRequest, client_order_id: str, sent_at: datetime
    ) -> list[BrokerOrder]: ...
    async def get_order(self, broker_order_id: str) -> BrokerOrder: ...
    async def cancel_order(self, broker_order_id: str) -> None: ...
    async def open_orders(self) -> list[BrokerOrder]: ...
    async def aclose(self) -> None: ...


@runtime_checkable
class Preflight(Protocol):
    """Says, without calling the provider, whether a sync may run now (raises ``RateLimited``)."""

    async def preflight(self) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderInfo:
    """What use cases need to know about a provider, without importing the registry."""

    slug: str
    display_name: str
    auth_type: AuthType
    capabilities: frozenset[Capability]
    required_credentials: frozenset[str]
    optional_credentials: frozenset[str]
    environments: tuple[str, ...]
    missing_settings: tuple[str, ...]  # environment variables to set, e.g. FINSYNC_SCHWAB_APP_KEY
    state_param: str = "state"  # query parameter carrying our state back (GoCardless: "ref")
    schedule: SyncSchedule = NEVER
    # The optional credential field that is a date, the connection's expires_at (IBKR Flex).
    expiry_credential: str | None = None


class ProviderGateway(Protocol):
    """The application's view of the provider registry (which lives outside the core)."""

    def info(self, provider: str) -> ProviderInfo | None: ...
    def capabilities(self, provider: str) -> frozenset[Capability]: ...
    def adapter(self, provider: str, session: ProviderSession) -> ProviderAdapter: ...
    def flow(self, provider: str, options: dict[str, Any]) -> RedirectFlow: ...
    async def revoke(self, provider: str, session: ProviderSession) -> None:
        """End the grant at the provider, if it has one to end (a deleted connection's consent)."""
        ...


class JobQueue(Protocol):
    """Hands typed jobs to whatever runs them: asyncio tasks in this process (SQLite) or
    procrastinate workers on any number of machines (PostgreSQL)."""

    async def enqueue(self, job: Job) -> bool:
        """Queue a job; False when one with the same queueing lock already waits (already queued)."""
        ...

    async def enqueue_many(self, jobs: Sequence[Job]) -> int:
        """Queue each job as ``enqueue`` would (a clash of one leaves the others queued), in as
        few round trips as the queue allows; how many were queued."""
        ...

    async def pending(self, kind: str, locks: Sequence[str]) -> set[str]:
        """The locks among ``locks`` that have a job of this kind waiting or running (alive)."""
        ...

    async def retry_stalled(self) -> int:
        """Queue again the jobs of workers that stopped sending heartbeats; how many."""
        ...


@dataclass(slots=True, kw_only=True)
class AuthorizationStart:
    """Where to send the person's browser, plus server-side flow data (PKCE verifier, requisition id)."""

    url: str
    flow_data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class AuthorizationResult:
    credentials: dict[str, Any]
    expires_at: datetime | None = None


class RedirectFlow(Protocol):
    """The provider half of an OAuth 2.0 or bank-link flow; state handling is ours."""

    async def start(self, *, state: str, redirect_uri: str) -> AuthorizationStart: ...
    async def complete(
        self, *, params: dict[str, str], flow_data: dict[str, Any], redirect_uri: str
    ) -> AuthorizationResult: ...


@dataclass(slots=True, kw_only=True)
class ParsedStatement:
    """One account's part of an uploaded file; ``holdings`` is None when the file says nothing of them."""

    account: ProviderAccount
    transactions: list[ProviderTransaction] = field(default_factory=list)
    deferred: list[DeferredTransactions] = field(default_factory=list)
    holdings: list[ProviderHolding] | None = None
    institution: str | None = None


@dataclass(slots=True, kw_only=True)
class ParsedFile:
    format: str
    statements: list[ParsedStatement]
    warnings: list[str] = field(default_factory=list)


class StatementFormat(Protocol):
    """A statement file format (OFX/QFX now, CSV later): detection plus a pure reader.

    ``read`` raises MalformedFile (or another ImportRejected) naming what is wrong and where.
    """

    name: str  # also the slug of the file provider that owns it (its connection's provider)
    description: str
    extensions: tuple[str, ...]

    def sniff(self, head: bytes, filename: str | None) -> bool: ...
    def read(self, data: bytes) -> ParsedFile: ...


class MappableFormat(StatementFormat, Protocol):
    """A format read through column mappings (CSV): saved mappings, previews, header matching."""

    def read(
        self, data: bytes, mapping: ColumnMapping | None = None, mapping_key: str = "", name: str = ""
    ) -> ParsedFile: ...
    def preview(
        self, data: bytes, mapping: ColumnMapping | None = None, rows_shown: int = 20
    ) -> dict[str, Any]:
        """What ``read`` would find (settings, first rows, problems); raises as ``read`` does."""
        ...

    def header_signature(self, data: bytes) -> str: ...
