"""Many fake Alpaca accounts behind one URL, for tests and benchmarks with real worker processes.

Each account is a full fake (its own data and per-account rate-limit window, on the real
clock), chosen by the ``APCA-API-KEY-ID`` header as the real API does. The front records
what only a fleet shows: requests in flight per account (two syncs of one connection at
once would overlap), 429s, and it can add latency or hold every request at a gate.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from typing import Any

from starlette.types import Receive, Scope, Send

from finsync.providers.http import SystemClock
from tests.fakes.alpaca import AlpacaStore, create_app

SECRET = "fake-alpaca-secret-for-workers"


def key_of(n: int) -> str:
    return f"fake-alpaca-key-{n:06d}"


def seeded_store() -> AlpacaStore:
    """The same deterministic account for every tenant (so syncs can be compared)."""
    store = AlpacaStore()
    store.seed(1_760_000_000.0, fills=12, others=8)
    store.add_position("AAPL", "13", "170.10", "187.43")
    return store


class Tenants:
    def __init__(self, count: int = 0, *, latency: float = 0.0) -> None:
        self.latency = latency
        self.gate = threading.Event()
        self.gate.set()
        self.apps: dict[str, Any] = {}
        self.stores: dict[str, AlpacaStore] = {}
        self.inflight: Counter[str] = Counter()
        self.max_inflight: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.throttled = 0
        self.first_seen: dict[str, float] = {}
        self._lock = threading.Lock()
        for n in range(count):
            self.add(key_of(n))

    def add(self, key: str, store: AlpacaStore | None = None) -> AlpacaStore:
        """An account; pass another's ``store`` for a second login to the very same data."""
        store = store or seeded_store()
        self.stores[key] = store
        self.apps[key] = create_app(SystemClock(), key_id=key, secret_key=SECRET, store=store)
        return store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        key = headers.get("apca-api-key-id", "")
        app = self.apps.get(key)
        if app is None:
            body = json.dumps({"code": 40110000, "message": "request is not authorized"}).encode()
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        with self._lock:
            self.inflight[key] += 1
            self.requests[key] += 1
            self.first_seen.setdefault(key, time.time())
            self.max_inflight[key] = max(self.max_inflight[key], self.inflight[key])
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            while not self.gate.is_set():  # noqa: ASYNC110 - a threading.Event the test thread opens
                await asyncio.sleep(0.01)

            async def observe(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start" and message["status"] == 429:
                    self.throttled += 1
                await send(message)

            await app(scope, receive, observe)
        finally:
            with self._lock:
                self.inflight[key] -= 1
