"""Wire faults *after* the broker acted: the request reaches the fake (an order is placed),
then the answer is lost to a timeout or a connection reset, or replaced by a 5xx. Also faults
before it acted (a 503 that placed nothing). Wraps any transport (in-process ASGI or loopback),
so finsync's real HTTP layer sees exactly what it would on a bad network.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import httpx

ACCEPT_FAULTS = ("accept_timeout", "accept_reset", "accept_502")
FAULTS = (*ACCEPT_FAULTS, "refuse_503")

Chooser = Callable[[httpx.Request], str | None]


def random_faults(rate: float, seed: int, read_rate: float = 0.0) -> Chooser:
    """A fault for ``rate`` of the POSTs (any kind, chosen at random, seeded) and a 503 for
    ``read_rate`` of the other requests (reconciliation must survive a broker that stutters)."""
    rng = random.Random(seed)

    def choose(request: httpx.Request) -> str | None:
        if request.method == "POST":
            return rng.choice(FAULTS) if rng.random() < rate else None
        return "refuse_503" if rng.random() < read_rate else None

    return choose


class FaultyTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, choose: Chooser) -> None:
        self.inner, self.choose = inner, choose
        self.injected: Counter[str] = Counter()
        self.queued: list[str] = []  # faults for the next matching requests, before ``choose``
        self._late: list[httpx.Request] = []  # "late_503": delivered just before the next POST

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        fault = self.queued.pop(0) if self.queued and request.method == "POST" else self.choose(request)
        while request.method == "POST" and self._late:  # a slow network delivers it at last
            await (await self.inner.handle_async_request(self._late.pop(0))).aread()
        if fault == "late_503":  # answered 503 at once, yet it reaches the broker later
            self.injected[fault] += 1
            self._late.append(request)
            return httpx.Response(503, json={"message": "injected 503"}, request=request)
        if fault is None:
            return await self.inner.handle_async_request(request)
        self.injected[fault] += 1
        if fault == "refuse_503":  # the broker never saw it
            return httpx.Response(503, json={"message": "injected 503"}, request=request)
        response = await self.inner.handle_async_request(request)  # the broker acted on it
        await response.aread()
        await response.aclose()
        if fault == "accept_timeout":
            raise httpx.ReadTimeout("injected timeout after the broker accepted", request=request)
        if fault == "accept_reset":
            try:
                raise ConnectionResetError(104, "Connection reset by peer")
            except ConnectionResetError as reset:
                raise httpx.ReadError("injected reset", request=request) from reset
        return httpx.Response(502, json={"message": "injected 502"}, request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class HostRouter(httpx.AsyncBaseTransport):
    """Several fake brokers in-process, each at its own host: ``{"t212.test": app, ...}``."""

    def __init__(self, apps: dict[str, object]) -> None:
        self.routes = {host: httpx.ASGITransport(app=app) for host, app in apps.items()}  # type: ignore[arg-type]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.routes[request.url.host].handle_async_request(request)
