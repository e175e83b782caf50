"""The HTTP edge: body limits, security headers, CORS, docs served offline, malformed tokens, access logs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from finsync.bootstrap import Container
from tests.api.helpers import PASSWORD, register_and_login
from tests.conftest import FAKE_JWT_SECRET, app_for, built, make_settings

pytestmark = pytest.mark.e2e
MiB = 1024 * 1024


@asynccontextmanager
async def edge_client(
    database_url: str, tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Container]]:
    async with built(make_settings(database_url, tmp_path, **overrides)) as c:
        with app_for(c) as app:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                yield http, c


class Recorder:
    """Wraps the app: how many body bytes had been read when the answer started."""

    def __init__(self, app: Any) -> None:
        self.app, self.read = app, 0
        self.read_before_answer: int | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def recording_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                self.read += len(message.get("body", b""))
            return message

        async def recording_send(message: Any) -> None:
            if message["type"] == "http.response.start" and self.read_before_answer is None:
                self.read_before_answer = self.read
            await send(message)

        await self.app(scope, recording_receive, recording_send)


@asynccontextmanager
async def body_client(
    database_url: str, tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Recorder]]:
    async with built(make_settings(database_url, tmp_path, **overrides)) as c:
        with app_for(c) as app:
            recorder = Recorder(app)
            transport = httpx.ASGITransport(app=recorder)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                yield http, recorder


class Counted:
    """A generated request body that counts how much of it the server pulled."""

    def __init__(self, total: int, chunk: int = 64 * 1024, prefix: bytes = b"") -> None:
        self.total, self.chunk, self.prefix, self.sent = total, chunk, prefix, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.prefix:
            self.sent += len(self.prefix)
            yield self.prefix
        while self.sent < self.total:
            self.sent += self.chunk
            yield b" " * self.chunk


# --- body limits ---------------------------------------------------------------------------------


async def test_json_body_over_the_limit_is_413_before_it_is_read(database_url: str, tmp_path: Path) -> None:
    async with body_client(database_url, tmp_path, body_limit_bytes=MiB) as (client, app):
        body = Counted(64 * MiB, prefix=b'{"email": "a@example.com", "password": "x"')
        r = await client.post("/api/v1/users", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 413, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert "1,048,576" in r.json()["detail"]
        assert app.read_before_answer is not None
        assert app.read_before_answer <= MiB + body.chunk  # answered as soon as the limit was crossed
        assert body.sent < 32 * MiB  # then only a little more is drained before the connection closes


async def test_declared_length_over_the_limit_is_413_without_reading(
    database_url: str, tmp_path: Path
) -> None:
    async with body_client(database_url, tmp_path, body_limit_bytes=MiB) as (client, app):
        body = Counted(2 * MiB)
        r = await client.post(
            "/api/v1/auth/refresh",
            content=body,
            headers={"Content-Type": "application/json", "Content-Length": str(2 * MiB)},
        )
        assert r.status_code == 413
        assert app.read_before_answer == 0


async def test_upload_over_its_limit_is_413_before_authentication(database_url: str, tmp_path: Path) -> None:
    async with body_client(database_url, tmp_path, upload_limit_bytes=MiB) as (client, app):
        head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.ofx"\r\n\r\n'
        body = Counted(8 * MiB, prefix=head)
        r = await client.post(
            "/api/v1/imports", content=body, headers={"Content-Type": "multipart/form-data; boundary=b"}
        )
        assert r.status_code == 413, r.text  # no token: before the fix, 401 after reading it all
        assert r.json()["type"].endswith("/file-too-large")
        assert app.read_before_answer is not None
        assert app.read_before_answer <= MiB + 64 * 1024 + body.chunk


async def test_upload_within_its_limit_passes_the_small_body_limit(database_url: str, tmp_path: Path) -> None:
    overrides = {"upload_limit_bytes": MiB, "body_limit_bytes": 64 * 1024}
    async with edge_client(database_url, tmp_path, **overrides) as (client, _):
        headers = await register_and_login(client)
        files = {"file": ("a.ofx", b"not a statement " * 20_000, "application/x-ofx")}  # 320 kB
        r = await client.post("/api/v1/imports", headers=headers, files=files)
        assert r.status_code == 415, r.text  # read and judged by the importer, not cut off at 64 kB


# --- security headers, CORS ----------------------------------------------------------------------


async def test_security_headers_on_every_response(client: httpx.AsyncClient) -> None:
    for r in (
        await client.get("/health/live"),
        await client.get("/api/v1/accounts"),  # 401
        await client.get("/nowhere"),  # 404
        await client.get("/docs"),
    ):
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


async def test_token_responses_are_not_stored(client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/users", json={"email": "ada@example.com", "password": PASSWORD})
    r = await client.post("/api/v1/auth/token", data={"username": "ada@example.com", "password": PASSWORD})
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["pragma"] == "no-cache"
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": r.json()["refresh_token"]})
    assert r.headers["cache-control"] == "no-store"


async def test_cors_only_for_allowed_origins(database_url: str, tmp_path: Path) -> None:
    preflight = {"Origin": "https://app.example.test", "Access-Control-Request-Method": "GET"}
    async with edge_client(database_url, tmp_path) as (client, _):
        r = await client.options("/api/v1/accounts", headers=preflight)
        assert "access-control-allow-origin" not in r.headers  # empty allow-list by default
    allowed = {"cors_origins": ["https://app.example.test"]}
    async with edge_client(database_url, tmp_path, **allowed) as (client, _):
        r = await client.options("/api/v1/accounts", headers=preflight)
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://app.example.test"
        r = await client.get("/health/live", headers={"Origin": "https://evil.example.test"})
        assert "access-control-allow-origin" not in r.headers


# --- docs, index, OpenAPI ------------------------------------------------------------------------


async def test_docs_load_their_assets_from_this_server(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        r = await client.get(page)
        assert r.status_code == 200
        assert "https://" not in r.text, f"{page} loads something remote"
        assert "http://" not in r.text, f"{page} loads something remote"
        for asset in [*_attr(r.text, 'src="'), *_attr(r.text, 'href="')]:
            served = await client.get(asset)
            assert served.status_code == 200, asset
            assert served.content, asset


def _attr(html: str, marker: str) -> list[str]:
    return [part.split('"', 1)[0] for part in html.split(marker)[1:]]


async def test_docs_can_be_turned_off(database_url: str, tmp_path: Path) -> None:
    async with edge_client(database_url, tmp_path, docs_enabled=False) as (client, _):
        assert (await client.get("/docs")).status_code == 404
        assert (await client.get("/redoc")).status_code == 404
        assert (await client.get("/")).json()["docs"] is None


async def test_openapi_at_both_paths_and_an_index_at_root(client: httpx.AsyncClient) -> None:
    short, long = await client.get("/openapi.json"), await client.get("/api/v1/openapi.json")
    assert short.status_code == long.status_code == 200
    assert short.json() == long.json()
    index = (await client.get("/")).json()
    assert index["docs"] == "/docs"
    assert index["openapi"] == "/openapi.json"
    assert index["health"] == "/health/ready"
    assert index["api"] == "/api/v1"


# --- malformed tokens ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"exp": "soon"},
        {"exp": [1]},
        {"exp": {"at": 1}},
        {"exp": True},
        {"sub": 123},
        {"sub": ["a"]},
        {"sub": "not-a-uuid"},
        {"typ": 5},
        {"sid": 7},
        {"sid": "not-a-uuid"},
        {"iat": "yesterday"},
        {"iat": [0]},
    ],
)
async def test_signed_token_with_a_malformed_claim_is_401(client: httpx.AsyncClient, bad: dict) -> None:
    claims = {
        "sub": "0190f5a4-0000-7000-8000-000000000001",
        "sid": "0190f5a4-0000-7000-8000-000000000002",
        "typ": "access",
        "iat": 1_700_000_000,
        "exp": 4_000_000_000,
    } | bad
    token = jwt.encode(claims, FAKE_JWT_SECRET, algorithm="HS256")
    r = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, r.text
    assert r.json()["type"].endswith("/authentication-failed")


# --- access log ------------------------------------------------------------------------------------


async def test_access_log_is_structured_and_redacts_secret_parameters(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = {"log_format": "json", "log_level": "INFO"}
    async with edge_client(database_url, tmp_path, **settings) as (client, _):
        capsys.readouterr()
        await client.get(
            "/api/v1/connections/callback",
            params={
                "code": "fake-oauth-code-123",
                "state": "fake-state-456",
                "ref": "fake-ref-789",
                "x": "1",
            },
        )
    out = capsys.readouterr().out
    for secret in ("fake-oauth-code-123", "fake-state-456", "fake-ref-789"):
        assert secret not in out
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]  # JSON only, no plain lines
    (access,) = [line for line in lines if line.get("event") == "http_request"]
    assert access["path"] == "/api/v1/connections/callback"
    assert "x=1" in access["query"]
    assert access["method"] == "GET"
    assert isinstance(access["status"], int)
    assert "request_id" in access
