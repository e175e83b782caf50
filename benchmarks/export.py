"""Data-export benchmark: ``python benchmarks/export.py [--small 10000] [--large 500000]``.

Seeds a fresh PostgreSQL database with two users, one with ``--small`` and one with
``--large`` transactions (realistic raw payloads, one balance snapshot and sync run each),
then, for each user and format, starts the API in a server process of its own (uvicorn),
downloads ``GET /api/v1/users/me/export`` over loopback and prints the server's peak RSS
(VmHWM, reset after login) during the download, the download time and the export rate. Streaming means the two
peaks are about equal, whatever the history's size.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _pg import fresh_database
from finsync.bootstrap import build
from finsync.config import Settings
from finsync.domain.entities import Connection
from finsync.domain.enums import (
    AccountType,
    ConnectionStatus,
    TransactionSubtype,
    TransactionType,
)
from finsync.domain.records import ProviderAccount, ProviderTransaction

DB = "finsync_bench_export_selfservice"
PASSWORD = "benchmark password, not a secret"
BATCH = 50_000


def _transactions(start: int, n: int) -> list[ProviderTransaction]:
    first = date(2015, 1, 1)
    return [
        ProviderTransaction(
            provider_transaction_id=f"T{i:09d}",
            type=TransactionType.TRANSFER,
            subtype=TransactionSubtype.WITHDRAWAL,
            amount=Decimal(-(i % 25_000)).scaleb(-2),
            currency="USD",
            transaction_date=first + timedelta(days=i // 200),
            description=f"POS PURCHASE MERCHANT #{i % 997} CITY",
            raw={
                "FITID": f"T{i:09d}",
                "TRNTYPE": "POS",
                "TRNAMT": str(Decimal(-(i % 25_000)).scaleb(-2)),
                "NAME": f"MERCHANT #{i % 997}",
                "MEMO": "DEBIT CARD PURCHASE",
            },
        )
        for i in range(start, start + n)
    ]


async def seed(settings: Settings, email: str, count: int) -> None:
    """A user with one connection, one account and ``count`` transactions (COPY, in batches)."""
    container = build(settings)
    try:
        user = await container.user_auth.register(email, PASSWORD)
        connection = Connection(
            user_id=user.id, provider="memory", name="Bench", status=ConnectionStatus.ACTIVE
        )
        async with container.uow() as uow:
            await uow.connections.add(connection)
            acct = ProviderAccount(provider_account_id="A1", name="Checking", type=AccountType.CHECKING,
                                   currency="USD", balance=Decimal("1234.56"))  # fmt: skip
            (account,), _ = await uow.accounts.upsert(connection, [acct])
            await uow.commit()
        for start in range(0, count, BATCH):
            async with container.uow() as uow:
                await uow.transactions.upsert(account, _transactions(start, min(BATCH, count - start)))
                await uow.commit()
    finally:
        await container.aclose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _hwm_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process, MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def export_once(settings: Settings, email: str, fmt: str, expected: int) -> dict[str, float]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSYNC_")} | {
        "FINSYNC_DATABASE_URL": settings.database_url,
        "FINSYNC_ENCRYPTION_KEYS": settings.encryption_keys[0].get_secret_value(),
        "FINSYNC_JWT_SECRET": settings.jwt_secret.get_secret_value() if settings.jwt_secret else "",
        "FINSYNC_LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(  # noqa: ASYNC220 - the server must be a process of its own
        [sys.executable, "-m", "uvicorn", "finsync.api.app:create_app", "--factory",
         "--port", str(port), "--log-level", "warning"], env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=600) as http:
            for _ in range(200):
                try:
                    if (await http.get("/health/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            token = (
                await http.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
            ).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            # Reset the peak (login's Argon2 hash alone takes 64 MB): what follows is the export's.
            Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # noqa: ASYNC240 - procfs, instant
            before_rss, _ = _hwm_mb(server.pid)
            cpu = _cpu_seconds(server.pid)
            size, rows, started = 0, 0, time.perf_counter()
            async with http.stream(
                "GET", "/api/v1/users/me/export", headers=headers, params={"format": fmt}
            ) as r:
                r.raise_for_status()
                async for chunk in r.aiter_raw():
                    size += len(chunk)
                    rows += chunk.count(b"\n")  # JSON: one record per line
            elapsed = time.perf_counter() - started
            _, peak = _hwm_mb(server.pid)
            cpu = _cpu_seconds(server.pid) - cpu
    finally:
        server.terminate()
        server.wait(10)
    if fmt == "json":
        assert rows >= expected, f"export held {rows} lines for {expected} transactions"
    return {
        "before": before_rss,
        "peak": peak,
        "cpu": cpu,
        "seconds": elapsed,
        "mb": size / 1e6,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=500_000)
    args = parser.parse_args()
    settings = await fresh_database(DB)
    users = {"small@example.com": args.small, "large@example.com": args.large}
    started = time.perf_counter()
    for email, count in users.items():
        await seed(settings, email, count)
    print(f"seeded {sum(users.values()):,} transactions in {time.perf_counter() - started:.1f} s")
    for fmt in ("json", "csv"):
        peaks = {}
        for email, count in users.items():
            f = await export_once(settings, email, fmt, count)
            peaks[count] = f["peak"]
            print(
                f"{fmt:4} {count:>9,} tx: {f['mb']:7.1f} MB in {f['seconds']:6.2f} s "
                f"({count / f['seconds']:>9,.0f} tx/s; server CPU {f['cpu']:.2f} s, "
                f"{count / max(f['cpu'], 0.01):>9,.0f} tx per CPU second); RSS "
                f"{f['before']:.0f} MB before the export, peak during it {f['peak']:.0f} MB"
            )
        print(f"{fmt:4} peak ratio large/small: {peaks[args.large] / peaks[args.small]:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
