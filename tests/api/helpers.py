"""HTTP helpers for API tests."""

from __future__ import annotations

import httpx

PASSWORD = "correct horse battery staple"


async def register_and_login(client: httpx.AsyncClient, email: str = "ada@example.com") -> dict[str, str]:
    """Registers a user through the API and returns Authorization headers for them."""
    r = await client.post("/api/v1/users", json={"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}
