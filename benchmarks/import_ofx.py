"""OFX import benchmark: ``python benchmarks/import_ofx.py [--transactions N]``.

Generates a realistic OFX 1.x SGML bank statement (header, sign-on, N ``STMTTRN`` with
unique FITIDs and varied payees, amounts and dates, ledger and available balances) and
measures, in one run: the reader alone and reader + mappers (``parse_ofx`` and
``map_document``, eager); then, in a child process of its own so that its peak RSS is the
import's, uploads through the HTTP API into a fresh PostgreSQL database: first imports
(a new user each time) and re-imports of the same file (all duplicates).
Targets (issue #3): end-to-end >= 50,000 tx/s, re-import >= 100,000 tx/s, peak < 400 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal

from finsync.providers.ofx import map_document, parse_ofx

RUNS = 5
RUNS_E2E = 5
DB = "finsync_bench_import"
_PAYEES = (
    ("POS", "MCDONALD'S #112", "POS MERCHANDISE;MCDONALD'S #112"),
    ("POS", "STARBUCKS STORE 0042", "POS PURCHASE"),
    ("POS", "WHOLE FOODS MKT #10234", "DEBIT CARD PURCHASE"),
    ("POS", "SHELL OIL 57442", "FUEL"),
    ("ATM", "ATM WITHDRAWAL 5TH AVE", "ATM CASH WITHDRAWAL"),
    ("CHECK", "CHECK", "CHECK PAID"),
    ("DEBIT", "AUTOMATIC WITHDRAWAL, ELECTRIC BILL", "WEB(S) PAYMENT"),
    ("PAYMENT", "CITICORP CHOICE", "BILL PAYMENT /0001/N********"),
    ("SRVCHG", "MONTHLY SERVICE FEE", "SERVICE CHARGE"),
    ("XFER", "ONLINE TRANSFER TO SAVINGS", "XFER TO ****1234"),
    ("CREDIT", "DIRECT DEP ACME CORP PAYROLL", "PAYROLL"),
    ("INT", "INTEREST EARNED", "INTEREST PAYMENT"),
    ("DEP", "MOBILE DEPOSIT", "DEPOSIT REF 88812"),
    ("POS", "AMAZON.COM*MK1AB2CD3 AMZN.COM/BILL", "ONLINE PURCHASE & SHIPPING"),
)
_HEADER = (
    "OFXHEADER:100\r\nDATA:OFXSGML\r\nVERSION:102\r\nSECURITY:NONE\r\nENCODING:USASCII\r\n"
    "CHARSET:1252\r\nCOMPRESSION:NONE\r\nOLDFILEUID:NONE\r\nNEWFILEUID:NONE\r\n\r\n"
)


def generate_statement(n: int, seed: int = 42) -> bytes:
    """An SGML bank statement with ``n`` transactions (deterministic for a given seed)."""
    rng = random.Random(seed)
    first = date(2021, 1, 1)
    days = max(1, min(3 * 365, n // 20))
    end = first + timedelta(days=days)
    parts = [
        _HEADER,
        "<OFX>\r\n<SIGNONMSGSRSV1><SONRS><STATUS><CODE>0<SEVERITY>INFO</STATUS>\r\n",
        f"<DTSERVER>{end:%Y%m%d}120000.000[-5:EST]<LANGUAGE>ENG<FI><ORG>Benchmark Bank<FID>1234</FI>",
        "<INTU.BID>1234</SONRS></SIGNONMSGSRSV1>\r\n",
        "<BANKMSGSRSV1><STMTTRNRS><TRNUID>1<STATUS><CODE>0<SEVERITY>INFO</STATUS>\r\n",
        "<STMTRS><CURDEF>USD<BANKACCTFROM><BANKID>123456789<ACCTID>000123456789<ACCTTYPE>CHECKING",
        "</BANKACCTFROM>\r\n",
        f"<BANKTRANLIST><DTSTART>{first:%Y%m%d}<DTEND>{end:%Y%m%d}120000.000[-5:EST]\r\n",
    ]
    balance = Decimal("1000.00")
    for i in range(n):
        trntype, name, memo = _PAYEES[rng.randrange(len(_PAYEES))]
        cents = rng.randint(1, 25_000) if trntype not in ("CREDIT", "DEP") else rng.randint(50_000, 400_000)
        amount = Decimal(cents).scaleb(-2)
        if trntype not in ("CREDIT", "DEP", "INT"):
            amount = -amount
        balance += amount
        posted = first + timedelta(days=i * days // n)
        lines = [
            "<STMTTRN>",
            f"<TRNTYPE>{trntype}",
            f"<DTPOSTED>{posted:%Y%m%d}120000.000[-5:EST]",
            f"<DTUSER>{posted:%Y%m%d}",
            f"<TRNAMT>{amount}",
            f"<FITID>{posted:%Y%m%d}{i:09d}",
        ]
        if trntype == "CHECK":
            lines.append(f"<CHECKNUM>{1000 + i % 9000}")
        lines += [f"<NAME>{name.replace('&', '&amp;')}", f"<MEMO>{memo.replace('&', '&amp;')}", "</STMTTRN>"]
        parts.append("\r\n".join(lines) + "\r\n")
    parts += [
        "</BANKTRANLIST>\r\n",
        f"<LEDGERBAL><BALAMT>{balance}<DTASOF>{end:%Y%m%d}120000.000[-5:EST]</LEDGERBAL>\r\n",
        f"<AVAILBAL><BALAMT>{balance - 100}<DTASOF>{end:%Y%m%d}120000.000[-5:EST]</AVAILBAL>\r\n",
        "</STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>\r\n",
    ]
    return "".join(parts).encode("cp1252")


def _median_seconds(work: Callable[[], object], runs: int = RUNS) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        timings.append(time.perf_counter() - started)
        del result  # freeing the previous document is not part of the next measurement
    return statistics.median(timings)


def _count(data: bytes) -> int:
    return sum(len(s.transactions) + len(s.investment_transactions) for s in parse_ofx(data).statements)


def rate(label: str, data: bytes, work: Callable[[], object]) -> float:
    """Transactions per second of ``work`` on ``data`` (median of RUNS runs); prints it."""
    count = _count(data)
    seconds = _median_seconds(work)
    per_second = count / seconds
    print(f"{label:<16} {count:>9,} transactions  {seconds * 1000:8.1f} ms  {per_second:>12,.0f} tx/s")
    return per_second


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--transactions", type=int, default=100_000, help="STMTTRN count (default 100000)")
    parser.add_argument("--reader-only", action="store_true", help="skip the PostgreSQL end-to-end part")
    parser.add_argument(
        "--e2e-only", action="store_true", help="only the end-to-end part, so peak RSS is the import's own"
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    data = generate_statement(args.transactions)
    print(
        f"generated {args.transactions:,} transactions, {len(data) / 1e6:.1f} MB "
        f"in {time.perf_counter() - started:.1f} s; median of {RUNS} runs:"
    )
    if args.e2e_only:
        results = asyncio.run(end_to_end(data, args.transactions))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of the import process (file generation and HTTP client included) {peak:,.0f} MB")
        return results | {"peak_rss_mb": peak}
    results = {  # the deferred read is what an import runs before it compares with the database
        "reader_tx_per_s": rate("reader", data, lambda: parse_ofx(data)),
        "deferred_tx_per_s": rate("reader, deferred", data, lambda: parse_ofx(data, defer=True)),
        "mapped_tx_per_s": rate("reader + mappers", data, lambda: map_document(parse_ofx(data))),
    }
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the reader process (eager documents of the whole file) {peak:,.0f} MB")
    if not args.reader_only:
        del data
        sys.stdout.flush()
        child = [sys.executable, __file__, "--e2e-only", "--transactions", str(args.transactions)]
        subprocess.run(child, check=True)  # prints its own figures
    return results


async def end_to_end(data: bytes, count: int) -> dict[str, float]:
    """Upload through the HTTP API (multipart, in-process ASGI) into PostgreSQL until committed."""
    import httpx

    from _pg import fresh_database
    from finsync.api.app import create_app
    from finsync.bootstrap import build

    settings = await fresh_database(DB, upload_limit_bytes=max(len(data) + 1, 50 * 1024 * 1024))
    container = build(settings)
    transport = httpx.ASGITransport(app=create_app(container=container))
    firsts, repeats = [], []
    async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
        for run in range(RUNS_E2E):
            # A new user each time: a true first import into an empty account.
            email, password = f"bench{run}@example.com", "fake-benchmark-password"
            await client.post("/api/v1/users", json={"email": email, "password": password})
            token = (
                await client.post("/api/v1/auth/token", data={"username": email, "password": password})
            ).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            files = {"file": ("bench.ofx", data, "application/x-ofx")}
            started = time.perf_counter()
            r = await client.post("/api/v1/imports", headers=headers, files=files)
            firsts.append(time.perf_counter() - started)
            assert r.status_code == 201, r.text
            assert r.json()["counts"]["transactions_inserted"] == count
        for _ in range(RUNS_E2E):
            started = time.perf_counter()
            r = await client.post("/api/v1/imports", headers=headers, files=files)
            repeats.append(time.perf_counter() - started)
            assert r.json()["counts"]["transactions_already_present"] == count
    await container.aclose()
    first, again = statistics.median(firsts), statistics.median(repeats)
    print(f"end-to-end first import (PostgreSQL)  {first * 1000:8.1f} ms  {count / first:>12,.0f} tx/s")
    print(f"end-to-end re-import, all duplicates  {again * 1000:8.1f} ms  {count / again:>12,.0f} tx/s")
    print(f"  (medians of {RUNS_E2E} uploads each, upload → rows committed → 201)")
    return {"e2e_first_tx_per_s": count / first, "e2e_reimport_tx_per_s": count / again}


if __name__ == "__main__":
    main()
