"""Benchmark: scheduled syncs on real `finsync worker` processes (PostgreSQL + procrastinate).

1. Throughput: 2,000 Alpaca connections, all due, against a fake provider server with 50 ms
   latency per request and per-account rate limits (200 requests / minute, as Alpaca's);
   1, 2 and 4 worker processes. Prints syncs per minute over a measured window, the scaling
   efficiency (throughput with N workers / (N x one worker's)) and the provider's 429s.
2. Latency when not saturated: connections fall due one after another (below capacity);
   due → started p50 / p95 (the scheduler ticks every second here; FINSYNC_SCHEDULER_TICK_SECONDS).
3. Scheduler tick cost at 100,000 connections with 1,000 due: the claim transaction (claim,
   queued runs, next_sync_at moved) and the hand-over of its 1,000 jobs to procrastinate (one
   batch; one by one only after a queueing-lock clash), each as wall time and CPU time of this
   process and of the PostgreSQL backends.

Run: ``.venv/bin/python benchmarks/sync_workers.py`` (about three minutes on two cores);
``--tick-only`` runs part 3 alone.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.fakes

from benchmarks._pg import fresh_database
from tests.fakes.server import serve
from tests.fakes.tenants import SECRET, Tenants, key_of

from finsync.application.schedule import Scheduler
from finsync.bootstrap import Container, build
from finsync.config import Settings
from finsync.domain.entities import Connection, User, utcnow
from finsync.domain.enums import ConnectionStatus
from finsync.domain.jobs import Job
from finsync.infrastructure.db.engine import session_factory
from finsync.infrastructure.db.uow import SqlUnitOfWork

DB = os.environ.get("FINSYNC_BENCH_DB", "finsync_bench_sync_workers")  # one per concurrent run
ROOT = Path(__file__).resolve().parents[1]


def workers_env(settings: Settings, url: str, concurrency: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSYNC_")}
    return env | {
        "FINSYNC_DATABASE_URL": settings.database_url,
        "FINSYNC_ENCRYPTION_KEYS": settings.encryption_keys[0].get_secret_value(),
        "FINSYNC_JWT_SECRET": settings.jwt_secret.get_secret_value() if settings.jwt_secret else "",
        "FINSYNC_ALPACA_PAPER_URL": url,
        "FINSYNC_LOG_LEVEL": "WARNING",
        "FINSYNC_SCHEDULER_TICK_SECONDS": "1",
        "FINSYNC_WORKER_CONCURRENCY": str(concurrency),
        "FINSYNC_PROVIDER_MAX_CONCURRENCY": str(concurrency),  # one provider only, here
        "FINSYNC_DATA_DIR": "/tmp",
    }


def start_workers(count: int, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    finsync = Path(sys.executable).parent / "finsync"
    return [
        subprocess.Popen([str(finsync), "worker"], env=env, cwd="/tmp", stderr=subprocess.DEVNULL)
        for _ in range(count)
    ]


def stop_workers(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc); 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(procs: Sequence[subprocess.Popen[bytes]]) -> float:
    """CPU of the worker processes so far."""
    return sum(process_cpu(proc.pid) for proc in procs)


async def backends_cpu(c: Container) -> dict[int, float]:
    """CPU so far of each PostgreSQL backend serving the benchmark's database (a local server:
    its backends are processes of this machine)."""
    async with c.engine.connect() as db:
        pids = (
            await db.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"))
        ).scalars()
        return {pid: process_cpu(pid) for pid in pids}


async def add_connections(c: Container, count: int, due: Sequence[datetime], offset: int = 0) -> None:
    """``count`` Alpaca connections, each its own user and account, due at ``due[i]``."""
    async with c.uow() as uow:
        for i in range(count):
            user = User(email=f"bench{offset + i}@example.com", password_hash="not-a-real-hash")
            await uow.users.add(user)
            await uow.connections.add(
                Connection(
                    user_id=user.id,
                    provider="alpaca",
                    name=f"Paper {i}",
                    environment="paper",
                    status=ConnectionStatus.ACTIVE,
                    credentials=c.cipher.encrypt({"key_id": key_of(offset + i), "secret_key": SECRET}),
                    sync_interval_minutes=60,
                    next_sync_at=due[i],
                )
            )
        await uow.commit()


async def scalar(c: Container, sql: str, **params: Any) -> Any:
    async with c.engine.connect() as db:
        return (await db.execute(text(sql), params)).scalar()


async def throughput(workers: int, args: argparse.Namespace, fake: Tenants, url: str) -> float:
    settings = await fresh_database(DB)
    c = build(settings)
    procs = start_workers(workers, workers_env(settings, url, args.concurrency))
    try:
        await add_connections(c, args.connections, [utcnow()] * args.connections)
        fake.throttled = 0
        while not await scalar(c, "SELECT count(*) FROM sync_runs WHERE status = 'succeeded'"):  # noqa: ASYNC110 - polling the database
            await asyncio.sleep(0.2)
        await asyncio.sleep(args.warmup)  # every worker up and busy
        pg = await backends_cpu(c)
        start, cpu, own = utcnow(), cpu_seconds(procs), time.process_time()
        await asyncio.sleep(args.seconds)
        end, cpu, own = utcnow(), cpu_seconds(procs) - cpu, time.process_time() - own
        # Backends that ended in the window are missed, new ones counted whole: pools keep theirs.
        pg_cpu = sum(now - pg.get(pid, 0.0) for pid, now in (await backends_cpu(c)).items())
        done = await scalar(
            c,
            "SELECT count(*) FROM sync_runs WHERE status = 'succeeded' "
            "AND finished_at > :s AND finished_at <= :e",
            s=start,
            e=end,
        )
        failed = await scalar(c, "SELECT count(*) FROM sync_runs WHERE status = 'failed'")
        rate: float = done / (end - start).total_seconds() * 60
        per_sync = (
            f"CPU per sync: workers {cpu / max(done, 1) * 1000:.1f} ms, "
            f"postgres {pg_cpu / max(done, 1) * 1000:.1f} ms, "
            f"fake provider + harness {own / max(done, 1) * 1000:.1f} ms"
        )
        print(
            f"  {workers} worker(s) x {args.concurrency} jobs: {rate:8.0f} syncs/min "
            f"({done} in {args.seconds:.0f} s; failed {failed}; provider 429s {fake.throttled}; {per_sync})"
        )
        return rate
    finally:
        stop_workers(procs)
        await c.aclose()


async def latency(args: argparse.Namespace, fake: Tenants, url: str, capacity: float) -> None:
    """Connections fall due at half the measured capacity (syncs/min), one after another."""
    settings = await fresh_database(DB)
    c = build(settings)
    workers = max(args.workers)
    procs = start_workers(workers, workers_env(settings, url, args.concurrency))
    try:
        await asyncio.sleep(3)  # workers up
        count = min(args.connections, max(10, int(capacity / 2 / 60 * args.latency_seconds)))
        t0 = utcnow() + timedelta(seconds=2)
        step = args.latency_seconds / count
        due = [t0 + timedelta(seconds=i * step) for i in range(count)]
        await add_connections(c, count, due, offset=0)
        fake.throttled = 0
        deadline = time.monotonic() + args.latency_seconds + 60
        while time.monotonic() < deadline:
            finished = await scalar(
                c, "SELECT count(*) FROM sync_runs WHERE status IN ('succeeded', 'failed')"
            )
            if finished >= count:
                break
            await asyncio.sleep(0.5)
        async with c.engine.connect() as db:
            rows = (
                await db.execute(
                    text(
                        "SELECT c.name, r.started_at FROM sync_runs r "
                        "JOIN connections c ON c.id = r.connection_id"
                    )
                )
            ).all()
        lags = sorted((started - due[int(name.split()[-1])]).total_seconds() for name, started in rows)
        p50 = statistics.median(lags)
        p95 = lags[int(len(lags) * 0.95) - 1]
        rate = count / args.latency_seconds * 60
        print(
            f"  {count} connections due over {args.latency_seconds:.0f} s ({rate:.0f}/min) "
            f"on {workers} workers: "
            f"due -> started p50 {p50:.2f} s, p95 {p95:.2f} s; provider 429s {fake.throttled}"
        )
    finally:
        stop_workers(procs)
        await c.aclose()


class TimedQueue:
    """The real queue, timing the hand-over of the jobs: wall time, this process's CPU and the
    PostgreSQL backends' CPU (``backends``: a container whose engine can read them)."""

    def __init__(self, inner: Any, backends: Container | None = None) -> None:
        self.inner, self.first, self.last = inner, 0.0, 0.0
        self.backends, self.cpu, self.pg_cpu = backends, 0.0, 0.0
        self.overhead = self.overhead_cpu = 0.0

    @property
    def spent(self) -> float:
        """Wall time from the first hand-over to the last (they overlap a few at a time)."""
        return self.last - self.first

    async def enqueue(self, job: Job) -> bool:
        started = time.perf_counter()
        self.first = min(self.first, started) if self.first else started
        try:
            return bool(await self.inner.enqueue(job))
        finally:
            self.last = max(self.last, time.perf_counter())

    async def enqueue_many(self, jobs: Sequence[Job]) -> int:
        snap = (time.perf_counter(), time.process_time())
        pg = await backends_cpu(self.backends) if self.backends else {}
        self._measuring(*snap)
        cpu = time.process_time()
        started = time.perf_counter()
        self.first = min(self.first, started) if self.first else started
        try:
            return int(await self.inner.enqueue_many(jobs))
        finally:
            self.last = max(self.last, time.perf_counter())
            self.cpu += time.process_time() - cpu
            if self.backends:
                snap = (time.perf_counter(), time.process_time())
                after = await backends_cpu(self.backends)
                self.pg_cpu += sum(now - pg.get(pid, 0.0) for pid, now in after.items())
                self._measuring(*snap)

    def _measuring(self, wall: float, cpu: float) -> None:
        """Time spent reading the backends' CPU: neither the claim's nor the hand-over's."""
        self.overhead += time.perf_counter() - wall
        self.overhead_cpu += time.process_time() - cpu

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def tick_cost(args: argparse.Namespace) -> None:
    settings = await fresh_database(DB)
    c = build(settings)
    try:
        async with c.engine.begin() as db:
            await db.execute(
                text(
                    "INSERT INTO users (id, email, password_hash, is_active, created_at) "
                    "VALUES (gen_random_uuid(), 'tick@example.com', 'x', true, now())"
                )
            )
            await db.execute(
                text(
                    "INSERT INTO connections (id, user_id, provider, name, status, environment, "
                    "state, sync_interval_minutes, sync_enabled, next_sync_at, failure_count, "
                    "created_at, updated_at) SELECT gen_random_uuid(), (SELECT id FROM users), "
                    "'alpaca', 'c' || g, 'active', 'paper', '{}'::jsonb, 60, true, "
                    "now() + interval '1 hour' + g * interval '1 second', 0, now(), now() "
                    "FROM generate_series(1, :n) g"
                ),
                {"n": args.tick_connections},
            )
            await db.execute(text("ANALYZE connections"))
        timed = TimedQueue(c.jobs, c)
        sessions = session_factory(c.engine)
        scheduler = Scheduler(lambda: SqlUnitOfWork(sessions, timed), c.providers, timed, batch=args.tick_due)
        claims, handovers, claim_cpu, handover_cpu = [], [], [], []
        claim_pg = handover_pg = 0.0
        for repeat in range(args.tick_repeats + 1):  # the first warms up (plans, pools): not counted
            async with c.engine.begin() as db:
                await db.execute(text("DELETE FROM sync_runs"))
                await db.execute(text("TRUNCATE procrastinate_jobs CASCADE"))
                await db.execute(
                    text(
                        "UPDATE connections SET next_sync_at = now() - interval '1 minute' WHERE id IN "
                        "(SELECT id FROM connections ORDER BY id LIMIT :due)"
                    ),
                    {"due": args.tick_due},
                )
            timed.first = timed.last = timed.cpu = timed.pg_cpu = timed.overhead = timed.overhead_cpu = 0.0
            pg = await backends_cpu(c)
            cpu = time.process_time()
            started = time.perf_counter()
            queued = await scheduler.enqueue_due()
            total = time.perf_counter() - started
            spent_cpu = time.process_time() - cpu
            after = await backends_cpu(c)
            assert queued == args.tick_due, queued
            if not repeat:
                continue
            claim_cpu.append((spent_cpu - timed.cpu - timed.overhead_cpu) * 1000)
            handover_cpu.append(timed.cpu * 1000)
            claim_pg += sum(now - pg.get(pid, 0.0) for pid, now in after.items()) - timed.pg_cpu
            handover_pg += timed.pg_cpu
            claims.append((total - timed.spent - timed.overhead) * 1000)
            handovers.append(timed.spent * 1000)
        async with c.engine.connect() as db:
            plan = "\n".join(
                r[0]
                for r in await db.execute(
                    text(
                        "EXPLAIN SELECT * FROM connections WHERE sync_enabled "
                        "AND status IN ('active', 'error') AND next_sync_at <= now() "
                        "ORDER BY next_sync_at LIMIT 1000 FOR UPDATE SKIP LOCKED"
                    )
                )
            )
        index = "ix_connections_due" in plan
        n = args.tick_repeats
        print(
            f"  {args.tick_connections:,} connections, {args.tick_due:,} due: claim transaction "
            f"median {statistics.median(claims):.1f} ms (min {min(claims):.1f}); hand-over of "
            f"{args.tick_due:,} jobs median {statistics.median(handovers):.0f} ms "
            f"({statistics.median(handovers) / args.tick_due:.2f} ms/job); partial index used: {index}\n"
            f"  CPU per tick: claim {statistics.median(claim_cpu):.1f} ms here (median) + "
            f"{claim_pg / n * 1000:.1f} ms PostgreSQL (mean of {n}: /proc counts in 10 ms ticks); "
            f"hand-over {statistics.median(handover_cpu):.1f} ms here + "
            f"{handover_pg / n * 1000:.1f} ms PostgreSQL"
        )
    finally:
        await c.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4])
    parser.add_argument("--concurrency", type=int, default=2, help="jobs per worker process")
    parser.add_argument("--latency", type=float, default=0.05, help="fake provider latency per request (s)")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("--tick-connections", type=int, default=100_000)
    parser.add_argument("--tick-due", type=int, default=1000)
    parser.add_argument("--tick-repeats", type=int, default=5)
    parser.add_argument("--tick-only", action="store_true", help="only part 3, the scheduler tick")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    if args.tick_only:
        print("scheduler tick:")
        await tick_cost(args)
        return
    fake = Tenants(args.connections, latency=args.latency)
    with serve(fake) as url:
        print(
            f"throughput ({args.connections} connections due, "
            f"{args.latency * 1000:.0f} ms per provider request):"
        )
        rates = {n: await throughput(n, args, fake, url) for n in args.workers}
        base = rates[args.workers[0]]
        for n, rate in rates.items():
            print(f"  scaling efficiency {n} workers: {rate / (n * base):.2f}")
        print("latency, not saturated (due at half the capacity measured with the most workers):")
        await latency(args, fake, url, rates[max(args.workers)])
    print("scheduler tick:")
    await tick_cost(args)


if __name__ == "__main__":
    asyncio.run(main())
