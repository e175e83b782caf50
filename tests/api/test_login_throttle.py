"""The login throttle: attackers slow themselves down, never lock the owner out; state in the database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from finsync.api.app import create_app
from finsync.bootstrap import Container, build
from tests.api.conftest import clock_of
from tests.api.helpers import PASSWORD
from tests.conftest import app_for, built, make_settings
from tests.fakes.clock import VirtualClock
from tests.fakes.hasher import FakeHasher

pytestmark = pytest.mark.e2e
OWNER = "ada@example.com"
OWNER_IP, ATTACKER_IP = "198.51.100.10", "203.0.113.5"


class Site:
    """One finsync process seen from several client addresses."""

    def __init__(self, app: FastAPI, container: Container) -> None:
        self.app, self.container = app, container

    def client(self, address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(address, 40_000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")

    async def login(self, address: str, email: str = OWNER, password: str = PASSWORD) -> httpx.Response:
        async with self.client(address) as http:
            return await http.post("/api/v1/auth/token", data={"username": email, "password": password})

    async def rows(self) -> int:
        from finsync.infrastructure.db.tables import LoginThrottleRow

        table = LoginThrottleRow.__table__  # type: ignore[attr-defined]
        async with self.container.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


@asynccontextmanager
async def site(
    database_url: str, tmp_path: Path, vclock: VirtualClock, **overrides: Any
) -> AsyncIterator[Site]:
    settings = make_settings(database_url, tmp_path, **overrides)
    async with built(settings, clock=clock_of(vclock), hasher=FakeHasher()) as c:
        with app_for(c) as app:
            s = Site(app, c)
            async with s.client(OWNER_IP) as http:
                r = await http.post("/api/v1/users", json={"email": OWNER, "password": PASSWORD})
                assert r.status_code == 201, r.text
            assert (await s.login(OWNER_IP)).status_code == 200  # the owner's usual client
            yield s


async def test_wrong_passwords_from_elsewhere_do_not_lock_the_owner_out(
    database_url: str, tmp_path: Path, vclock: VirtualClock
) -> None:
    async with site(database_url, tmp_path, vclock) as s:
        for _ in range(5):
            assert (await s.login(ATTACKER_IP, password="wrong password guess")).status_code == 401
        blocked = await s.login(ATTACKER_IP)  # even the right password, from the attacker's client
        assert blocked.status_code == 429
        assert 1 <= int(blocked.headers["retry-after"]) <= 300
        assert (await s.login(OWNER_IP)).status_code == 200
        assert (await s.login("198.51.100.77")).status_code == 200  # the owner on a new device, too


async def test_failures_on_made_up_emails_block_only_that_client_behind_a_proxy(
    database_url: str, tmp_path: Path, vclock: VirtualClock
) -> None:
    async with site(database_url, tmp_path, vclock, trusted_proxies=["127.0.0.1"]) as s:

        async def via_proxy(client_ip: str, email: str, password: str) -> int:
            async with s.client("127.0.0.1") as http:
                r = await http.post(
                    "/api/v1/auth/token",
                    data={"username": email, "password": password},
                    headers={"X-Forwarded-For": client_ip},
                )
                return r.status_code

        for i in range(20):
            assert await via_proxy(ATTACKER_IP, f"nobody{i}@example.com", "wrong password guess") == 401
        assert await via_proxy(ATTACKER_IP, "nobody99@example.com", "wrong password guess") == 429
        assert await via_proxy(OWNER_IP, OWNER, PASSWORD) == 200
        assert await via_proxy("198.51.100.200", OWNER, PASSWORD) == 200


async def test_blocks_end_with_the_window(database_url: str, tmp_path: Path, vclock: VirtualClock) -> None:
    async with site(database_url, tmp_path, vclock, login_window_seconds=300) as s:
        for _ in range(5):
            await s.login(ATTACKER_IP, password="wrong password guess")
        r = await s.login(ATTACKER_IP)
        assert r.status_code == 429
        vclock.advance(int(r.headers["retry-after"]))
        assert (await s.login(ATTACKER_IP)).status_code == 200


async def test_account_backoff_slows_new_clients_but_not_the_owners(
    database_url: str, tmp_path: Path, vclock: VirtualClock
) -> None:
    overrides = {"login_backoff_after": 10, "login_backoff_max_seconds": 8}
    async with site(database_url, tmp_path, vclock, **overrides) as s:
        for i in range(10):  # a distributed guess: one try from each of ten addresses
            assert (await s.login(f"203.0.113.{i}", password="wrong password guess")).status_code == 401
        slowed = await s.login("198.51.100.77")  # a client that never logged in to this account
        assert slowed.status_code == 429
        assert slowed.headers["retry-after"] == "1"
        assert (await s.login(OWNER_IP)).status_code == 200  # the owner's known client: never slowed
        delays = []
        for i in range(5):  # the backoff grows with each further failure, up to its cap
            r = await s.login(f"203.0.114.{i}", password="wrong password guess")
            if r.status_code == 429:
                delays.append(int(r.headers["retry-after"]))
                vclock.advance(delays[-1])
                r = await s.login(f"203.0.114.{i}", password="wrong password guess")
            assert r.status_code == 401
        assert delays == [1, 2, 4, 8, 8][: len(delays)]
        assert len(delays) >= 4


async def test_concurrent_guesses_get_no_more_than_the_limit(
    database_url: str, tmp_path: Path, vclock: VirtualClock
) -> None:
    async with site(database_url, tmp_path, vclock) as s:
        answers = await asyncio.gather(
            *(s.login(ATTACKER_IP, password=f"wrong password {i}") for i in range(20))
        )
        codes = sorted(r.status_code for r in answers)
        assert codes == [401] * 5 + [429] * 15


async def test_state_is_shared_between_processes(
    database_url: str, tmp_path: Path, vclock: VirtualClock
) -> None:
    async with site(database_url, tmp_path, vclock) as first:
        second_container = build(
            make_settings(database_url, tmp_path), clock=clock_of(vclock), hasher=FakeHasher()
        )
        second = Site(create_app(container=second_container), second_container)  # another API process
        try:
            for _ in range(5):
                assert (await first.login(ATTACKER_IP, password="wrong password guess")).status_code == 401
            assert (await second.login(ATTACKER_IP)).status_code == 429
        finally:
            await second_container.engine.dispose()


async def test_throttle_storage_is_bounded(database_url: str, tmp_path: Path, vclock: VirtualClock) -> None:
    async with site(database_url, tmp_path, vclock) as s:
        before = await s.rows()
        for i in range(200):  # a different made-up email on every try
            await s.login(ATTACKER_IP, email=f"nobody{i}@example.com", password="wrong password guess")
        # the client row, then one pair and one account row per try it was allowed (20): the
        # 180 refused tries left nothing behind
        assert await s.rows() - before <= 1 + 2 * 20
        vclock.advance(24 * 3600)
        await s.login("192.0.2.1", email="someone@example.com", password="wrong password guess")
        assert await s.rows() <= before + 3  # expired entries are pruned
