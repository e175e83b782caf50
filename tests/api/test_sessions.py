"""Sessions: access tokens die with their refresh chain; users list and revoke them, or change password."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from finsync.bootstrap import Container
from tests.api.helpers import PASSWORD
from tests.conftest import app_for as idle_app
from tests.conftest import built, make_settings
from tests.fakes.hasher import FakeHasher
from tests.sql import statements

pytestmark = pytest.mark.e2e
NEW_PASSWORD = "a brand new passphrase for ada"


@asynccontextmanager
async def app_for(
    database_url: str, tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[FastAPI, Container]]:
    async with built(make_settings(database_url, tmp_path, **overrides), hasher=FakeHasher()) as c:
        with idle_app(c) as app:
            yield app, c


def client(app: FastAPI, address: str = "198.51.100.10", agent: str = "pytest") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40_000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", headers={"User-Agent": agent})


async def register(http: httpx.AsyncClient, email: str = "ada@example.com") -> None:
    r = await http.post("/api/v1/users", json={"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text


async def login(http: httpx.AsyncClient, email: str = "ada@example.com", password: str = PASSWORD) -> dict:
    r = await http.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert r.status_code == 200, r.text
    tokens: dict = r.json()
    return tokens


def bearer(tokens: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_access_token_is_refused_once_its_session_is_logged_out(
    database_url: str, tmp_path: Path
) -> None:
    async with app_for(database_url, tmp_path) as (app, _), client(app) as http:
        await register(http)
        tokens = await login(http)
        assert (await http.get("/api/v1/users/me", headers=bearer(tokens))).status_code == 200
        r = await http.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 204
        r = await http.get("/api/v1/users/me", headers=bearer(tokens))
        assert r.status_code == 401  # before: still accepted for up to 15 minutes


async def test_reusing_a_refresh_token_kills_every_access_token_of_the_chain(
    database_url: str, tmp_path: Path
) -> None:
    async with app_for(database_url, tmp_path) as (app, _), client(app) as http:
        await register(http)
        first = await login(http)
        second = (
            await http.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        ).json()
        assert (await http.get("/api/v1/users/me", headers=bearer(second))).status_code == 200
        await http.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})  # replay
        for tokens in (first, second):
            assert (await http.get("/api/v1/users/me", headers=bearer(tokens))).status_code == 401


async def test_the_session_check_rides_on_the_user_lookup(database_url: str, tmp_path: Path) -> None:
    async with app_for(database_url, tmp_path) as (app, c), client(app) as http:
        await register(http)
        tokens = await login(http)
        async with statements(c) as seen:
            assert (await http.get("/api/v1/users/me", headers=bearer(tokens))).status_code == 200
        (query,) = [s for s in seen if "users" in s]
        assert "auth_sessions" in query  # one query joins the user and the session


async def test_list_and_revoke_sessions(database_url: str, tmp_path: Path) -> None:
    async with (
        app_for(database_url, tmp_path) as (app, _),
        client(app, "198.51.100.10", "laptop") as laptop,
        client(app, "198.51.100.20", "phone") as phone,
    ):
        await register(laptop)
        mine, other = await login(laptop), await login(phone)
        r = await laptop.get("/api/v1/users/me/sessions", headers=bearer(mine))
        assert r.status_code == 200
        sessions = {s["user_agent"]: s for s in r.json()}
        assert set(sessions) == {"laptop", "phone"}
        assert sessions["laptop"]["current"] is True
        assert sessions["phone"]["current"] is False
        assert sessions["phone"]["address"] == "198.51.100.20"
        assert sessions["phone"]["created_at"]
        assert sessions["phone"]["last_used_at"]
        assert r.headers["cache-control"] == "no-store"

        r = await laptop.delete(f"/api/v1/users/me/sessions/{sessions['phone']['id']}", headers=bearer(mine))
        assert r.status_code == 204
        assert (await phone.get("/api/v1/users/me", headers=bearer(other))).status_code == 401
        r = await phone.post("/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
        assert r.status_code == 401
        assert (await laptop.get("/api/v1/users/me", headers=bearer(mine))).status_code == 200
        listed = (await laptop.get("/api/v1/users/me/sessions", headers=bearer(mine))).json()
        assert [s["user_agent"] for s in listed] == ["laptop"]


async def test_another_users_session_is_404(database_url: str, tmp_path: Path) -> None:
    async with app_for(database_url, tmp_path) as (app, _), client(app) as http:
        await register(http, "ada@example.com")
        await register(http, "bob@example.com")
        ada, bob = await login(http, "ada@example.com"), await login(http, "bob@example.com")
        (bobs,) = (await http.get("/api/v1/users/me/sessions", headers=bearer(bob))).json()
        r = await http.delete(f"/api/v1/users/me/sessions/{bobs['id']}", headers=bearer(ada))
        assert r.status_code == 404
        assert r.json()["type"].endswith("/not-found")
        assert (await http.get("/api/v1/users/me", headers=bearer(bob))).status_code == 200


async def test_change_password_ends_every_other_session(database_url: str, tmp_path: Path) -> None:
    async with app_for(database_url, tmp_path) as (app, _), client(app) as http:
        await register(http)
        current, other = await login(http), await login(http)
        body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        r = await http.post("/api/v1/users/me/password", json=body, headers=bearer(current))
        assert r.status_code == 204, r.text
        assert (await http.get("/api/v1/users/me", headers=bearer(other))).status_code == 401
        r = await http.post("/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
        assert r.status_code == 401
        assert (await http.get("/api/v1/users/me", headers=bearer(current))).status_code == 200
        r = await http.post("/api/v1/auth/refresh", json={"refresh_token": current["refresh_token"]})
        assert r.status_code == 200
        r = await http.post("/api/v1/auth/token", data={"username": "ada@example.com", "password": PASSWORD})
        assert r.status_code == 401
        await login(http, password=NEW_PASSWORD)


async def test_change_password_needs_the_current_one_and_a_good_new_one(
    database_url: str, tmp_path: Path
) -> None:
    async with app_for(database_url, tmp_path) as (app, _), client(app) as http:
        await register(http)
        tokens = await login(http)
        wrong = {"current_password": "not my password at all", "new_password": NEW_PASSWORD}
        r = await http.post("/api/v1/users/me/password", json=wrong, headers=bearer(tokens))
        assert r.status_code == 403
        assert r.json()["type"].endswith("/wrong-password")
        weak = {"current_password": PASSWORD, "new_password": "password1234"}
        r = await http.post("/api/v1/users/me/password", json=weak, headers=bearer(tokens))
        assert r.status_code == 422
        assert "password1234" not in r.text
        await login(http)  # nothing changed


async def test_disabling_a_user_ends_their_sessions_for_good(database_url: str, tmp_path: Path) -> None:
    """`finsync users disable` ends every session: enabling the user again revives none of them."""
    async with app_for(database_url, tmp_path) as (app, c), client(app) as http:
        await register(http)
        tokens = await login(http)
        await c.users.set_active("ada@example.com", False)
        assert (await http.get("/api/v1/users/me", headers=bearer(tokens))).status_code == 401
        await c.users.set_active("ada@example.com", True)
        # before: the old access token worked again, its session still live
        assert (await http.get("/api/v1/users/me", headers=bearer(tokens))).status_code == 401
        r = await http.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 401
        fresh = await login(http)
        listed = (await http.get("/api/v1/users/me/sessions", headers=bearer(fresh))).json()
        assert [s["current"] for s in listed] == [True]


class HeldVerify(FakeHasher):
    """Once armed, holds the next password check in its thread until released."""

    def __init__(self) -> None:
        super().__init__()
        self.armed, self.held, self.release = False, threading.Event(), threading.Event()

    def verify(self, password: str, password_hash: str) -> bool:
        if self.armed:
            self.armed = False
            self.held.set()
            self.release.wait(10)
        return super().verify(password, password_hash)


async def test_a_login_checked_against_the_old_password_gets_no_session_after_the_change(
    database_url: str, tmp_path: Path
) -> None:
    """A login whose password was being checked while the owner changed it (an attacker who
    knows the old one) must not end up with a session the change did not end (before: 200, and
    its session outlived the password change)."""
    hasher = HeldVerify()
    settings = make_settings(database_url, tmp_path, password_hash_concurrency=4)
    async with built(settings, hasher=hasher) as c:
        with idle_app(c) as app:
            async with client(app) as owner, client(app, "203.0.113.66", "attacker") as attacker:
                await register(owner)
                tokens = await login(owner)
                hasher.armed = True
                form = {"username": "ada@example.com", "password": PASSWORD}
                stolen = asyncio.create_task(attacker.post("/api/v1/auth/token", data=form))
                assert await asyncio.to_thread(hasher.held.wait, 10)
                body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
                r = await owner.post("/api/v1/users/me/password", json=body, headers=bearer(tokens))
                assert r.status_code == 204, r.text
                hasher.release.set()
                r = await stolen
                assert r.status_code == 401, r.text
                listed = (await owner.get("/api/v1/users/me/sessions", headers=bearer(tokens))).json()
                assert [s["user_agent"] for s in listed] == ["pytest"]


async def test_a_refresh_racing_a_session_revocation_neither_deadlocks_nor_outlives_it(
    database_url: str, tmp_path: Path
) -> None:
    """Refresh locks its token, then the session row (touch); revoking a session took the
    session row, then the tokens: opposite orders, a deadlock PostgreSQL broke by failing one
    (409). A transaction holding the user row stops the refresh between the two (inserting
    the new token checks its user foreign key) while the revocation starts."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: there is no interleaving to test")
    from sqlalchemy import text

    from tests.sql import until_waiting

    async with (
        app_for(database_url, tmp_path) as (app, c),
        client(app, "198.51.100.10", "laptop") as laptop,
        client(app, "198.51.100.20", "phone") as phone,
    ):
        await register(laptop)
        mine, other = await login(laptop), await login(phone)
        listed = (await laptop.get("/api/v1/users/me/sessions", headers=bearer(mine))).json()
        (target,) = [s["id"] for s in listed if s["user_agent"] == "phone"]
        async with c.engine.connect() as holder, c.engine.connect() as probe:
            await holder.execute(text("SELECT id FROM users FOR UPDATE"))
            refresh = asyncio.create_task(
                phone.post("/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
            )
            await until_waiting(probe, "refresh_tokens", unless=refresh)
            revoke = asyncio.create_task(
                laptop.delete(f"/api/v1/users/me/sessions/{target}", headers=bearer(mine))
            )
            await until_waiting(probe, sessions=2, unless=revoke)
            await holder.rollback()
            refreshed, revoked = await asyncio.gather(refresh, revoke)
        assert (refreshed.status_code, revoked.status_code) == (200, 204), (refreshed.text, revoked.text)
        # The chain ended with its session: the token the refresh just handed out is refused.
        again = {"refresh_token": refreshed.json()["refresh_token"]}
        r = await phone.post("/api/v1/auth/refresh", json=again)
        assert r.status_code == 401, r.text
        assert (await phone.get("/api/v1/users/me", headers=bearer(refreshed.json()))).status_code == 401
