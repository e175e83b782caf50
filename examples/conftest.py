"""Example providers are tested with finsync's suite: their packages import from ``src`` (as if
installed) and their tests use finsync's fixtures (both databases) and fake-server helpers."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE.parent, *sorted(HERE.glob("*/src"))):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from tests.conftest import _reset_logging, database_url, pg_database, sqlite_database  # noqa: E402

__all__ = ["_reset_logging", "database_url", "pg_database", "sqlite_database"]
