"""Receivers that misbehave: one that trickles its answer a byte at a time, one that answers
2xx and then streams an endless body. An attempt is bounded by the webhook timeout as a
whole, and only the status matters: the body is never read."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from finsync.application.webhooks import new_secret
from finsync.infrastructure.webhooks import HttpWebhookSender

pytestmark = pytest.mark.integration
BODY = b'{"type":"sync.succeeded","timestamp":"2026-11-29T12:00:00Z","data":{}}'
Answer = Callable[[asyncio.StreamWriter, asyncio.Event], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(answer: Answer) -> AsyncIterator[str]:
    """A TCP server on 127.0.0.1 that reads the request's head and then runs ``answer`` (until
    it is done or the server stops)."""
    stop = asyncio.Event()
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            await answer(writer, stop)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        stop.set()
        server.close()
        await asyncio.gather(*handlers, return_exceptions=True)


async def trickle(writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
    """A 200, one byte every 50 ms: each read arrives long before a per-read timeout."""
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Padding: slowly-slowly\r\n\r\n":
        if stop.is_set():
            return
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.05)


async def endless(writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
    """A 200 at once, then a chunked body that never ends (64 KiB every 10 ms)."""
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 65536
    while not stop.is_set():
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
        await asyncio.sleep(0.01)


async def test_an_answer_trickled_past_the_timeout_fails_the_attempt() -> None:
    sender = HttpWebhookSender(["127.0.0.1"], timeout=0.5)
    async with raw_server(trickle) as url:
        async with asyncio.timeout(10):
            result = await sender.send(url, new_secret(), "msg_1", BODY)
    assert not result.ok
    assert result.status_code is None
    assert result.error is not None
    assert "127.0.0.1" in result.error
    assert result.duration_ms < 1500  # the timeout bounds the attempt, not each read


async def test_an_endless_body_after_a_2xx_is_not_read() -> None:
    sender = HttpWebhookSender(["127.0.0.1"], timeout=2)
    async with raw_server(endless) as url:
        async with asyncio.timeout(10):
            result = await sender.send(url, new_secret(), "msg_1", BODY)
    assert (result.status_code, result.error) == (200, None)
    assert result.duration_ms < 1500
