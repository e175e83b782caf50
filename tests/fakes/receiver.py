"""A webhook receiver (a client's endpoint) on loopback: records every request and answers
with scripted status codes (then 204)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass(slots=True)
class Received:
    headers: dict[str, str]
    body: bytes
    host: str


@dataclass
class Receiver:
    statuses: list[int] = field(default_factory=list)  # answers, in order; then 204
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        self.received.append(Received(dict(request.headers), body, request.headers.get("host", "")))
        status = self.statuses.pop(0) if self.statuses else 204
        return Response(status_code=status)

    async def wait_for(self, count: int) -> list[Received]:
        """Requests arrive on the server's thread: poll briefly (an Event would need its loop)."""
        async with asyncio.timeout(10):
            while len(self.received) < count:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        return self.received
