"""OFX import benchmark: ``python benchmarks/import_ofx.py [--transactions N] [--database NAME]``.

Generates a realistic OFX 1.x SGML bank statement (header, sign-on, N ``STMTTRN`` with
unique FITIDs and varied payees, amounts and dates, ledger and available balances) and
measures, in one run: the reader alone and reader + mappers (``parse_ofx`` and
``map_document``, eager); then, in a child process of its own so that its peak RSS is the
import's, uploads through the HTTP API into a fresh PostgreSQL database: first imports
(a new user each time) and re-imports of the same file (all duplicates).
Targets (issue #3): end-to-end >= 50,000 tx/s, re-import >= 100,000 tx/s, peak < 400 MB.

Then the amplification cases of issue #10, each in a child process of its own (time and
peak RSS, and the RSS before the upload so the upload's own share shows): a 48 MB file of
12 million tiny elements and a 4.8 MB file of 20,000 accounts (both refused with 422 now),
a file just inside the element budget (one element per 8 bytes), 10 MB of the smallest
transactions a bank could send, and files of 100 and 1,000 statements (the per-account
cost of a multi-account import).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from finsync.providers.ofx import map_document, parse_ofx

RUNS = 5
RUNS_E2E = 5
DB = "finsync_bench_import"
CASES = ("tiny", "accounts", "dense", "small-transactions", "statements-100", "statements-1000")
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


def generate_accounts(n: int, transactions: int = 1) -> bytes:
    """``n`` bank statements of one transaction each (~240 bytes per account)."""
    head = generate_statement(0)
    start, end = head.index(b"<BANKMSGSRSV1>") + len(b"<BANKMSGSRSV1>"), head.index(b"</BANKMSGSRSV1>")
    rows = "".join(
        f"<STMTTRN><TRNTYPE>DEBIT<DTPOSTED>20240105<TRNAMT>-{t + 1}.00<FITID>T{t}<NAME>SHOP</STMTTRN>"
        for t in range(transactions)
    )
    statements = "".join(
        f"<STMTTRNRS><TRNUID>{i}<STMTRS><CURDEF>USD<BANKACCTFROM><BANKID>021000021<ACCTID>{i:09d}"
        f"<ACCTTYPE>CHECKING</BANKACCTFROM><BANKTRANLIST><DTSTART>20240101<DTEND>20240131{rows}"
        f"</BANKTRANLIST><LEDGERBAL><BALAMT>{i}.00<DTASOF>20240131</LEDGERBAL></STMTRS></STMTTRNRS>\r\n"
        for i in range(n)
    )
    return head[:start] + statements.encode() + head[end:]


def generate_small_transactions(size: int) -> bytes:
    """A statement of the smallest transactions a bank could send (~60 bytes each)."""
    statement = generate_statement(0)
    at = statement.index(b"</BANKTRANLIST>")
    rows = (
        b"<STMTTRN><TRNTYPE>DEBIT<DTPOSTED>20240105<TRNAMT>-1.%02d<FITID>%d</STMTTRN>" % (i % 100, i)
        for i in range(size // 64)
    )
    return statement[:at] + b"".join(rows) + statement[at:]


def generate_tiny(size: int, element: bytes) -> bytes:
    """A real statement padded with ``element`` (say ``<A>1``) up to ``size`` bytes."""
    statement = generate_statement(10)
    at = statement.index(b"</SONRS>")
    return statement[:at] + element * ((size - len(statement)) // len(element)) + statement[at:]


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
    parser.add_argument("--database", default=DB, help=f"PostgreSQL database to (re)create (default {DB})")
    parser.add_argument("--case", choices=CASES, help="only this amplification case (run in a child process)")
    parser.add_argument("--skip-cases", action="store_true", help="skip the amplification cases")
    parser.add_argument(
        "--rules", type=int, default=0, help="categorisation rules each importing user has (issue #15)"
    )
    args = parser.parse_args(argv)
    if args.case:
        return asyncio.run(amplification(args.case, args.database))

    started = time.perf_counter()
    data = generate_statement(args.transactions)
    print(
        f"generated {args.transactions:,} transactions, {len(data) / 1e6:.1f} MB "
        f"in {time.perf_counter() - started:.1f} s; median of {RUNS} runs:"
    )
    if args.e2e_only:
        results = asyncio.run(end_to_end(data, args.transactions, args.database, args.rules))
        peak = _rss_mb("VmHWM")
        print(f"peak RSS of the import process (file generation and HTTP client included) {peak:,.0f} MB")
        return results | {"peak_rss_mb": peak}
    results = {  # the deferred read is what an import runs before it compares with the database
        "reader_tx_per_s": rate("reader", data, lambda: parse_ofx(data)),
        "deferred_tx_per_s": rate("reader, deferred", data, lambda: parse_ofx(data, defer=True)),
        "mapped_tx_per_s": rate("reader + mappers", data, lambda: map_document(parse_ofx(data))),
    }
    peak = _rss_mb("VmHWM")
    print(f"peak RSS of the reader process (eager documents of the whole file) {peak:,.0f} MB")
    if not args.reader_only:
        del data
        sys.stdout.flush()
        child = [sys.executable, __file__, "--e2e-only", "--transactions", str(args.transactions)]
        child += ["--rules", str(args.rules)]
        subprocess.run([*child, "--database", args.database], check=True)  # prints its own figures
        for case in () if args.skip_cases else CASES:
            sys.stdout.flush()
            subprocess.run(
                [sys.executable, __file__, "--case", case, "--database", args.database], check=True
            )
    return results


def _rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (``VmHWM``: its peak), in MB. ``ru_maxrss`` would not do:
    on Linux it keeps the parent's peak across fork and exec."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(f"{field}:")) / 1024


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # VmHWM := VmRSS


async def _login(client: Any, n: int) -> dict[str, str]:
    email, password = f"bench{n}@example.com", "fake-benchmark-password"
    await client.post("/api/v1/users", json={"email": email, "password": password})
    token = (await client.post("/api/v1/auth/token", data={"username": email, "password": password})).json()
    return {"Authorization": f"Bearer {token['access_token']}"}


async def amplification(case: str, database: str) -> dict[str, float]:
    """One upload (two for the multi-account files: first import, then re-import); prints
    status, time, RSS before the upload and peak RSS."""
    import httpx

    from _pg import fresh_database
    from finsync.api.app import create_app
    from finsync.bootstrap import build

    statements = int(case.split("-")[1]) if case.startswith("statements") else 0
    data = {
        "tiny": lambda: generate_tiny(48_000_000, b"<A>1"),  # 12 million elements
        "accounts": lambda: generate_accounts(20_000, 0),  # ~240 bytes per account
        "dense": lambda: generate_tiny(48_000_000, b"<AAAA>12"),  # one element per 8 bytes
        "small-transactions": lambda: generate_small_transactions(10_000_000),
    }.get(case, lambda: generate_accounts(statements, 5))()
    settings = await fresh_database(database)
    container = build(settings)
    transport = httpx.ASGITransport(app=create_app(container=container))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
        headers = await _login(client, 0)
        files = {"file": ("bench.ofx", data, "application/x-ofx")}
        await client.post(
            "/api/v1/imports", headers=headers, files={"file": ("s.ofx", generate_statement(10))}
        )
        _reset_peak()
        before = _rss_mb()
        for attempt in ("first import", "re-import")[: 2 if statements else 1]:
            started = time.perf_counter()
            r = await client.post("/api/v1/imports", headers=headers, files=files)
            seconds = time.perf_counter() - started
            outcome = f"{r.status_code} " + (
                r.json().get("type", "").rsplit("/", 1)[-1] if r.status_code >= 400 else ""
            )
            per_account = f", {seconds / statements * 1000:.1f} ms per account" if statements else ""
            size = f"{len(data) / 1e6:5.1f} MB"
            print(f"{case:<16} {size} {attempt:<12} {outcome:<22} {seconds:7.2f} s{per_account}")
        peak = _rss_mb("VmHWM")
    await container.aclose()
    ratio = (peak - before) / (len(data) / 2**20)
    print(f"{'':<16} RSS before upload {before:,.0f} MB, peak {peak:,.0f} MB ({ratio:.1f}x the file over it)")
    return {"seconds": seconds, "peak_rss_mb": peak, "rss_before_mb": before}


async def _add_rules(client: Any, headers: dict[str, str], count: int) -> None:
    """``count`` rules on the statement's payees (most rows match one), as a user sets them up."""
    tree = (await client.get("/api/v1/categories", headers=headers)).json()
    categories = [c["id"] for c in tree["items"]] if isinstance(tree, dict) else [c["id"] for c in tree]
    for i in range(count):
        payee = _PAYEES[i % len(_PAYEES)][1].split()[0]
        rule = {
            "name": f"rule {i}",
            "priority": i,
            "conditions": {"description_contains": payee.lower()},
            "category_id": categories[i % len(categories)],
            "tags": [f"tag{i % 3}"],
        }
        r = await client.post("/api/v1/rules", headers=headers, json=rule)
        assert r.status_code == 201, r.text


async def end_to_end(data: bytes, count: int, database: str = DB, rules: int = 0) -> dict[str, float]:
    """Upload through the HTTP API (multipart, in-process ASGI) into PostgreSQL until committed."""
    import httpx

    from _pg import fresh_database
    from finsync.api.app import create_app
    from finsync.bootstrap import build

    settings = await fresh_database(database, upload_limit_bytes=max(len(data) + 1, 50 * 1024 * 1024))
    container = build(settings)
    transport = httpx.ASGITransport(app=create_app(container=container))
    firsts, repeats = [], []
    async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
        warm_up = await _login(client, RUNS_E2E)
        await client.post(
            "/api/v1/imports", headers=warm_up, files={"file": ("s.ofx", generate_statement(10))}
        )
        _reset_peak()
        before = _rss_mb()
        for run in range(RUNS_E2E):
            headers = await _login(client, run)  # a new user each time: a true first import
            await _add_rules(client, headers, rules)
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
        peak = _rss_mb("VmHWM")
    await container.aclose()
    first, again = statistics.median(firsts), statistics.median(repeats)
    print(f"end-to-end first import (PostgreSQL)  {first * 1000:8.1f} ms  {count / first:>12,.0f} tx/s")
    print(f"end-to-end re-import, all duplicates  {again * 1000:8.1f} ms  {count / again:>12,.0f} tx/s")
    print(f"  (medians of {RUNS_E2E} uploads each, upload → rows committed → 201; {rules} rules)")
    ratio = (peak - before) / (len(data) / 2**20)
    print(f"RSS before the uploads {before:,.0f} MB, peak {peak:,.0f} MB ({ratio:.1f}x the file over it)")
    return {"e2e_first_tx_per_s": count / first, "e2e_reimport_tx_per_s": count / again}


if __name__ == "__main__":
    main()
