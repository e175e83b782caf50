"""Streaming into the in-process app: httpx's ASGITransport waits for the whole answer (an
event stream never ends), so this transport hands the body over chunk by chunk and tells the
app the client left when the response is closed. Plus a small Server-Sent Events reader."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx


class _Body(httpx.AsyncByteStream):
    def __init__(self, chunks: asyncio.Queue[bytes | None], left: asyncio.Event, task: asyncio.Task[None]):
        self._chunks, self._left, self._task = chunks, left, task

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self._chunks.get()) is not None:
            if chunk:
                yield chunk

    async def aclose(self) -> None:
        self._left.set()  # the app hears http.disconnect
        try:
            await asyncio.wait_for(asyncio.shield(self._task), 5)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class StreamingASGITransport(httpx.AsyncBaseTransport):
    def __init__(self, app: Any) -> None:
        self.app = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = b"".join([part async for part in request.stream])  # type: ignore[union-attr]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for (k, v) in request.headers.raw],
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "server": (request.url.host, request.url.port),
            "client": ("127.0.0.1", 123),
            "root_path": "",
        }
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        left, started = asyncio.Event(), asyncio.Event()
        head: dict[str, Any] = {}
        asked = False

        async def receive() -> dict[str, Any]:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": body, "more_body": False}
            await left.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                head.update(status=message["status"], headers=message.get("headers", []))
                started.set()
            elif message["type"] == "http.response.body":
                await chunks.put(message.get("body", b""))
                if not message.get("more_body", False):
                    await chunks.put(None)

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            finally:
                await chunks.put(None)

        task = asyncio.create_task(run())
        waiting = asyncio.create_task(started.wait())
        await asyncio.wait([task, waiting], return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if not started.is_set():
            await task  # raises what the app raised
            raise RuntimeError("the app answered nothing")
        return httpx.Response(head["status"], headers=head["headers"], stream=_Body(chunks, left, task))


@dataclass
class Frame:
    """One SSE frame: an event (``event``, ``id``, ``data``) or only comments."""

    event: str | None = None
    id: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)

    @property
    def json(self) -> Any:
        return json.loads(self.data)


class Events:
    """Reads frames off a streaming response, each within a timeout (a test never hangs)."""

    def __init__(self, response: httpx.Response, timeout: float = 10.0) -> None:
        self.response, self._timeout = response, timeout
        self._lines = response.aiter_lines()

    async def frame(self) -> Frame:
        return await asyncio.wait_for(self._frame(), self._timeout)

    async def _frame(self) -> Frame:
        frame, seen = Frame(), False
        async for line in self._lines:
            if line == "":
                if seen:
                    return frame
                continue
            seen = True
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                frame.comments.append(value)
            elif name == "data":
                frame.data = f"{frame.data}\n{value}" if frame.data else value
            elif name in ("event", "id"):
                setattr(frame, name, value)
        raise EOFError("the stream ended")

    async def event(self) -> Frame:
        """The next frame with an event (heartbeats skipped), within the timeout."""
        return await asyncio.wait_for(self._event(), self._timeout)

    async def _event(self) -> Frame:
        while (frame := await self._frame()).event is None:
            pass
        return frame


def streaming_client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=StreamingASGITransport(app), base_url="http://testserver")
