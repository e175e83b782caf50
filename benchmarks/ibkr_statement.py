"""IBKR Flex statement benchmark: ``python benchmarks/ibkr_statement.py [--trades N] [--runs R]``.

Generates an Activity Flex statement in IBKR's documented XML (N trades, N/4 cash
transactions, 200 open positions, 3 currencies) and measures, in one run, the CPU time of
each stage a sync spends on it: defusedxml's parse alone, defusedxml + ibflex's element
parser (``read_statement``), and the mappers (accounts, holdings, transactions). Figures are
medians over R runs of ``time.process_time`` (CPU, not wall: the machine may be shared),
with the statement's size and the rate in rows a second.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from datetime import date, timedelta

from defusedxml import ElementTree

from finsync.providers.ibkr import mappers
from finsync.providers.ibkr.client import read_statement

CURRENCIES = (("USD", "1"), ("EUR", "1.0550"), ("GBP", "1.2700"))


def _row(tag: str, **attributes: object) -> str:
    return f"<{tag} " + " ".join(f'{k}="{v}"' for k, v in attributes.items()) + " />"


def statement(trades: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    start = date(2026, 1, 2)
    rows = []
    for i in range(trades):
        currency, rate = CURRENCIES[i % 3]
        qty = rng.randint(1, 200)
        price = round(rng.uniform(5, 900), 2)
        buy = rng.random() < 0.6
        proceeds = round(-qty * price if buy else qty * price, 2)
        day = (start + timedelta(days=i % 330)).isoformat()
        n = i % 400
        rows.append(
            _row(
                "Trade",
                accountId="U1",
                currency=currency,
                fxRateToBase=rate,
                assetCategory="STK",
                subCategory="COMMON",
                symbol=f"SYM{n}",
                description=f"COMPANY {n}",
                conid=1000 + n,
                isin=f"US{n:010d}",
                multiplier=1,
                transactionID=30_000_000 + i,
                tradeID=40_000_000 + i,
                reportDate=day,
                tradeDate=day,
                tradeTime="10:31:05",
                settleDateTarget=day,
                transactionType="ExchTrade",
                exchange="NASDAQ",
                quantity=qty if buy else -qty,
                tradePrice=f"{price:.2f}",
                proceeds=f"{proceeds:.2f}",
                taxes=0,
                ibCommission=-1,
                ibCommissionCurrency=currency,
                netCash=f"{proceeds - 1:.2f}",
                buySell="BUY" if buy else "SELL",
                levelOfDetail="EXECUTION",
                orderType="LMT",
            )
        )
    kinds = ("Dividends", "Withholding Tax", "Broker Interest Received", "Other Fees", "Deposits/Withdrawals")
    cash = [
        _row(
            "CashTransaction",
            accountId="U1",
            currency=CURRENCIES[i % 3][0],
            fxRateToBase=CURRENCIES[i % 3][1],
            description=f"ROW {i}",
            dateTime=f"{(start + timedelta(days=i % 330)).isoformat()};20:20:00",
            amount=f"{rng.uniform(-50, 50):.2f}",
            type=kinds[i % 5],
            transactionID=50_000_000 + i,
            levelOfDetail="DETAIL",
        )
        for i in range(trades // 4)
    ]
    positions = [
        _row(
            "OpenPosition",
            accountId="U1",
            currency=CURRENCIES[i % 3][0],
            fxRateToBase=CURRENCIES[i % 3][1],
            assetCategory="STK",
            symbol=f"SYM{i}",
            description=f"COMPANY {i}",
            conid=1000 + i,
            position=i + 1,
            markPrice="10.5",
            positionValue=f"{(i + 1) * 10.5:.2f}",
            costBasisPrice=9,
            fifoPnlUnrealized=1,
            side="Long",
            levelOfDetail="SUMMARY",
        )
        for i in range(200)
    ]
    report = "".join(
        _row("CashReportCurrency", accountId="U1", currency=c, endingCash=1000, levelOfDetail="Currency")
        for c, _ in CURRENCIES
    )
    return (
        '<FlexQueryResponse queryName="bench" type="AF"><FlexStatements count="1">'
        '<FlexStatement accountId="U1" fromDate="2026-01-02" toDate="2026-11-27" period="LastYear" '
        'whenGenerated="2026-11-28;05:10:42"><AccountInformation accountId="U1" currency="USD" />'
        f"<CashReport>{report}</CashReport><OpenPositions>{''.join(positions)}</OpenPositions>"
        f"<Trades>{''.join(rows)}</Trades><CashTransactions>{''.join(cash)}</CashTransactions>"
        "</FlexStatement></FlexStatements></FlexQueryResponse>"
    ).encode()


def cpu(func: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.process_time()
        func()
        times.append(time.process_time() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trades", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    body = statement(args.trades)
    rows = args.trades + args.trades // 4 + 200
    (stmt,) = read_statement(body).FlexStatements

    def mapped() -> None:
        mappers.map_account(stmt)
        mappers.holdings(stmt)
        mappers.transactions(stmt)

    stages = {
        "defusedxml parse": lambda: ElementTree.fromstring(body, forbid_dtd=True),
        "defusedxml + ibflex (read_statement)": lambda: read_statement(body),
        "mappers (account, holdings, transactions)": mapped,
    }
    print(f"statement: {len(body) / 1e6:.1f} MB, {rows:,} rows ({args.trades:,} trades), {args.runs} runs")
    for name, func in stages.items():
        seconds = cpu(func, args.runs)
        print(f"  {name:<45} {seconds * 1000:8.0f} ms CPU  {rows / seconds:>10,.0f} rows/s")


if __name__ == "__main__":
    main()
