"""Login timing for known vs unknown emails: does the answer's timing tell which accounts exist?

Real Argon2, real PostgreSQL, through the HTTP app (in-process ASGI). Wrong passwords for a
registered email and for made-up ones, interleaved, a few dozen each; the throttle is opened
wide so that it does not interfere. Before the fix unknown emails answered in 3-9 ms and known
ones in 110-600 ms; now both verify one Argon2 hash.

    .venv/bin/python benchmarks/login_timing.py
"""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx

from _pg import fresh_database  # benchmarks/ is the script's directory

DB = "finsync_bench_hardening_login"
RUNS = 40
PASSWORD = "fake benchmark passphrase for ada"


async def main() -> None:
    from finsync.api.app import create_app
    from finsync.bootstrap import build

    settings = await fresh_database(
        DB, login_attempts_per_account=10_000, login_attempts_per_address=10_000, login_backoff_after=10_000
    )
    container = build(settings)
    transport = httpx.ASGITransport(app=create_app(container=container))
    timings: dict[str, list[float]] = {"known email, wrong password": [], "unknown email": []}
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            r = await http.post("/api/v1/users", json={"email": "ada@example.com", "password": PASSWORD})
            assert r.status_code == 201, r.text
            # warm-up: connection pool, the dummy hash used for unknown emails
            for email in ("ada@example.com", "warmup@example.com"):
                await http.post("/api/v1/auth/token", data={"username": email, "password": "wrong guess"})
            for i in range(RUNS):
                for label, email in (
                    ("known email, wrong password", "ada@example.com"),
                    ("unknown email", f"nobody{i}@example.com"),
                ):
                    started = time.perf_counter()
                    r = await http.post(
                        "/api/v1/auth/token", data={"username": email, "password": "wrong guess"}
                    )
                    timings[label].append((time.perf_counter() - started) * 1000)
                    assert r.status_code == 401, r.text
    finally:
        await container.aclose()
    print(f"login with a wrong password, {RUNS} each, interleaved (ms):")
    for label, values in timings.items():
        q = statistics.quantiles(values, n=10)
        print(f"  {label:<30} median {statistics.median(values):6.1f}   p10 {q[0]:6.1f}   p90 {q[-1]:6.1f}")
    known, unknown = (statistics.median(v) for v in timings.values())
    print(f"  ratio known/unknown (medians): {known / unknown:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
