"""Read-only analytics queries over snapshots and transactions.

The two big ones aggregate in the database: balance deltas per currency and day (net
worth history) and cash-flow sums per period and group, converted with a per-day rate
table joined in. PostgreSQL sums NUMERIC exactly; SQLite, whose money is TEXT, adds with
the ``dsum_rate`` aggregate (Decimal in Python, see ``sqlite_functions``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from finsync.domain.analytics_ports import (
    CashFlowGroup,
    DailyRates,
    HistoryPoints,
    Interval,
    Movement,
    PeriodSum,
    SnapshotValue,
)
from finsync.domain.entities import BalanceSnapshot
from finsync.domain.enums import AccountType, TransactionStatus, TransactionSubtype, TransactionType
from finsync.infrastructure.db.analytics_tables import NetWorthDeltaRow
from finsync.infrastructure.db.cash_flow import (
    BY_ACCOUNT,
    BY_CATEGORY,
    COUNTED,
    NO_KEY,
    PG_NOT_LINKED,
    SQLITE_NOT_LINKED,
)
from finsync.infrastructure.db.net_worth import NetWorthDeltas
from finsync.infrastructure.db.net_worth_history import history_points
from finsync.infrastructure.db.tables import BalanceSnapshotRow, TransactionRow

snapshots = BalanceSnapshotRow.__table__  # type: ignore[attr-defined]
transactions = TransactionRow.__table__  # type: ignore[attr-defined]

_PG_PERIOD = {
    Interval.DAY: "t.transaction_date",
    Interval.WEEK: "CAST(date_trunc('week', t.transaction_date) AS date)",
    Interval.MONTH: "CAST(date_trunc('month', t.transaction_date) AS date)",
    Interval.YEAR: "CAST(date_trunc('year', t.transaction_date) AS date)",
}
_SQLITE_PERIOD = {
    Interval.DAY: "t.transaction_date",
    Interval.WEEK: "date(t.transaction_date, '-' || "
    "((CAST(strftime('%w', t.transaction_date) AS INTEGER) + 6) % 7) || ' days')",
    Interval.MONTH: "strftime('%Y-%m-01', t.transaction_date)",
    Interval.YEAR: "strftime('%Y-01-01', t.transaction_date)",
}
_PG_GROUP = {
    None: "NULL",
    CashFlowGroup.CATEGORY: "CAST(t.category_id AS text)",
    CashFlowGroup.ACCOUNT: "CAST(t.account_id AS text)",
    CashFlowGroup.PAYEE: "NULLIF(btrim(split_part(t.description, ' / ', 1)), '')",
}
_SQLITE_GROUP = {
    None: "NULL",
    CashFlowGroup.CATEGORY: "t.category_id",
    CashFlowGroup.ACCOUNT: "t.account_id",
    CashFlowGroup.PAYEE: "NULLIF(trim(CASE WHEN instr(t.description, ' / ') > 0 THEN "
    "substr(t.description, 1, instr(t.description, ' / ') - 1) ELSE t.description END), '')",
}
# Rows of cash flow: the user's in the range, counted, not in a live own-transfer link.
_CASH_FLOW_ROWS = "t.user_id = :user_id AND t.transaction_date >= :start AND t.transaction_date <= :end AND "
_CASH_FLOW_WHERE = f"{_CASH_FLOW_ROWS}{COUNTED} AND {SQLITE_NOT_LINKED}"
_PG_CASH_FLOW_WHERE = f"{_CASH_FLOW_ROWS}{COUNTED} AND {PG_NOT_LINKED}"
# The daily sums of the days not marked for recomputation (see infrastructure/db/cash_flow.py).
_DAILY_SUMS = (
    "SELECT {day} AS day, c.currency AS currency, {key} AS grp, c.income AS inc, c.spending AS sp,"
    " c.count AS n FROM cash_flow_days c WHERE c.user_id = :user_id AND c.grouping = :grouping"
    " AND c.day >= :start AND c.day <= :end"
    " AND NOT EXISTS (SELECT 1 FROM cash_flow_dirty y WHERE y.user_id = :user_id AND y.day = c.day)"
)
_MARKED = " AND t.transaction_date IN (SELECT y.day FROM cash_flow_dirty y WHERE y.user_id = :user_id)"
_PG_RATES = (
    "SELECT * FROM unnest(CAST(:cur AS text[]), CAST(:day AS date[]), CAST(:rate AS numeric[]))"
    " AS r(currency, day, rate)"
)


def _uuid(value: Any) -> str | None:
    if value is None:
        return None
    return str(value if isinstance(value, UUID) else UUID(hex=str(value)))


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


class SqlAnalyticsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session
        self._deltas = NetWorthDeltas(session)

    async def record_snapshots(
        self, items: Sequence[BalanceSnapshot], types: dict[UUID, AccountType]
    ) -> None:
        await self._deltas.record(items, types)

    async def rebuild_net_worth(self, user_id: UUID) -> None:
        await self._deltas.rebuild(user_id)

    async def net_worth_deltas(self, user_id: UUID, end: date) -> list[tuple[str, date, Decimal]]:
        return await self._deltas.read(user_id, end)

    @property
    def _postgres(self) -> bool:
        return self._s.get_bind().dialect.name == "postgresql"

    async def _no_jit(self) -> None:
        """PostgreSQL compiles a query whose estimated cost is high (unnested arrays are
        misestimated) with JIT, which costs far more than these queries run: off for the
        request's transaction."""
        await self._s.execute(text("SET LOCAL jit = off"))

    async def net_worth_currencies(self, user_id: UUID) -> set[str]:
        d = NetWorthDeltaRow.__table__.c  # type: ignore[attr-defined]
        stmt = select(d.currency).where(d.user_id == user_id).distinct()
        return set((await self._s.execute(stmt)).scalars())

    async def price_currencies(self, keys: Sequence[str], end: date) -> set[str]:
        """The currency of each instrument's latest close up to ``end`` (what revaluing quotes)."""
        if not keys:
            return set()
        sql = (
            "SELECT (SELECT c.currency FROM prices c WHERE c.instrument_id = i.id AND c.day <= :end"
            " ORDER BY c.day DESC LIMIT 1) FROM instruments i WHERE i.key IN :keys"
        )
        stmt = text(sql).bindparams(_expanding("keys"))
        rows = await self._s.execute(stmt, {"keys": tuple(keys), "end": end if self._postgres else str(end)})
        return {c for (c,) in rows.all() if c is not None}

    async def history_points(
        self,
        user_id: UUID,
        start: date,
        end: date,
        points: Sequence[date],
        daily: bool,
        target: str,
        cuts: dict[UUID, date],
    ) -> HistoryPoints | None:
        """Net worth per point in one statement (``net_worth_history``). None on SQLite (TEXT
        money): the caller computes it from the deltas and closes."""
        if not self._postgres:
            return None
        return await history_points(self._s, user_id, start, end, points, daily, target, cuts)

    async def balance_deltas(
        self, user_id: UUID, end: date, exclude: Sequence[UUID] = ()
    ) -> list[tuple[str, date, Decimal]]:
        """Per currency and UTC day: how much the sum of accounts' last known balances moved.

        Each snapshot contributes its balance minus the account's previous one, so summing a
        currency's deltas up to a day gives, for every account, its last balance on or before
        that day (carried forward). Snapshots without a balance carry nothing.
        """
        params: dict[str, Any] = {"user_id": user_id, "end": end}
        skip = ""
        if exclude:
            skip = " AND s.account_id NOT IN :exclude"
            params["exclude"] = tuple(exclude)
        if self._postgres:
            sql = (
                "SELECT currency, day, SUM(delta) FROM ("  # noqa: S608 - constant SQL, values are bound
                " SELECT s.currency, CAST(s.taken_at AT TIME ZONE 'UTC' AS date) AS day,"
                " s.balance - COALESCE(LAG(s.balance) OVER (PARTITION BY s.account_id, s.currency"
                "  ORDER BY s.taken_at, s.id), 0) AS delta"
                " FROM balance_snapshots s WHERE s.user_id = :user_id AND s.balance IS NOT NULL"
                f" AND s.taken_at < CAST(:end AS date) + 1{skip}"
                ") d GROUP BY currency, day ORDER BY day"
            )
            stmt = text(sql)
            if exclude:
                stmt = stmt.bindparams(_expanding("exclude"))
            return [(c, d, v) for c, d, v in (await self._s.execute(stmt, params)).all()]
        sql = (
            "SELECT s.account_id, s.currency, date(s.taken_at), s.balance FROM balance_snapshots s"  # noqa: S608
            f" WHERE s.user_id = :user_id AND s.balance IS NOT NULL AND date(s.taken_at) <= :end{skip}"
            " ORDER BY s.account_id, s.taken_at, s.id"
        )
        stmt = text(sql)
        if exclude:
            stmt = stmt.bindparams(_expanding("exclude"))
        params["end"] = end.isoformat()
        params["user_id"] = user_id.hex
        if exclude:
            params["exclude"] = tuple(a.hex for a in exclude)
        sums: dict[tuple[str, str], Decimal] = {}
        last: dict[tuple[str, str], Decimal] = {}
        for account, currency, day, balance in (await self._s.execute(stmt, params)).all():
            value = Decimal(balance)
            key = (account, currency)
            delta = value - last.get(key, Decimal(0))
            last[key] = value
            sums[(currency, day)] = sums.get((currency, day), Decimal(0)) + delta
        return sorted(((c, _day(d), v) for (c, d), v in sums.items()), key=lambda x: x[1])

    async def snapshot_values(
        self, user_id: UUID, account_ids: Sequence[UUID], end: date, since: date | None = None
    ) -> list[SnapshotValue]:
        """Each account's last snapshot (with a balance) of every UTC day up to ``end``, oldest
        first; with ``since``, from that day on plus each account's last one before it."""
        s = snapshots.c
        limit = datetime.combine(end + timedelta(days=1), time(), UTC)
        where = [s.user_id == user_id, s.account_id.in_(list(account_ids)), s.balance.is_not(None)]
        columns = (s.account_id, s.currency, s.taken_at, s.balance, s.cash_value)
        stmt = select(*columns).where(*where, s.taken_at < limit)
        found: list[Any] = []
        if since is not None:
            floor = datetime.combine(since, time(), UTC)
            stmt = stmt.where(s.taken_at >= floor)
            for account_id in account_ids:
                before = (
                    select(*columns)
                    .where(*where, s.account_id == account_id, s.taken_at < floor)
                    .order_by(s.taken_at.desc(), s.id.desc())
                    .limit(1)
                )
                found += list((await self._s.execute(before)).all())
        found += list((await self._s.execute(stmt.order_by(s.account_id, s.taken_at, s.id))).all())
        last: dict[tuple[UUID, date], SnapshotValue] = {}
        for account_id, currency, taken_at, balance, cash in found:
            day = taken_at.date() if isinstance(taken_at, datetime) else _day(taken_at)
            last[(account_id, day)] = SnapshotValue(account_id, currency, day, balance, cash)
        return sorted(last.values(), key=lambda v: (v.day, str(v.account_id)))

    async def period_sums(
        self,
        user_id: UUID,
        start: date,
        end: date,
        interval: Interval,
        group: CashFlowGroup | None,
        rates: DailyRates,
    ) -> list[PeriodSum]:
        """Income (amounts > 0) and spending (< 0) per period and group, in the base currency.

        Rows whose currency has no rate on their day are left out of the sums and counted.
        """
        params: dict[str, Any] = {"user_id": user_id, "start": start, "end": end, "base": rates.base}
        params["false"] = False
        # Two stages: sums per day, currency and group first, then each day's sums times that
        # day's rate, per period. The first stage reads the stored daily sums (per category,
        # or per account) — and the transactions only of days marked for recomputation, or
        # every transaction for the payees, which have no stored sums.
        if self._postgres:
            period, grouping = _PG_PERIOD[interval], _PG_GROUP[group]
            head, joined = f"WITH x AS ({_PG_RATES}), ", "x"
            inner_inc = "SUM(t.amount) FILTER (WHERE t.amount > 0)"
            inner_sp = "SUM(t.amount) FILTER (WHERE t.amount < 0)"
            rate = "CASE WHEN d.currency = :base THEN 1 ELSE x.rate END"
            income, spending = f"SUM(d.inc * {rate})", f"SUM(d.sp * {rate})"
            params |= {"cur": rates.currencies, "day": rates.days, "rate": rates.rates}
            where, key = _PG_CASH_FLOW_WHERE, f"CAST(NULLIF(c.key, '{NO_KEY}') AS text)"
        else:  # SQLite joins its temporary rate table directly, through the table's own key
            period, grouping = _SQLITE_PERIOD[interval], _SQLITE_GROUP[group]
            await self._sqlite_rates(rates)
            head, joined = "WITH ", "_fx_rates x"
            inner_inc = "dsum_rate(CASE WHEN CAST(t.amount AS REAL) > 0 THEN t.amount END, '1')"
            inner_sp = "dsum_rate(CASE WHEN CAST(t.amount AS REAL) < 0 THEN t.amount END, '1')"
            rate = "CASE WHEN d.currency = :base THEN '1' ELSE x.rate END"
            income, spending = f"dsum_rate(d.inc, {rate})", f"dsum_rate(d.sp, {rate})"
            params |= {"user_id": user_id.hex, "start": start.isoformat(), "end": end.isoformat()}
            where, key = _CASH_FLOW_WHERE, f"NULLIF(c.key, '{NO_KEY.hex}')"
        scanned = (
            f"SELECT t.transaction_date AS day, t.currency AS currency, {grouping} AS grp, "  # noqa: S608
            f"{inner_inc} AS inc, {inner_sp} AS sp, COUNT(*) AS n FROM transactions t WHERE {where}"
        )
        if group is CashFlowGroup.PAYEE:
            first = f"{scanned} GROUP BY 1, 2, 3"
        else:
            params["grouping"] = BY_ACCOUNT if group is CashFlowGroup.ACCOUNT else BY_CATEGORY
            # SQLite: a DATE column has numeric affinity, which would keep the rate table's
            # TEXT day out of its index (a scan of every rate per row): compared as text.
            day = "c.day" if self._postgres else "CAST(c.day AS TEXT)"
            first = _DAILY_SUMS.format(key="NULL" if group is None else key, day=day)
            if await self._marked(params):
                first += f" UNION ALL {scanned}{_MARKED} GROUP BY 1, 2, 3"
        sql = (
            f"{head}d AS ({first}) "  # noqa: S608
            f"SELECT {period.replace('t.transaction_date', 'd.day')} AS period, d.grp, {income}, {spending}, "
            "SUM(d.n), SUM(CASE WHEN d.currency <> :base AND x.rate IS NULL THEN d.n ELSE 0 END) "
            f"FROM d LEFT JOIN {joined} ON x.currency = d.currency AND x.day = d.day "
            "GROUP BY 1, 2 ORDER BY 1, 2"
        )
        if self._postgres:  # the per-day groups of a long history sort in memory, not on disk
            await self._s.execute(text("SET LOCAL work_mem = '64MB'"))
            await self._no_jit()
        result = await self._s.execute(text(sql), params)
        out = []
        for period_value, grp, inc, spent, count, missing in result.all():
            values = {
                "income": Decimal(inc) if inc is not None else Decimal(0),
                "spending": Decimal(spent) if spent is not None else Decimal(0),
            }
            out.append(
                PeriodSum(
                    _day(period_value), _uuid_or_text(grp, group), values, int(count), int(missing or 0)
                )
            )
        return out

    async def _marked(self, params: dict[str, Any]) -> bool:
        """Whether some of the range's days wait for their sums to be recomputed (a write that
        did not recompute them, or a bulk load): those days are read from the transactions."""
        sql = (
            "SELECT 1 FROM cash_flow_dirty WHERE user_id = :user_id AND day >= :start AND day <= :end LIMIT 1"
        )
        return (await self._s.execute(text(sql), params)).first() is not None

    async def _sqlite_rates(self, rates: DailyRates) -> None:
        await self._s.execute(
            text(
                "CREATE TEMP TABLE IF NOT EXISTS _fx_rates"
                " (currency TEXT, day TEXT, rate TEXT, PRIMARY KEY (currency, day))"
            )
        )
        await self._s.execute(text("DELETE FROM _fx_rates"))
        rows = [
            {"c": c, "d": d.isoformat(), "r": str(r)}
            for c, d, r in zip(rates.currencies, rates.days, rates.rates, strict=True)
        ]
        if rows:
            await self._s.execute(text("INSERT INTO _fx_rates VALUES (:c, :d, :r)"), rows)

    async def currencies_in(self, user_id: UUID, start: date, end: date, known: set[str]) -> set[str]:
        """Currencies of the user's transactions in the range other than ``known`` (a scan: asked
        only when a cash-flow query met rows it could not convert)."""
        t = transactions.c
        stmt = (
            select(t.currency)
            .where(
                t.user_id == user_id,
                t.transaction_date >= start,
                t.transaction_date <= end,
                t.currency.not_in(sorted(known)),
            )
            .distinct()
        )
        return set((await self._s.execute(stmt)).scalars())

    async def transactions_of(
        self,
        user_id: UUID,
        account_ids: Sequence[UUID] | None,
        end: date,
        types: Sequence[TransactionType],
        start: date | None = None,
        counted_only: bool = False,
    ) -> list[Movement]:
        """The user's settled or pending transactions of some types (income, trades, flows);
        ``counted_only``: without those the user excluded from analytics."""
        t = transactions.c
        columns = (
            t.account_id,
            t.type,
            t.subtype,
            t.amount,
            t.currency,
            t.transaction_date,
            t.symbol,
            t.quantity,
        )
        stmt = select(*columns).where(
            t.user_id == user_id,
            t.type.in_([k.value for k in types]),
            t.status != TransactionStatus.CANCELLED.value,
            t.transaction_date <= end,
        )
        if start is not None:
            stmt = stmt.where(t.transaction_date >= start)
        if counted_only:
            stmt = stmt.where(or_(t.excluded_from_analytics.is_(None), t.excluded_from_analytics.is_(False)))
        if account_ids is not None:
            stmt = stmt.where(t.account_id.in_(list(account_ids)))
        stmt = stmt.order_by(t.transaction_date, t.id)
        return [
            Movement(a, TransactionType(k), TransactionSubtype(s), amount, c, d, symbol, q)
            for a, k, s, amount, c, d, symbol, q in (await self._s.execute(stmt)).all()
        ]

    async def daily_sums(self, account_id: UUID, start: date, end: date) -> list[tuple[date, Decimal, int]]:
        """Settled transactions of one account per day: (day, sum, count)."""
        t = transactions.c
        stmt = (
            select(t.transaction_date, t.amount)
            .where(
                t.account_id == account_id,
                t.status == TransactionStatus.SETTLED.value,
                t.transaction_date >= start,
                t.transaction_date <= end,
            )
            .order_by(t.transaction_date)
        )
        sums: dict[date, tuple[Decimal, int]] = {}
        for day, amount in (await self._s.execute(stmt)).all():
            total, count = sums.get(day, (Decimal(0), 0))
            sums[day] = (total + amount, count + 1)
        return [(d, v, n) for d, (v, n) in sorted(sums.items())]


def _expanding(name: str) -> Any:
    from sqlalchemy import bindparam

    return bindparam(name, expanding=True)


def _uuid_or_text(value: Any, group: CashFlowGroup | None) -> str | None:
    if value is None or group is None:
        return None
    if group in (CashFlowGroup.CATEGORY, CashFlowGroup.ACCOUNT):
        return _uuid(value)
    return str(value)
