"""Pure domain rules: money, ids, error mapping."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from finsync.application.throttle import Keys, client_key
from finsync.application.user_auth import hash_token
from finsync.domain.entities import new_id
from finsync.domain.money import Money, currency_code, to_decimal

pytestmark = pytest.mark.unit


def test_money_is_exact_and_currency_checked() -> None:
    assert Money.of("0.1", "usd") + Money.of("0.2", "USD") == Money(Decimal("0.3"), "USD")
    with pytest.raises(ValueError, match="cannot add"):
        Money.of(1, "USD") + Money.of(1, "EUR")
    with pytest.raises(TypeError):
        Money(0.1, "USD")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ISO-4217"):
        currency_code("dollars")


@pytest.mark.parametrize(
    ("wire", "expected"),
    [(0.1, "0.1"), ("1,234.50", "1234.50"), (" -3 ", "-3"), (1e-7, "1E-7"), (Decimal("2.50"), "2.50")],
)
def test_to_decimal_never_goes_through_binary_floats(wire: object, expected: str) -> None:
    assert str(to_decimal(wire)) == expected


@pytest.mark.parametrize("bad", ["abc", None, True, "NaN", "Infinity"])
def test_to_decimal_rejects_non_numbers(bad: object) -> None:
    with pytest.raises(ValueError, match="not a"):
        to_decimal(bad)


def test_ids_are_rfc9562_v7_and_time_ordered() -> None:
    ids = [new_id() for _ in range(50)]
    assert all(isinstance(i, uuid.UUID) and i.version == 7 for i in ids)
    assert ids == sorted(ids)
    millis = int.from_bytes(ids[0].bytes[:6], "big")
    assert abs(millis / 1000 - datetime.now(UTC).timestamp()) < 5


def test_throttle_keys_per_client_not_per_ipv6_address() -> None:
    # One IPv6 host usually holds a whole /64: rotating addresses within it is one client.
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:203.0.113.5") == client_key("203.0.113.5") == "203.0.113.5"
    keys = Keys.of("ada@example.com", "203.0.113.5")
    assert "ada" not in keys.pair  # stored as digests, never as the email typed
    assert len({keys.client, keys.pair, keys.account}) == 3


def test_refresh_token_hash_is_sha256_hex() -> None:
    assert len(hash_token("opaque")) == 64
    assert hash_token("opaque") == hash_token("opaque") != hash_token("other")
