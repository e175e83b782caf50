"""finsync behind a real uvicorn, configured exactly as `finsync serve` configures it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from finsync.api.app import create_app
from finsync.cli import server_options
from finsync.providers.http import http_transport
from tests.api.helpers import PASSWORD
from tests.conftest import built, make_settings
from tests.fakes.hasher import FakeHasher
from tests.fakes.server import serve

pytestmark = pytest.mark.integration


@contextmanager
def serving(app: Any) -> Iterator[int]:
    """``app`` on uvicorn as `finsync serve` configures it (its lifespan builds the container);
    yields the port."""
    options = server_options() | {"lifespan": "auto", "log_level": None, "timeout_keep_alive": 5}
    with serve(app, **options) as url:
        port = urlsplit(url).port
        assert port is not None
        yield port


@asynccontextmanager
async def server(database_url: str, tmp_path: Path, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app builds its container in its lifespan, on the server's own event loop (asyncpg
    connections belong to one loop); the test's container only empties the database afterwards."""
    settings = make_settings(database_url, tmp_path, **overrides)
    async with built(settings):
        with serving(create_app(settings, hasher=FakeHasher())) as port:
            async with httpx.AsyncClient(
                transport=http_transport(), base_url=f"http://127.0.0.1:{port}"
            ) as http:
                yield http


async def session_address(http: httpx.AsyncClient) -> str:
    """Log in claiming to be someone else (X-Forwarded-For) and read the address finsync recorded."""
    await http.post("/api/v1/users", json={"email": "ada@example.com", "password": PASSWORD})
    spoofed = {"X-Forwarded-For": "203.0.113.9"}
    form = {"username": "ada@example.com", "password": PASSWORD}
    tokens = (await http.post("/api/v1/auth/token", data=form, headers=spoofed)).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    (session,) = (await http.get("/api/v1/users/me/sessions", headers=headers)).json()
    return str(session["address"])


async def test_forwarded_headers_from_loopback_are_not_believed_by_default(
    database_url: str, tmp_path: Path
) -> None:
    async with server(database_url, tmp_path) as http:
        assert await session_address(http) == "127.0.0.1"  # before: uvicorn trusted loopback


async def test_forwarded_headers_from_a_trusted_proxy_are_believed(database_url: str, tmp_path: Path) -> None:
    async with server(database_url, tmp_path, trusted_proxies=["127.0.0.0/8"]) as http:
        assert await session_address(http) == "203.0.113.9"


async def test_access_log_is_json_only_with_secrets_redacted(
    database_url: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    async with server(database_url, tmp_path, log_format="json", log_level="INFO") as http:
        r = await http.get(
            "/api/v1/connections/callback/schwab", params={"code": "fake-code-123", "state": "fake-state-456"}
        )
        assert r.status_code < 500
    out, err = capfd.readouterr()
    assert "fake-code-123" not in out + err
    assert "fake-state-456" not in out + err
    lines = [line for line in out.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # JSON mode prints nothing else
    matches = [r for r in records if r["event"] == "http_request"]
    assert len(matches) == 1, records
    access = matches[0]
    assert access["query"] == "code=***&state=***"
    assert access["client"] == "127.0.0.1"
    assert "uvicorn" not in err  # no plain uvicorn lines on stderr either


async def _post_streaming(port: int, path: str, total: int, *, declare: bool) -> tuple[bytes, int]:
    """Send ``total`` bytes (generated) while reading: the status line, and how much was sent by then."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    length = f"Content-Length: {total}" if declare else "Transfer-Encoding: chunked"
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n{length}\r\n\r\n".encode()
    )
    sent, chunk = 0, b" " * 65536
    frame = chunk if declare else b"%x\r\n%s\r\n" % (len(chunk), chunk)

    async def write() -> None:
        nonlocal sent
        try:
            while sent < total:
                writer.write(frame)
                await writer.drain()
                sent += len(chunk)
        except ConnectionError:
            pass

    sending = asyncio.create_task(write())
    try:
        status = await asyncio.wait_for(reader.readline(), timeout=30)
    except ConnectionError:
        # The server answered and closed while our bytes were still arriving: its kernel then
        # resets the connection, and a reset that overtakes the answer discards it (TCP, not
        # finsync). Our writer may meet it first, as a broken pipe the reader reports too. The
        # promise under test is how little was sent by then.
        status = b""
    sending.cancel()
    writer.close()
    return status, sent


@pytest.mark.parametrize("declare", [True, False], ids=["content-length", "chunked"])
async def test_a_huge_body_is_refused_long_before_it_is_sent(
    database_url: str, tmp_path: Path, declare: bool
) -> None:
    total = 256 * 1024 * 1024
    settings = make_settings(database_url, tmp_path)
    async with built(settings):
        with serving(create_app(settings, hasher=FakeHasher())) as port:
            status, sent = await _post_streaming(port, "/api/v1/users", total, declare=declare)
    assert status == b"" or status.startswith(b"HTTP/1.1 413"), status  # b"": reset (see above)
    assert sent < total // 8  # the 1 MiB limit plus what socket buffers held
