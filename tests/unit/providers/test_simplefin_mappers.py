"""SimpleFIN wire → records: both protocol versions' institutions and messages, custom
currencies, account kinds from names, pending dates, and setup tokens that are not one."""

from __future__ import annotations

import base64
from datetime import date
from decimal import Decimal

import pytest

from finsync.domain.enums import AccountType, TransactionStatus
from finsync.domain.errors import BadData, InvalidInput
from finsync.providers.simplefin.client import Access, claim_url
from finsync.providers.simplefin.mappers import map_account, map_transaction, messages

pytestmark = pytest.mark.unit
TODAY = date(2026, 11, 29)


def test_version_1_org_and_version_2_connection_name_the_institution() -> None:
    v1 = {"id": "A1", "name": "Checking", "currency": "USD", "balance": "1.50", "org": {"name": "Bank"}}
    v2_body = {"connections": [{"conn_id": "C1", "name": "Credit Union"}]}
    v2 = {"id": "A2", "name": "Share Savings", "currency": "USD", "balance": "2", "conn_id": "C1"}
    assert map_account(v1, {}).institution == "Bank"
    assert map_account(v2, v2_body).institution == "Credit Union"
    assert map_account(v2, v2_body).type is AccountType.SAVINGS
    assert map_account(v1, {}).balance == Decimal("1.50")


def test_a_custom_currency_url_is_stored_as_no_currency() -> None:
    points = {"id": "P", "name": "Rewards", "currency": "https://www.example.com/points", "balance": "100"}
    assert map_account(points, {}).currency == "XXX"


def test_messages_of_both_versions_are_read_once_each() -> None:
    body = {
        "errors": ["Log in again", "Log in again"],
        "errlist": [{"code": "con.auth", "msg": "Reconnect", "conn_id": "C1"}, {"code": "x"}],
        "connections": [{"conn_id": "C1", "name": "Bank"}],
    }
    assert messages(body) == ["Log in again", "Bank: Reconnect"]


def test_pending_items_are_dated_when_they_happened_and_posted_ones_when_posted() -> None:
    pending = {"id": "T1", "amount": "-1.00", "posted": 0, "transacted_at": 1_764_000_000, "pending": True}
    undated = {"id": "T2", "amount": "-1.00", "posted": 0}
    posted = {"id": "T3", "amount": "2.00", "posted": 1_764_100_000, "transacted_at": 1_764_000_000}
    assert map_transaction(pending, "USD", TODAY).status is TransactionStatus.PENDING
    assert map_transaction(pending, "USD", TODAY).transaction_date == date(2025, 11, 24)
    assert map_transaction(undated, "USD", TODAY).transaction_date == TODAY
    assert map_transaction(posted, "USD", TODAY).transaction_date == date(2025, 11, 25)
    with pytest.raises(BadData, match="not a number"):
        map_transaction({"id": "T4", "amount": "lots", "posted": 1}, "USD", TODAY)


def test_setup_tokens_and_access_urls_are_read_or_refused_in_words() -> None:
    url = "https://beta-bridge.simplefin.org/simplefin/claim/DEMO"
    assert str(claim_url(base64.b64encode(url.encode()).decode().rstrip("="))) == url
    with pytest.raises(InvalidInput, match="not a SimpleFIN setup token"):
        claim_url(base64.b64encode(b"just words").decode())
    access = Access.parse("https://user:p%40ss@bridge.simplefin.org/simplefin")
    assert (access.base_url, access.username, access.password) == (
        "https://bridge.simplefin.org/simplefin",
        "user",
        "p@ss",
    )
