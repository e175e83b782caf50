"""A self-hoster's first run: ``pip install finsync`` (a wheel, not editable), then ``finsync migrate``.

The wheel is built from this checkout with the development environment's setuptools
(``--no-build-isolation``: nothing is downloaded) and installed into a fresh virtual
environment, which must import finsync from the wheel, not from ``src/``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import PG_DSN, _pg_reachable

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )
    assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` directory of a fresh venv holding finsync installed from a freshly built wheel."""
    base = tmp_path_factory.mktemp("wheel")
    source, dist, env_dir = base / "source", base / "dist", base / "venv"
    # What the Dockerfile copies, and nothing else: the build leaves no build/ in the checkout.
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--wheel-dir", dist, source)  # fmt: skip
    (wheel,) = dist.glob("finsync-*.whl")
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    python = env_dir / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index",
         wheel)  # fmt: skip
    # The dependencies come from the development environment (appended after the venv's own
    # site-packages, and without running its .pth files, so its editable finsync stays out).
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    Path(purelib, "_dev_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    origin = _run(python, "-c", "import finsync; print(finsync.__file__)", cwd=base)
    assert origin.startswith(str(env_dir)), f"finsync imported from {origin}, not from the wheel"
    return env_dir / "bin"


def _env(database_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSYNC_")}
    return env | {"FINSYNC_DATABASE_URL": database_url, "FINSYNC_DATA_DIR": str(data_dir)}


def test_installed_wheel_migrates_a_fresh_sqlite_file(installed: Path, tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    out = _run(
        installed / "finsync", "migrate", env=_env(f"sqlite+aiosqlite:///{db}", tmp_path), cwd=tmp_path
    )
    assert "up to date" in out
    with sqlite3.connect(db) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert {"users", "connections", "accounts", "transactions", "sync_runs"} <= tables
    assert version == _head()


def test_installed_wheel_migrates_a_fresh_postgresql_database(installed: Path, tmp_path: Path) -> None:
    if not asyncio.run(_pg_reachable()):
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not reachable and CI=true")
        pytest.skip("PostgreSQL not reachable")
    name = f"finsync_test_wheel_{os.getpid()}"
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'))
    try:
        url = f"{PG_DSN.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
        _run(installed / "finsync", "migrate", env=_env(url, tmp_path), cwd=tmp_path)
        assert asyncio.run(_version(f"{PG_DSN}/{name}")) == _head()
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _head() -> str:
    from alembic.script import ScriptDirectory

    from finsync.cli import alembic_config

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()  # type: ignore[arg-type]
    assert head is not None
    return head


async def _admin(*statements: str) -> None:
    conn = await asyncpg.connect(f"{PG_DSN}/postgres")
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


async def _version(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SELECT version_num FROM alembic_version"))
    finally:
        await conn.close()
