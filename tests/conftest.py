"""Shared fixtures: real SQLite and PostgreSQL databases, migrated once, emptied after each test."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import structlog
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

import finsync
from finsync.api.app import create_app
from finsync.bootstrap import Container, build, configure_logging, database_engine
from finsync.cli import migrate_database
from finsync.config import Settings
from finsync.infrastructure.db.tables import metadata
from finsync.providers.registry import ProviderRegistry, builtin_providers
from tests.api.wire import assert_wire_format
from tests.fakes.hashing import CHEAP_HASHER
from tests.fakes.memory import MemoryProviders, memory_provider_metadata

PG_DSN = os.environ.get("FINSYNC_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
FAKE_FERNET_KEY = "ZmFrZS10ZXN0LWtleS1ub3QtYS1zZWNyZXQtMDAwMDA="  # base64 of an obviously fake 32 bytes
FAKE_JWT_SECRET = "fake-test-jwt-secret-not-for-production-use"


def _shared() -> Path:
    """The shared fixtures (``shared/``) beside this checkout, else beside the local checkout it
    was cloned from (a clone into a temporary folder), else FINSYNC_TEST_SHARED."""
    here = Path(__file__).resolve().parents[1]
    candidates = [here.parent / "shared"]
    origin = subprocess.run(
        ["git", "-C", str(here), "config", "--get", "remote.origin.url"], capture_output=True, text=True
    ).stdout.strip()
    if origin and Path(origin).is_dir():
        candidates.append(Path(origin).resolve().parent / "shared")
    if os.environ.get("FINSYNC_TEST_SHARED"):
        candidates.insert(0, Path(os.environ["FINSYNC_TEST_SHARED"]))
    return next((c for c in candidates if (c / "fixtures").is_dir()), candidates[0])


SHARED = _shared()
# procrastinate's tables (PostgreSQL): emptied with ours between tests.
JOB_TABLES = (
    "procrastinate_events",
    "procrastinate_periodic_defers",
    "procrastinate_jobs",
    "procrastinate_workers",
)


# Tests that take many seconds of wall time whatever the machine (the schemathesis run, real
# worker processes, a wheel build, subprocess start-ups, a thousand orders, a real browser) go
# first: spread over the xdist workers from the start, they overlap with the rest instead of
# running alone at the end.
RUN_FIRST = (
    "tests/api/test_schemathesis.py",
    "tests/integration/test_workers.py",
    "tests/integration/test_packaging.py",
    "tests/integration/test_cli_startup.py",
    "tests/integration/test_order_chaos.py",
    "tests/api/test_docs_browser.py",
    "tests/api/test_browser.py",
)


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # optional: also runs with -p no:xdist
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker more than the cores (PYTEST_XDIST_AUTO_NUM_WORKERS overrides).
    A worker waits on PostgreSQL, subprocesses and test servers about a fifth of its time; the
    extra one fills that (measured on 2 cores: 104-107 s against 131-133 s for the suite, with
    4 workers no better than 3)."""
    given = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "")
    return int(given) if given.isdigit() else len(os.sched_getaffinity(0)) + 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((i for i, path in enumerate(RUN_FIRST) if item.nodeid.startswith(path)), len(RUN_FIRST))

    items.sort(key=rank)  # stable: the order within each rank is kept


async def _pg_reachable() -> bool:
    try:
        conn = await asyncpg.connect(f"{PG_DSN}/postgres", timeout=3)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


def _logging_defaults() -> None:
    """structlog's defaults, but exceptions printed as plain tracebacks: the default rich one
    renders every frame's source and locals, 5 to 10 s of CPU for one logged crash."""
    structlog.reset_defaults()
    *processors, _ = structlog.get_config()["processors"]
    plain = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    structlog.configure(processors=[*processors, plain])


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """An app built by one test configures structlog globally; the next test starts clean."""
    _logging_defaults()
    yield
    _logging_defaults()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """A fresh PostgreSQL database for this run; None when PostgreSQL is unreachable outside CI."""
    if not asyncio.run(_pg_reachable()):
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not reachable and CI=true: the production path must be tested")
        yield None
        return
    name = f"finsync_test_{os.getpid()}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(f"{PG_DSN}/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}"'))
    create_migrated_database(name)
    # A commit need not wait for its WAL flush here (3 ms → 0.4 ms each): only a server crash
    # could tell the difference, and this database is thrown away after the run anyway.
    asyncio.run(admin(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    yield f"{PG_DSN.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    drop_database_later(name)


# A migrated database is copied, not migrated: Alembic takes seconds per database (every worker,
# every run, both databases), a copy of a template a fraction of one. The template is keyed by
# everything the migrated schema depends on, so a changed migration builds a new one; templates
# (and template files) unused for TEMPLATE_DAYS are dropped.
TEMPLATE_DAYS = 2


def schema_key() -> str:
    """A digest of what a freshly migrated database depends on: the migration scripts, the
    column types they use, and the versions of the libraries that write the DDL."""
    package = Path(finsync.__file__).parent
    digest = hashlib.sha256()
    # (and the trigger DDL that migrations import from the application)
    imported = ["types.py", "cash_flow.py", "holding_values.py", "triggers.py"]
    for path in sorted(
        [*(package / "migrations").rglob("*.py"), *(package / "infrastructure/db" / f for f in imported)]
    ):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    for library in ("alembic", "sqlalchemy", "procrastinate"):
        digest.update(f"{library}=={version(library)}".encode())
    return digest.hexdigest()[:16]


async def _admin_fetch(sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(f"{PG_DSN}/postgres")
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def create_migrated_database(name: str) -> None:
    """CREATE DATABASE ``name`` as a copy of the migrated template, building the template first
    if no run has yet. Concurrent runs may each build one: the first rename wins, the others
    drop theirs. Nobody connects to a template, so copies of it can be made at the same time."""
    template = f"finsync_template_{schema_key()}"
    exists = asyncio.run(_admin_fetch("SELECT 1 FROM pg_database WHERE datname = $1", template))
    if not exists:
        building = f"{template}_{os.getpid()}"
        asyncio.run(_admin_fetch(f'CREATE DATABASE "{building}"'))
        _mark_used(building)  # a build in progress is not stale
        migrate_database(f"{PG_DSN.replace('postgresql://', 'postgresql+asyncpg://')}/{building}")
        asyncio.run(
            _admin_fetch(f'ALTER DATABASE "{building}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
        )
        try:
            asyncio.run(_admin_fetch(f'ALTER DATABASE "{building}" RENAME TO "{template}"'))
        except asyncpg.DuplicateDatabaseError:
            _drop_template(building)
    asyncio.run(_admin_fetch(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    _mark_used(template)
    stale = asyncio.run(
        _admin_fetch(
            "SELECT datname FROM pg_database d LEFT JOIN pg_shdescription s ON s.objoid = d.oid "
            "WHERE datname ~ '^finsync_template_[0-9a-f]{16}(_[0-9]+)?$' AND datname <> $1 "
            "AND coalesce(s.description, '0')::float < $2",
            template,
            time.time() - TEMPLATE_DAYS * 86400,
        )
    )
    for (other,) in stale:  # other schemas' templates (other branches, older migrations), or dead builds
        _drop_template(other)


def _mark_used(database: str) -> None:
    asyncio.run(_admin_fetch(f"COMMENT ON DATABASE \"{database}\" IS '{time.time():.0f}'"))


def _drop_template(database: str) -> None:
    asyncio.run(_admin_fetch(f'ALTER DATABASE "{database}" WITH IS_TEMPLATE false'))
    drop_database_later(database)


def migrated_sqlite_file(path: Path) -> None:
    """A migrated SQLite database at ``path``: a copy of a template file built once per schema."""
    folder = Path(tempfile.gettempdir())
    template = folder / f"finsync-test-template-{schema_key()}.db"
    if not template.exists():
        building = folder / f"{template.name}.{os.getpid()}"
        migrate_database(f"sqlite+aiosqlite:///{building}")
        building.replace(template)  # atomic: a concurrent run's equal file may be replaced, never torn
    shutil.copyfile(template, path)
    template.touch()  # last used
    for old in folder.glob("finsync-test-template-*"):  # other schemas' templates, or dead builds
        if old != template and old.stat().st_mtime < time.time() - TEMPLATE_DAYS * 86400:
            old.unlink(missing_ok=True)


def drop_database_later(name: str) -> None:
    """DROP DATABASE from a detached process: PostgreSQL takes seconds to remove the files (up
    to 15 s on a busy machine, at the very end of a worker's run), and no test needs to wait."""
    sql = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    script = (
        "import asyncio, asyncpg\n"
        "async def drop():\n"
        f"    conn = await asyncpg.connect({PG_DSN + '/postgres'!r})\n"
        f"    await conn.execute({sql!r})\n"
        "    await conn.close()\n"
        "asyncio.run(drop())\n"
    )
    subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives pytest
    )


@pytest.fixture(scope="session")
def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("db") / "finsync.db"
    migrated_sqlite_file(path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_database"))
    url = request.getfixturevalue("pg_database")
    if url is None:
        pytest.skip("PostgreSQL not reachable (set CI=true to make this a failure)")
    return str(url)


def make_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": tmp_path,
        "encryption_keys": [FAKE_FERNET_KEY],
        "jwt_secret": FAKE_JWT_SECRET,
        "log_format": "console",
        "log_level": "WARNING",
    }
    values.update(overrides)
    # Providers with their own settings models take ``<slug>_<field>`` here, as their
    # FINSYNC_<SLUG>_<FIELD> variables read: trading212_live_url= → providers["trading212"].
    for key in list(values):
        slug, _, name = key.partition("_")
        if slug in OWN_SETTINGS:
            values.setdefault("providers", {}).setdefault(slug, {})[name] = values.pop(key)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


OWN_SETTINGS = frozenset(meta.slug for meta in builtin_providers() if meta.settings is not None)


@pytest.fixture
def memory_providers() -> MemoryProviders:
    return MemoryProviders()


@pytest.fixture
def registry(memory_providers: MemoryProviders) -> ProviderRegistry:
    return ProviderRegistry([*builtin_providers(), memory_provider_metadata(memory_providers)])


@pytest.fixture
async def container(
    database_url: str, tmp_path: Path, registry: ProviderRegistry
) -> AsyncIterator[Container]:
    async with built(make_settings(database_url, tmp_path), registry=registry) as c:
        yield c


# Idle engines by what shapes one. SQLAlchemy keeps a statement's compiled SQL in its engine's
# cache, keyed by the engine's own dialect: a test on a fresh engine compiled every statement it
# ran again. A container disposes its engine when closed (its connections go, the cache stays),
# and the next test built for the same database and pool takes it.
_IDLE_ENGINES: dict[tuple[str, int, int], list[AsyncEngine]] = {}


@asynccontextmanager
async def built(settings: Settings, **build_options: Any) -> AsyncIterator[Container]:
    """A container on a test database, left empty and closed afterwards (cheap password hashing
    unless a test brings its own hasher)."""
    idle: list[AsyncEngine] | None = None
    if "engine" not in build_options and "uow" not in build_options:
        key = (settings.database_url, settings.database_pool_size, settings.database_max_overflow)
        idle = _IDLE_ENGINES.setdefault(key, [])
        build_options["engine"] = idle.pop() if idle else database_engine(settings)
    c = build(settings, **({"hasher": CHEAP_HASHER} | build_options))
    try:
        yield c
    finally:
        await c.jobs.drain()
        try:
            await empty_database(c)
        except Exception:  # a broken pooled connection: empty anyway, or the next test inherits rows
            await c.engine.dispose()
            await empty_database(c)
            raise
        finally:
            await c.aclose()
        if idle is not None:
            idle.append(c.engine)  # closed cleanly: nothing of this test is left in it


# Idle apps by the settings that shape an app. A fresh FastAPI app analyses every route's
# dependencies on its first request (~0.3 s of CPU here, ~100 routes); an app is only its routes,
# middleware and ``state.container``, so a test reuses an idle one built from the same values of
# APP_SETTINGS and gets its own container in it. One test at a time holds an app.
_IDLE_APPS: dict[str, list[FastAPI]] = {}
# What ``create_app`` and ``edge_stack`` read of the settings (tests/api/test_app_reuse.py
# fails when they read another); provider hosts, keys and the database do not shape an app.
APP_SETTINGS = frozenset(
    {
        "log_format",
        "log_level",
        "cors_origins",
        "docs_enabled",
        "body_limit_bytes",
        "upload_limit_bytes",
        "trusted_proxies",
    }
)


@contextmanager
def app_for(c: Container) -> Iterator[FastAPI]:
    """An app serving ``c`` (an idle one shaped by the same settings, or a new one)."""
    idle = _IDLE_APPS.setdefault(c.settings.model_dump_json(include=set(APP_SETTINGS)), [])
    if idle:
        app = idle.pop()
        app.state.container = c
        configure_logging(c.settings.log_format.value, c.settings.log_level)  # as create_app does
    else:
        app = create_app(container=c)
    try:
        yield app
    finally:
        del app.state.container
        idle.append(app)


@asynccontextmanager
async def api_client(c: Container) -> AsyncIterator[httpx.AsyncClient]:
    """HTTP into the app (in-process ASGI), backed by ``c``; every JSON answer keeps the wire format."""
    with app_for(c) as app:
        hooks = {"response": [assert_wire_format]}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver", event_hooks=hooks
        ) as http:
            yield http


async def empty_database(c: Container) -> None:
    """Isolate tests: leave every table empty for the next one.

    DELETE, children first, not TRUNCATE: a test leaves a few rows, and on PostgreSQL a TRUNCATE
    of the ~30 tables costs a new file per table and index (measured 0.1 to 0.9 s a test, against
    10 to 20 ms for these DELETEs, sent as one script in one round trip).
    """
    async with c.engine.begin() as conn:
        if c.engine.dialect.name == "postgresql":
            names = [*(t.name for t in reversed(metadata.sorted_tables)), *JOB_TABLES]
            raw = await conn.get_raw_connection()
            await raw.driver_connection.execute(";".join(f"DELETE FROM {n}" for n in names))
        else:
            for table in reversed(metadata.sorted_tables):
                await conn.execute(table.delete())


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(container) as http:
        yield http
