"""Category and rule use cases on the fake unit of work: the tree's rules and what a rule needs.

Applying rules to stored transactions, clearing a deleted category from them and the unique
indexes under concurrent requests are tested on the databases (tests/api/test_labels_api.py).
"""

from __future__ import annotations

from uuid import uuid4

import pytest

from finsync.application.labels import LabelService
from finsync.domain.categories import DEFAULT_TREE, Category, CategoryKind, Rule, RuleConditions
from finsync.domain.entities import Account
from finsync.domain.enums import AccountType
from finsync.domain.errors import Conflict, InvalidInput, NotFound
from tests.fakes.uow import MemoryDatabase, fake_uow_factory
from tests.unit.application.conftest import SettableNow

USER, OTHER = uuid4(), uuid4()


@pytest.fixture
def labels(db: MemoryDatabase, now: SettableNow) -> LabelService:
    return LabelService(fake_uow_factory(db), now)


def _by_name(tree: list[Category]) -> dict[str, Category]:
    return {c.name: c for c in tree}


async def test_the_default_tree_is_given_once_per_user(labels: LabelService, db: MemoryDatabase) -> None:
    tree = await labels.categories(USER)
    expected = sum(1 + len(children) for _, _, children in DEFAULT_TREE)
    assert len(tree) == expected
    assert [c.name for c in tree] == sorted(c.name for c in tree)

    renamed = tree[0]
    await labels.update_category(USER, renamed.id, {"name": "Mine now"})
    again = await labels.categories(USER)
    assert len(again) == expected  # not seeded a second time: the rename stays, no copy comes back
    assert renamed.name not in _by_name(again)
    assert await labels.categories(OTHER) != []  # every user gets their own tree


async def test_names_are_unique_per_user_whatever_the_case(labels: LabelService, db: MemoryDatabase) -> None:
    await labels.create_category(USER, "Hobbies", CategoryKind.EXPENSE, None)
    commits = db.commits
    with pytest.raises(Conflict, match="a category named 'hobbies' exists"):
        await labels.create_category(USER, "hobbies", CategoryKind.EXPENSE, None)
    other = await labels.create_category(USER, "Garden", CategoryKind.EXPENSE, None)
    with pytest.raises(Conflict, match="a category named 'HOBBIES' exists"):
        await labels.update_category(USER, other.id, {"name": "HOBBIES"})
    assert db.commits == commits + 1  # only Garden was written
    assert (await labels.create_category(OTHER, "Hobbies", CategoryKind.EXPENSE, None)).user_id == OTHER


async def test_a_category_cannot_become_its_own_ancestor(labels: LabelService, db: MemoryDatabase) -> None:
    top = await labels.create_category(USER, "Top", CategoryKind.EXPENSE, None)
    middle = await labels.create_category(USER, "Middle", CategoryKind.EXPENSE, top.id)
    bottom = await labels.create_category(USER, "Bottom", CategoryKind.EXPENSE, middle.id)

    for parent in (bottom.id, top.id):
        with pytest.raises(InvalidInput, match="its own ancestor"):
            await labels.update_category(USER, top.id, {"parent_id": parent})
    stored = db.get(Category, top.id)
    assert stored is not None
    assert stored.parent_id is None


async def test_parents_and_categories_of_another_user_are_not_found(labels: LabelService) -> None:
    theirs = await labels.create_category(OTHER, "Theirs", CategoryKind.INCOME, None)
    with pytest.raises(NotFound, match="parent category not found"):
        await labels.create_category(USER, "Child", CategoryKind.INCOME, theirs.id)
    with pytest.raises(NotFound, match="category not found"):
        await labels.update_category(USER, theirs.id, {"name": "Mine"})
    with pytest.raises(NotFound, match="category not found"):
        await labels.delete_category(USER, theirs.id)


async def test_deleting_a_category_lifts_its_children_to_the_top(
    labels: LabelService, db: MemoryDatabase
) -> None:
    parent = await labels.create_category(USER, "Parent", CategoryKind.EXPENSE, None)
    child = await labels.create_category(USER, "Child", CategoryKind.EXPENSE, parent.id)
    await labels.delete_category(USER, parent.id)
    assert db.get(Category, parent.id) is None
    lifted = db.get(Category, child.id)
    assert lifted is not None
    assert lifted.parent_id is None


async def test_a_subcategory_filter_takes_the_whole_subtree(labels: LabelService, db: MemoryDatabase) -> None:
    top = await labels.create_category(USER, "Top", CategoryKind.EXPENSE, None)
    middle = await labels.create_category(USER, "Middle", CategoryKind.EXPENSE, top.id)
    bottom = await labels.create_category(USER, "Bottom", CategoryKind.EXPENSE, middle.id)
    async with db.uow() as uow:
        ids = await labels.category_ids(uow, USER, top.id)
        assert set(ids) == {top.id, middle.id, bottom.id}
        assert set(await labels.category_ids(uow, USER, bottom.id)) == {bottom.id}
        with pytest.raises(NotFound):
            await labels.category_ids(uow, OTHER, top.id)


def _rule(**fields: object) -> Rule:
    values: dict[str, object] = {
        "user_id": USER,
        "name": "Coffee",
        "conditions": RuleConditions(description_contains="coffee"),
    } | fields
    return Rule(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rule", "error", "message"),
    [
        (_rule(conditions=RuleConditions(), tags=["x"]), InvalidInput, "at least one condition"),
        (_rule(), InvalidInput, "must set a category or tags"),
        (_rule(category_id=uuid4()), NotFound, "category not found"),
        (_rule(tags=["x"], conditions=RuleConditions(account_id=uuid4())), NotFound, "account not found"),
    ],
    ids=["no-condition", "no-effect", "unknown-category", "unknown-account"],
)
async def test_a_rule_that_cannot_work_is_refused_and_not_stored(
    labels: LabelService, db: MemoryDatabase, rule: Rule, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await labels.create_rule(rule)
    assert db.tables.rules == {}


async def test_a_rule_may_only_name_the_users_own_account_and_category(
    labels: LabelService, db: MemoryDatabase
) -> None:
    theirs = Account(
        user_id=OTHER,
        connection_id=uuid4(),
        provider="broker",
        provider_account_id="A",
        name="Theirs",
        type=AccountType.CHECKING,
        currency="EUR",
    )
    db.add(theirs)
    their_category = await labels.create_category(OTHER, "Theirs", CategoryKind.EXPENSE, None)
    with pytest.raises(NotFound, match="account not found"):
        await labels.create_rule(_rule(tags=["x"], conditions=RuleConditions(account_id=theirs.id)))
    with pytest.raises(NotFound, match="category not found"):
        await labels.create_rule(_rule(category_id=their_category.id))

    mine = await labels.create_category(USER, "Coffee", CategoryKind.EXPENSE, None)
    rule = await labels.create_rule(_rule(category_id=mine.id, tags=["daily"]))
    assert db.get(Rule, rule.id) == rule


async def test_rules_of_another_user_are_not_found(
    labels: LabelService, db: MemoryDatabase, now: SettableNow
) -> None:
    rule = await labels.create_rule(_rule(tags=["x"]))
    with pytest.raises(NotFound, match="rule not found"):
        await labels.delete_rule(OTHER, rule.id)
    with pytest.raises(NotFound, match="rule not found"):
        await labels.update_rule(_rule(id=rule.id, user_id=OTHER, tags=["y"]))

    now.advance(hours=1)
    rule.tags = ["y"]
    updated = await labels.update_rule(rule)
    assert updated.updated_at == now()
    stored = db.get(Rule, rule.id)
    assert stored is not None
    assert stored.tags == ["y"]
    await labels.delete_rule(USER, rule.id)
    assert db.tables.rules == {}
