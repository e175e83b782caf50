"""Cash flow's stored daily sums equal a recomputation from the transactions after every write.

The recomputation here is independent of the stored path: every transaction of the user is
read and the rules of cash flow (not cancelled, not a trade, not excluded, not a leg of a
live transfer link) are applied in Python.
"""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select, text, update

from finsync.domain.enums import TransactionStatus, TransactionSubtype, TransactionType
from finsync.infrastructure.db.analytics_tables import cash_flow_days, cash_flow_dirty
from finsync.infrastructure.db.tables import metadata
from tests.api.analytics_helpers import World, world_fixture  # noqa: F401 - the fixture
from tests.api.helpers import PASSWORD
from tests.api.test_imports import statement, upload
from tests.factories import account, txn

pytestmark = pytest.mark.integration
D = Decimal
NONE = UUID(int=0)
Row = tuple[str, UUID, date, str, Decimal, Decimal, int]


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(hex=str(value))


async def _stored(world: World) -> set[Row]:
    assert world.user is not None
    c = cash_flow_days.c
    async with world.container.engine.connect() as conn:
        rows = await conn.execute(select(cash_flow_days).where(c.user_id == world.user.id))
        return {(r.grouping, r.key, r.day, r.currency, r.income, r.spending, r.count) for r in rows}


async def _recomputed(world: World) -> set[Row]:
    assert world.user is not None
    t, links = metadata.tables["transactions"].c, metadata.tables["transfer_links"]
    async with world.container.engine.connect() as conn:
        live = await conn.execute(
            select(links.c.outflow_id, links.c.inflow_id).where(
                links.c.user_id == world.user.id, links.c.status != "rejected"
            )
        )
        legs = {leg for pair in live for leg in pair}
        found = await conn.execute(
            select(
                t.id, t.transaction_date, t.currency, t.category_id, t.account_id, t.amount, t.status,
                t.type, t.excluded_from_analytics,
            ).where(t.user_id == world.user.id)
        )  # fmt: skip
        sums: dict[tuple[str, UUID, date, str], list[Any]] = {}
        for tid, day, currency, category, account_id, amount, status, kind, excluded in found:
            if status == "cancelled" or kind == "trade" or excluded or tid in legs:
                continue
            for key in (("c", category or NONE), ("a", account_id)):
                slot = sums.setdefault((*key, day, currency), [D(0), D(0), 0])
                slot[0 if amount > 0 else 1] += amount if amount != 0 else D(0)
                slot[2] += 1
    return {(g, k, d, c, i, s, n) for (g, k, d, c), (i, s, n) in sums.items()}


async def _marks(world: World) -> int:
    assert world.user is not None
    async with world.container.engine.connect() as conn:
        query = select(cash_flow_dirty.c.day).where(cash_flow_dirty.c.user_id == world.user.id)
        return len((await conn.execute(query)).all())


async def _in_step(world: World, step: str) -> None:
    stored, expected = await _stored(world), await _recomputed(world)
    assert stored == expected, f"after {step}: stored {stored - expected}, missing {expected - stored}"
    assert await _marks(world) == 0, f"after {step}: days left marked"


async def _flow(world: World, group_by: str | None) -> Any:
    params = {"from": "2024-01-01", "to": "2024-02-29"} | ({"group_by": group_by} if group_by else {})
    return await world.get("/analytics/cash-flow", **params)


async def test_every_write_path_keeps_the_daily_sums_equal_to_a_recomputation(world: World) -> None:
    await world.login()
    await world.fixings({date(2024, 1, 1): {"USD": "1.25"}})
    world.bank.accounts = [account("cur", currency="EUR"), account("sav", currency="EUR")]
    world.bank.transactions = {
        "cur": [
            txn("salary", "2000.00", date(2024, 1, 25), currency="EUR", description="ACME / jan"),
            txn("food", "-50.00", date(2024, 1, 26), currency="EUR", description="WHOLE FOODS / card"),
            txn("move", "-500.00", date(2024, 1, 27), currency="EUR", description="To savings"),
            txn("buy", "-999.00", date(2024, 1, 27), currency="EUR", type=TransactionType.TRADE),
            txn("void", "-77.00", date(2024, 1, 27), currency="EUR", status=TransactionStatus.CANCELLED),
            txn("zero", "0.00", date(2024, 1, 27), currency="EUR"),
            txn("wait", "-5.00", date(2024, 1, 28), currency="EUR", status=TransactionStatus.PENDING),
        ],
        "sav": [txn("in", "500.00", date(2024, 1, 29), currency="EUR", description="From current")],
    }
    await world.sync(date(2024, 2, 5))  # inserts (COPY on PostgreSQL) and a detected transfer
    await _in_step(world, "the first sync")
    assert len(await _stored(world)) > 0

    world.bank.transactions["cur"][1] = txn(  # changed amount and day: both days are recomputed
        "food", "-55.00", date(2024, 1, 24), currency="EUR", description="WHOLE FOODS / card"
    )
    world.bank.replace_pending = True
    world.bank.transactions["cur"].pop()  # the pending one is gone: dropped
    await world.sync(date(2024, 2, 6))
    await _in_step(world, "a sync that changes a transaction and drops a pending one")

    r = await upload(world.client, world.headers, statement(range(1, 30)))
    assert r.status_code == 201, r.text
    await _in_step(world, "an OFX import")

    items = (await world.get("/transactions", limit=100))["items"]
    by_pid = {i["provider_transaction_id"]: i for i in items}
    category = (
        await world.client.post("/api/v1/categories", headers=world.headers, json={"name": "Eat"})
    ).json()
    patch = {"category_id": category["id"]}
    r = await world.client.patch(
        f"/api/v1/transactions/{by_pid['food']['id']}", headers=world.headers, json=patch
    )
    assert r.status_code == 200, r.text
    await _in_step(world, "PATCH category")
    excluded = {"excluded_from_analytics": True}
    r = await world.client.patch(
        f"/api/v1/transactions/{by_pid['salary']['id']}", headers=world.headers, json=excluded
    )
    assert r.status_code == 200, r.text
    await _in_step(world, "PATCH excluded_from_analytics")

    rule = {"name": "shops", "conditions": {"description_contains": "shop"}, "category_id": category["id"]}
    rule_id = (await world.client.post("/api/v1/rules", headers=world.headers, json=rule)).json()["id"]
    applied = await world.client.post(f"/api/v1/rules/{rule_id}/apply", headers=world.headers)
    assert applied.json()["changed"] > 0
    await _in_step(world, "a rule applied to history")

    (link,) = (await world.get("/transfers"))["items"]
    assert (
        await world.client.post(f"/api/v1/transfers/{link['id']}/reject", headers=world.headers)
    ).status_code == 200
    await _in_step(world, "a rejected transfer")
    by_account = await _flow(world, "account")
    assert D(by_account["periods"][0]["values"]["income"]) == 500  # the salary is excluded, the inflow counts
    assert (
        await world.client.post(f"/api/v1/transfers/{link['id']}/confirm", headers=world.headers)
    ).status_code == 200
    await _in_step(world, "a confirmed transfer")

    assert (
        await world.client.delete(f"/api/v1/categories/{category['id']}", headers=world.headers)
    ).status_code == 204
    await _in_step(world, "a category deleted")

    r = await world.client.delete(f"/api/v1/connections/{world.connection_id}", headers=world.headers)
    assert r.status_code == 204
    await _in_step(world, "the connection deleted")
    assert {row[0] for row in await _stored(world)} == {"c", "a"}  # the import's account remains

    r = await world.client.request(
        "DELETE", "/api/v1/users/me", headers=world.headers, json={"password": PASSWORD}
    )
    assert r.status_code == 204, r.text
    assert await _stored(world) == set()
    assert await _marks(world) == 0


async def test_a_write_that_did_not_recompute_is_read_from_the_transactions(world: World) -> None:
    """The answer never depends on the recomputation having run: marked days are summed from
    the transactions (a bulk load, or a write path that forgot to ask)."""
    await world.login()
    world.bank.accounts = [account("cur", currency="EUR")]
    world.bank.transactions = {
        "cur": [
            txn("a", "-10.00", date(2024, 1, 5), currency="EUR", subtype=TransactionSubtype.PURCHASE),
            txn("b", "-20.00", date(2024, 2, 5), currency="EUR"),
        ]
    }
    await world.sync(date(2024, 2, 10))
    before = await _flow(world, "category")
    assert [D(p["values"]["spending"]) for p in before["periods"]] == [-10, -20]
    transactions = metadata.tables["transactions"]
    async with world.container.engine.begin() as conn:  # not through a repository: nothing recomputes
        await conn.execute(
            update(transactions)
            .where(transactions.c.provider_transaction_id == "a")
            .values(amount=D("-15.00"))
        )
    assert await _marks(world) == 1  # the trigger marked the day
    after = await _flow(world, "category")
    assert [D(p["values"]["spending"]) for p in after["periods"]] == [-15, -20]
    assert D((await _flow(world, None))["periods"][0]["values"]["spending"]) == -15
    world.bank.transactions["cur"].append(txn("c", "-1.00", date(2024, 2, 6), currency="EUR"))
    await world.sync(date(2024, 2, 11))  # the next write of the user recomputes every marked day
    await _in_step(world, "the next sync")


async def test_concurrent_imports_of_one_user_on_the_same_days_stay_in_step(world: World) -> None:
    """Two imports into two accounts of one user, the same days, committed at once."""
    if world.container.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL: concurrent writers")
    await world.login()
    first = statement(range(1, 200))
    second = first.replace(b"<ACCTID>55501234", b"<ACCTID>55509999").replace(b"<FITID>F", b"<FITID>G")
    results = await asyncio.gather(
        upload(world.client, world.headers, first, "a.ofx"),
        upload(world.client, world.headers, second, "b.ofx"),
    )
    assert [r.status_code for r in results] == [201, 201], [r.text for r in results]
    await _in_step(world, "two concurrent imports")
    assert len(await _stored(world)) > 0
    async with world.container.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM cash_flow_dirty"))).scalar() == 0
