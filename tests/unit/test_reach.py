"""Which of two accounts reaching the same IBAN counts (domain/reach.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from finsync.domain.entities import new_id
from finsync.domain.enums import ConnectionStatus
from finsync.domain.reach import Reach, normalise_iban, resolve

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
IBAN = "DE89370400440532013000"


def test_iban_is_normalised_and_checked() -> None:
    assert normalise_iban(" de89 3704 0044\t0532 0130 00 ") == IBAN
    assert normalise_iban("GB33BUKB20201555555555") == "GB33BUKB20201555555555"
    assert normalise_iban("DE88370400440532013000") is None  # check digits wrong
    assert normalise_iban("DE89****0532013000") is None  # masked
    assert normalise_iban("12345678") is None  # a domestic number
    assert normalise_iban("") is None
    assert normalise_iban(None) is None


def _reach(
    days_old: int,
    status: ConnectionStatus = ConnectionStatus.ACTIVE,
    expires_in: timedelta | None = None,
    currency: str = "EUR",
    iban: str = IBAN,
    connection: UUID | None = None,
) -> Reach:
    return Reach(
        account_id=new_id(),
        connection_id=connection or new_id(),
        provider="gocardless",
        iban=iban,
        currency=currency,
        status=status,
        expires_at=None if expires_in is None else NOW + expires_in,
        connected_at=NOW - timedelta(days=days_old),
    )


def test_the_newer_healthy_connection_counts_and_both_sides_are_flagged() -> None:
    old, new = _reach(100), _reach(2)
    for order in ([old, new], [new, old]):
        found = resolve(order, NOW)
        assert found.live_of == {old.account_id: new.account_id}
        assert found.peers == {old.account_id: [new], new.account_id: [old]}
        assert found.shadowed == {old.account_id}


@pytest.mark.parametrize(
    ("status", "expires_in"),
    [
        (ConnectionStatus.NEEDS_REAUTH, None),
        (ConnectionStatus.ERROR, None),
        (ConnectionStatus.DISABLED, None),
        (ConnectionStatus.ACTIVE, timedelta(seconds=0)),  # consent lapsed just now
    ],
)
def test_a_healthy_connection_counts_over_a_newer_unhealthy_one(
    status: ConnectionStatus, expires_in: timedelta | None
) -> None:
    old, new = _reach(100, expires_in=timedelta(days=30)), _reach(2, status, expires_in)
    assert resolve([new, old], NOW).live_of == {new.account_id: old.account_id}


def test_pockets_of_other_currencies_and_one_connection_are_not_duplicates() -> None:
    connection = new_id()
    eur, usd = _reach(10, connection=connection), _reach(10, currency="USD", connection=connection)
    other_usd = _reach(1, currency="GBP")
    found = resolve([eur, usd, other_usd], NOW)
    assert found.live_of == {}
    assert found.peers == {}


def test_three_connections_one_live() -> None:
    a, b, c = _reach(30), _reach(20), _reach(10, ConnectionStatus.NEEDS_REAUTH)
    found = resolve([a, b, c], NOW)
    assert found.live_of == {a.account_id: b.account_id, c.account_id: b.account_id}
    assert {r.account_id for r in found.peers[b.account_id]} == {a.account_id, c.account_id}
