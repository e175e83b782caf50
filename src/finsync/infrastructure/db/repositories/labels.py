"""Categories, rules and the user fields of transactions."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    LargeBinary,
    any_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy import Uuid as SAUuid
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from finsync.domain.analytics_ports import LabelChange, LabelTarget
from finsync.domain.categories import (
    Category,
    CategoryKind,
    Rule,
    RuleConditions,
    SetBy,
)
from finsync.domain.entities import Transaction
from finsync.infrastructure.db.analytics_tables import CategoryRow, RuleRow, TransferLinkRow
from finsync.infrastructure.db.cash_flow import mark_written
from finsync.infrastructure.db.mapping import to_entity
from finsync.infrastructure.db.repositories.market import dialect_insert
from finsync.infrastructure.db.tables import TransactionRow, UserRow

categories = CategoryRow.__table__  # type: ignore[attr-defined]
rules = RuleRow.__table__  # type: ignore[attr-defined]
links = TransferLinkRow.__table__  # type: ignore[attr-defined]
transactions = TransactionRow.__table__  # type: ignore[attr-defined]
users = UserRow.__table__  # type: ignore[attr-defined]
_LIKE_ESCAPE = str.maketrans({"%": r"\%", "_": r"\_", "\\": r"\\"})
_CHUNK = 2_000


def _category(row: Any) -> Category:
    return Category(
        id=row["id"],
        user_id=row["user_id"],
        name=row["name"],
        kind=CategoryKind(row["kind"]),
        parent_id=row["parent_id"],
        created_at=row["created_at"],
    )


class SqlCategoryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def list(self, user_id: UUID) -> list[Category]:
        stmt = select(categories).where(categories.c.user_id == user_id).order_by(categories.c.name)
        return [_category(r) for r in (await self._s.execute(stmt)).mappings()]

    async def get(self, category_id: UUID, user_id: UUID) -> Category | None:
        stmt = select(categories).where(categories.c.id == category_id, categories.c.user_id == user_id)
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else _category(row)

    def _values(self, c: Category) -> dict[str, Any]:
        return {"name": c.name, "kind": c.kind.value, "parent_id": c.parent_id}

    async def add(self, category: Category) -> None:
        values = self._values(category) | {
            "id": category.id,
            "user_id": category.user_id,
            "created_at": category.created_at,
        }
        await self._s.execute(insert(categories).values(values))

    async def save(self, category: Category) -> None:
        await self._s.execute(
            update(categories).where(categories.c.id == category.id).values(self._values(category))
        )

    async def lock_tree(self, user_id: UUID) -> None:
        # PostgreSQL: row locks in id order (SQLite has one writer at a time, and no FOR UPDATE).
        mine = select(categories.c.id).where(categories.c.user_id == user_id).order_by(categories.c.id)
        await self._s.execute(mine.with_for_update())

    async def delete(self, category_id: UUID, user_id: UUID) -> int:
        t = transactions.c
        cleared = await self._s.execute(
            update(transactions)
            .where(t.user_id == user_id, t.category_id == category_id)
            .values(category_id=None, category_set_by=None)
        )
        mark_written(self._s, [user_id])
        await self._s.execute(
            update(categories).where(categories.c.parent_id == category_id).values(parent_id=None)
        )
        await self._s.execute(
            delete(categories).where(categories.c.id == category_id, categories.c.user_id == user_id)
        )
        return int(cleared.rowcount)  # type: ignore[attr-defined]

    async def seed(self, user_id: UUID, items: Sequence[Category]) -> bool:
        """Claims the user's one seeding (an UPDATE that only the first caller wins), then inserts."""
        claimed = await self._s.execute(
            update(users)
            .where(
                users.c.id == user_id,
                or_(users.c.categories_seeded.is_(None), users.c.categories_seeded.is_(False)),
            )
            .values(categories_seeded=True)
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            return False
        rows = [self._values(c) | {"id": c.id, "user_id": user_id, "created_at": c.created_at} for c in items]
        stmt = dialect_insert(self._s, categories).on_conflict_do_nothing(index_elements=["user_id", "name"])
        await self._s.execute(stmt, rows)
        return True


def _rule(row: Any) -> Rule:
    c = row["conditions"] or {}
    conditions = RuleConditions(
        description_contains=c.get("description_contains"),
        payee_contains=c.get("payee_contains"),
        amount_min=None if c.get("amount_min") is None else Decimal(c["amount_min"]),
        amount_max=None if c.get("amount_max") is None else Decimal(c["amount_max"]),
        account_id=None if c.get("account_id") is None else UUID(c["account_id"]),
    )
    return Rule(
        id=row["id"],
        user_id=row["user_id"],
        name=row["name"],
        conditions=conditions,
        category_id=row["category_id"],
        tags=list(row["tags"] or []),
        priority=row["priority"],
        enabled=row["enabled"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _rule_values(rule: Rule) -> dict[str, Any]:
    c = rule.conditions
    conditions = {
        "description_contains": c.description_contains,
        "payee_contains": c.payee_contains,
        "amount_min": None if c.amount_min is None else str(c.amount_min),
        "amount_max": None if c.amount_max is None else str(c.amount_max),
        "account_id": None if c.account_id is None else str(c.account_id),
    }
    return {
        "name": rule.name,
        "priority": rule.priority,
        "enabled": rule.enabled,
        "conditions": {k: v for k, v in conditions.items() if v is not None},
        "category_id": rule.category_id,
        "tags": rule.tags,
        "updated_at": rule.updated_at,
    }


class SqlRuleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def list(self, user_id: UUID) -> list[Rule]:
        stmt = select(rules).where(rules.c.user_id == user_id).order_by(rules.c.priority, rules.c.id)
        return [_rule(r) for r in (await self._s.execute(stmt)).mappings()]

    async def any_for(self, user_id: UUID) -> bool:
        stmt = select(rules.c.id).where(rules.c.user_id == user_id, rules.c.enabled.is_(True)).limit(1)
        return (await self._s.execute(stmt)).first() is not None

    async def get(self, rule_id: UUID, user_id: UUID) -> Rule | None:
        stmt = select(rules).where(rules.c.id == rule_id, rules.c.user_id == user_id)
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else _rule(row)

    async def add(self, rule: Rule) -> None:
        values = _rule_values(rule) | {"id": rule.id, "user_id": rule.user_id, "created_at": rule.created_at}
        await self._s.execute(insert(rules).values(values))

    async def save(self, rule: Rule) -> None:
        await self._s.execute(update(rules).where(rules.c.id == rule.id).values(_rule_values(rule)))

    async def delete(self, rule_id: UUID, user_id: UUID) -> bool:
        result = await self._s.execute(delete(rules).where(rules.c.id == rule_id, rules.c.user_id == user_id))
        return bool(result.rowcount)  # type: ignore[attr-defined]


_TARGET = (
    transactions.c.id,
    transactions.c.account_id,
    transactions.c.transaction_date,
    transactions.c.description,
    transactions.c.amount,
    transactions.c.category_id,
    transactions.c.category_set_by,
    transactions.c.tags,
    transactions.c.tags_set_by,
)


def _target(row: Any) -> LabelTarget:
    return LabelTarget(*row)


class SqlLabelRepository:
    """The user fields of transactions. Only this repository changes them; the import and sync
    write path (``SqlTransactionRepository``) sets the rules' labels of rows it inserts and
    never names these columns in an update."""

    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def written_since(
        self, account_ids: Sequence[UUID], floor: UUID, also: Sequence[UUID] = ()
    ) -> list[LabelTarget]:
        # Ids are UUIDv7 (time first): rows inserted since ``floor`` was taken are a primary-key range.
        t = transactions.c
        stmt = select(*_TARGET).where(t.id >= floor, t.account_id.in_(list(account_ids)))
        found = {r.id: _target(r) for r in (await self._s.execute(stmt)).all()}
        ids = [i for i in dict.fromkeys(also) if i not in found]
        for start in range(0, len(ids), _CHUNK):  # bound the bound parameters
            chunk = select(*_TARGET).where(t.id.in_(ids[start : start + _CHUNK]))
            found.update((r.id, _target(r)) for r in (await self._s.execute(chunk)).all())
        return list(found.values())

    async def matching(
        self, user_id: UUID, text: str | None, account_id: UUID | None, after: UUID | None, limit: int
    ) -> list[LabelTarget]:
        t = transactions.c
        stmt = select(*_TARGET).where(t.user_id == user_id)
        if text:
            # A prefilter only (the rule decides in Python): the databases' lower() agrees with
            # Python's on ASCII only (SQLite folds nothing else; PostgreSQL follows its locale),
            # so a description with any other character is always read and left to the rule.
            pattern = f"%{text.lower().translate(_LIKE_ESCAPE)}%"
            postgres = self._s.get_bind().dialect.name == "postgresql"
            d = t.description
            octets = func.octet_length(d) if postgres else func.length(cast(d, LargeBinary))
            stmt = stmt.where(or_(func.lower(d).like(pattern, escape="\\"), octets != func.length(d)))
        if account_id is not None:
            stmt = stmt.where(t.account_id == account_id)
        if after is not None:
            stmt = stmt.where(t.id > after)
        return [_target(r) for r in (await self._s.execute(stmt.order_by(t.id).limit(limit))).all()]

    async def apply(self, changes: Sequence[LabelChange], set_by: str) -> int:
        """Write decided labels in bulk: one UPDATE per distinct (category, tags), setting both
        at once so each row gets one new version, and never a field the user set (checked
        again in the UPDATE); how many rows changed."""
        t = transactions.c
        groups: dict[tuple[UUID | None, tuple[str, ...] | None], list[UUID]] = {}
        for change in changes:
            tags = None if change.tags is None else tuple(change.tags)
            groups.setdefault((change.category_id, tags), []).append(change.id)
        not_user = SetBy.USER.value
        free_category = or_(t.category_set_by.is_(None), t.category_set_by != not_user)
        free_tags = or_(t.tags_set_by.is_(None), t.tags_set_by != not_user)
        changed: set[UUID] = set()
        owners: set[UUID] = set()
        postgres = self._s.get_bind().dialect.name == "postgresql"
        for (category, tags), ids in groups.items():
            values: dict[str, Any] = {}
            guards = []
            if category is not None:
                values["category_id"] = case((free_category, category), else_=t.category_id)
                values["category_set_by"] = case((free_category, set_by), else_=t.category_set_by)
                guards.append(free_category)
            if tags is not None:
                values["tags"] = case((free_tags, literal(list(tags), type_=t.tags.type)), else_=t.tags)
                values["tags_set_by"] = case((free_tags, set_by), else_=t.tags_set_by)
                guards.append(free_tags)
            if not values:
                continue
            # PostgreSQL: one array parameter per statement; SQLite: bounded IN lists.
            chunk = (len(ids) or 1) if postgres else _CHUNK
            for start in range(0, len(ids), chunk):
                part = ids[start : start + chunk]
                match = (
                    t.id == any_(cast(bindparam("ids", part), ARRAY(SAUuid())))
                    if postgres
                    else t.id.in_(part)
                )
                stmt = update(transactions).where(match, or_(*guards)).values(values)
                for transaction_id, owner in (await self._s.execute(stmt.returning(t.id, t.user_id))).all():
                    changed.add(transaction_id)
                    owners.add(owner)
        mark_written(self._s, owners)
        return len(changed)

    async def set_fields(
        self, transaction_id: UUID, user_id: UUID, fields: dict[str, Any]
    ) -> Transaction | None:
        t = transactions.c
        values = dict(fields)
        if "category_id" in values:
            values["category_set_by"] = SetBy.USER.value if values["category_id"] is not None else None
        if "tags" in values:
            values["tags_set_by"] = SetBy.USER.value
        if values:
            await self._s.execute(
                update(transactions).where(t.id == transaction_id, t.user_id == user_id).values(values)
            )
            mark_written(self._s, [user_id])
        row = (
            (await self._s.execute(select(transactions).where(t.id == transaction_id, t.user_id == user_id)))
            .mappings()
            .first()
        )
        return None if row is None else to_entity(Transaction, row)
