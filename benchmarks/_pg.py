"""Shared by the benchmarks: a fresh, migrated PostgreSQL database and its settings."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import asyncpg

from finsync.cli import migrate_database
from finsync.config import Settings

PG = os.environ.get("FINSYNC_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")


async def fresh_database(name: str, **overrides: Any) -> Settings:
    """Drop and recreate ``name``, migrate it, and return settings pointing at it (fake secrets)."""
    admin = await asyncpg.connect(f"{PG}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = f"{PG.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    await asyncio.to_thread(migrate_database, url)
    return Settings(
        _env_file=None,
        database_url=url,
        encryption_keys=["ZmFrZS10ZXN0LWtleS1ub3QtYS1zZWNyZXQtMDAwMDA="],
        jwt_secret="fake-benchmark-jwt-secret-not-for-production",
        log_level="WARNING",
        **overrides,
    )
