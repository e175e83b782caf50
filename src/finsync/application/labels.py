"""Categories, rules, user fields of transactions, and own-transfer links: the use cases.

Every sync and import labels new transactions with the user's rules as it writes them (the
transaction repository's upsert), then ``label_new_transactions`` pairs new transfer-like
transactions across accounts (same transaction).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import structlog

from finsync.domain.analytics_ports import LabelChange, LabelTarget
from finsync.domain.categories import (
    DEFAULT_TREE,
    Category,
    CategoryKind,
    Rule,
    SetBy,
    TransferLink,
    TransferStatus,
    decide,
)
from finsync.domain.entities import Transaction, utcnow
from finsync.domain.errors import Conflict, InvalidInput, NotFound
from finsync.domain.ports import AccountFilter, Now, PageRequest, UnitOfWork, UnitOfWorkFactory
from finsync.domain.transfers import WINDOW_DAYS, match_transfers

log = structlog.get_logger(__name__)
_CHUNK = 2_000
_EPOCH, _FAR = date(1900, 1, 1), date(9999, 12, 31)


def id_floor(margin_seconds: float = 1.0) -> UUID:
    """The smallest UUIDv7 of ``margin_seconds`` ago (by the system clock that stamps new ids):
    every row inserted after this call has an id at or above it."""
    millis = int((time.time() - margin_seconds) * 1000)
    raw = millis.to_bytes(6, "big") + bytes([0x70]) + bytes(9)
    return UUID(bytes=raw)


def default_tree(user_id: UUID) -> list[Category]:
    out = []
    for name, kind, children in DEFAULT_TREE:
        parent = Category(user_id=user_id, name=name, kind=kind)
        out.append(parent)
        out += [Category(user_id=user_id, name=child, kind=kind, parent_id=parent.id) for child in children]
    return out


def _rule_change(rule_or_rules: Rule | list[Rule], target: LabelTarget) -> LabelChange | None:
    """What rules change on one transaction: never a field the user set, never a no-op."""
    rules = rule_or_rules if isinstance(rule_or_rules, list) else [rule_or_rules]
    labels = decide(rules, target.account_id, target.description, target.amount)
    if labels is None:
        return None
    category = None
    if (
        labels.category_id is not None
        and target.category_set_by != SetBy.USER.value
        and target.category_id != labels.category_id
    ):
        category = labels.category_id
    tags = None
    if labels.tags and target.tags_set_by != SetBy.USER.value:
        merged = list(target.tags or []) + [t for t in labels.tags if t not in (target.tags or [])]
        if merged != list(target.tags or []):
            tags = merged
    if category is None and tags is None:
        return None
    return LabelChange(target.id, category, tags)


async def label_new_transactions(
    uow: UnitOfWork, user_id: UUID, account_ids: Sequence[UUID], floor: UUID, updated: Sequence[UUID] = ()
) -> None:
    """Pair own transfers among transactions inserted since ``floor`` (rules already labelled
    them as they were written: ``TransactionRepository.upsert``) and those ``updated`` (their
    content changed: a detected link of theirs is judged again, so a leg whose amount, date or
    status changed no longer pairs as it did, and one that now matches pairs).

    Costs one small query when the user has a single account.
    """
    several = len((await uow.accounts.find(user_id, AccountFilter(), PageRequest(limit=2))).items) > 1
    if not several:
        return
    written = await uow.labels.written_since(account_ids, floor, updated)
    if written:
        await _link_transfers(uow, user_id, written, updated)


async def _link_transfers(
    uow: UnitOfWork, user_id: UUID, written: Sequence[LabelTarget], updated: Sequence[UUID] = ()
) -> int:
    window = timedelta(days=WINDOW_DAYS)
    since, until = min(t.day for t in written) - window, max(t.day for t in written) + window
    await uow.transfers.lock(user_id)  # a concurrent sync's legs are committed and seen first
    if updated:  # their detected links go; those still right are made again below
        await uow.transfers.forget_detected(updated)
    candidates = await uow.transfers.candidates(user_id, since, until)
    pairs = match_transfers(candidates, await uow.transfers.rejected_pairs(user_id), {t.id for t in written})
    return await uow.transfers.add(
        [
            TransferLink(user_id=user_id, outflow_id=o, inflow_id=i, status=TransferStatus.DETECTED)
            for o, i in pairs
        ]
    )


class LabelService:
    def __init__(self, uow: UnitOfWorkFactory, clock: Now = utcnow) -> None:
        self._uow = uow
        self._clock = clock

    # Categories -------------------------------------------------------------------------------
    async def categories(self, user_id: UUID) -> list[Category]:
        """The user's tree; the default one is given once, on first use."""
        async with self._uow() as uow:
            if await uow.categories.seed(user_id, default_tree(user_id)):
                await uow.commit()
            return await uow.categories.list(user_id)

    async def _parent(self, uow: UnitOfWork, user_id: UUID, parent_id: UUID | None, own: UUID | None) -> None:
        seen = set()
        while parent_id is not None:
            if parent_id == own or parent_id in seen:
                raise InvalidInput("a category cannot be its own ancestor")
            parent = await uow.categories.get(parent_id, user_id)
            if parent is None:
                raise NotFound("parent category")
            seen.add(parent_id)
            parent_id = parent.parent_id

    async def create_category(
        self, user_id: UUID, name: str, kind: CategoryKind, parent_id: UUID | None
    ) -> Category:
        await self.categories(user_id)  # the defaults first, so a new name cannot collide later
        async with self._uow() as uow:
            await self._parent(uow, user_id, parent_id, None)
            category = Category(user_id=user_id, name=name, kind=kind, parent_id=parent_id)
            if any(c.name.lower() == name.lower() for c in await uow.categories.list(user_id)):
                raise Conflict(f"a category named {name!r} exists")
            await uow.categories.add(category)
            await uow.commit()
            return category

    async def update_category(self, user_id: UUID, category_id: UUID, changes: dict[str, Any]) -> Category:
        async with self._uow() as uow:
            category = await uow.categories.get(category_id, user_id)
            if category is None:
                raise NotFound("category")
            if "parent_id" in changes:
                await uow.categories.lock_tree(user_id)  # the ancestors read next stay as read
                await self._parent(uow, user_id, changes["parent_id"], category_id)
                category.parent_id = changes["parent_id"]
            if changes.get("name"):
                others = [c for c in await uow.categories.list(user_id) if c.id != category_id]
                if any(c.name.lower() == changes["name"].lower() for c in others):
                    raise Conflict(f"a category named {changes['name']!r} exists")
                category.name = changes["name"]
            if changes.get("kind"):
                category.kind = changes["kind"]
            await uow.categories.save(category)
            await uow.commit()
            return category

    async def delete_category(self, user_id: UUID, category_id: UUID) -> int:
        async with self._uow() as uow:
            if await uow.categories.get(category_id, user_id) is None:
                raise NotFound("category")
            cleared = await uow.categories.delete(category_id, user_id)
            await uow.commit()
            return cleared

    async def category_ids(self, uow: UnitOfWork, user_id: UUID, category_id: UUID) -> tuple[UUID, ...]:
        """A category and all its descendants (a transaction filter includes subcategories)."""
        tree = await uow.categories.list(user_id)
        if not any(c.id == category_id for c in tree):
            raise NotFound("category")
        found, frontier = {category_id}, {category_id}
        while frontier:
            frontier = {c.id for c in tree if c.parent_id in frontier} - found
            found |= frontier
        return tuple(sorted(found, key=str))

    # Rules ------------------------------------------------------------------------------------
    async def _check_rule(self, uow: UnitOfWork, rule: Rule) -> None:
        if rule.conditions.empty():
            raise InvalidInput("a rule needs at least one condition")
        if rule.category_id is None and not rule.tags:
            raise InvalidInput("a rule must set a category or tags")
        if rule.category_id is not None and await uow.categories.get(rule.category_id, rule.user_id) is None:
            raise NotFound("category")
        account = rule.conditions.account_id
        if account is not None and await uow.accounts.get(account, rule.user_id) is None:
            raise NotFound("account")

    async def create_rule(self, rule: Rule) -> Rule:
        async with self._uow() as uow:
            await self._check_rule(uow, rule)
            await uow.rules.add(rule)
            await uow.commit()
        return rule

    async def update_rule(self, rule: Rule) -> Rule:
        async with self._uow() as uow:
            if await uow.rules.get(rule.id, rule.user_id) is None:
                raise NotFound("rule")
            await self._check_rule(uow, rule)
            rule.updated_at = self._clock()
            await uow.rules.save(rule)
            await uow.commit()
        return rule

    async def delete_rule(self, user_id: UUID, rule_id: UUID) -> None:
        async with self._uow() as uow:
            if not await uow.rules.delete(rule_id, user_id):
                raise NotFound("rule")
            await uow.commit()

    async def apply_rule(self, user_id: UUID, rule_id: UUID) -> int:
        """Apply one rule to every matching transaction already stored; how many changed."""
        async with self._uow() as uow:
            rule = await uow.rules.get(rule_id, user_id)
            if rule is None:
                raise NotFound("rule")
            prefilter = rule.conditions.description_contains or rule.conditions.payee_contains
            after, changed = None, 0
            while True:
                chunk = await uow.labels.matching(
                    user_id, prefilter, rule.conditions.account_id, after, _CHUNK
                )
                if not chunk:
                    break
                rule.enabled = True
                changes = [c for t in chunk if (c := _rule_change(rule, t)) is not None]
                changed += await uow.labels.apply(changes, SetBy.RULE.value)
                after = chunk[-1].id
            await uow.commit()
        log.info("rule_applied", rule_id=str(rule_id), changed=changed)
        return changed

    # Transactions -----------------------------------------------------------------------------
    async def update_transaction(
        self, user_id: UUID, transaction_id: UUID, fields: dict[str, Any]
    ) -> Transaction:
        async with self._uow() as uow:
            category_id = fields.get("category_id")
            if category_id is not None and await uow.categories.get(category_id, user_id) is None:
                raise NotFound("category")
            updated = await uow.labels.set_fields(transaction_id, user_id, fields)
            if updated is None:
                raise NotFound("transaction")
            await uow.commit()
            return updated

    # Transfers --------------------------------------------------------------------------------
    async def link(self, user_id: UUID, outflow_id: UUID, inflow_id: UUID) -> TransferLink:
        async with self._uow() as uow:
            out = await uow.transactions.get(outflow_id, user_id)
            into = await uow.transactions.get(inflow_id, user_id)
            if out is None or into is None:
                raise NotFound("transaction")
            if out.account_id == into.account_id:
                raise InvalidInput("a transfer links transactions of two different accounts")
            if not out.amount < 0 < into.amount:
                raise InvalidInput("outflow_id must be money out (negative) and inflow_id money in")
            await uow.transfers.lock(user_id)
            if await uow.transfers.live_link_of([outflow_id, inflow_id]) is not None:
                raise Conflict("one of these transactions is already part of a transfer")
            link = TransferLink(
                user_id=user_id, outflow_id=outflow_id, inflow_id=inflow_id, status=TransferStatus.CONFIRMED
            )
            await uow.transfers.forget_pair(outflow_id, inflow_id)
            await uow.transfers.add([link])
            await uow.commit()
            found = await uow.transfers.get(link.id, user_id)
        assert found is not None
        return found

    async def set_status(self, user_id: UUID, link_id: UUID, status: TransferStatus) -> TransferLink:
        async with self._uow() as uow:
            link = await uow.transfers.get(link_id, user_id)
            if link is None:
                raise NotFound("transfer")
            reviving = link.status is TransferStatus.REJECTED and status is not TransferStatus.REJECTED
            await uow.transfers.lock(user_id)
            if reviving and await uow.transfers.live_link_of([link.outflow_id, link.inflow_id]) is not None:
                raise Conflict("one of these transactions is now part of another transfer")
            await uow.transfers.set_status(link_id, status)
            await uow.commit()
            link.status = status
            return link

    async def detect(self, user_id: UUID) -> int:
        """Pair own transfers across the whole history (rejected pairs stay apart)."""
        async with self._uow() as uow:
            await uow.transfers.lock(user_id)
            candidates = await uow.transfers.candidates(user_id, _EPOCH, _FAR)
            pairs = match_transfers(candidates, await uow.transfers.rejected_pairs(user_id))
            added = await uow.transfers.add(
                [
                    TransferLink(user_id=user_id, outflow_id=o, inflow_id=i, status=TransferStatus.DETECTED)
                    for o, i in pairs
                ]
            )
            await uow.commit()
        return added
