"""Users and auth through HTTP against a real database."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from finsync.infrastructure.db.tables import UserRow
from tests.api.helpers import PASSWORD, register_and_login
from tests.conftest import app_for, built, make_settings
from tests.fakes.hasher import FakeHasher

pytestmark = pytest.mark.e2e


async def test_register_login_me(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    r = await client.get("/api/v1/users/me", headers=headers)
    assert r.status_code == 200
    assert r.json()["email"] == "ada@example.com"
    assert "password" not in r.text


async def test_duplicate_email_is_conflict_problem(client: httpx.AsyncClient) -> None:
    await register_and_login(client)
    r = await client.post("/api/v1/users", json={"email": "ADA@example.com", "password": PASSWORD})
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/conflict")


async def test_short_password_rejected_without_echo(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/users", json={"email": "b@example.com", "password": "short-pw-11"})
    assert r.status_code == 422
    assert "at least 12 characters" in r.json()["detail"]
    assert "short-pw-11" not in r.text


async def test_wrong_password_then_throttled(client: httpx.AsyncClient) -> None:
    await register_and_login(client)
    for _ in range(5):
        r = await client.post(
            "/api/v1/auth/token", data={"username": "ada@example.com", "password": "wrong-wrong"}
        )
        assert r.status_code == 401
    r = await client.post("/api/v1/auth/token", data={"username": "ada@example.com", "password": PASSWORD})
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["type"].endswith("/too-many-attempts")


async def test_refresh_rotates_and_reuse_revokes_the_chain(client: httpx.AsyncClient) -> None:
    await register_and_login(client)
    r = await client.post("/api/v1/auth/token", data={"username": "ada@example.com", "password": PASSWORD})
    first = r.json()["refresh_token"]
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert r.status_code == 200
    second = r.json()["refresh_token"]
    assert second != first
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})  # replay
    assert r.status_code == 401
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": second})  # chain revoked
    assert r.status_code == 401


async def test_logout_revokes_refresh_token(client: httpx.AsyncClient) -> None:
    await register_and_login(client)
    r = await client.post("/api/v1/auth/token", data={"username": "ada@example.com", "password": PASSWORD})
    token = r.json()["refresh_token"]
    assert (await client.post("/api/v1/auth/logout", json={"refresh_token": token})).status_code == 204
    assert (await client.post("/api/v1/auth/refresh", json={"refresh_token": token})).status_code == 401


async def test_missing_or_bad_token_is_401_problem(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/accounts")).status_code == 401
    r = await client.get("/api/v1/accounts", headers={"Authorization": "Bearer not-a-jwt"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["type"].endswith("/authentication-failed")


async def test_unknown_and_inactive_users_cost_one_hash_like_everyone(
    database_url: str, tmp_path: Path
) -> None:
    """No user enumeration by timing: a password is verified whether or not the account exists."""
    hasher = FakeHasher()
    async with built(make_settings(database_url, tmp_path), hasher=hasher) as c:
        with app_for(c) as app:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                await register_and_login(http, "ada@example.com")
                await register_and_login(http, "gone@example.com")
                async with c.engine.begin() as conn:
                    table = UserRow.__table__  # type: ignore[attr-defined]
                    await conn.execute(
                        update(table).where(table.c.email == "gone@example.com").values(is_active=False)
                    )
                for email in ("nobody@example.com", "gone@example.com", "ada@example.com"):
                    before = hasher.calls["verify"]
                    r = await http.post(
                        "/api/v1/auth/token", data={"username": email, "password": "wrong password guess"}
                    )
                    assert r.status_code == 401
                    assert r.json()["detail"] == "incorrect email or password"
                    assert hasher.calls["verify"] == before + 1, email
