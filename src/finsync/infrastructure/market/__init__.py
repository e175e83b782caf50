"""Market data source adapters, configured by settings like providers (order = fallback order)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from finsync.config import Settings
from finsync.domain.market import FxSource, MarketSources, PriceSource
from finsync.infrastructure.market.alphavantage import AlphaVantageSource
from finsync.infrastructure.market.coingecko import CoinGeckoSource
from finsync.infrastructure.market.ecb import EcbSource
from finsync.infrastructure.market.frankfurter import FrankfurterSource
from finsync.infrastructure.market.tiingo import TiingoSource
from finsync.infrastructure.market.yahoo import YahooSource

FX_SOURCES = ("ecb", "frankfurter")
PRICE_SOURCES = ("yahoo", "tiingo", "alphavantage", "coingecko")


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def source_factory(settings: Settings, **http: Any) -> Callable[[date], MarketSources]:
    """``day → MarketSources`` from ``FINSYNC_MARKET_FX_SOURCES`` / ``FINSYNC_MARKET_PRICE_SOURCES``.

    Keyed sources without a key are left out (and said so by ``missing_keys``). ``http`` are
    ProviderHttp options (tests pass a virtual clock).
    """
    http = {"timeout": settings.provider_timeout_seconds} | http

    def build(day: date) -> MarketSources:
        fx: list[FxSource] = []
        for name in settings.market_fx_sources:
            if name == "ecb":
                fx.append(EcbSource(settings.ecb_url, day, **http))
            elif name == "frankfurter":
                fx.append(FrankfurterSource(settings.frankfurter_url, **http))
        prices: list[PriceSource] = []
        tiingo, alpha = _secret(settings.tiingo_api_key), _secret(settings.alphavantage_api_key)
        for name in settings.market_price_sources:
            if name == "yahoo":
                prices.append(YahooSource(settings.yahoo_url, **http))
            elif name == "tiingo" and tiingo:
                prices.append(TiingoSource(settings.tiingo_url, tiingo, **http))
            elif name == "alphavantage" and alpha:
                prices.append(AlphaVantageSource(settings.alphavantage_url, alpha, day, **http))
            elif name == "coingecko":
                prices.append(
                    CoinGeckoSource(settings.coingecko_url, _secret(settings.coingecko_api_key), **http)
                )
        return MarketSources(fx=fx, prices=prices)

    return build


def missing_keys(settings: Settings) -> list[str]:
    """Configured price sources that will be skipped for want of an API key."""
    keys = {"tiingo": settings.tiingo_api_key, "alphavantage": settings.alphavantage_api_key}
    return [name for name in settings.market_price_sources if name in keys and keys[name] is None]
