"""Accounts, holdings and balance snapshots."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from finsync.domain.entities import Account, BalanceSnapshot, Connection, Holding, new_id, utcnow
from finsync.domain.enums import ConnectionStatus
from finsync.domain.errors import AlreadyConnected
from finsync.domain.ports import AccountFilter, CurrencyTotal, CurrencyTotals, Page, PageRequest, WrittenPage
from finsync.domain.reach import Reach, normalise_iban
from finsync.domain.records import VALUE_CONVERSION, ProviderAccount, ProviderHolding, UpsertCounts
from finsync.domain.worth import signed
from finsync.infrastructure.db import written as w
from finsync.infrastructure.db.mapping import column_text, keyset, make_page, provider_id, to_entity, to_row
from finsync.infrastructure.db.tables import AccountRow, BalanceSnapshotRow, ConnectionRow, HoldingRow
from finsync.infrastructure.db.types import json_roundtrip

accounts = AccountRow.__table__  # type: ignore[attr-defined]
_ACCOUNT_ID_MAX: int = accounts.c.provider_account_id.type.length
holdings = HoldingRow.__table__  # type: ignore[attr-defined]
_ACCOUNT_JSON = {  # AccountValued's fields without ?currency=, see db/written.py and api/valued.py
    **{c: w.quoted(c, nullable=False) for c in ("id", "connection_id")},
    **{c: w.text(c, nullable=False) for c in ("provider_account_id", "name")},
    "type": w.quoted("type", nullable=False),
    "currency": w.text("currency", nullable=False),
    "institution": w.text("institution"),
    **{c: w.quoted(c) for c in ("balance", "available_balance", "cash_value", "holdings_value")},
    "balance_at": w.utc("balance_at", nullable=True),
    "iban": w.text("iban"),
    "created_at": w.utc("created_at"),
    "updated_at": w.utc("updated_at"),
    "converted": "'null'",
    "duplicate_of": "'null'",
    "also_reached_through": "'[]'",
}
# An account whose IBAN and currency another connection's account carries too: what
# ``reaches`` finds. Its duplicate_of and also_reached_through are the domain's to decide
# (api/valued.py), so a written page holding one is not the database's to write. Text, so that
# both use it as it stands: the subquery is correlated with the statement's own accounts row.
_REACHED_TWICE = (
    "accounts.iban IS NOT NULL AND EXISTS (SELECT 1 FROM accounts AS b "
    "WHERE b.user_id = accounts.user_id AND b.iban = accounts.iban "
    "AND b.currency = accounts.currency AND b.connection_id <> accounts.connection_id)"
)
_CONVERSION = f"raw->'{VALUE_CONVERSION}'"
_HOLDING_JSON = {  # HoldingValued's fields without ?currency=, see db/written.py and api/valued.py
    **{c: w.quoted(c, nullable=False) for c in ("id", "account_id")},
    "symbol": w.text("symbol", nullable=False),
    **{c: w.text(c) for c in ("name", "isin", "cusip")},
    "asset_type": w.quoted("asset_type", nullable=False),
    "quantity": w.quoted("quantity", nullable=False),
    "currency": w.text("currency", nullable=False),
    "price_currency": w.text("COALESCE(NULLIF(price_currency, ''), currency)", nullable=False),
    **{c: w.quoted(c) for c in ("average_cost", "current_price", "market_value", "unrealized_pnl")},
    "updated_at": w.utc("updated_at"),
    # ValueConversionOut of the provider's value, when the sync converted it (ccxt's mappers)
    "value_conversion": f"CASE WHEN jsonb_typeof({_CONVERSION}) = 'object' THEN "
    + w.item(
        {
            "rate": w.quoted(w.decimal_in_json(f"{_CONVERSION}->>'rate'"), nullable=False),
            "rate_date": w.text(f"({_CONVERSION}->>'rate_date')::date"),
            "source": w.text(f"{_CONVERSION}->>'source'", nullable=False),
        }
    )
    + " ELSE 'null' END",
    **dict.fromkeys(
        ("valuation_source", "valuation_price", "valuation_price_currency", "valuation_date", "converted"),
        "'null'",
    ),
}
connections = ConnectionRow.__table__  # type: ignore[attr-defined]
snapshots = BalanceSnapshotRow.__table__  # type: ignore[attr-defined]
_SNAPSHOT_JSON = {  # SnapshotPublic's fields, see db/written.py
    "id": w.quoted("id", nullable=False),
    "account_id": w.quoted("account_id", nullable=False),
    "sync_run_id": w.quoted("sync_run_id"),
    "source": w.quoted("source", nullable=False),
    "taken_at": w.utc("taken_at"),
    "currency": w.text("currency", nullable=False),
    "balance": w.quoted("balance"),
    "available_balance": w.quoted("available_balance"),
    "cash_value": w.quoted("cash_value"),
    "holdings_value": w.quoted("holdings_value"),
}

_ACCOUNT_FIELDS = (
    "name", "type", "currency", "institution", "balance", "available_balance",
    "cash_value", "holdings_value", "balance_at", "raw", "iban",
)  # fmt: skip
_HOLDING_FIELDS = (
    "symbol", "name", "isin", "cusip", "asset_type", "quantity", "currency",
    "average_cost", "current_price", "market_value", "unrealized_pnl", "raw", "price_currency",
)  # fmt: skip


class SqlAccountRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def upsert(
        self, connection: Connection, incoming: Sequence[ProviderAccount]
    ) -> tuple[list[Account], UpsertCounts]:
        """Match by provider account id; accounts are few per connection, so compare in Python.

        The connection's accounts are locked first, all at once and in id order (PostgreSQL):
        writers of the same accounts then queue instead of deadlocking, whatever order a
        file or a provider lists them in.
        """
        locked = await self.for_connection(connection.id, lock=True)
        existing = {a.provider_account_id: a for a in locked}
        await self._refuse_held_elsewhere(connection, [r.provider_account_id for r in incoming], existing)
        counts, result, now = UpsertCounts(), [], utcnow()
        for record in incoming:
            provider_id(record.provider_account_id, _ACCOUNT_ID_MAX, "account id")
            values = {f: getattr(record, f) for f in _ACCOUNT_FIELDS}
            values["raw"] = json_roundtrip(values["raw"])  # compare like with like
            values["name"] = column_text(values["name"], 200) or record.provider_account_id
            values["institution"] = column_text(values["institution"], 200)
            values["iban"] = normalise_iban(record.iban)
            current = existing.get(record.provider_account_id)
            if current is None:
                account = Account(
                    user_id=connection.user_id,
                    connection_id=connection.id,
                    provider=connection.provider,
                    provider_account_id=record.provider_account_id,
                    created_at=now,
                    updated_at=now,
                    **values,
                )
                await self._s.execute(insert(accounts).values(to_row(account)))
                counts.inserted += 1
            elif all(getattr(current, f) == v for f, v in values.items()):
                account = current
                counts.unchanged += 1
            else:
                for f, v in values.items():
                    setattr(current, f, v)
                current.updated_at = now
                await self._s.execute(
                    update(accounts).where(accounts.c.id == current.id).values(**values, updated_at=now)
                )
                account = current
                counts.updated += 1
            result.append(account)
        return result, counts

    async def _refuse_held_elsewhere(
        self, connection: Connection, ids: list[str], existing: dict[str, Account]
    ) -> None:
        """A new account the user already holds through another connection of the same provider
        means the same login was connected twice: refuse, naming the connection that has it.
        (The unique constraint on user, provider and account id stops the race this cannot see.)"""
        new = [i for i in ids if i not in existing]
        other = await self.held_by(connection.user_id, connection.provider, new, connection.id)
        if other is not None:
            raise AlreadyConnected(
                f"this login's accounts are already connected through connection {other}; "
                "delete one of the two connections (or re-authorise the other one)",
                connection_id=other,
            )

    async def held_by(
        self, user_id: UUID, provider: str | None, ids: Sequence[str], exclude: UUID | None = None
    ) -> UUID | None:
        if not ids:
            return None
        stmt = select(accounts.c.connection_id).where(
            accounts.c.user_id == user_id, accounts.c.provider_account_id.in_(list(ids))
        )
        if provider is not None:
            stmt = stmt.where(accounts.c.provider == provider)
        if exclude is not None:
            stmt = stmt.where(accounts.c.connection_id != exclude)
        found: UUID | None = (await self._s.execute(stmt.limit(1))).scalar()
        return found

    async def get(self, account_id: UUID, user_id: UUID) -> Account | None:
        stmt = select(accounts).where(accounts.c.id == account_id, accounts.c.user_id == user_id)
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else to_entity(Account, row)

    async def for_connection(self, connection_id: UUID, *, lock: bool = False) -> list[Account]:
        stmt = select(accounts).where(accounts.c.connection_id == connection_id).order_by(accounts.c.id)
        if lock:
            stmt = stmt.with_for_update()
        return [to_entity(Account, r) for r in (await self._s.execute(stmt)).mappings()]

    async def find(self, user_id: UUID, filters: AccountFilter, page: PageRequest) -> Page[Account]:
        stmt = select(accounts).where(accounts.c.user_id == user_id)
        if filters.connection_id is not None:
            stmt = stmt.where(accounts.c.connection_id == filters.connection_id)
        if filters.type is not None:
            stmt = stmt.where(accounts.c.type == filters.type.value)
        stmt = keyset(stmt, [(accounts.c.id, UUID)], page, descending=False)
        items = [to_entity(Account, r) for r in (await self._s.execute(stmt)).mappings()]
        return make_page(items, page, lambda a: (a.id,), of=accounts)

    async def written(self, user_id: UUID, page: PageRequest) -> WrittenPage | None:
        """``find``'s page (no filter) as ``AccountValued`` JSON (no ?currency=), see
        ``db/written.py``; None for a page holding an account another connection reaches too."""
        scope = {"user_id": user_id}
        return await w.written(
            self._s, accounts, _ACCOUNT_JSON, scope, page, descending=False, unless=_REACHED_TWICE
        )

    async def reaches(self, user_id: UUID) -> list[Reach]:
        """The user's accounts whose IBAN and currency another connection's account carries too
        (an index probe per user: most users have none)."""
        a, c = accounts.c, connections.c
        stmt = (
            select(
                a.id, a.connection_id, a.provider, a.iban, a.currency, c.status, c.expires_at, c.created_at
            )
            .join(connections, c.id == a.connection_id)
            .where(a.user_id == user_id, text(_REACHED_TWICE))
            .order_by(a.id)
        )
        return [
            Reach(
                account_id=r.id,
                connection_id=r.connection_id,
                provider=r.provider,
                iban=r.iban,
                currency=r.currency,
                status=ConnectionStatus(r.status),
                expires_at=r.expires_at,
                connected_at=r.created_at,
            )
            for r in (await self._s.execute(stmt)).all()
        ]

    async def totals_by_currency(self, user_id: UUID, exclude: Collection[UUID] = ()) -> CurrencyTotals:
        """Known balances per currency, and the accounts whose balance is unknown (never a 0);
        ``exclude``: accounts left out (shadows of an account counted through another connection).
        Credit cards and loans count ``-|balance|``, as in net worth (whatever sign they report)."""
        # Summed in Python: SQLite keeps money as TEXT, and Decimal sums stay exact everywhere.
        stmt = select(accounts).where(accounts.c.user_id == user_id).order_by(accounts.c.id)
        totals: dict[str, CurrencyTotal] = {}
        without: list[Account] = []
        for row in (await self._s.execute(stmt)).mappings():
            if row["id"] in exclude:
                continue
            if row["balance"] is None:
                without.append(to_entity(Account, row))
                continue
            entry = totals.setdefault(row["currency"], CurrencyTotal(row["currency"], Decimal(0), 0))
            entry.accounts += 1
            entry.total += signed(row["type"], row["balance"])
        return CurrencyTotals(sorted(totals.values(), key=lambda t: t.currency), without)


def position_keys(bases: Sequence[str]) -> list[str]:
    """``base#n``: the n-th position of the same security in one list (OFX carries no lot id)."""
    seen: dict[str, int] = {}
    keys = []
    for base in bases:
        n = seen.get(base, 0)
        seen[base] = n + 1
        keys.append(f"{base[:190]}#{n}")
    return keys


class SqlHoldingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def replace(self, account: Account, incoming: Sequence[ProviderHolding]) -> UpsertCounts:
        """Replace the account's holdings as a set, keeping the id of every position still held.

        Positions are matched by a stable key (see ``position_keys``), so a re-sync of two lots
        of one security reports both unchanged instead of swapping their ids.
        """
        stmt = select(holdings).where(holdings.c.account_id == account.id).order_by(holdings.c.id)
        stored = list((await self._s.execute(stmt)).mappings())
        legacy = position_keys([r["symbol"] for r in stored])  # rows written before keys existed
        current = {r["position_key"] or key: r for r, key in zip(stored, legacy, strict=True)}
        keys = position_keys([r.position_key or r.isin or r.cusip or r.symbol for r in incoming])
        counts, now, rows = UpsertCounts(), utcnow(), []
        for record, key in zip(incoming, keys, strict=True):
            values = {f: getattr(record, f) for f in _HOLDING_FIELDS}
            values["position_key"] = key
            values["raw"] = json_roundtrip(values["raw"])
            values["symbol"] = column_text(values["symbol"], 64) or "?"
            values["name"] = column_text(values["name"], 300)
            values["isin"] = column_text(values["isin"], 12)
            values["cusip"] = column_text(values["cusip"], 9)
            old = current.pop(key, None)
            if old is None:
                counts.inserted += 1
            elif all(old[f] == v for f, v in values.items()):
                counts.unchanged += 1
            else:
                counts.updated += 1
            row = Holding(user_id=account.user_id, account_id=account.id, updated_at=now, **values)
            rows.append(to_row(row) | {"id": old["id"] if old is not None else new_id()})
        counts.deleted = len(current)
        await self._s.execute(delete(holdings).where(holdings.c.account_id == account.id))
        if rows:
            await self._s.execute(insert(holdings), rows)
        return counts

    async def find(self, user_id: UUID, account_id: UUID | None, page: PageRequest) -> Page[Holding]:
        stmt = select(holdings).where(holdings.c.user_id == user_id)
        if account_id is not None:
            stmt = stmt.where(holdings.c.account_id == account_id)
        stmt = keyset(stmt, [(holdings.c.id, UUID)], page, descending=False)
        items = [to_entity(Holding, r) for r in (await self._s.execute(stmt)).mappings()]
        return make_page(items, page, lambda h: (h.id,), of=holdings)

    async def written(self, user_id: UUID, account_id: UUID | None, page: PageRequest) -> WrittenPage | None:
        """``find``'s page as ``HoldingValued`` JSON (no ?currency=), see ``db/written.py``."""
        scope = {"user_id": user_id} | ({} if account_id is None else {"account_id": account_id})
        return await w.written(self._s, holdings, _HOLDING_JSON, scope, page, descending=False)


_SNAPSHOT_FIGURES = ("currency", "balance", "available_balance", "cash_value", "holdings_value")


def _restates(stored: Any, snapshot: BalanceSnapshot) -> bool:
    return stored is not None and all(stored[f] == getattr(snapshot, f) for f in _SNAPSHOT_FIGURES)


class SqlSnapshotRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add_many(self, items: Sequence[BalanceSnapshot]) -> int:
        """Re-uploading a statement restates the same balance at the same time: that is not a new
        snapshot. A sync at a new time always is."""
        if not items:
            return 0
        stmt = (
            select(snapshots)
            .where(
                snapshots.c.account_id.in_({s.account_id for s in items}),
                snapshots.c.taken_at.in_({s.taken_at for s in items}),
            )
            .order_by(snapshots.c.id)
        )
        latest = {(r["account_id"], r["taken_at"]): r for r in (await self._s.execute(stmt)).mappings()}
        fresh = [s for s in items if not _restates(latest.get((s.account_id, s.taken_at)), s)]
        if fresh:
            await self._s.execute(insert(snapshots), [to_row(s) for s in fresh])
        return len(fresh)

    async def find(
        self,
        user_id: UUID,
        account_id: UUID,
        since: datetime | None,
        until: datetime | None,
        page: PageRequest,
    ) -> Page[BalanceSnapshot]:
        stmt = select(snapshots).where(snapshots.c.user_id == user_id, snapshots.c.account_id == account_id)
        if since is not None:
            stmt = stmt.where(snapshots.c.taken_at >= since)
        if until is not None:
            stmt = stmt.where(snapshots.c.taken_at <= until)
        keys = [(snapshots.c.taken_at, datetime), (snapshots.c.id, UUID)]
        stmt = keyset(stmt, keys, page, descending=True)
        items = [to_entity(BalanceSnapshot, r) for r in (await self._s.execute(stmt)).mappings()]
        return make_page(items, page, lambda s: (s.taken_at, s.id), of=snapshots)

    async def written(self, user_id: UUID, account_id: UUID, page: PageRequest) -> WrittenPage | None:
        """``find``'s page (no time bounds) as ``SnapshotPublic`` JSON, see ``db/written.py``."""
        scope = {"user_id": user_id, "account_id": account_id}
        keys = (("taken_at", datetime, "::timestamptz"), ("id", UUID, "::uuid"))
        return await w.written(self._s, snapshots, _SNAPSHOT_JSON, scope, page, descending=True, keys=keys)
