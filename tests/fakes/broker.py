"""The request pipeline the fake API-key brokers (Trading 212, Alpaca) share.

Every request is counted, answered with ``x-ratelimit-*`` headers from a sliding
window on the shared (virtual) clock, checked for credentials, given the next
injected fault, refused with a 429 once its window is full, and recorded. What
differs per broker (auth scheme, error bodies, windows, scope checks, the bodies
themselves) is passed in as a :class:`Wire`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from finsync.providers.http import Clock

FAULTS = frozenset({"401", "403", "429", "500", "503", "timeout", "malformed"})


def iso(epoch: float) -> str:
    """``2025-10-09T08:53:20.000Z``: the UTC instant format both brokers send."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class BrokerStore:
    """Per-endpoint counters and queued faults; subclasses add the account data."""

    endpoints: ClassVar[frozenset[str]] = frozenset()

    requests: Counter[str] = field(default_factory=Counter)
    throttled: Counter[str] = field(default_factory=Counter)  # 429s from the limiter (not injected)
    faults: defaultdict[str, deque[str]] = field(default_factory=lambda: defaultdict(deque))
    hang_seconds: float = 1.0  # real seconds a "timeout" fault stalls

    def inject(self, endpoint: str, fault: str, times: int = 1) -> None:
        if endpoint not in self.endpoints or fault not in FAULTS:
            raise ValueError(f"unknown endpoint or fault: {endpoint!r}, {fault!r}")
        self.faults[endpoint].extend([fault] * times)

    def reset_counters(self) -> None:
        self.requests.clear()
        self.throttled.clear()


class Window:
    """Sliding-window limiter, like the real per-account limits.

    ``idle_reset`` is how far ahead of now an empty window reports its reset;
    ``reported`` names the ``x-ratelimit-*`` headers the broker sends.
    """

    def __init__(
        self,
        limit: int,
        period: float,
        *,
        idle_reset: float = 0.0,
        reported: tuple[str, ...] = ("limit", "period", "remaining", "reset", "used"),
    ) -> None:
        self.limit, self.period, self.times = limit, period, deque[float]()
        self.idle_reset, self.reported = idle_reset, reported

    def headers(self, now: float) -> dict[str, str]:
        while self.times and self.times[0] <= now - self.period:
            self.times.popleft()
        reset = math.ceil(self.times[0] + self.period) if self.times else math.ceil(now + self.idle_reset)
        values = {
            "limit": self.limit,
            "period": int(self.period),
            "remaining": self.limit - len(self.times),
            "reset": reset,
            "used": len(self.times),
        }
        return {f"x-ratelimit-{name}": str(values[name]) for name in self.reported}


@dataclass(frozen=True)
class Wire:
    """One broker's wire facts; bodies are JSON values (or a ready ``Response``)."""

    authorized: Callable[[Request], bool]
    unauthorized: Any  # body of the 401 for bad credentials
    too_many: Any  # body of every 429
    injected: Callable[[int], Any]  # body of an injected HTTP fault
    refuse: Callable[[str], tuple[int, Any] | None] = lambda endpoint: None  # e.g. a missing scope
    # Valid credentials the broker no longer honours (a revoked key): (status, body), or None.
    revoked: Callable[[Request], tuple[int, Any] | None] = lambda request: None


def create_broker_app(
    clock: Clock,
    store: BrokerStore,
    wire: Wire,
    *,
    paths: Mapping[str, str],
    windows: Mapping[str, Window],
    bodies: Mapping[str, Callable[[Request], Any]],
    methods: Mapping[str, str] | None = None,
) -> Starlette:
    """An app serving ``paths`` (endpoint name → URL path, GET unless ``methods`` names another);
    a body may be a coroutine (one that reads the request's JSON). ``app.state.store`` is ``store``."""

    def make_handler(name: str) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            store.requests[name] += 1
            now = clock.now()
            window = windows[name]
            headers = window.headers(now)
            if not wire.authorized(request):
                return _json(wire.unauthorized, 401, headers)
            if gone := wire.revoked(request):
                return _json(gone[1], gone[0], headers)
            fault = store.faults[name].popleft() if store.faults[name] else None
            if fault == "timeout":
                await asyncio.sleep(store.hang_seconds)
            elif fault == "429":
                headers |= {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(math.ceil(now) + 10)}
                return _json(wire.too_many, 429, headers)
            elif fault is not None and fault != "malformed":
                return _json(wire.injected(int(fault)), int(fault), headers)
            if refused := wire.refuse(name):
                return _json(refused[1], refused[0], headers)
            if int(headers["x-ratelimit-remaining"]) <= 0:
                store.throttled[name] += 1
                return _json(wire.too_many, 429, headers)
            window.times.append(now)
            headers = window.headers(now)
            body = bodies[name](request)
            if inspect.isawaitable(body):
                body = await body
            if isinstance(body, Response):
                body.headers.update(headers)
                return body
            text = json.dumps(body)
            if fault == "malformed":
                text = text[: len(text) // 2]
            return Response(text, 200, headers, media_type="application/json")

        return handler

    verbs = methods or {}
    app = Starlette(
        routes=[
            Route(path, make_handler(name), methods=[verbs.get(name, "GET")]) for name, path in paths.items()
        ]
    )
    app.state.store = store
    return app


def _json(body: Any, status: int, headers: dict[str, str]) -> Response:
    return Response(json.dumps(body), status, headers, media_type="application/json")
