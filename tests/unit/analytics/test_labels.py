"""Rules, tags, payees and own-transfer pairing."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest

from finsync.application.labels import _rule_change, id_floor
from finsync.domain.analytics_ports import LabelTarget, TransferCandidate
from finsync.domain.categories import Rule, RuleConditions, clean_tags, decide, payee_of
from finsync.domain.entities import new_id
from finsync.domain.transfers import match_transfers

pytestmark = pytest.mark.unit
USER, A, B = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
GROCERIES, FOOD = uuid.uuid4(), uuid.uuid4()


def rule(
    priority: int = 100, category: uuid.UUID | None = GROCERIES, tags: list[str] | None = None, **c: object
) -> Rule:
    return Rule(
        user_id=USER,
        name="r",
        conditions=RuleConditions(**c),
        category_id=category,
        tags=tags or [],
        priority=priority,  # type: ignore[arg-type]
    )


def test_payee_is_the_part_before_the_memo() -> None:
    assert payee_of("WHOLE FOODS MKT #10234 / DEBIT CARD PURCHASE") == "WHOLE FOODS MKT #10234"
    assert payee_of("Coffee") == "Coffee"
    assert payee_of(None) is None


def test_tags_are_cleaned_and_bounded() -> None:
    assert clean_tags([" Holiday ", "holiday", "Work"]) == ["holiday", "work"]
    with pytest.raises(ValueError, match="tag"):
        clean_tags([""])
    with pytest.raises(ValueError, match="at most"):
        clean_tags([f"t{i}" for i in range(21)])


def test_rule_conditions_all_hold() -> None:
    r = rule(description_contains="whole foods", amount_max=Decimal("-1"), account_id=A)
    assert r.matches(A, "WHOLE FOODS MKT / x", Decimal("-20"))
    assert not r.matches(B, "WHOLE FOODS MKT / x", Decimal("-20"))  # other account
    assert not r.matches(A, "WHOLE FOODS MKT / x", Decimal("20"))  # a refund
    assert not r.matches(A, "Starbucks", Decimal("-20"))
    payee = rule(payee_contains="acme")
    assert payee.matches(A, "ACME CORP PAYROLL / salary", Decimal("100"))
    assert not payee.matches(A, "Transfer / from acme", Decimal("100"))  # only in the memo


def test_first_matching_rule_by_priority_gives_the_category_all_give_tags() -> None:
    first = rule(priority=1, category=FOOD, tags=["food"], description_contains="mkt")
    second = rule(priority=2, category=GROCERIES, tags=["weekly"], description_contains="whole")
    labels = decide([first, second], A, "WHOLE FOODS MKT", Decimal("-5"))
    assert labels is not None
    assert labels.category_id == FOOD
    assert labels.tags == ("food", "weekly")
    assert decide([first], A, "Rent", Decimal("-5")) is None


def test_rules_never_change_what_the_user_set() -> None:
    target = LabelTarget(
        new_id(), A, date(2024, 1, 1), "WHOLE FOODS", Decimal("-5"), FOOD, "user", ["mine"], "user"
    )
    assert _rule_change(rule(tags=["x"], description_contains="whole"), target) is None
    by_rule = LabelTarget(
        new_id(), A, date(2024, 1, 1), "WHOLE FOODS", Decimal("-5"), FOOD, "rule", None, None
    )
    change = _rule_change(rule(tags=["x"], description_contains="whole"), by_rule)
    assert change is not None
    assert (change.category_id, change.tags) == (GROCERIES, ["x"])


def test_id_floor_is_below_every_new_id() -> None:
    floor = id_floor()
    assert all(new_id() > floor for _ in range(100))
    assert id_floor(margin_seconds=-5) > new_id()


def _c(account: uuid.UUID, amount: str, day: int, currency: str = "EUR") -> TransferCandidate:
    return TransferCandidate(new_id(), account, Decimal(amount), currency, date(2024, 1, day))


def test_transfers_pair_opposite_amounts_across_accounts_within_three_days() -> None:
    out = _c(A, "-500.00", 10)
    near, far = _c(B, "500", 12), _c(B, "500", 14)
    same_account, other_currency = _c(A, "500", 10), _c(B, "500", 10, "USD")
    assert match_transfers([out, far, near, same_account, other_currency]) == [(out.id, near.id)]
    assert match_transfers([out, far]) == []  # four days apart


def test_each_transaction_is_paired_once_and_rejections_stick() -> None:
    one, two, inflow = _c(A, "-100", 5), _c(A, "-100", 6), _c(B, "100", 6)
    assert match_transfers([one, two, inflow]) == [(one.id, inflow.id)]
    assert match_transfers([one, two, inflow], rejected={(one.id, inflow.id)}) == [(two.id, inflow.id)]
    assert match_transfers([one, inflow], new={two.id}) == []  # neither side is new: judged before


def test_compiled_rules_decide_exactly_as_decide() -> None:
    """What an import runs per new row equals the reference ``decide``, over every mix of
    conditions, accounts, disabled rules and priorities."""
    import random

    from finsync.domain.categories import CompiledRules

    rng = random.Random(15)
    accounts = [uuid.uuid4() for _ in range(3)]
    words = ["shop", "Whole Foods", "rent", "SHELL", "pay", "memo", "x"]
    descriptions = [None, "", "Whole Foods MKT / memo 1", "SHELL OIL", "rent / Shop 7", "PAYROLL x", "shop"]

    def conditions() -> RuleConditions:
        while True:
            c = RuleConditions(
                description_contains=rng.choice([None, None, *words]),
                payee_contains=rng.choice([None, None, *words]),
                amount_min=rng.choice([None, None, Decimal("-50"), Decimal("0")]),
                amount_max=rng.choice([None, None, Decimal("-1"), Decimal("100")]),
                account_id=rng.choice([None, None, *accounts]),
            )
            if not c.empty():
                return c

    for _ in range(200):
        rules = [
            Rule(
                user_id=uuid.uuid4(),
                name="r",
                conditions=conditions(),
                category_id=rng.choice([None, uuid.uuid4()]),
                tags=rng.sample(["a", "b", "c"], rng.randint(0, 2)),
                enabled=rng.random() > 0.2,
            )
            for _ in range(rng.randint(1, 6))
        ]
        for account in accounts:
            compiled = CompiledRules(rules, account)
            for description in descriptions:
                for amount in (Decimal("-75.5"), Decimal("-5"), Decimal("0"), Decimal("20")):
                    assert compiled.decide(account, description, amount) == decide(
                        rules, account, description, amount
                    )
