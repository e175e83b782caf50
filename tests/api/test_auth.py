"""Users and auth through HTTP against a real database."""

from __future__ import annotations

import httpx
import pytest

from tests.api.helpers import PASSWORD, register_and_login

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
    r = await client.post("/api/v1/users", json={"email": "b@example.com", "password": "short-pw"})
    assert r.status_code == 422
    assert r.json()["type"].endswith("/validation-error")
    assert "short-pw" not in r.text


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
