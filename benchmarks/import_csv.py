"""CSV vs OFX import, side by side: ``python benchmarks/import_csv.py [--transactions N] [--runs R]``.

The same N bank transactions (import_ofx's generator: varied payees, amounts and dates,
unique FITIDs) as an OFX statement and as a CSV export (``Date, Description, Memo, Amount,
Currency, Transaction ID``: read by the guessed column mapping, deduplicated by the id
column as OFX is by FITID). Measured in one run: the readers alone (bytes → keys, what a
re-import reads; bytes → every row mapped, what a first import reads; the garbage collector
paused as imports pause it), then uploads through the HTTP API into a fresh PostgreSQL
database: first imports (a new user each time) and re-imports of the same file (all
duplicates), wall time and this process's CPU time (the API's work; PostgreSQL's is not
in it). Goal (issue #14): the CSV import is at least as fast as the OFX import of the same
transactions.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import statistics
import time
from collections.abc import Callable
from typing import Any

from finsync.gcpause import paused_gc
from finsync.providers.csv import CsvFormat
from finsync.providers.csv.reader import rows_of
from finsync.providers.ofx import parse_ofx
from finsync.providers.ofx.format import OfxFormat
from import_ofx import _login, generate_statement

DB = "finsync_bench_import_csv"


def to_csv(ofx: bytes) -> bytes:
    """The OFX statement's transactions as a bank's CSV export would list them."""
    (statement,) = parse_ofx(ofx).statements
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["Date", "Description", "Memo", "Amount", "Currency", "Transaction ID"])
    for t in statement.transactions:
        when = (t.user_date or t.posted).date()
        writer.writerow([when.isoformat(), t.name or "", t.memo or "", str(t.amount), "USD", t.fitid])
    return out.getvalue().encode()


def _rate(label: str, count: int, work: Callable[[], object], runs: int) -> float:
    """Median CPU seconds of ``work`` (the machine is shared: CPU time, not wall time)."""
    timings = []
    with paused_gc():
        for _ in range(runs):
            started = time.process_time()
            result = work()
            timings.append(time.process_time() - started)
            del result  # freeing one run's records is not part of the next measurement
    seconds = statistics.median(timings)
    print(f"{label:<34} {seconds * 1000:9.1f} ms CPU  {count / seconds:>10,.0f} tx/s")
    return seconds


async def end_to_end(files: dict[str, bytes], count: int, runs: int, database: str) -> dict[str, float]:
    import httpx

    from _pg import fresh_database
    from finsync.api.app import create_app
    from finsync.bootstrap import build

    largest = max(len(data) for data in files.values())
    settings = await fresh_database(database, upload_limit_bytes=max(largest + 1, 50 * 1024 * 1024))
    container = build(settings)
    transport = httpx.ASGITransport(app=create_app(container=container))
    results: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
        users = 0
        warm = await _login(client, 10_000)
        for name, data in files.items():  # warm both code paths up once
            await client.post(
                "/api/v1/imports",
                headers=warm,
                files={"file": (name, data[:4000] if name.endswith("csv") else generate_statement(10))},
            )
        for _ in range(runs):  # interleaved, so drift on a shared machine hits both alike
            for name, data in files.items():
                users += 1
                headers = await _login(client, users)
                for what, counted in (
                    ("first", "transactions_inserted"),
                    ("again", "transactions_already_present"),
                ):
                    started, cpu_started = time.perf_counter(), time.process_time()
                    r = await client.post("/api/v1/imports", headers=headers, files={"file": (name, data)})
                    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
                    assert r.status_code == 201, r.text
                    assert r.json()["counts"][counted] == count, r.json()["counts"]
                    results.setdefault(f"{name} {what}", []).append(seconds)
                    cpu.setdefault(f"{name} {what}", []).append(cpu_seconds)
    await container.aclose()
    medians = {key: statistics.median(values) for key, values in results.items()}
    cpu_medians = {key: statistics.median(values) for key, values in cpu.items()}
    for what in ("first", "again"):
        label = "first import" if what == "first" else "re-import (all duplicates)"
        for name in files:
            seconds, cpu_seconds = medians[f"{name} {what}"], cpu_medians[f"{name} {what}"]
            print(
                f"end-to-end {label:<27} {name:<9} {seconds * 1000:9.1f} ms  {count / seconds:>10,.0f} tx/s"
                f"  (API CPU {cpu_seconds * 1000:7.1f} ms)"
            )
        ofx, csv_ = medians[f"bench.ofx {what}"], medians[f"bench.csv {what}"]
        ofx_cpu, csv_cpu = cpu_medians[f"bench.ofx {what}"], cpu_medians[f"bench.csv {what}"]
        print(
            f"  CSV / OFX ratio ({label}): wall {csv_ / ofx:.2f}, "
            f"API CPU {csv_cpu / ofx_cpu:.2f} (< 1: CSV faster)"
        )
    print(f"  (medians of {runs} uploads each, upload → rows committed → 201)")
    return medians | {f"{key} cpu": value for key, value in cpu_medians.items()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database", default=DB)
    parser.add_argument("--reader-only", action="store_true")
    args = parser.parse_args(argv)
    ofx = generate_statement(args.transactions)
    data = to_csv(ofx)
    print(f"{args.transactions:,} transactions: OFX {len(ofx) / 1e6:.1f} MB, CSV {len(data) / 1e6:.1f} MB")
    csv_format, ofx_format = CsvFormat(), OfxFormat()
    parsed = csv_format.read(data)
    assert parsed.format == "csv"
    assert sum(len(rows_of(s)) for s in parsed.statements) == args.transactions
    print(f"readers, median of {args.runs} runs:")
    csv_keys = _rate("CSV read, keys only", args.transactions, lambda: csv_format.read(data), args.runs)
    ofx_keys = _rate("OFX read, keys only", args.transactions, lambda: ofx_format.read(ofx), args.runs)
    print(f"  CSV / OFX reader time ratio, keys only (a re-import): {csv_keys / ofx_keys:.2f}")
    csv_s = _rate("CSV read + map every row", args.transactions, lambda: _all(csv_format, data), args.runs)
    ofx_s = _rate("OFX read + map every row", args.transactions, lambda: _all(ofx_format, ofx), args.runs)
    print(f"  CSV / OFX reader time ratio, every row (a first import): {csv_s / ofx_s:.2f}")
    results: dict[str, Any] = {
        "csv_reader_s": csv_s, "ofx_reader_s": ofx_s, "csv_keys_s": csv_keys, "ofx_keys_s": ofx_keys,
    }  # fmt: skip
    if not args.reader_only:
        e2e = asyncio.run(
            end_to_end({"bench.ofx": ofx, "bench.csv": data}, args.transactions, args.runs, args.database)
        )
        results |= e2e
    return results


def _all(fmt: CsvFormat | OfxFormat, data: bytes) -> int:
    """The read as a first import runs it: every deferred transaction built."""
    parsed = fmt.read(data)
    built = 0
    for statement in parsed.statements:
        built += len(statement.transactions)
        for group in statement.deferred:
            built += sum(1 for _ in group.build(list(range(len(group.keys)))))
    return built


if __name__ == "__main__":
    main()
