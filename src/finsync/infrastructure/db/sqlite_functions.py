"""What SQLite lacks, registered on every SQLite connection the engine opens.

* Exact decimal sums: SQLite stores money as TEXT and has no decimal type. ``SUM`` over TEXT
  would go through doubles; ``dsum_rate(amount, rate)`` adds ``amount * rate`` with Python's
  Decimal instead (NULL arguments are skipped) and returns the exact total as TEXT.
* ``unicode_lower(text)``: SQLite's ``lower()`` folds ASCII letters only, so a search for
  "épicerie" missed "ÉPICERIE" (PostgreSQL's ``lower()`` folds every letter under the UTF-8
  ctype it runs with). Text searches use this on SQLite.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


class _RateSum:
    def __init__(self) -> None:
        self.total = Decimal(0)
        self.seen = False
        self._rates: dict[str, Decimal] = {}

    def step(self, amount: str | None, rate: str | None) -> None:
        if amount is None or rate is None:
            return
        factor = self._rates.get(rate)
        if factor is None:
            factor = self._rates[rate] = Decimal(rate)
        self.total += Decimal(amount) * factor
        self.seen = True

    def finalize(self) -> str | None:
        return str(self.total) if self.seen else None


def _register(dbapi_connection: Any, _record: Any) -> None:
    # aiosqlite's adapter exposes the sqlite3 connection's create_* through run_async.
    raw = getattr(dbapi_connection, "driver_connection", dbapi_connection)
    target = getattr(raw, "_conn", raw)  # aiosqlite.Connection wraps a sqlite3.Connection
    target.create_aggregate("dsum_rate", 2, _RateSum)
    target.create_function("unicode_lower", 1, _lower, deterministic=True)


def _lower(value: str | None) -> str | None:
    return None if value is None else value.lower()


def install(engine: AsyncEngine) -> None:
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _register)
