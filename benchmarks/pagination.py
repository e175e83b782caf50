"""Keyset pagination: does page 10,000 cost what page 1 costs?

Seeds N transactions for one user on PostgreSQL through the real repository,
then times fetching page 1 and page P (cursor taken from the row just before
that page) through the same repository call the API uses. Prints medians and
their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import date, timedelta
from decimal import Decimal

from _pg import fresh_database
from finsync.bootstrap import build
from finsync.domain.entities import Connection, User
from finsync.domain.enums import AccountType, TransactionSubtype, TransactionType
from finsync.domain.ports import PageRequest, TransactionFilter
from finsync.domain.records import ProviderAccount, ProviderTransaction

DB = "finsync_bench_pagination"


async def main(rows: int, limit: int, page_no: int, repeats: int) -> None:
    c = build(await fresh_database(DB))
    user = User(email="bench@example.com", password_hash="x")
    connection = Connection(user_id=user.id, provider="bench", name="bench")
    async with c.uow() as uow:
        await uow.users.add(user)
        await uow.connections.add(connection)
        (account,), _ = await uow.accounts.upsert(
            connection,
            [ProviderAccount(provider_account_id="a", name="A", type=AccountType.CHECKING, currency="USD")],
        )
        start = time.perf_counter()
        batch = [
            ProviderTransaction(
                provider_transaction_id=f"t{i}",
                type=TransactionType.OTHER,
                subtype=TransactionSubtype.OTHER,
                amount=Decimal(i % 1000) / 100,
                currency="USD",
                transaction_date=date(2020, 1, 1) + timedelta(days=i % 2000),
                description=f"payee {i % 97}",
            )
            for i in range(rows)
        ]
        await uow.transactions.upsert(account, batch)
        await uow.commit()
        print(f"seeded {rows:,} transactions in {time.perf_counter() - start:.1f} s")

    async with c.uow() as uow:
        # Walk to the key just before the target page once (what a client following cursors holds).
        from sqlalchemy import text

        row = (
            await uow.session.execute(  # type: ignore[attr-defined]
                text(
                    "SELECT transaction_date, id FROM transactions ORDER BY transaction_date DESC, id DESC "
                    "OFFSET :o LIMIT 1"
                ),
                {"o": (page_no - 1) * limit - 1},
            )
        ).one()
        deep_key = (row[0].isoformat(), row[1].hex)

        async def timed(after: tuple[str, ...] | None) -> float:
            t = time.perf_counter()
            page = await uow.transactions.find(
                user.id, TransactionFilter(), PageRequest(limit=limit, after=after)
            )
            assert len(page.items) == limit
            return time.perf_counter() - t

        for _ in range(3):  # warm caches
            await timed(None)
            await timed(deep_key)
        first = [await timed(None) for _ in range(repeats)]
        deep = [await timed(deep_key) for _ in range(repeats)]
    await c.aclose()
    m1, md = statistics.median(first), statistics.median(deep)
    print(f"page 1:         median {m1 * 1000:.2f} ms over {repeats} runs")
    print(f"page {page_no:,}: median {md * 1000:.2f} ms over {repeats} runs")
    print(f"ratio deep/first: {md / m1:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--page", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.limit, args.page, args.repeats))
