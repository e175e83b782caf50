"""Registration: NIST SP 800-63B passwords, and first_user_only holds under concurrent requests."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from finsync.infrastructure.db.tables import UserRow
from tests.api.helpers import PASSWORD
from tests.conftest import app_for, built, make_settings

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        (" " * 10, "at least 12 characters"),
        ("1234567890", "at least 12 characters"),
        (" " * 12, "easy to guess"),
        ("123456789012", "easy to guess"),
        ("password1234", "easy to guess"),
        ("qwerty123456", "easy to guess"),
        ("aaaaaaaaaaaa", "easy to guess"),
        ("ada@example.com!", "easy to guess"),  # the email itself
    ],
)
async def test_weak_passwords_are_refused_with_a_clear_reason(
    client: httpx.AsyncClient, password: str, reason: str
) -> None:
    r = await client.post("/api/v1/users", json={"email": "ada@example.com", "password": password})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert reason in r.json()["detail"]
    assert password.strip() == "" or password not in r.text  # never echoed
    assert (
        await client.post("/api/v1/auth/token", data={"username": "ada@example.com", "password": password})
    ).status_code == 401


@pytest.mark.parametrize(
    "password", [PASSWORD, "dragonfly-lantern-42", "xk2m9vq4tb7w", "Zürich ist schön 2026"]
)
async def test_long_unguessable_passwords_need_no_composition_rules(
    client: httpx.AsyncClient, password: str
) -> None:
    r = await client.post("/api/v1/users", json={"email": "ada@example.com", "password": password})
    assert r.status_code == 201, r.text


async def test_openapi_describes_the_password_rule(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/api/v1/openapi.json")).json()
    password = spec["components"]["schemas"]["UserCreate"]["properties"]["password"]
    assert password["minLength"] == 12
    assert "common" in password["description"]


async def test_first_user_only_holds_under_concurrent_registrations(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path, registration="first_user_only")
    async with built(settings) as c:
        with app_for(c) as app:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                answers = await asyncio.gather(
                    *(
                        http.post(
                            "/api/v1/users", json={"email": f"user{i}@example.com", "password": PASSWORD}
                        )
                        for i in range(4)
                    )
                )
        assert sorted(r.status_code for r in answers) == [201, 403, 403, 403], [r.text for r in answers]
        async with c.uow() as uow:
            assert await uow.users.count() == 1


async def test_concurrent_registrations_of_one_email_give_one_user(client: httpx.AsyncClient) -> None:
    answers = await asyncio.gather(
        *(
            client.post("/api/v1/users", json={"email": "ada@example.com", "password": PASSWORD})
            for _ in range(3)
        )
    )
    assert sorted(r.status_code for r in answers) == [201, 409, 409], [r.text for r in answers]


@pytest.mark.parametrize(
    "typed",
    [
        "ada@xn--bcher-kva.de",
        "Ada@BÜCHER.de",
        "ada@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",  # full-width "example"
        "Jose\u0301@example.com",
    ],
)
async def test_you_log_in_with_the_email_you_registered_with(client: httpx.AsyncClient, typed: str) -> None:
    """Registration stores the normalised address (IDNA domain in Unicode, NFC, lower case); a
    login with the address as typed at registration finds it (before: 401)."""
    r = await client.post("/api/v1/users", json={"email": typed, "password": PASSWORD})
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/auth/token", data={"username": typed, "password": PASSWORD})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("cli", "api"),
    [
        ("ada@xn--bcher-kva.de", "ada@bücher.de"),
        ("ada@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com", "ada@example.com"),
        ("jose\u0301@example.com", "jos\u00e9@example.com"),
    ],
)
async def test_one_mailbox_is_one_account_however_it_is_spelled(
    database_url: str, tmp_path: Path, cli: str, api: str
) -> None:
    """A user created by `finsync users create` (no API schema in between) and one registered
    through the API with another spelling of the same address: the second is a 409 (before: two
    accounts for one mailbox)."""
    async with built(make_settings(database_url, tmp_path)) as c:
        await c.user_auth.register(cli, PASSWORD)  # what `finsync users create` calls
        with app_for(c) as app:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                r = await http.post("/api/v1/users", json={"email": api, "password": PASSWORD})
                assert r.status_code == 409, r.text
                r = await http.post("/api/v1/auth/token", data={"username": cli, "password": PASSWORD})
                assert r.status_code == 200, r.text


async def test_an_address_stored_before_normalisation_still_logs_in(
    database_url: str, tmp_path: Path
) -> None:
    """`finsync users create` used to store an address only trimmed and lowered: such a user
    still logs in with it."""
    async with built(make_settings(database_url, tmp_path)) as c:
        await c.user_auth.register("ada@bücher.de", PASSWORD)
        async with c.engine.begin() as conn:
            table = UserRow.__table__  # type: ignore[attr-defined]
            await conn.execute(update(table).values(email="ada@xn--bcher-kva.de"))
        with app_for(c) as app:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                form = {"username": "ada@xn--bcher-kva.de", "password": PASSWORD}
                r = await http.post("/api/v1/auth/token", data=form)
                assert r.status_code == 200, r.text
