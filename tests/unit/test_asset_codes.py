"""A crypto asset is not a currency: asset codes beside ISO-4217 money."""

from __future__ import annotations

from decimal import Decimal

import pytest

from finsync.domain.money import Money, Quantity, asset_code, is_iso_currency

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("code", ["USD", "EUR", "GBP", "JPY", "CHF", "XAU"])
def test_iso_currencies_are_currencies(code: str) -> None:
    assert is_iso_currency(code)


@pytest.mark.parametrize("code", ["BTC", "ETH", "USDT", "SHIB", "XBT", "SOL.S", "1000SATS", "ABC"])
def test_assets_are_not_currencies_even_with_three_letters(code: str) -> None:
    assert not is_iso_currency(code)


@pytest.mark.parametrize(
    ("given", "code"), [("btc", "BTC"), (" USDT ", "USDT"), ("SOL.S", "SOL.S"), ("1000SATS", "1000SATS")]
)
def test_asset_codes_are_accepted_as_exchanges_write_them(given: str, code: str) -> None:
    assert asset_code(given) == code


@pytest.mark.parametrize("bad", ["", "BT C", "-BTC", "B/T", "X" * 40])
def test_a_malformed_asset_code_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not an asset code"):
        asset_code(bad)


def test_a_quantity_holds_an_asset_and_is_money_only_once_priced_in_a_currency() -> None:
    held = Quantity(Decimal("0.5"), "btc")
    assert str(held) == "0.5 BTC"
    assert held.priced(Decimal("60000"), "EUR") == Money(Decimal("30000.0"), "EUR")
    with pytest.raises(ValueError, match="is an asset, not a currency"):
        held.priced(Decimal("60000"), "USDT")
    with pytest.raises(TypeError):
        Quantity(0.5, "BTC")  # type: ignore[arg-type]
