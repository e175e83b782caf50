"""Money: an exact amount with its ISO-4217 currency; and asset codes for what is not money.

A crypto asset (``BTC``, ``USDT``, ``SHIB``, Kraken's staked ``SOL.S``) is not a currency:
some are three letters like one, so the shape of a code cannot tell. ``is_iso_currency``
asks the ISO-4217 list; ``asset_code`` accepts any exchange's asset code; ``Quantity`` is
an amount of an asset, so fiat cash stays ``Money`` and nothing pretends BTC is ISO-4217.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_ASSET = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,31}$")
# ISO-4217 active codes (plus XAU/XAG metals, which are ISO too); anything else is an asset.
_ISO_4217_CODES = """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY
KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP
MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR
RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW
ZWL XAU XAG
"""
ISO_4217 = frozenset(_ISO_4217_CODES.split())


def to_decimal(value: Any) -> Decimal:
    """Parse a wire value into Decimal exactly; floats go through ``str`` (never binary)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    try:
        result = Decimal(str(value).strip().replace(",", "") if isinstance(value, str) else value)
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return result


def currency_code(value: str) -> str:
    code = value.strip().upper()
    if not _CURRENCY.match(code):
        raise ValueError(f"not an ISO-4217 currency code: {value!r}")
    return code


def is_iso_currency(value: str) -> bool:
    """True for an ISO-4217 currency (``USD``), false for an asset such as ``BTC`` or ``USDT``."""
    return value.strip().upper() in ISO_4217


def asset_code(value: str) -> str:
    """An exchange's asset code, upper-cased: ``BTC``, ``USDT``, ``1000SATS``, ``SOL.S``."""
    code = str(value).strip().upper()
    if not _ASSET.match(code):
        raise ValueError(f"not an asset code: {value!r}")
    return code


@dataclass(frozen=True, slots=True)
class Quantity:
    """An exact amount of an asset (crypto or fiat), e.g. 0.5 BTC: not money until priced."""

    amount: Decimal
    asset: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise TypeError("Quantity.amount must be a Decimal")
        object.__setattr__(self, "asset", asset_code(self.asset))

    def priced(self, price: Decimal, currency: str) -> Money:
        """Its value at ``price`` per unit, in ``currency`` (which must be ISO-4217)."""
        if not is_iso_currency(currency):
            raise ValueError(f"{currency!r} is an asset, not a currency: value it in one")
        return Money(self.amount * price, currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.asset}"


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise TypeError("Money.amount must be a Decimal")
        object.__setattr__(self, "currency", currency_code(self.currency))

    def __add__(self, other: Money) -> Money:
        if other.currency != self.currency:
            raise ValueError(f"cannot add {other.currency} to {self.currency}")
        return Money(self.amount + other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    @classmethod
    def of(cls, amount: Any, currency: str) -> Money:
        return cls(to_decimal(amount), currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"
