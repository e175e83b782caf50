"""Categories, rules, user fields and transfers through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from uuid import UUID

import httpx
import pytest

from tests.api.analytics_helpers import World, world_fixture  # noqa: F401 - the fixture
from tests.api.helpers import register_and_login
from tests.api.test_imports import statement, upload
from tests.factories import account, txn

pytestmark = pytest.mark.e2e
D = Decimal


async def _category(world: World, name: str) -> str:
    return str(next(c["id"] for c in await world.get("/categories") if c["name"] == name))


async def test_categories_tree_is_given_once_and_editable(world: World) -> None:
    await world.login()
    tree = await world.get("/categories")
    names = {c["name"] for c in tree}
    assert {"Income", "Food", "Groceries", "Transport", "Transfers"} <= names
    food = await _category(world, "Food")
    assert next(c for c in tree if c["name"] == "Groceries")["parent_id"] == food
    r = await world.client.post(
        "/api/v1/categories", headers=world.headers, json={"name": "Coffee", "parent_id": food}
    )
    assert r.status_code == 201, r.text
    coffee = r.json()["id"]
    dup = await world.client.post("/api/v1/categories", headers=world.headers, json={"name": "coffee"})
    assert dup.status_code == 409
    cycle = await world.client.patch(
        f"/api/v1/categories/{food}", headers=world.headers, json={"parent_id": coffee}
    )
    assert cycle.status_code == 422
    moved = await world.client.patch(
        f"/api/v1/categories/{coffee}", headers=world.headers, json={"parent_id": None}
    )
    assert moved.json()["parent_id"] is None
    assert (
        await world.client.delete(f"/api/v1/categories/{coffee}", headers=world.headers)
    ).status_code == 204
    assert len(await world.get("/categories")) == len(tree)  # deleting does not bring defaults back


async def test_rules_label_new_transactions_and_never_overwrite_user_fields(world: World) -> None:
    await world.login()
    groceries, restaurants = await _category(world, "Groceries"), await _category(world, "Restaurants")
    food = await _category(world, "Food")
    rule = {
        "name": "Whole Foods",
        "conditions": {"payee_contains": "whole foods", "amount_max": "0"},
        "category_id": groceries,
        "tags": ["Food", "weekly"],
    }
    r = await world.client.post("/api/v1/rules", headers=world.headers, json=rule)
    assert r.status_code == 201, r.text
    rule_id = r.json()["id"]
    for bad in (
        {**rule, "conditions": {}},
        {**rule, "category_id": None, "tags": []},
        {**rule, "tags": [""]},
        {**rule, "conditions": {"payee_contains": "x", "amount_max": 0}},  # money is text, not a number
        {**rule, "conditions": {"payee_contains": "x", "amount_max": ""}},
        {**rule, "enabled": 1},
    ):
        assert (await world.client.post("/api/v1/rules", headers=world.headers, json=bad)).status_code == 422
    world.bank.accounts = [account("cur")]
    world.bank.transactions = {
        "cur": [
            txn("a", "-40.00", date(2024, 1, 2), description="WHOLE FOODS MKT / card"),
            txn("b", "-60.00", date(2024, 1, 3), description="WHOLE FOODS MKT / card"),
            txn("c", "-9.00", date(2024, 1, 4), description="Cinema"),
        ]
    }
    await world.sync(date(2024, 1, 5))
    items = {t["provider_transaction_id"]: t for t in (await world.get("/transactions"))["items"]}
    assert (items["a"]["category_id"], items["a"]["category_set_by"], items["a"]["tags"]) == (
        groceries,
        "rule",
        ["food", "weekly"],
    )
    assert items["c"]["category_id"] is None
    # The user recategorises one, tags and annotates another, and excludes the cinema.
    patch = {"category_id": restaurants, "tags": ["Lunch"], "notes": "with Bob"}
    r = await world.client.patch(
        f"/api/v1/transactions/{items['b']['id']}", headers=world.headers, json=patch
    )
    assert r.status_code == 200, r.text
    assert (r.json()["category_set_by"], r.json()["tags"]) == ("user", ["lunch"])
    r = await world.client.patch(
        f"/api/v1/transactions/{items['c']['id']}",
        headers=world.headers,
        json={"excluded_from_analytics": True},
    )
    assert r.json()["excluded_from_analytics"] is True
    # The provider changes every row: a re-sync updates provider fields only.
    for t in world.bank.transactions["cur"]:
        t.description = f"{t.description} (posted)"
    await world.sync(date(2024, 1, 6))
    items = {t["provider_transaction_id"]: t for t in (await world.get("/transactions"))["items"]}
    assert items["b"]["description"].endswith("(posted)")
    assert (items["b"]["category_id"], items["b"]["tags"], items["b"]["notes"]) == (
        restaurants,
        ["lunch"],
        "with Bob",
    )
    assert items["c"]["excluded_from_analytics"] is True
    # Applying the rule to history changes nothing the user set, and says how much it changed.
    applied = await world.client.post(f"/api/v1/rules/{rule_id}/apply", headers=world.headers)
    assert applied.json() == {"changed": 0}
    async with world.container.uow() as uow:  # a rule-set category cleared by hand: apply restores it
        await uow.labels.set_fields(UUID(items["a"]["id"]), world.user.id, {"category_id": None})  # type: ignore[union-attr]
        await uow.commit()
    assert (await world.client.post(f"/api/v1/rules/{rule_id}/apply", headers=world.headers)).json() == {
        "changed": 1
    }
    # Filters: a parent category includes its children; tags filter too.
    by_food = await world.get("/transactions", category_id=food)
    assert sorted(t["provider_transaction_id"] for t in by_food["items"]) == ["a", "b"]
    by_groceries = await world.get("/transactions", category_id=groceries)
    assert [t["provider_transaction_id"] for t in by_groceries["items"]] == ["a"]
    assert [
        t["provider_transaction_id"] for t in (await world.get("/transactions", tag="LUNCH"))["items"]
    ] == ["b"]
    assert (await world.get("/transactions", tag="nothing"))["items"] == []
    flow = await world.get(
        "/analytics/cash-flow",
        **{"from": "2024-01-01", "to": "2024-01-31", "group_by": "category", "currency": "GBP"},
    )
    (jan,) = flow["periods"]
    assert {g["name"]: D(g["values"]["spending"]) for g in jan["groups"]} == {
        "Groceries": -40,
        "Restaurants": -60,
    }
    patched = {"priority": 5, "tags": ["X"]}
    r = await world.client.patch(f"/api/v1/rules/{rule_id}", headers=world.headers, json=patched)
    assert (r.json()["priority"], r.json()["tags"], r.json()["category_id"]) == (5, ["x"], groceries)
    missing = await world.client.get(
        "/api/v1/transactions", headers=world.headers, params={"category_id": rule_id}
    )
    assert missing.status_code == 404


async def test_reimporting_a_changed_statement_keeps_user_fields(world: World) -> None:
    await world.login()
    r = await upload(world.client, world.headers, statement(range(1, 4)))
    assert r.status_code == 201, r.text
    (first, *_) = (await world.get("/transactions"))["items"]
    groceries = await _category(world, "Groceries")
    body = {"category_id": groceries, "notes": "mine", "tags": ["x"], "excluded_from_analytics": True}
    assert (
        await world.client.patch(f"/api/v1/transactions/{first['id']}", headers=world.headers, json=body)
    ).status_code == 200
    changed = statement(range(1, 4)).replace(b"<MEMO>card", b"<MEMO>card posted")  # every row updated
    r = await upload(world.client, world.headers, changed)
    assert r.json()["counts"]["transactions_updated"] == 3
    again = next(t for t in (await world.get("/transactions"))["items"] if t["id"] == first["id"])
    assert again["description"].endswith("card posted")
    assert (again["category_id"], again["notes"], again["tags"], again["excluded_from_analytics"]) == (
        groceries,
        "mine",
        ["x"],
        True,
    )


async def test_user_fields_of_another_user_are_out_of_reach(world: World) -> None:
    await world.login()
    world.bank.accounts = [account("cur")]
    world.bank.transactions = {"cur": [txn("a")]}
    await world.sync(date(2024, 1, 5))
    (mine,) = (await world.get("/transactions"))["items"]
    own_category = await _category(world, "Food")
    other = await register_and_login(world.client, "bob@example.com")
    r = await world.client.patch(f"/api/v1/transactions/{mine['id']}", headers=other, json={"notes": "x"})
    assert r.status_code == 404
    theirs = (await world.client.get("/api/v1/categories", headers=other)).json()
    r = await world.client.patch(
        f"/api/v1/transactions/{mine['id']}", headers=world.headers, json={"category_id": theirs[0]["id"]}
    )
    assert r.status_code == 404
    r = await world.client.patch(f"/api/v1/categories/{own_category}", headers=other, json={"name": "Mine"})
    assert r.status_code == 404
    account_id = await world.account_id("cur")
    assert (
        await world.client.get(f"/api/v1/accounts/{account_id}/reconciliation", headers=other)
    ).status_code == 404


async def _two(
    client: httpx.AsyncClient, *requests: tuple[str, str, dict[str, object] | None]
) -> list[httpx.Response]:
    return list(await asyncio.gather(*(client.request(m, u, json=j) for m, u, j in requests)))


async def test_concurrent_requests_cannot_duplicate_the_tree_or_a_transfer(
    world: World, database_url: str, container_pg_only: None
) -> None:
    await world.login()
    world.client.headers.update(world.headers)
    seeded = await _two(
        world.client, ("GET", "/api/v1/categories", None), ("GET", "/api/v1/categories", None)
    )
    assert [r.status_code for r in seeded] == [200, 200]
    assert len(await world.get("/categories")) == len(seeded[0].json()) == len(seeded[1].json())
    world.bank.accounts = [account("a"), account("b"), account("c")]
    world.bank.transactions = {
        "a": [txn("out", "-70.00", date(2024, 1, 2), description="x")],
        "b": [txn("in1", "70.00", date(2024, 1, 20), description="y")],
        "c": [txn("in2", "70.00", date(2024, 1, 21), description="z")],
    }
    await world.sync(date(2024, 1, 25))
    ids = {t["provider_transaction_id"]: t["id"] for t in (await world.get("/transactions"))["items"]}
    answers = await _two(
        world.client,
        ("POST", "/api/v1/transfers", {"outflow_id": ids["out"], "inflow_id": ids["in1"]}),
        ("POST", "/api/v1/transfers", {"outflow_id": ids["out"], "inflow_id": ids["in2"]}),
    )
    assert sorted(r.status_code for r in answers) == [201, 409]
    assert len((await world.get("/transfers"))["items"]) == 1


@pytest.fixture
def container_pg_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("concurrent writers: PostgreSQL's promise (SQLite has one writer at a time)")


async def test_an_import_labels_its_new_rows_as_it_writes_them(world: World) -> None:
    """Rules run in the import's own pass (the OFX path builds rows lazily): new rows get the
    category and tags of the first matching rules, marked as the rules'; a rule bound to
    another account, or a disabled one, does nothing; rows already stored keep their labels."""
    await world.login()
    groceries, leisure = await _category(world, "Groceries"), await _category(world, "Leisure")
    world.bank.accounts = [account("elsewhere")]
    await world.sync(date(2024, 1, 2))
    other = await world.account_id("elsewhere")
    rules = [
        {"name": "shop 1x", "priority": 1, "conditions": {"description_contains": "shop 1"},
         "category_id": groceries, "tags": ["food"]},
        {"name": "small", "priority": 2, "conditions": {"amount_min": "-3"},
         "category_id": leisure, "tags": ["small", "food"]},
        {"name": "not here", "priority": 0,
         "conditions": {"description_contains": "shop", "account_id": other},
         "category_id": leisure, "tags": ["never"]},
        {"name": "off", "priority": 0, "enabled": False, "conditions": {"description_contains": "shop"},
         "tags": ["never"]},
    ]  # fmt: skip
    for rule in rules:
        r = await world.client.post("/api/v1/rules", headers=world.headers, json=rule)
        assert r.status_code == 201, r.text
    r = await upload(world.client, world.headers, statement(range(1, 13)))
    assert r.status_code == 201, r.text
    assert r.json()["counts"]["transactions_inserted"] == 12
    rows = {t["description"].split(" ")[1]: t for t in (await world.get("/transactions", limit=50))["items"]}
    labels = {
        n: (t["category_id"], t["tags"], t["category_set_by"]) for n, t in rows.items() if n != "elsewhere"
    }
    assert len(labels) == 12
    assert labels["1"] == (groceries, ["food", "small"], "rule")  # -1.25: both match, the first wins
    assert labels["2"] == (leisure, ["small", "food"], "rule")  # -2.25: only the amount rule
    assert labels["10"] == (groceries, ["food"], "rule")  # "Shop 10" contains "shop 1"
    assert labels["5"] == (None, [], None)  # -5.25: no rule
    # A rule added later labels nothing on a re-import: no new rows, and changed rows keep theirs.
    await world.client.post(
        "/api/v1/rules", headers=world.headers,
        json={"name": "late", "conditions": {"description_contains": "shop"}, "tags": ["late"]},
    )  # fmt: skip
    changed = statement(range(1, 13)).replace(b"<MEMO>card", b"<MEMO>card posted")
    r = await upload(world.client, world.headers, changed)
    assert r.json()["counts"]["transactions_updated"] == 12
    again = {t["description"].split(" ")[1]: t for t in (await world.get("/transactions", limit=50))["items"]}
    assert {n: (t["category_id"], t["tags"]) for n, t in again.items() if n in labels} == {
        n: (c, tags) for n, (c, tags, _) in labels.items()
    }


async def test_applying_a_rule_matches_accented_text_whatever_its_case(world: World) -> None:
    """``POST /rules/{id}/apply`` labels exactly what a sync or import would: the match is
    case-insensitive for every letter, not only ASCII ones (SQLite's lower() folds ASCII only)."""
    await world.login()
    groceries = await _category(world, "Groceries")
    world.bank.accounts = [account("cur")]
    world.bank.transactions = {
        "cur": [
            txn("a", "-4.00", date(2024, 1, 2), description="ÉPICERIE DU COIN / carte"),
            txn("b", "-5.00", date(2024, 1, 3), description="Épicerie Fine / carte"),
            txn("c", "-6.00", date(2024, 1, 4), description="BOULANGERIE / carte"),
        ]
    }
    await world.sync(date(2024, 1, 5))
    rule = {"name": "épicerie", "conditions": {"description_contains": "épicerie"}, "category_id": groceries}
    r = await world.client.post("/api/v1/rules", headers=world.headers, json=rule)
    assert r.status_code == 201, r.text
    applied = await world.client.post(f"/api/v1/rules/{r.json()['id']}/apply", headers=world.headers)
    assert applied.json() == {"changed": 2}
    items = {
        t["provider_transaction_id"]: t["category_id"] for t in (await world.get("/transactions"))["items"]
    }
    assert items == {"a": groceries, "b": groceries, "c": None}
    # A sync's new rows get the same labels from the same rule.
    world.bank.transactions["cur"].append(txn("d", "-7.00", date(2024, 1, 6), description="ÉPICERIE X"))
    await world.sync(date(2024, 1, 7))
    items = {
        t["provider_transaction_id"]: t["category_id"] for t in (await world.get("/transactions"))["items"]
    }
    assert items["d"] == groceries


async def test_concurrent_requests_cannot_create_two_categories_of_one_name(
    world: World, database_url: str, container_pg_only: None
) -> None:
    """Names are unique per user whatever the case: two requests at once, "Coffee" and
    "coffee", or a rename racing a create, leave one category of that name (the other 409)."""
    await world.login()
    world.client.headers.update(world.headers)
    before = len(await world.get("/categories"))
    for attempt in range(5):
        answers = await _two(
            world.client,
            ("POST", "/api/v1/categories", {"name": f"Coffee {attempt}"}),
            ("POST", "/api/v1/categories", {"name": f"COFFEE {attempt}"}),
        )
        assert sorted(r.status_code for r in answers) == [201, 409], [r.text for r in answers]
    tea = (await world.client.post("/api/v1/categories", json={"name": "Tea"})).json()["id"]
    answers = await _two(
        world.client,
        ("PATCH", f"/api/v1/categories/{tea}", {"name": "Cocoa"}),
        ("POST", "/api/v1/categories", {"name": "cocoa"}),
    )
    codes = [r.status_code for r in answers]
    assert codes in ([200, 409], [409, 201]), [r.text for r in answers]
    names = [c["name"].lower() for c in await world.get("/categories")]
    assert names.count("cocoa") == 1
    assert len(names) == len(set(names)) == before + 5 + (1 if codes[0] == 200 else 2)  # Tea, renamed or not


async def test_concurrent_moves_cannot_make_a_cycle(
    world: World, database_url: str, container_pg_only: None
) -> None:
    """Moving A under B and B under A at once: one move wins, the other is refused (422), and
    the tree keeps a root (no category becomes its own ancestor)."""
    await world.login()
    world.client.headers.update(world.headers)
    for attempt in range(5):
        a = (await world.client.post("/api/v1/categories", json={"name": f"A{attempt}"})).json()["id"]
        b = (await world.client.post("/api/v1/categories", json={"name": f"B{attempt}"})).json()["id"]
        answers = await _two(
            world.client,
            ("PATCH", f"/api/v1/categories/{a}", {"parent_id": b}),
            ("PATCH", f"/api/v1/categories/{b}", {"parent_id": a}),
        )
        assert sorted(r.status_code for r in answers) in ([200, 409], [200, 422]), [r.text for r in answers]
        parents = {c["id"]: c["parent_id"] for c in await world.get("/categories")}
        assert parents[a] is None or parents[b] is None


async def test_a_text_search_finds_accented_text_whatever_its_case(world: World) -> None:
    """``GET /transactions?q=`` folds every letter's case, not only ASCII ones (SQLite's lower()
    does only those)."""
    await world.login()
    world.bank.accounts = [account("cur")]
    world.bank.transactions = {
        "cur": [
            txn("a", "-4.00", date(2024, 1, 2), description="ÉPICERIE DU COIN / carte"),
            txn("b", "-5.00", date(2024, 1, 3), description="épicerie fine"),
            txn("c", "-6.00", date(2024, 1, 4), description="BOULANGERIE / carte"),
        ]
    }
    await world.sync(date(2024, 1, 5))
    for q in ("épicerie", "ÉPICERIE", "Épicerie du"):
        found = (await world.get("/transactions", q=q))["items"]
        expected = {"a", "b"} if q != "Épicerie du" else {"a"}
        assert {t["provider_transaction_id"] for t in found} == expected, q
