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

Last, the files that leave the fast path's shape, each uploaded in RUNS_MEMORY processes
of their own (median peak over the file, and MB/s): a bank statement written in lower case
with comments around every transaction, a big investment statement (INVSTMTRS with
many INVTRAN and positions), bank statements with CDATA or an attribute in every
transaction, the investment statement with its MEMO, UNIQUEID and SECNAME values in CDATA, and
a bank statement whose NAMEs start with a one-letter CDATA section (``<NAME><![CDATA[M]]>CD``),
one with an empty leaf written as CDATA before a start tag in every transaction
(``<SIC><![CDATA[]]><NAME>``), and a bank and an investment statement with a processing
instruction in every transaction: the shapes the tree builder reads. Before them, the
reader's own peak (tracemalloc, the upload's bytes not counted) over the file size for each
shape, and its throughput. Each upload also
reports its process CPU time (the in-process client included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from finsync.providers.ofx import map_document, parse_ofx
from finsync.providers.ofx.format import OfxFormat

RUNS = 5
RUNS_E2E = 5
DB = "finsync_bench_import"
RUNS_MEMORY = 3
CASES = ("tiny", "accounts", "dense", "small-transactions", "statements-100", "statements-1000")
MEMORY_CASES = (
    "bank-lowercase-commented",
    "investment",
    "bank-cdata",
    "bank-attributes",
    "investment-cdata",
    "bank-partial-cdata",
    "bank-empty-cdata",
    "bank-processing-instructions",
    "investment-processing-instructions",
)
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


_TAG_NAME = re.compile(r"<(/?)([A-Z][A-Z0-9.]*)")


def generate_lowercase_commented(n: int) -> bytes:
    """:func:`generate_statement` with every tag name in lower case, a comment before each
    transaction and a multi-line one in the sign-on: what some exporters write."""
    text = generate_statement(n).decode("cp1252")
    text = _TAG_NAME.sub(lambda m: f"<{m.group(1)}{m.group(2).lower()}", text)
    text = text.replace("<stmttrn>", "<!-- transaction --><stmttrn>")
    text = text.replace("<sonrs>", "<!-- exported by\r\n  a benchmark -->\r\n<sonrs>", 1)
    return text.encode("cp1252")


def generate_investment(n: int, positions: int = 0, seed: int = 7) -> bytes:
    """An investment statement (INVSTMTRS) of ``n`` buys, sells and incomes, ``positions``
    positions (default ``n // 10``) and a SECLIST of the 500 securities they name."""
    rng = random.Random(seed)
    head = generate_statement(0)
    start, end = head.index(b"<BANKMSGSRSV1>"), head.index(b"</BANKMSGSRSV1>") + len(b"</BANKMSGSRSV1>")
    rows = []
    for i in range(n):
        cusip = f"{rng.randrange(500):09d}"
        units, price = rng.randint(1, 200), Decimal(rng.randint(100, 50_000)).scaleb(-2)
        trade = date(2023, 1, 1) + timedelta(days=i * 365 // max(n, 1))
        tran = (
            f"<INVTRAN><FITID>T{i:09d}<DTTRADE>{trade:%Y%m%d}<DTSETTLE>{trade:%Y%m%d}"
            f"<MEMO>Order {i}</INVTRAN>"
        )
        secid = f"<SECID><UNIQUEID>{cusip}<UNIQUEIDTYPE>CUSIP</SECID>"
        kind = rng.randrange(3)
        if kind == 0:
            rows.append(
                f"<BUYSTOCK><INVBUY>{tran}{secid}<UNITS>{units}<UNITPRICE>{price}<COMMISSION>1.00"
                f"<TOTAL>-{units * price + 1}<SUBACCTSEC>CASH<SUBACCTFUND>CASH</INVBUY>"
                "<BUYTYPE>BUY</BUYSTOCK>"
            )
        elif kind == 1:
            rows.append(
                f"<SELLSTOCK><INVSELL>{tran}{secid}<UNITS>-{units}<UNITPRICE>{price}<COMMISSION>1.00"
                f"<TOTAL>{units * price - 1}<SUBACCTSEC>CASH<SUBACCTFUND>CASH</INVSELL>"
                "<SELLTYPE>SELL</SELLSTOCK>"
            )
        else:
            rows.append(
                f"<INCOME>{tran}{secid}<INCOMETYPE>DIV<TOTAL>{price}<SUBACCTSEC>CASH<SUBACCTFUND>CASH</INCOME>"
            )
    listed = [
        f"<POSSTOCK><INVPOS><SECID><UNIQUEID>{i % 500:09d}<UNIQUEIDTYPE>CUSIP</SECID><HELDINACCT>CASH"
        f"<POSTYPE>LONG<UNITS>{i + 1}<UNITPRICE>12.34<MKTVAL>{(i + 1) * Decimal('12.34')}"
        "<DTPRICEASOF>20231231</INVPOS></POSSTOCK>"
        for i in range(positions or n // 10)
    ]
    secs = "".join(
        f"<STOCKINFO><SECINFO><SECID><UNIQUEID>{i:09d}<UNIQUEIDTYPE>CUSIP</SECID><SECNAME>Stock {i}"
        f"<TICKER>S{i}</SECINFO></STOCKINFO>\r\n"
        for i in range(500)
    )
    body = (
        "<INVSTMTMSGSRSV1><INVSTMTTRNRS><TRNUID>1<STATUS><CODE>0<SEVERITY>INFO</STATUS><INVSTMTRS>"
        "<DTASOF>20231231<CURDEF>USD<INVACCTFROM><BROKERID>broker.example.com<ACCTID>12345678</INVACCTFROM>"
        "<INVTRANLIST><DTSTART>20230101<DTEND>20231231\r\n"
        + "\r\n".join(rows)
        + "\r\n</INVTRANLIST><INVPOSLIST>"
        + "\r\n".join(listed)
        + "</INVPOSLIST><INVBAL><AVAILCASH>1000.00<MARGINBALANCE>0<SHORTBALANCE>0</INVBAL>"
        "</INVSTMTRS></INVSTMTTRNRS></INVSTMTMSGSRSV1><SECLISTMSGSRSV1><SECLIST>\r\n"
        + secs
        + "</SECLIST></SECLISTMSGSRSV1>"
    )
    return head[:start] + body.encode() + head[end:]


def reader_peak(label: str, data: bytes, runs: int = 3) -> tuple[float, float]:
    """Peak Python memory of reading an upload as the import does (reader, mappers; deferred
    rows not built), over the file size, and MB/s of the same without tracing: medians."""
    ratios, timings = [], []
    for _ in range(runs):
        tracemalloc.start()
        parsed = OfxFormat().read(data)
        ratios.append(tracemalloc.get_traced_memory()[1] / len(data))
        tracemalloc.stop()
        del parsed
        started = time.perf_counter()
        parsed = OfxFormat().read(data)
        timings.append(time.perf_counter() - started)
        del parsed
    ratio, speed = statistics.median(ratios), len(data) / 1e6 / statistics.median(timings)
    print(f"{label:<26} {len(data) / 1e6:6.1f} MB  reader peak {ratio:5.1f}x the file  {speed:6.1f} MB/s")
    return ratio, speed


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
    parser.add_argument(
        "--case", choices=CASES + MEMORY_CASES, help="only this amplification case (run in a child process)"
    )
    parser.add_argument("--skip-cases", action="store_true", help="skip the amplification cases")
    parser.add_argument(
        "--rules", type=int, default=0, help="categorisation rules each importing user has (issue #15)"
    )
    parser.add_argument(
        "--memory-only", action="store_true", help="only the lower-case/commented and investment cases"
    )
    args = parser.parse_args(argv)
    if args.case:
        return asyncio.run(amplification(args.case, args.database, args.transactions))
    if args.memory_only:
        return memory_cases(args.transactions, args.database, reader_only=args.reader_only)

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
    if not args.skip_cases:
        results |= memory_cases(args.transactions, args.database, reader_only=args.reader_only)
    return results


def _memory_case_data(case: str, transactions: int) -> bytes:
    if case == "investment":
        return generate_investment(transactions // 2)
    if case == "bank-cdata":  # an empty CDATA section before every NAME's text (normalised away)
        return generate_statement(transactions).replace(b"<NAME>", b"<NAME><![CDATA[]]>")
    if case == "bank-attributes":  # an attribute on every STMTTRN (no bank does; normalised away)
        return generate_statement(transactions).replace(b"<STMTTRN>", b'<STMTTRN kind="card">')
    if case == "investment-cdata":  # every MEMO, UNIQUEID and SECNAME a whole CDATA value (normalised)
        plain = generate_investment(transactions // 2)
        return re.sub(rb"<(MEMO|UNIQUEID|SECNAME)>([^<\r\n]+)", rb"<\1><![CDATA[\2]]>", plain)
    if case == "bank-partial-cdata":  # CDATA that is only part of each NAME: left to the generic path
        return re.sub(rb"<NAME>([^<\r\n])", rb"<NAME><![CDATA[\1]]>", generate_statement(transactions))
    if case == "bank-empty-cdata":  # an empty leaf written as CDATA before a start tag: generic path
        return generate_statement(transactions).replace(b"<NAME>", b"<SIC><![CDATA[]]><NAME>")
    if case == "bank-processing-instructions":  # one in every STMTTRN: the generic path
        return generate_statement(transactions).replace(b"<STMTTRN>", b"<STMTTRN><?bank export?>")
    if case == "investment-processing-instructions":  # one in every INVTRAN: the generic path
        return generate_investment(transactions // 2).replace(b"<INVTRAN>", b"<INVTRAN><?bank export?>")
    return generate_lowercase_commented(transactions)


def memory_cases(transactions: int, database: str, *, reader_only: bool = False) -> dict[str, float]:
    """Peak over the file size of the files that leave the fast path's shape: the reader's
    (tracemalloc) for each, then whole uploads, each in a process of its own (RSS)."""
    results: dict[str, float] = {}
    reference = generate_statement(transactions)
    results["upper_reader_peak_x"], results["upper_mb_per_s"] = reader_peak("bank, upper case", reference)
    del reference
    for case in MEMORY_CASES:
        data = _memory_case_data(case, transactions)
        results[f"{case}_reader_peak_x"], results[f"{case}_mb_per_s"] = reader_peak(case, data)
    if reader_only:
        return results
    for case in MEMORY_CASES:
        runs = []
        for _ in range(RUNS_MEMORY):
            sys.stdout.flush()
            child = [sys.executable, __file__, "--case", case, "--database", database]
            out = subprocess.run(
                [*child, "--transactions", str(transactions)], check=True, capture_output=True
            )
            last = out.stdout.decode().splitlines()[-1]
            runs.append(json.loads(last))
        peak = statistics.median(r["peak_over_file"] for r in runs)
        speed = statistics.median(r["mb_per_s"] for r in runs)
        cpu = statistics.median(r["cpu_s"] for r in runs)
        print(
            f"{case:<26} {runs[0]['mb']:6.1f} MB  upload → 201: peak {peak:.1f}x the file over the RSS "
            f"before it, {speed:.1f} MB/s, {cpu:.2f} s CPU (medians of {RUNS_MEMORY} processes)"
        )
        results[f"{case}_upload_peak_x"] = peak
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


async def amplification(case: str, database: str, transactions: int = 100_000) -> dict[str, float]:
    """One upload (two for the multi-account files: first import, then re-import); prints
    status, time, RSS before the upload and peak RSS."""
    import httpx

    from _pg import fresh_database
    from finsync.api.app import create_app
    from finsync.bootstrap import build

    statements = int(case.split("-")[1]) if case.startswith("statements") else 0
    if case in MEMORY_CASES:
        return await memory_upload(case, database, transactions)
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
            started, cpu_started = time.perf_counter(), time.process_time()
            r = await client.post("/api/v1/imports", headers=headers, files=files)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            outcome = f"{r.status_code} " + (
                r.json().get("type", "").rsplit("/", 1)[-1] if r.status_code >= 400 else ""
            )
            per_account = f", {seconds / statements * 1000:.1f} ms per account" if statements else ""
            size = f"{len(data) / 1e6:5.1f} MB"
            timing = f"{seconds:7.2f} s ({cpu:.2f} s CPU){per_account}"
            print(f"{case:<16} {size} {attempt:<12} {outcome:<22} {timing}")
        peak = _rss_mb("VmHWM")
    await container.aclose()
    ratio = (peak - before) / (len(data) / 2**20)
    print(f"{'':<16} RSS before upload {before:,.0f} MB, peak {peak:,.0f} MB ({ratio:.1f}x the file over it)")
    return {"seconds": seconds, "peak_rss_mb": peak, "rss_before_mb": before}


async def memory_upload(case: str, database: str, transactions: int) -> dict[str, float]:
    """One accepted upload of a memory case; prints one JSON line: its peak RSS over the RSS
    before it, per MB of file, and its MB/s (upload → rows committed → 201)."""
    import httpx

    from _pg import fresh_database
    from finsync.api.app import create_app
    from finsync.bootstrap import build

    data = _memory_case_data(case, transactions)
    settings = await fresh_database(database)
    container = build(settings)
    transport = httpx.ASGITransport(app=create_app(container=container))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
        headers = await _login(client, 0)
        await client.post(
            "/api/v1/imports", headers=headers, files={"file": ("s.ofx", generate_statement(10))}
        )
        files = {"file": ("bench.ofx", data, "application/x-ofx")}
        _reset_peak()
        before = _rss_mb()
        started, cpu_started = time.perf_counter(), time.process_time()
        r = await client.post("/api/v1/imports", headers=headers, files=files)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        assert r.status_code == 201, r.text
        peak = _rss_mb("VmHWM")
    await container.aclose()
    mb = len(data) / 1e6
    ratio = (peak - before) / (len(data) / 2**20)
    result = {"mb": mb, "peak_over_file": ratio, "mb_per_s": mb / seconds, "cpu_s": cpu}
    print(json.dumps(result))
    return result


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
