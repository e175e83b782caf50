"""A fake unit of work: in-memory repositories behind the domain ports, for fast use-case tests.

What a use case decides (validation, errors, schedules, which job it queues) is tested on this
fake in ``tests/unit/application``, in microseconds. What the database guarantees (constraints,
locks, ``SKIP LOCKED``, cascades, exact decimals, concurrent writers) is not imitated here: that
stays in ``tests/integration`` and ``tests/api``, on SQLite and PostgreSQL.

Transactions are real enough for use cases: a unit of work works on a copy of the committed
state; ``commit`` publishes the copy and hands the buffered jobs to the queue, leaving without
a commit (or ``rollback``) drops both. Entities go in and come out as copies, so changing one
without ``save`` changes nothing stored — as with the SQL repositories. A repository this fake
does not implement raises ``NotFaked`` on first use, naming it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Self, TypeVar, cast
from uuid import UUID

from finsync.domain.analytics_ports import (
    AnalyticsRepository,
    CategoryRepository,
    LabelRepository,
    MarketRepository,
    PositionRepository,
    RuleRepository,
    TransferRepository,
)
from finsync.domain.categories import Category, Rule
from finsync.domain.entities import Account, AuthFlow, Connection, SyncRun
from finsync.domain.enums import AuthType, Capability, ConnectionStatus, SyncStatus
from finsync.domain.errors import InvalidInput, ProviderError
from finsync.domain.jobs import Job
from finsync.domain.ports import (
    NEVER,
    AccountFilter,
    AccountRepository,
    ApiTokenRepository,
    AuthFlowRepository,
    ConnectionRepository,
    CurrencyTotals,
    HoldingRepository,
    IdempotencyRepository,
    ImportMappingRepository,
    LoginAttemptRepository,
    OperatorRepository,
    Page,
    PageRequest,
    ProviderAdapter,
    ProviderInfo,
    ProviderSession,
    RedirectFlow,
    RefreshTokenRepository,
    SessionRepository,
    SnapshotRepository,
    SyncRunRepository,
    TradingRepository,
    TransactionRepository,
    UnitOfWork,
    UserDataRepository,
    UserRepository,
    WebhookRepository,
    WrittenPage,
)
from finsync.domain.reach import Reach
from finsync.domain.records import ProviderAccount, ProviderHolding, TransactionBatch, UpsertCounts
from finsync.domain.schedule import SyncSchedule

E = TypeVar("E")
ACTIVE = (SyncStatus.QUEUED, SyncStatus.RUNNING)


class NotFaked(NotImplementedError):
    """The use case reached a repository (or method) the fake does not implement."""


@dataclass
class Tables:
    """Rows of one state of the fake database, keyed by id."""

    connections: dict[UUID, Connection] = field(default_factory=dict)
    sync_runs: dict[UUID, SyncRun] = field(default_factory=dict)
    auth_flows: dict[UUID, AuthFlow] = field(default_factory=dict)
    accounts: dict[UUID, Account] = field(default_factory=dict)
    categories: dict[UUID, Category] = field(default_factory=dict)
    rules: dict[UUID, Rule] = field(default_factory=dict)
    seeded: set[UUID] = field(default_factory=set)  # users whose default categories were given


@dataclass
class MemoryDatabase:
    """The committed state every unit of work of one test shares; ``uow`` is the factory."""

    tables: Tables = field(default_factory=Tables)
    jobs: list[Job] = field(default_factory=list)  # handed to the queue, in commit order
    commits: int = 0

    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    def add(self, *entities: Connection | SyncRun | AuthFlow | Account | Category | Rule) -> None:
        """Seed committed rows directly (a test's given state)."""
        for entity in entities:
            table: dict[UUID, Any] = getattr(self.tables, _TABLE_OF[type(entity)])
            table[entity.id] = copy.deepcopy(entity)

    def get(self, kind: type[E], entity_id: UUID) -> E | None:
        """The committed row, for assertions (a copy)."""
        table: dict[UUID, E] = getattr(self.tables, _TABLE_OF[kind])
        return copy.deepcopy(table.get(entity_id))


_TABLE_OF: dict[type, str] = {
    Connection: "connections",
    SyncRun: "sync_runs",
    AuthFlow: "auth_flows",
    Account: "accounts",
    Category: "categories",
    Rule: "rules",
}


def _page(items: list[E], page: PageRequest, key: Callable[[E], UUID], *, descending: bool) -> Page[E]:
    """Keyset paging by id, as ``infrastructure.db.mapping.keyset`` does it."""
    items = sorted(items, key=key, reverse=descending)
    if page.after is not None:
        try:
            (raw,) = page.after
            bound = UUID(hex=raw)
        except ValueError as exc:
            raise InvalidInput("cursor is not valid; use next_cursor from a previous page") from exc
        items = [i for i in items if (key(i) < bound if descending else key(i) > bound)]
    if len(items) <= page.limit:
        return Page(items=items)
    items = items[: page.limit]
    return Page(items=items, next_key=(str(key(items[-1])),))


class _Repository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    @property
    def _t(self) -> Tables:
        return self._uow.tables


class MemoryConnections(_Repository):
    async def add(self, connection: Connection) -> None:
        if connection.identity is not None and self._same_login(connection) is not None:
            raise AssertionError("unique (user_id, provider, identity) violated: use add_or_get")
        self._t.connections[connection.id] = copy.deepcopy(connection)

    def _same_login(self, c: Connection) -> Connection | None:
        return next(
            (
                o
                for o in self._t.connections.values()
                if (o.user_id, o.provider, o.identity) == (c.user_id, c.provider, c.identity)
            ),
            None,
        )

    async def get(
        self, connection_id: UUID, user_id: UUID | None = None, *, lock: bool = False
    ) -> Connection | None:
        found = self._t.connections.get(connection_id)
        if found is None or (user_id is not None and found.user_id != user_id):
            return None
        return copy.deepcopy(found)

    async def find(
        self, user_id: UUID, page: PageRequest, status: ConnectionStatus | None = None
    ) -> Page[Connection]:
        mine = [
            copy.deepcopy(c)
            for c in self._t.connections.values()
            if c.user_id == user_id and (status is None or c.status is status)
        ]
        return _page(mine, page, lambda c: c.id, descending=False)

    async def written(self, user_id: UUID, page: PageRequest, now: datetime) -> WrittenPage | None:
        return None  # as SQLite: no database writes pages here (find's page is the answer)

    async def save(self, connection: Connection) -> None:
        if connection.id in self._t.connections:
            self._t.connections[connection.id] = copy.deepcopy(connection)

    async def delete(self, connection_id: UUID) -> None:
        """Everything under the connection goes with it (the SQL one deletes explicitly too)."""
        self._t.connections.pop(connection_id, None)
        for table in (self._t.sync_runs, self._t.auth_flows, self._t.accounts):
            for key in [k for k, row in table.items() if row.connection_id == connection_id]:
                del table[key]

    async def expire_lapsed(self, user_id: UUID | None, now: datetime) -> list[Connection]:
        expired = []
        for c in self._t.connections.values():
            lapsed = c.expires_at is not None and c.expires_at <= now
            if lapsed and c.status is ConnectionStatus.ACTIVE and user_id in (None, c.user_id):
                c.status = ConnectionStatus.NEEDS_REAUTH
                c.last_error = "access expired: reconnect with POST /api/v1/connections/{id}/reauthorize"
                c.updated_at = now
                expired.append(c)
        return expired

    async def claim_due(self, now: datetime, limit: int) -> list[Connection]:
        due = [
            c
            for c in self._t.connections.values()
            if c.sync_enabled and c.status.reachable and c.next_sync_at is not None and c.next_sync_at <= now
        ]
        due.sort(key=lambda c: c.next_sync_at or now)
        return [copy.deepcopy(c) for c in due[:limit]]

    async def reschedule_and_queue(
        self,
        next_at: Sequence[tuple[UUID, datetime | None]],
        runs: Sequence[SyncRun],
        *,
        claimed_at: datetime,
    ) -> list[SyncRun]:
        for connection_id, at in next_at:
            if connection_id in self._t.connections:
                self._t.connections[connection_id].next_sync_at = at
        return await MemorySyncRuns(self._uow).add_many_if_idle(runs)

    async def add_or_get(self, connection: Connection) -> Connection:
        stored = self._same_login(connection)
        if stored is None:
            self._t.connections[connection.id] = copy.deepcopy(connection)
            return copy.deepcopy(connection)
        return copy.deepcopy(stored)

    async def by_identity(
        self, user_id: UUID, provider: str, identity: str, *, lock: bool = False
    ) -> Connection | None:
        probe = Connection(user_id=user_id, provider=provider, name="", identity=identity)
        found = self._same_login(probe)
        return None if found is None else copy.deepcopy(found)


class MemorySyncRuns(_Repository):
    def _active(self, connection_id: UUID) -> SyncRun | None:
        return next(
            (
                r
                for r in self._t.sync_runs.values()
                if r.connection_id == connection_id and r.status in ACTIVE
            ),
            None,
        )

    async def add(self, run: SyncRun) -> None:
        if run.status in ACTIVE and self._active(run.connection_id) is not None:
            raise AssertionError("unique active run per connection violated: use add_if_idle")
        self._t.sync_runs[run.id] = copy.deepcopy(run)

    async def add_if_idle(self, run: SyncRun) -> bool:
        return bool(await self.add_many_if_idle([run]))

    async def add_many_if_idle(self, runs: Sequence[SyncRun]) -> list[SyncRun]:
        added = []
        for run in runs:
            if self._active(run.connection_id) is None:
                self._t.sync_runs[run.id] = copy.deepcopy(run)
                added.append(run)
        return added

    async def save(self, run: SyncRun) -> None:
        if run.id in self._t.sync_runs:
            self._t.sync_runs[run.id] = copy.deepcopy(run)

    async def get(self, run_id: UUID, user_id: UUID | None = None, *, lock: bool = False) -> SyncRun | None:
        found = self._t.sync_runs.get(run_id)
        if found is None or (user_id is not None and found.user_id != user_id):
            return None
        return copy.deepcopy(found)

    async def find(self, user_id: UUID, connection_id: UUID, page: PageRequest) -> Page[SyncRun]:
        mine = [
            copy.deepcopy(r)
            for r in self._t.sync_runs.values()
            if r.user_id == user_id and r.connection_id == connection_id
        ]
        return _page(mine, page, lambda r: r.id, descending=True)

    async def written(self, user_id: UUID, connection_id: UUID, page: PageRequest) -> WrittenPage | None:
        return None  # as SQLite: no database writes pages here (find's page is the answer)

    async def active_for(self, connection_id: UUID) -> SyncRun | None:
        return copy.deepcopy(self._active(connection_id))

    async def start(self, run_id: UUID, when: datetime) -> SyncRun | None:
        run = self._t.sync_runs.get(run_id)
        if run is None or run.status not in ACTIVE:
            return None
        run.status, run.started_at, run.attempts = SyncStatus.RUNNING, when, run.attempts + 1
        return copy.deepcopy(run)

    async def stale(self, before: datetime, limit: int) -> list[SyncRun]:
        old = [r for r in self._t.sync_runs.values() if r.status in ACTIVE and r.started_at < before]
        return [copy.deepcopy(r) for r in sorted(old, key=lambda r: r.started_at)[:limit]]

    async def close_lost(self, run_ids: Sequence[UUID], when: datetime, error: str) -> list[UUID]:
        closed = []
        for run_id in run_ids:
            run = self._t.sync_runs.get(run_id)
            if run is not None and run.status in ACTIVE:
                run.status, run.finished_at = SyncStatus.FAILED, when
                run.error, run.error_type = error, "interrupted"
                closed.append(run_id)
        return closed


class MemoryAuthFlows(_Repository):
    async def add(self, flow: AuthFlow) -> None:
        self._t.auth_flows[flow.id] = copy.deepcopy(flow)

    async def get_by_state_hash(self, state_hash: str) -> AuthFlow | None:
        found = next((f for f in self._t.auth_flows.values() if f.state_hash == state_hash), None)
        return copy.deepcopy(found)

    async def claim(self, flow_id: UUID, when: datetime) -> bool:
        flow = self._t.auth_flows.get(flow_id)
        if flow is None or flow.used_at is not None:
            return False
        flow.used_at = when
        return True


class MemoryAccounts(_Repository):
    """Reads only: accounts are written by the sync and import write path, which is tested on
    the databases (``upsert`` is not faked)."""

    async def upsert(
        self, connection: Connection, accounts: Sequence[ProviderAccount]
    ) -> tuple[list[Account], UpsertCounts]:
        raise NotFaked("accounts.upsert: the write path is tested on both databases")

    async def held_by(
        self, user_id: UUID, provider: str | None, ids: Sequence[str], exclude: UUID | None = None
    ) -> UUID | None:
        return next(
            (
                a.connection_id
                for a in self._t.accounts.values()
                if a.user_id == user_id
                and provider in (None, a.provider)
                and a.provider_account_id in ids
                and a.connection_id != exclude
            ),
            None,
        )

    async def get(self, account_id: UUID, user_id: UUID) -> Account | None:
        found = self._t.accounts.get(account_id)
        return copy.deepcopy(found) if found is not None and found.user_id == user_id else None

    async def for_connection(self, connection_id: UUID, *, lock: bool = False) -> list[Account]:
        return [copy.deepcopy(a) for a in self._t.accounts.values() if a.connection_id == connection_id]

    async def find(self, user_id: UUID, filters: AccountFilter, page: PageRequest) -> Page[Account]:
        mine = [
            copy.deepcopy(a)
            for a in self._t.accounts.values()
            if a.user_id == user_id
            and filters.connection_id in (None, a.connection_id)
            and filters.type in (None, a.type)
        ]
        return _page(mine, page, lambda a: a.id, descending=False)

    async def written(self, user_id: UUID, page: PageRequest) -> WrittenPage | None:
        return None  # as SQLite: no database writes pages here (find's page is the answer)

    async def reaches(self, user_id: UUID) -> list[Reach]:
        mine = [a for a in self._t.accounts.values() if a.user_id == user_id and a.iban is not None]
        found = []
        for a in sorted(mine, key=lambda a: a.id):
            if any(
                (b.iban, b.currency) == (a.iban, a.currency) and b.connection_id != a.connection_id
                for b in mine
            ):
                c = self._t.connections[a.connection_id]
                assert a.iban is not None
                found.append(
                    Reach(
                        account_id=a.id,
                        connection_id=a.connection_id,
                        provider=a.provider,
                        iban=a.iban,
                        currency=a.currency,
                        status=c.status,
                        expires_at=c.expires_at,
                        connected_at=c.created_at,
                    )
                )
        return found

    async def totals_by_currency(self, user_id: UUID, exclude: Collection[UUID] = ()) -> CurrencyTotals:
        raise NotFaked("accounts.totals_by_currency: exact sums are tested on both databases")


class MemoryCategories(_Repository):
    async def list(self, user_id: UUID) -> list[Category]:
        mine = [copy.deepcopy(c) for c in self._t.categories.values() if c.user_id == user_id]
        return sorted(mine, key=lambda c: c.name)

    async def get(self, category_id: UUID, user_id: UUID) -> Category | None:
        found = self._t.categories.get(category_id)
        return copy.deepcopy(found) if found is not None and found.user_id == user_id else None

    async def add(self, category: Category) -> None:
        self._unique(category)
        self._t.categories[category.id] = copy.deepcopy(category)

    def _unique(self, category: Category) -> None:
        for other in self._t.categories.values():
            if other.id != category.id and (other.user_id, other.name) == (category.user_id, category.name):
                raise AssertionError("unique (user_id, name) violated: the use case must check first")

    async def save(self, category: Category) -> None:
        if category.id in self._t.categories:
            self._unique(category)
            self._t.categories[category.id] = copy.deepcopy(category)

    async def lock_tree(self, user_id: UUID) -> None:
        """One task at a time touches the memory store: nothing to lock."""

    async def delete(self, category_id: UUID, user_id: UUID) -> int:
        """Children move to the top level. Transactions are not faked: none lose the category."""
        for child in self._t.categories.values():
            if child.parent_id == category_id:
                child.parent_id = None
        found = self._t.categories.get(category_id)
        if found is not None and found.user_id == user_id:
            del self._t.categories[category_id]
        return 0

    async def seed(self, user_id: UUID, categories: Sequence[Category]) -> bool:
        if user_id in self._t.seeded:
            return False
        self._t.seeded.add(user_id)
        taken = {c.name for c in self._t.categories.values() if c.user_id == user_id}
        for category in categories:
            if category.name not in taken:
                self._t.categories[category.id] = copy.deepcopy(category)
        return True


class MemoryRules(_Repository):
    async def list(self, user_id: UUID) -> list[Rule]:
        mine = [copy.deepcopy(r) for r in self._t.rules.values() if r.user_id == user_id]
        return sorted(mine, key=lambda r: (r.priority, r.id))

    async def any_for(self, user_id: UUID) -> bool:
        return any(r.user_id == user_id and r.enabled for r in self._t.rules.values())

    async def get(self, rule_id: UUID, user_id: UUID) -> Rule | None:
        found = self._t.rules.get(rule_id)
        return copy.deepcopy(found) if found is not None and found.user_id == user_id else None

    async def add(self, rule: Rule) -> None:
        self._t.rules[rule.id] = copy.deepcopy(rule)

    async def save(self, rule: Rule) -> None:
        if rule.id in self._t.rules:
            self._t.rules[rule.id] = copy.deepcopy(rule)

    async def delete(self, rule_id: UUID, user_id: UUID) -> bool:
        found = self._t.rules.get(rule_id)
        if found is None or found.user_id != user_id:
            return False
        del self._t.rules[rule_id]
        return True


class _NotFaked:
    """Stands in for a repository the fake does not implement."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, method: str) -> Any:
        raise NotFaked(
            f"uow.{self._name}.{method} is not faked: test this use case against the databases "
            "(tests/integration, tests/api), or add an in-memory repository to tests/fakes/uow.py"
        )


def _not_faked(name: str) -> Any:
    return cast(Any, _NotFaked(name))


class _NoWebhooks(_NotFaked):
    """A user of the fake has no webhooks: events are published to nobody (their delivery is
    tested against the databases, tests/api/test_webhooks.py)."""

    async def subscribed(self, user_id: UUID, event: str) -> list[UUID]:
        return []


class FakeUnitOfWork:
    """One transaction over a copy of ``MemoryDatabase``; typed as the ``UnitOfWork`` port."""

    def __init__(self, database: MemoryDatabase) -> None:
        self._db = database
        self.tables = copy.deepcopy(database.tables)
        self._jobs: list[Job] = []
        self.connections: ConnectionRepository = MemoryConnections(self)
        self.sync_runs: SyncRunRepository = MemorySyncRuns(self)
        self.auth_flows: AuthFlowRepository = MemoryAuthFlows(self)
        self.accounts: AccountRepository = MemoryAccounts(self)  # reads only: see MemoryAccounts
        self.categories: CategoryRepository = MemoryCategories(self)
        self.rules: RuleRepository = MemoryRules(self)
        # Not faked (the database is the point of their tests): using one raises NotFaked.
        self.users: UserRepository = _not_faked("users")
        self.refresh_tokens: RefreshTokenRepository = _not_faked("refresh_tokens")
        self.sessions: SessionRepository = _not_faked("sessions")
        self.login_attempts: LoginAttemptRepository = _not_faked("login_attempts")
        self.holdings: HoldingRepository = _not_faked("holdings")
        self.transactions: TransactionRepository = _not_faked("transactions")
        self.snapshots: SnapshotRepository = _not_faked("snapshots")
        self.idempotency: IdempotencyRepository = _not_faked("idempotency")
        self.user_data: UserDataRepository = _not_faked("user_data")
        self.operators: OperatorRepository = _not_faked("operators")
        self.market: MarketRepository = _not_faked("market")
        self.positions: PositionRepository = _not_faked("positions")
        self.labels: LabelRepository = _not_faked("labels")
        self.transfers: TransferRepository = _not_faked("transfers")
        self.analytics: AnalyticsRepository = _not_faked("analytics")
        self.import_mappings: ImportMappingRepository = _not_faked("import_mappings")
        self.trading: TradingRepository = _not_faked("trading")
        self.api_tokens: ApiTokenRepository = _not_faked("api_tokens")
        self.webhooks: WebhookRepository = cast(Any, _NoWebhooks("webhooks"))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.rollback()

    async def commit(self) -> None:
        self._db.tables = copy.deepcopy(self.tables)
        self._db.jobs.extend(self._jobs)
        self._db.commits += 1
        self._jobs.clear()

    async def rollback(self) -> None:
        self.tables = copy.deepcopy(self._db.tables)
        self._jobs.clear()

    def enqueue(self, job: Job) -> None:
        self._jobs.append(job)


def fake_uow_factory(database: MemoryDatabase) -> Callable[[], UnitOfWork]:
    """``database.uow`` typed as the port: mypy checks the fake against ``UnitOfWork`` here."""
    factory: Callable[[], UnitOfWork] = database.uow
    return factory


@dataclass
class FakeJobQueue:
    """The ``JobQueue`` port: records what it is given; ``alive`` are the locks of live jobs."""

    enqueued: list[Job] = field(default_factory=list)
    alive: set[str] = field(default_factory=set)
    stalled: int = 0

    async def enqueue(self, job: Job) -> bool:
        self.enqueued.append(job)
        return True

    async def pending(self, kind: str, locks: Sequence[str]) -> set[str]:
        return {lock for lock in locks if lock in self.alive}

    async def retry_stalled(self) -> int:
        return self.stalled


@dataclass
class FakeLogin:
    """What the fake provider's ``validate`` answers: the login's account keys, or an error."""

    keys: list[str] = field(default_factory=list)
    error: ProviderError | None = None
    validated: list[dict[str, Any]] = field(default_factory=list)  # credentials it was shown


class _ValidatingAdapter:
    def __init__(self, login: FakeLogin, session: ProviderSession) -> None:
        self._login = login
        self._session = session

    async def validate(self) -> list[str]:
        self._login.validated.append(dict(self._session.credentials))
        if self._login.error is not None:
            raise self._login.error
        return list(self._login.keys)

    async def fetch_accounts(self) -> list[ProviderAccount]:
        raise NotFaked("syncs run against fake provider servers, not in use-case unit tests")

    async def fetch_holdings(self, account: ProviderAccount) -> list[ProviderHolding]:
        raise NotFaked("syncs run against fake provider servers, not in use-case unit tests")

    async def fetch_transactions(self, account: ProviderAccount) -> TransactionBatch:
        raise NotFaked("syncs run against fake provider servers, not in use-case unit tests")

    async def aclose(self) -> None:
        return None


@dataclass
class FakeProviders:
    """The ``ProviderGateway`` port over a few described providers; adapters only validate."""

    infos: dict[str, ProviderInfo] = field(default_factory=dict)
    logins: dict[str, FakeLogin] = field(default_factory=dict)

    def describe(
        self,
        slug: str,
        *,
        auth_type: AuthType = AuthType.API_KEY,
        credentials: frozenset[str] = frozenset({"api_key"}),
        environments: tuple[str, ...] = (),
        schedule: SyncSchedule = NEVER,
        missing_settings: tuple[str, ...] = (),
    ) -> FakeLogin:
        self.infos[slug] = ProviderInfo(
            slug=slug,
            display_name=slug.title(),
            auth_type=auth_type,
            capabilities=frozenset({Capability.ACCOUNTS}),
            required_credentials=credentials,
            optional_credentials=frozenset(),
            environments=environments,
            missing_settings=missing_settings,
            schedule=schedule,
        )
        return self.logins.setdefault(slug, FakeLogin())

    def info(self, provider: str) -> ProviderInfo | None:
        return self.infos.get(provider)

    def capabilities(self, provider: str) -> frozenset[Capability]:
        info = self.infos.get(provider)
        return info.capabilities if info is not None else frozenset()

    def adapter(self, provider: str, session: ProviderSession) -> ProviderAdapter:
        return _ValidatingAdapter(self.logins[provider], session)

    def flow(self, provider: str, options: dict[str, Any]) -> RedirectFlow:
        raise NotFaked("redirect flows are tested against the fake provider servers")

    async def revoke(self, provider: str, session: ProviderSession) -> None:
        return None  # the described providers hold no grant beyond their keys
