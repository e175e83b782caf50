"""A credit card reached through two connections, written by the real sync write path, counts
once in net worth and its history (a liability: the signs of both providers), on both
databases; and which one counts follows the health of the connections."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from finsync.application.sync import Fetched, write_fetched
from finsync.bootstrap import Container
from finsync.domain.analytics_ports import Interval
from finsync.domain.entities import Connection, SyncRun, User
from finsync.domain.enums import AccountType, ConnectionStatus, SnapshotSource, SyncStatus, SyncTrigger
from finsync.domain.records import ProviderAccount
from finsync.providers.registry import ProviderRegistry
from tests.conftest import built, make_settings
from tests.factories import account

pytestmark = pytest.mark.integration
NOW = datetime(2026, 5, 20, 12, tzinfo=UTC)
CARD_IBAN = "GB33BUKB20201555555555"


@pytest.fixture
async def store(database_url: str, tmp_path: Path) -> AsyncIterator[Container]:
    settings = make_settings(database_url, tmp_path)
    async with built(settings, registry=ProviderRegistry([]), clock=lambda: NOW) as c:
        yield c


async def _write(
    c: Container, connection: Connection, days_ago: int, accounts: list[ProviderAccount]
) -> None:
    """One finished sync of ``connection``, ``days_ago`` days before NOW."""
    at = NOW - timedelta(days=days_ago)
    async with c.uow() as uow:
        run = SyncRun(
            user_id=connection.user_id,
            connection_id=connection.id,
            trigger=SyncTrigger.SCHEDULED,
            status=SyncStatus.SUCCEEDED,
            finished_at=at,
        )
        await uow.sync_runs.add(run)
        await write_fetched(uow, connection, run, Fetched(accounts=accounts), SnapshotSource.SCHEDULED, at)
        await uow.commit()


def _card(balance: str) -> ProviderAccount:
    return account(
        "card", type=AccountType.CREDIT_CARD, currency="EUR", balance=Decimal(balance), iban=CARD_IBAN
    )


async def test_a_card_reached_twice_counts_once_and_follows_the_healthy_connection(store: Container) -> None:
    c = store
    user = User(email="pair@example.com", password_hash="x", base_currency="EUR")
    old = Connection(
        user_id=user.id, provider="gocardless", name="Old", status=ConnectionStatus.ACTIVE,
        created_at=NOW - timedelta(days=30),
    )  # fmt: skip
    new = Connection(
        user_id=user.id, provider="enablebanking", name="New", status=ConnectionStatus.ACTIVE,
        created_at=NOW - timedelta(days=2),
    )  # fmt: skip
    async with c.uow() as uow:
        await uow.users.add(user)
        await uow.connections.add(old)
        await uow.connections.add(new)
        await uow.commit()
    checking = account("chk", currency="EUR", balance=Decimal("1000"), iban="DE89370400440532013000")
    await _write(c, old, 5, [checking, _card("100")])  # GoCardless: a positive card balance
    await _write(c, old, 3, [checking, _card("150")])
    await _write(c, new, 2, [_card("-160")])  # Enable Banking: the same card, negative
    await _write(c, new, 1, [_card("-170")])
    await _write(c, old, 1, [checking, _card("155")])  # the old one keeps syncing

    async def figures() -> tuple[Decimal, list[str]]:
        async with c.uow() as uow:
            stored = await uow.users.get(user.id)
            assert stored is not None
            worth = await c.net_worth.current(uow, stored)
            start, end = (NOW - timedelta(days=6)).date(), NOW.date()
            history = await c.net_worth.history(uow, stored, start, end, Interval.DAY, None)
        return worth.total, [str(v) for _, v in history.points]

    total, points = await figures()
    assert total == Decimal("830")  # 1000 - 170: the newer connection's card
    # Until Enable Banking's first balance, GoCardless's card; from then on, Enable Banking's.
    assert points == ["0.00", "900.00", "900.00", "850.00", "840.00", "830.00", "830.00"]

    async with c.uow() as uow:  # the newer consent is withdrawn: the old connection counts
        lapsed = await uow.connections.get(new.id)
        assert lapsed is not None
        lapsed.status = ConnectionStatus.NEEDS_REAUTH
        await uow.connections.save(lapsed)
        await uow.commit()
    total, points = await figures()
    assert total == Decimal("845")
    assert points == ["0.00", "900.00", "900.00", "850.00", "850.00", "845.00", "845.00"]
