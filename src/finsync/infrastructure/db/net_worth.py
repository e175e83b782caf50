"""The per-currency daily net worth deltas (``net_worth_deltas``), kept in step with snapshots.

A snapshot that becomes an account's last value of its UTC day moves that day's delta by
(new value - the value it replaces) and the account's next snapshot day by the opposite:
the running sum stays every account's carried-forward value. Liabilities count ``-|balance|``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from finsync.domain.entities import BalanceSnapshot
from finsync.domain.enums import AccountType
from finsync.domain.worth import is_liability, signed
from finsync.infrastructure.db.analytics_tables import NetWorthDeltaRow
from finsync.infrastructure.db.tables import AccountRow, BalanceSnapshotRow

deltas = NetWorthDeltaRow.__table__  # type: ignore[attr-defined]
snapshots = BalanceSnapshotRow.__table__  # type: ignore[attr-defined]
accounts = AccountRow.__table__  # type: ignore[attr-defined]
_FIGURES = ("currency", "balance", "available_balance", "cash_value", "holdings_value")


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).date()
    return date.fromisoformat(str(value)[:10])


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def deltas_of(rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """(user_id, account_id, currency, taken_at, balance, type) ordered by account and time →
    delta rows. Used to build the table from scratch (migration, rebuild)."""
    sums: dict[tuple[UUID, str, date, bool], Decimal] = {}
    last: dict[Any, tuple[str, Decimal]] = {}  # account → the currency and value it carries

    def add(user_id: Any, currency: str, taken_at: Any, liability: bool, amount: Decimal) -> None:
        slot = (_uuid(user_id), currency, _day(taken_at), liability)
        sums[slot] = sums.get(slot, Decimal(0)) + amount

    for user_id, account_id, currency, taken_at, balance, kind in rows:
        value = signed(kind, Decimal(str(balance)))
        was_currency, was = last.get(account_id, (currency, Decimal(0)))
        last[account_id] = (currency, value)
        # An account now stated in another currency stops carrying its value in the old one.
        add(user_id, was_currency, taken_at, is_liability(kind), -was)
        add(user_id, currency, taken_at, is_liability(kind), value)
    return [
        {"user_id": u, "currency": c, "day": d, "liability": liability, "delta": v}
        for (u, c, d, liability), v in sums.items()
        if v != 0
    ]


class NetWorthDeltas:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def _add(self, user_id: UUID, currency: str, day: date, liability: bool, amount: Decimal) -> None:
        from finsync.infrastructure.db.repositories.market import dialect_insert

        if amount == 0:
            return
        stmt = dialect_insert(self._s, deltas).values(
            user_id=user_id, currency=currency, day=day, liability=liability, delta=amount
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["user_id", "currency", "day", "liability"],
            set_={"delta": deltas.c.delta + stmt.excluded.delta},
        )
        if self._s.get_bind().dialect.name == "sqlite":  # TEXT money: add in Python, exactly
            row = (
                await self._s.execute(
                    select(deltas.c.delta).where(
                        deltas.c.user_id == user_id,
                        deltas.c.currency == currency,
                        deltas.c.day == day,
                        deltas.c.liability == liability,
                    )
                )
            ).scalar()
            total = amount + (row or Decimal(0))
            stmt = dialect_insert(self._s, deltas).values(
                user_id=user_id, currency=currency, day=day, liability=liability, delta=total
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=["user_id", "currency", "day", "liability"], set_={"delta": total}
            )
        await self._s.execute(stmt)

    async def _neighbours(self, snap: BalanceSnapshot, start: datetime, end: datetime) -> Any:
        """Everything ``record`` decides on, in one round trip (it took four): the latest
        snapshot at the same instant (its figures), the day's last known value, the last one
        before the day and the first day after it."""
        s = snapshots.c
        known = (s.account_id == snap.account_id, s.balance.is_not(None))
        at = (s.account_id == snap.account_id, s.taken_at == snap.taken_at)

        def latest(column: Any, *where: Any, order: Sequence[Any]) -> Any:
            return select(column).where(*where).order_by(*order).limit(1).scalar_subquery()

        same = [latest(s.id, *at, order=[s.id.desc()]).label("same_id")]
        same += [latest(s[f], *at, order=[s.id.desc()]).label(f) for f in _FIGURES]
        in_day = (*known, s.taken_at >= start, s.taken_at < end)
        newest = [s.taken_at.desc(), s.id.desc()]
        stmt = select(
            *same,
            latest(s.taken_at, *in_day, order=newest).label("day_at"),
            latest(s.balance, *in_day, order=newest).label("day_balance"),
            latest(s.currency, *in_day, order=newest).label("day_currency"),
            latest(s.balance, *known, s.taken_at < start, order=newest).label("before"),
            latest(s.currency, *known, s.taken_at < start, order=newest).label("before_currency"),
            latest(s.taken_at, *known, s.taken_at >= end, order=[s.taken_at]).label("following"),
        )
        return (await self._s.execute(stmt)).one()

    async def record(self, items: Sequence[BalanceSnapshot], types: dict[UUID, AccountType]) -> None:
        """Account for snapshots about to be stored (call before inserting them; one per account)."""
        for snap in items:
            if snap.balance is None:
                continue
            day = _day(snap.taken_at)
            start = datetime.combine(day, time(), UTC)
            # The last representable day (a statement dated 9999-12-31) has no next day.
            end = start + timedelta(days=1) if day < date.max else datetime.max.replace(tzinfo=UTC)
            row = await self._neighbours(snap, start, end)
            if row.same_id is not None and all(getattr(row, f) == getattr(snap, f) for f in _FIGURES):
                continue  # a restatement: not stored again, nothing changes
            if row.day_at is not None and row.day_at > snap.taken_at:
                continue  # not the day's last value: the day's total does not move
            kind = types[snap.account_id]
            # The value this snapshot replaces, in the currency it was carried in (an account
            # the provider now states in another currency stops carrying it in the old one).
            if row.day_at is not None:
                base, base_currency = signed(kind, row.day_balance), row.day_currency
            elif row.before is not None:
                base, base_currency = signed(kind, row.before), row.before_currency
            else:
                base, base_currency = Decimal(0), snap.currency
            value = signed(kind, snap.balance)
            liability = is_liability(kind)
            await self._move(snap, day, liability, (base_currency, base), value)
            if row.following is not None:  # the next snapshot now replaces this one, not the base
                following = _day(row.following)
                await self._add(snap.user_id, base_currency, following, liability, base)
                await self._add(snap.user_id, snap.currency, following, liability, -value)

    async def _move(
        self, snap: BalanceSnapshot, day: date, liability: bool, base: tuple[str, Decimal], value: Decimal
    ) -> None:
        base_currency, amount = base
        if base_currency == snap.currency:
            await self._add(snap.user_id, snap.currency, day, liability, value - amount)
        else:
            await self._add(snap.user_id, base_currency, day, liability, -amount)
            await self._add(snap.user_id, snap.currency, day, liability, value)

    async def rebuild(self, user_id: UUID) -> None:
        """Recompute the user's deltas from the snapshots (after deleting a connection)."""
        s, a = snapshots.c, accounts.c
        await self._s.execute(delete(deltas).where(deltas.c.user_id == user_id))
        rows = await self._s.execute(
            select(s.user_id, s.account_id, s.currency, s.taken_at, s.balance, a.type)
            .join(accounts, a.id == s.account_id)
            .where(s.user_id == user_id, s.balance.is_not(None))
            .order_by(s.account_id, s.taken_at, s.id)
        )
        values = deltas_of(rows.all())
        if values:
            await self._s.execute(deltas.insert(), values)

    async def read(self, user_id: UUID, end: date) -> list[tuple[str, date, Decimal]]:
        """Per currency and day, assets and liabilities together, oldest first."""
        d = deltas.c
        if self._s.get_bind().dialect.name == "sqlite":  # TEXT money: summed in Python
            stmt = select(d.currency, d.day, d.delta).where(d.user_id == user_id, d.day <= end)
            sums: dict[tuple[str, date], Decimal] = {}
            for c, day, v in (await self._s.execute(stmt)).all():
                sums[(c, day)] = sums.get((c, day), Decimal(0)) + v
            return sorted(((c, day, v) for (c, day), v in sums.items()), key=lambda r: r[1])
        total = func.sum(d.delta).label("delta")
        stmt = (
            select(d.currency, d.day, total)
            .where(d.user_id == user_id, d.day <= end)
            .group_by(d.currency, d.day)
            .order_by(d.day)
        )
        return [(c, day, v) for c, day, v in (await self._s.execute(stmt)).all()]
