"""Benchmark: a full Trading 212 sync against the rate-limited fake, on virtual time.

History: 5,000 orders, 1,000 dividends, 500 cash movements; the fake enforces the
documented limits (history endpoints 6 requests / 60 s each, summary 1 / 5 s,
positions 1 / 1 s). The adapter reads summary, then positions, then the three
history endpoints concurrently, each paging sequentially at 50 items a page. With
bursts allowed, page k (0-based) of an endpoint can go out at floor(k / 6) * 60 s,
so the theoretical minimum is

    T_min = max over history endpoints of (ceil(pages / 6) - 1) * 60 s,
    pages = ceil(items / 50)

(summary and positions go out once each, before any window fills, so they add
nothing). A re-sync with nothing new reads one page per history endpoint; once a week
the full pass walks the rest of the listing, 12 pages per endpoint per sync (the
figures below show how many syncs that takes and how long each one is held).
Run: ``.venv/bin/python benchmarks/sync_trading212.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
import time
import uuid
from pathlib import Path

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.fakes

from tests.fakes.clock import VirtualClock
from tests.fakes.server import serve
from tests.fakes.trading212 import Trading212Store, create_app

from finsync.domain.ports import ProviderSession
from finsync.providers.trading212 import Trading212Settings, create_adapter

SIZES = {"history_orders": 5_000, "history_dividends": 1_000, "history_transactions": 500}
KEY, SECRET = "bench-key-0000", "bench-secret-0000"


async def run_sync(settings: Trading212Settings, session: ProviderSession, clock: VirtualClock) -> int:
    adapter = create_adapter(session, settings, clock=clock)
    try:
        accounts = await adapter.fetch_accounts()
        await adapter.fetch_holdings(accounts[0])
        batch = await adapter.fetch_transactions(accounts[0])
    finally:
        await adapter.aclose()
    return len(batch.transactions)


def theoretical_minimum() -> float:
    pages = {ep: math.ceil(n / 50) for ep, n in SIZES.items()}
    return max((math.ceil(p / 6) - 1) * 60.0 for p in pages.values())


async def main() -> None:
    # One log line per request is the product's behaviour; a benchmark need not print 130 of them.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    clock = VirtualClock()
    store = Trading212Store()
    store.seed(
        clock.now(),
        orders=SIZES["history_orders"],
        dividends=SIZES["history_dividends"],
        transactions=SIZES["history_transactions"],
    )
    store.add_position("AAPL_US_EQ", "15.5", "170.25", "185.5", fx="0.79", currency="USD")
    items = sum(SIZES.values())
    with serve(create_app(clock, api_key=KEY, api_secret=SECRET, store=store)) as url:
        settings = Trading212Settings(_env_file=None, live_url=url)
        session = ProviderSession(
            connection_id=uuid.uuid4(), credentials={"api_key": KEY, "api_secret": SECRET}, environment="live"
        )
        start_virtual, start_cpu, start_wall = clock.now(), time.process_time(), time.perf_counter()
        records = await run_sync(settings, session, clock)
        virtual = clock.now() - start_virtual
        cpu = time.process_time() - start_cpu
        wall = time.perf_counter() - start_wall
        first_requests = dict(store.requests)
        throttled = sum(store.throttled.values())

        store.reset_counters()
        clock.advance(3600)
        await run_sync(settings, session, clock)
        resync = {ep: store.requests[ep] for ep in SIZES}
        state_bytes = len(json.dumps(session.state))

        clock.advance(7 * 86_400)  # the weekly full pass is due
        passes: list[tuple[int, float]] = []
        while not passes or any("resume" in session.state[ep] for ep in SIZES):
            store.reset_counters()
            begun = clock.now()
            await run_sync(settings, session, clock)
            passes.append((store.requests["history_orders"], clock.now() - begun))
            clock.advance(6 * 3600)

    minimum = theoretical_minimum()
    print(f"items: {items} ({records} records; cancelled orders are skipped)")
    print(f"requests (first sync): {first_requests}")
    print(f"virtual sync time: {virtual:.1f} s; theoretical minimum: {minimum:.1f} s")
    print("  T_min = max_endpoint (ceil(ceil(items/50) / 6) - 1) * 60 s  (endpoints concurrent)")
    print(f"ratio: {virtual / minimum:.3f} (target <= 1.05)")
    print(f"429 answers: {throttled} (target 0)")
    print(f"re-sync requests per history endpoint: {resync} (target 1 each)")
    print(f"state kept between syncs: {state_bytes} bytes (bounded: at most 150 ids per endpoint)")
    print(
        f"weekly full pass: {len(passes)} syncs, orders pages per sync {[p for p, _ in passes]}, "
        f"longest sync {max(t for _, t in passes):.0f} s virtual"
    )
    print(
        f"CPU: {cpu / items * 1000:.3f} s per 1,000 items ({cpu:.2f} s total incl. the in-process fake "
        f"server; wall {wall:.1f} s)"
    )


if __name__ == "__main__":
    asyncio.run(main())
