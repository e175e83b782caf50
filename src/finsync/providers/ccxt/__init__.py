"""Crypto exchanges through ccxt: one shared adapter, one small module per exchange.

Each module (``binance.py``, ``kraken.py``…) declares an ``Exchange`` and its ``METADATA``;
the registry lists each as its own provider (people look for "Binance", not "ccxt").
"""

from finsync.providers.ccxt import binance, coinbase, gateio, htx, kraken, okx

EXCHANGES = (binance, coinbase, gateio, htx, kraken, okx)

__all__ = ["EXCHANGES", "binance", "coinbase", "gateio", "htx", "kraken", "okx"]
