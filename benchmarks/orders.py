"""Benchmark: what finsync adds to an order over a bot calling the broker itself.

A fake Alpaca (the test fake, its order state machine included) answers every call after
``--latency`` (50 ms) of real time, as a broker across the internet would. Measured in ONE
run, alternating so machine load hits both alike:

- direct: the bot's own ``POST /v2/orders`` with httpx (keys in its .env, nothing recorded);
- finsync: ``POST /api/v1/accounts/{id}/orders`` with an API token, through the app in
  process (ASGI): token check, limits, the order row committed before the send, the send
  (same fake, same latency), the answer and the audit trail committed after it.

Prints p50/p99 wall time of each, finsync's added latency per order (p50/p99 of the paired
differences) and the CPU time per order of this process for each path (the machine is
shared: CPU time is the steadier figure). Goal: added p50 at most 5 ms.

    .venv/bin/python benchmarks/orders.py [--orders 150] [--latency 0.05] [--backend sqlite|postgresql]
        [--database NAME]   # PostgreSQL: the database to drop and recreate (finsync_bench_orders)
        [--daily-limit N]   # the connection gets max_orders_per_day=N: today's orders are counted
                            # under the settings row's lock (one more transaction on PostgreSQL)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import structlog
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.fakes

from tests.fakes.alpaca import AlpacaStore
from tests.fakes.alpaca import create_app as alpaca_app

from _pg import fresh_database  # benchmarks/ is the script's directory
from finsync.api.app import create_app
from finsync.bootstrap import build
from finsync.cli import migrate_database
from finsync.config import Settings
from finsync.providers.http import SystemClock

KEY_ID, SECRET = "bench-alpaca-key-id", "bench-alpaca-secret-key"
EMAIL, PASSWORD = "bot-owner@example.com", "correct horse battery staple 42"
ORDER = {"symbol": "AAPL", "side": "buy", "type": "market", "quantity": "1"}
DIRECT = {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"}


class SlowBroker(httpx.AsyncBaseTransport):
    """The fake broker, ``latency`` seconds away."""

    def __init__(self, app: Any, latency: float) -> None:
        self.inner, self.latency = httpx.ASGITransport(app=app), latency
        self.calls = 0  # finsync must add no broker round trip: one call per order, as direct

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        await asyncio.sleep(self.latency)
        return await self.inner.handle_async_request(request)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def settings_for(backend: str, database: str = "finsync_bench_orders") -> Settings:
    if backend == "postgresql":
        return await fresh_database(database, alpaca_paper_url="http://alpaca.test")
    url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'orders.db'}"
    await asyncio.to_thread(migrate_database, url)
    return Settings(
        _env_file=None,
        database_url=url,
        encryption_keys=["ZmFrZS10ZXN0LWtleS1ub3QtYS1zZWNyZXQtMDAwMDA="],
        jwt_secret="fake-bench-jwt-secret-not-for-production-use",
        log_level="WARNING",
        providers={"alpaca": {"paper_url": "http://alpaca.test"}},
    )


async def main(
    orders: int,
    latency: float,
    backend: str,
    daily_limit: int | None = None,
    database: str = "finsync_bench_orders",
) -> None:
    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    # Two fake brokers, alike: each path has its own 200-a-minute budget, so neither waits for
    # the other's calls.
    brokers = []
    for _ in range(2):
        store = AlpacaStore()
        store.account["buying_power"] = "100000000"
        app = alpaca_app(SystemClock(), key_id=KEY_ID, secret_key=SECRET, store=store)
        brokers.append(SlowBroker(app, latency))
    container = build(await settings_for(backend, database), adapter_options={"transport": brokers[0]})
    app = create_app(container=container)
    api = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://finsync.test")
    direct = httpx.AsyncClient(
        transport=brokers[1],
        base_url="http://alpaca.test",
        headers={"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET},
    )
    try:
        await api.post("/api/v1/users", json={"email": EMAIL, "password": PASSWORD})
        token = (await api.post("/api/v1/auth/token", data={"username": EMAIL, "password": PASSWORD})).json()
        user = {"Authorization": f"Bearer {token['access_token']}"}
        body = {
            "provider": "alpaca",
            "environment": "paper",
            "credentials": {"key_id": KEY_ID, "secret_key": SECRET},
        }
        conn = (await api.post("/api/v1/connections", headers=user, json=body)).json()["id"]
        await container.jobs.drain()
        account = (await api.get("/api/v1/accounts", headers=user)).json()["items"][0]["id"]
        limits = {} if daily_limit is None else {"max_orders_per_day": daily_limit}
        trading = {"trading": {"enabled": True, **limits}, "password": PASSWORD}
        assert (await api.patch(f"/api/v1/connections/{conn}", headers=user, json=trading)).status_code == 200
        scopes = {"name": "bench", "scopes": [f"trade:{conn}"]}
        secret = (await api.post("/api/v1/api-tokens", headers=user, json=scopes)).json()["token"]
        bot = {"Authorization": f"Bearer {secret}"}

        checkouts = [0]  # pooled connections taken (finsync's orders only use the pool)
        event.listen(
            container.engine.sync_engine, "checkout", lambda *_: checkouts.__setitem__(0, checkouts[0] + 1)
        )
        calls = {"finsync": brokers[0].calls, "direct": brokers[1].calls}
        walls: dict[str, list[float]] = {"direct": [], "finsync": []}
        cpu = dict.fromkeys(walls, 0.0)
        for i in range(orders + 5):  # the first 5 warm up (connections, caches)
            for path in ("direct", "finsync") if i % 2 else ("finsync", "direct"):
                c0, t0 = time.process_time(), time.perf_counter()
                if path == "direct":
                    r = await direct.post("/v2/orders", json=DIRECT)
                else:
                    headers = bot | {"Idempotency-Key": f"bench-{i}"}
                    r = await api.post(f"/api/v1/accounts/{account}/orders", headers=headers, json=ORDER)
                wall, used = time.perf_counter() - t0, time.process_time() - c0
                assert r.status_code in (200, 201), r.text
                if i >= 5:
                    walls[path].append(wall * 1000)
                    cpu[path] += used * 1000
        calls = {"finsync": brokers[0].calls - calls["finsync"], "direct": brokers[1].calls - calls["direct"]}
    finally:
        await api.aclose()
        await direct.aclose()
        await container.aclose()
    added = [f - d for f, d in zip(walls["finsync"], walls["direct"], strict=True)]
    limit = "" if daily_limit is None else f", max_orders_per_day {daily_limit}"
    print(f"{orders} orders, broker latency {latency * 1000:.0f} ms per call, backend {backend}{limit}")
    for path, values in walls.items():
        print(f"  {path:8s} wall p50 {pct(values, 0.5):7.1f} ms  p99 {pct(values, 0.99):7.1f} ms  "
              f"CPU {cpu[path] / orders:5.2f} ms/order  broker calls/order "
              f"{calls[path] / (orders + 5):.2f}")  # fmt: skip
    print(f"  finsync pool checkouts/order {checkouts[0] / (orders + 5):.2f}")
    print(f"  added by finsync: p50 {statistics.median(added):.1f} ms, p99 {pct(added, 0.99):.1f} ms "
          f"(CPU {(cpu['finsync'] - cpu['direct']) / orders:.2f} ms/order; goal: p50 <= 5 ms)")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=150, help="at most 190: one minute's budget")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--daily-limit", type=int, default=None, help="max_orders_per_day on the connection")
    parser.add_argument(
        "--database", default="finsync_bench_orders", help="PostgreSQL: the database to (re)create"
    )
    args = parser.parse_args()
    asyncio.run(main(args.orders, args.latency, args.backend, args.daily_limit, args.database))
