"""Categories, tags, rules and own-transfer links: what users add to transactions.

These are *user fields*: a re-sync or re-import writes provider fields only and never
touches them. Rules fill them in for new transactions, never over what a user set.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from finsync.domain.entities import new_id, utcnow

MAX_TAGS = 20
MAX_TAG_LENGTH = 40
PAYEE_SEPARATOR = " / "  # statement descriptions read "payee / memo"


class CategoryKind(StrEnum):
    INCOME = "income"
    EXPENSE = "expense"
    TRANSFER = "transfer"


class SetBy(StrEnum):
    USER = "user"
    RULE = "rule"


class TransferStatus(StrEnum):
    DETECTED = "detected"
    CONFIRMED = "confirmed"  # linked or confirmed by the user
    REJECTED = "rejected"  # the user said these two are not a transfer: never linked again


# The tree a user starts with: (name, kind, children). Editable per user afterwards.
DEFAULT_TREE: tuple[tuple[str, CategoryKind, tuple[str, ...]], ...] = (
    ("Income", CategoryKind.INCOME, ("Salary", "Interest", "Dividends", "Refunds", "Other income")),
    ("Housing", CategoryKind.EXPENSE, ("Rent", "Mortgage", "Utilities", "Maintenance")),
    ("Food", CategoryKind.EXPENSE, ("Groceries", "Restaurants")),
    ("Transport", CategoryKind.EXPENSE, ("Public transport", "Fuel", "Car")),
    ("Shopping", CategoryKind.EXPENSE, ("Clothing", "Electronics")),
    ("Health", CategoryKind.EXPENSE, ()),
    ("Leisure", CategoryKind.EXPENSE, ("Travel", "Entertainment", "Subscriptions")),
    ("Bills", CategoryKind.EXPENSE, ("Phone", "Internet", "Insurance")),
    ("Fees and taxes", CategoryKind.EXPENSE, ("Bank fees", "Taxes")),
    ("Transfers", CategoryKind.TRANSFER, ()),
)


def payee_of(description: str | None) -> str | None:
    """The payee part of a description ("NAME / MEMO" → "NAME"); the whole text otherwise."""
    if not description:
        return None
    return description.split(PAYEE_SEPARATOR, 1)[0].strip() or None


def clean_tags(tags: list[str]) -> list[str]:
    """Trimmed, lower-cased, unique, in the given order; refuses empty or overlong tags."""
    seen: list[str] = []
    for tag in tags:
        value = tag.strip().lower()
        if not value or len(value) > MAX_TAG_LENGTH or "\x00" in value:
            raise ValueError(f"a tag must be 1-{MAX_TAG_LENGTH} characters")
        if value not in seen:
            seen.append(value)
    if len(seen) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags per transaction")
    return seen


@dataclass(slots=True, kw_only=True)
class Category:
    user_id: UUID
    name: str
    kind: CategoryKind
    id: UUID = field(default_factory=new_id)
    parent_id: UUID | None = None
    created_at: datetime = field(default_factory=utcnow)


@dataclass(slots=True, kw_only=True)
class RuleConditions:
    """All given conditions must hold. Text matches are case-insensitive substrings."""

    description_contains: str | None = None
    payee_contains: str | None = None
    amount_min: Decimal | None = None  # signed: spending is negative
    amount_max: Decimal | None = None
    account_id: UUID | None = None

    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


@dataclass(slots=True, kw_only=True)
class Rule:
    user_id: UUID
    name: str
    conditions: RuleConditions
    id: UUID = field(default_factory=new_id)
    category_id: UUID | None = None
    tags: list[str] = field(default_factory=list)
    priority: int = 100  # lower runs first; the first matching rule that sets a field wins
    enabled: bool = True
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    def matches(
        self, account_id: UUID, description: str | None, amount: Decimal, lowered: str | None = None
    ) -> bool:
        """``lowered``: the description already lower-cased (rules share it per transaction)."""
        c = self.conditions
        if c.account_id is not None and c.account_id != account_id:
            return False
        if c.amount_min is not None and amount < c.amount_min:
            return False
        if c.amount_max is not None and amount > c.amount_max:
            return False
        text = (description or "").lower() if lowered is None else lowered
        if c.description_contains is not None and c.description_contains.lower() not in text:
            return False
        if c.payee_contains is not None:
            payee = (payee_of(text) or "").lower()
            if c.payee_contains.lower() not in payee:
                return False
        return True


@dataclass(frozen=True, slots=True)
class Labels:
    """What rules decide for one transaction: a category and tags, either possibly absent."""

    category_id: UUID | None
    tags: tuple[str, ...]
    rule_id: UUID | None


def decide(rules: list[Rule], account_id: UUID, description: str | None, amount: Decimal) -> Labels | None:
    """Rules in priority order: the first match that sets a category gives it; tags of every
    matching rule are added. None when no rule matches."""
    category: UUID | None = None
    rule_id: UUID | None = None
    tags: list[str] = []
    matched = False
    lowered = (description or "").lower()
    for rule in rules:
        if not rule.enabled or not rule.matches(account_id, description, amount, lowered):
            continue
        matched = True
        if category is None and rule.category_id is not None:
            category, rule_id = rule.category_id, rule.id
        tags += [t for t in rule.tags if t not in tags]
    return Labels(category, tuple(tags), rule_id) if matched else None


class CompiledRules:
    """``decide`` for many transactions at once (an import's new rows): the enabled rules
    kept in order with their needles lower-cased once, each row's payee parsed at most once.
    Gives exactly what ``decide`` gives.

    What rules decide depends only on which of them match, and an import's rows fall into a
    handful of such sets: ``key`` is that set, and each set's ``Labels`` is built once (and
    the row writer encodes it once), not once per row."""

    def __init__(self, rules: list[Rule], account_id: UUID | None = None) -> None:
        """``account_id``: the account every row belongs to; rules bound to another are dropped."""
        self._rules: list[Rule] = []
        self._tests: list[tuple[UUID | None, Decimal | None, Decimal | None, str | None, str | None]] = []
        for rule in rules:
            c = rule.conditions
            if not rule.enabled or (account_id is not None and c.account_id not in (None, account_id)):
                continue
            text = None if c.description_contains is None else c.description_contains.lower()
            payee = None if c.payee_contains is None else c.payee_contains.lower()
            self._rules.append(rule)
            self._tests.append((c.account_id, c.amount_min, c.amount_max, text, payee))
        self._decided: dict[tuple[int, ...], Labels | None] = {(): None}

    def __bool__(self) -> bool:
        return bool(self._rules)

    def key(self, account_id: UUID, description: str | None, amount: Decimal) -> tuple[int, ...]:
        """The positions of the rules that match, in order."""
        lowered = (description or "").lower()
        payee: str | None = None
        matched: list[int] = []
        for position, (account, low, high, text, payee_text) in enumerate(self._tests):
            if account is not None and account != account_id:
                continue
            if (low is not None and amount < low) or (high is not None and amount > high):
                continue
            if text is not None and text not in lowered:
                continue
            if payee_text is not None:
                if payee is None:
                    payee = (payee_of(lowered) or "").lower()
                if payee_text not in payee:
                    continue
            matched.append(position)
        return tuple(matched)

    def labels(self, key: tuple[int, ...]) -> Labels | None:
        """What the matching rules of ``key`` decide (built once per key)."""
        if key in self._decided:
            return self._decided[key]
        category: UUID | None = None
        rule_id: UUID | None = None
        tags: list[str] = []
        for rule in (self._rules[position] for position in key):
            if category is None and rule.category_id is not None:
                category, rule_id = rule.category_id, rule.id
            tags += [t for t in rule.tags if t not in tags]
        found = self._decided[key] = Labels(category, tuple(tags), rule_id)
        return found

    def decide(self, account_id: UUID, description: str | None, amount: Decimal) -> Labels | None:
        return self.labels(self.key(account_id, description, amount))


@dataclass(slots=True, kw_only=True)
class TransferLink:
    """Two transactions of one user that are a transfer between their own accounts."""

    user_id: UUID
    outflow_id: UUID
    inflow_id: UUID
    status: TransferStatus
    id: UUID = field(default_factory=new_id)
    amount: Decimal | None = None
    currency: str | None = None
    outflow_date: date | None = None
    inflow_date: date | None = None
    created_at: datetime = field(default_factory=utcnow)
