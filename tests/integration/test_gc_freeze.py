"""A served app moves its start-up heap out of the garbage collector's sight (gc.freeze): a
full collection walking it paused every request in flight for 100-200 ms."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import FAKE_FERNET_KEY, FAKE_JWT_SECRET, migrated_sqlite_file

_SCRIPT = """
import asyncio, gc, sys
from finsync.api.app import create_app
from finsync.bootstrap import build
from finsync.config import Settings

async def main(owned):
    settings = Settings(
        _env_file=None, database_url=sys.argv[1], data_dir=sys.argv[2],
        encryption_keys=[sys.argv[3]], jwt_secret=sys.argv[4], log_level="WARNING",
    )
    container = None if owned else build(settings)
    app = create_app(settings, container)
    async with app.router.lifespan_context(app):
        frozen = gc.get_freeze_count()
    if container is not None:
        await container.aclose()
    return frozen

print(asyncio.run(main(owned=sys.argv[5] == "served")))
"""


def _frozen_at_start(tmp_path: Path, how: str) -> int:
    database = tmp_path / f"{how}.db"
    migrated_sqlite_file(database)
    args = [f"sqlite+aiosqlite:///{database}", str(tmp_path), FAKE_FERNET_KEY, FAKE_JWT_SECRET, how]
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, *args], capture_output=True, text=True, timeout=120, check=True
    )
    return int(done.stdout.strip().splitlines()[-1])


def test_a_served_app_freezes_its_start_up_heap(tmp_path: Path) -> None:
    assert _frozen_at_start(tmp_path, "served") > 50_000  # the modules and the container


def test_an_app_around_a_callers_container_leaves_the_collector_alone(tmp_path: Path) -> None:
    assert _frozen_at_start(tmp_path, "embedded") == 0  # tests and embedding own their heap
