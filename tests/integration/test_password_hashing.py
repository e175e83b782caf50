"""Password hashing runs in worker threads, a bounded number at a time, never on the event loop."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import pytest

from finsync.api.app import create_app
from tests.api.helpers import PASSWORD
from tests.conftest import built, make_settings
from tests.fakes.hasher import FakeHasher

pytestmark = pytest.mark.integration


async def test_the_event_loop_answers_while_a_hash_runs(database_url: str, tmp_path: Path) -> None:
    gate = threading.Event()
    hasher = FakeHasher(gate=gate)
    async with built(make_settings(database_url, tmp_path), hasher=hasher) as c:
        transport = httpx.ASGITransport(app=create_app(container=c))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            gate.set()
            await http.post("/api/v1/users", json={"email": "ada@example.com", "password": PASSWORD})
            gate.clear()
            hasher.entered.clear()
            form = {"username": "ada@example.com", "password": PASSWORD}
            login = asyncio.create_task(http.post("/api/v1/auth/token", data=form))
            assert await asyncio.to_thread(hasher.entered.wait, 10)  # the hash has started and is held
            order = []
            r = await http.get("/health/live")  # the loop is free: this completes during the hash
            order.append(("health", r.status_code, hasher.running))
            gate.set()
            r = await login
            order.append(("login", r.status_code, hasher.running))
        assert order == [("health", 200, 1), ("login", 200, 0)]
        assert threading.main_thread().ident not in hasher.threads  # before: hashed on the loop's thread


async def test_hashes_run_a_bounded_number_at_a_time(database_url: str, tmp_path: Path) -> None:
    hasher = FakeHasher(work_seconds=0.05)
    # In-flight attempts count against the throttle until they succeed: allow six at once here.
    settings = make_settings(
        database_url, tmp_path, password_hash_concurrency=2, login_attempts_per_account=10
    )
    async with built(settings, hasher=hasher) as c:
        transport = httpx.ASGITransport(app=create_app(container=c))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            await http.post("/api/v1/users", json={"email": "ada@example.com", "password": PASSWORD})
            form = {"username": "ada@example.com", "password": PASSWORD}
            answers = await asyncio.gather(*(http.post("/api/v1/auth/token", data=form) for _ in range(6)))
        assert [r.status_code for r in answers] == [200] * 6
        assert hasher.calls["verify"] == 6
        assert hasher.max_running == 2  # the excess waited for a slot
