"""Valuation and analytics through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from finsync.api.wire import QUERY_DATE_PATTERN
from finsync.domain.enums import (
    AccountType,
    AssetType,
    TransactionStatus,
    TransactionSubtype,
    TransactionType,
)
from tests.api.analytics_helpers import World, world_fixture  # noqa: F401 - the fixture
from tests.api.test_imports import statement, upload
from tests.factories import account, holding, txn

pytestmark = pytest.mark.e2e
D = Decimal
EASTER = {
    date(2024, 3, 27): {"USD": "1.0800", "GBP": "0.8500", "CHF": "0.9800"},
    date(2024, 3, 28): {"USD": "1.0811", "GBP": "0.8551"},
    date(2024, 4, 2): {"USD": "1.0750", "GBP": "0.8560"},
}


async def test_base_currency_net_worth_breakdowns_and_conversions(world: World) -> None:
    await world.login()
    await world.fixings(EASTER)
    world.bank.accounts = [
        account("cur", balance=D("1000.00")),
        account("usd", type=AccountType.SAVINGS, currency="USD", balance=D("500")),
        account("card", type=AccountType.CREDIT_CARD, balance=D("200")),  # owed, reported positive
        account("loan", type=AccountType.LOAN, currency="EUR", balance=D("-1000")),
        account("new", balance=None, available_balance=None),
        account("chf", currency="JPY", balance=D("10000")),  # no JPY fixing stored
    ]
    world.clock.at(date(2024, 3, 29))  # Good Friday: no fixing, Thursday's is used
    await world.sync()
    for bad in ("XYZ", "usd", "EURO"):
        r = await world.client.patch("/api/v1/users/me", headers=world.headers, json={"base_currency": bad})
        assert r.status_code == 422, bad
    r = await world.client.patch("/api/v1/users/me", headers=world.headers, json={"base_currency": "GBP"})
    assert r.status_code == 200, r.text
    assert r.json()["base_currency"] == "GBP"

    worth = await world.get("/net-worth")
    usd_in_gbp = (D(500) * (D("0.8551") / D("1.0811")).quantize(D("1e-10"))).quantize(D("0.01"))
    loan_in_gbp = (D(-1000) * D("0.8551")).quantize(D("0.01"))
    assert worth["currency"] == "GBP"
    assert D(worth["assets"]) == D("1000.00") + usd_in_gbp
    assert D(worth["liabilities"]) == D("-200.00") + loan_in_gbp
    assert D(worth["total"]) == D(worth["assets"]) + D(worth["liabilities"])
    assert {k: D(v) for k, v in worth["by_category"].items()} == {
        "cash": D("1000.00") + usd_in_gbp,
        "credit": D("-200.00"),
        "loans": loan_in_gbp,
    }
    assert worth["by_provider"] == {"memory": worth["total"]}
    usd = next(a for a in worth["accounts"] if a["currency"] == "USD")
    assert usd["value"]["rate_date"] == "2024-03-28"
    assert [a["name"] for a in worth["accounts_without_balance"]] == ["Account new"]
    assert [a["currency"] for a in worth["accounts_without_rate"]] == ["JPY"]
    assert "E" not in worth["total"]
    assert {t["currency"] for t in worth["totals"]} == {"GBP", "USD", "EUR", "JPY"}

    in_eur = await world.get("/net-worth", currency="EUR")
    assert in_eur["currency"] == "EUR"
    assert D(next(a for a in in_eur["accounts"] if a["currency"] == "EUR")["value"]["amount"]) == D(
        "-1000.00"
    )
    accounts = (await world.get("/accounts", currency="USD"))["items"]
    gbp = next(a for a in accounts if a["provider_account_id"] == "cur")
    assert gbp["converted"]["currency"] == "USD"
    assert gbp["converted"]["rate_date"] == "2024-03-28"
    assert D(gbp["converted"]["amount"]) == (D(1000) * D(gbp["converted"]["rate"])).quantize(D("0.01"))
    plain = (await world.get("/accounts"))["items"]
    assert all(a["converted"] is None for a in plain)
    rate = await world.get("/fx/rate", base="USD", quote="GBP", date="2024-04-01")
    assert (rate["rate_date"], rate["date"]) == ("2024-03-28", "2024-04-01")
    r = await world.client.get("/api/v1/net-worth", headers=world.headers, params={"currency": "QQQ"})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"


async def test_net_worth_history_carries_values_forward_and_revalues_holdings(world: World) -> None:
    await world.login()
    await world.fixings({date(2024, 3, 1): {"USD": "1.10"}, date(2024, 3, 4): {"USD": "1.00"}})
    world.bank.accounts = [
        account("eur", currency="EUR", balance=D("100")),
        account("usd", currency="USD", balance=D("110")),
    ]
    await world.sync(date(2024, 3, 1))
    world.bank.accounts[0].balance = D("150")
    await world.sync(date(2024, 3, 3))
    # A brokerage with cash 10 and 2 ACME from 4 March; ACME closes 20 then 30 USD.
    world.bank.accounts.append(
        account("isa", type=AccountType.ISA, currency="EUR", balance=D("50"), cash_value=D("10"))
    )
    world.bank.holdings = {
        "isa": [holding("ACME", currency="USD", quantity=D("2"), asset_type=AssetType.EQUITY)]
    }
    await world.prices("ticker:ACME", "ACME", {date(2024, 3, 4): "20", date(2024, 3, 5): "30"}, "USD")
    await world.sync(date(2024, 3, 4))
    history = await world.get(
        "/net-worth/history", **{"from": "2024-02-29", "to": "2024-03-05", "currency": "EUR"}
    )
    values = {p["date"]: D(p["value"]) for p in history["points"]}
    assert values == {
        "2024-02-29": D("0.00"),
        "2024-03-01": D("200.00"),  # 100 EUR + 110 USD at 1.10
        "2024-03-02": D("200.00"),  # carried forward (a Saturday: no fixing, no snapshot)
        "2024-03-03": D("250.00"),
        "2024-03-04": D("310.00"),  # 150 + 110 at 1.00 + (10 + 2 x 20)
        "2024-03-05": D("330.00"),  # the brokerage revalued at the new close: 10 + 2 x 30
    }
    assert history["revalued_accounts"] == [await world.account_id("isa")]
    monthly = await world.get(
        "/net-worth/history", **{"from": "2024-01-15", "to": "2024-03-05", "interval": "month"}
    )
    assert [p["date"] for p in monthly["points"]] == ["2024-01-31", "2024-02-29", "2024-03-05"]
    bad = await world.client.get(
        "/api/v1/net-worth/history", headers=world.headers, params={"from": "2024-03-05", "to": "2024-03-01"}
    )
    assert bad.status_code == 422


async def test_cash_flow_leaves_out_own_transfers_until_rejected(world: World) -> None:
    await world.login()
    await world.fixings({date(2024, 1, 1): {"USD": "1.25"}})
    world.bank.accounts = [
        account("cur", currency="EUR"),
        account("sav", currency="EUR"),
        account("us", currency="USD"),
    ]
    world.bank.transactions = {
        "cur": [
            txn("salary", "2000.00", date(2024, 1, 25), currency="EUR", description="ACME PAYROLL / jan"),
            txn("food", "-50.00", date(2024, 1, 26), currency="EUR", description="WHOLE FOODS / card"),
            txn("move", "-500.00", date(2024, 1, 27), currency="EUR", description="To savings"),
            txn("buy", "-999.00", date(2024, 1, 27), currency="EUR", type=TransactionType.TRADE),
            txn("void", "-77.00", date(2024, 1, 27), currency="EUR", status=TransactionStatus.CANCELLED),
        ],
        "sav": [txn("in", "500.00", date(2024, 1, 29), currency="EUR", description="From current")],
        "us": [txn("coffee", "-12.50", date(2024, 2, 2), currency="USD", description="Coffee / x")],
    }
    await world.sync(date(2024, 2, 5))
    flow = await world.get(
        "/analytics/cash-flow", **{"from": "2024-01-01", "to": "2024-02-29", "currency": "EUR"}
    )
    jan, feb = flow["periods"]
    assert (jan["period"], D(jan["values"]["income"]), D(jan["values"]["spending"])) == (
        "2024-01-01",
        2000,
        -50,
    )
    assert D(feb["values"]["spending"]) == D("-10.00")  # 12.50 USD at 1.25
    assert jan["count"] == 2
    (link,) = (await world.get("/transfers"))["items"]
    assert (link["status"], D(link["amount"]), link["outflow_date"]) == ("detected", 500, "2024-01-27")
    by_payee = await world.get(
        "/analytics/cash-flow", **{"from": "2024-01-01", "to": "2024-01-31", "group_by": "payee"}
    )
    assert {g["key"] for g in by_payee["periods"][0]["groups"]} == {"ACME PAYROLL", "WHOLE FOODS"}
    r = await world.client.post(f"/api/v1/transfers/{link['id']}/reject", headers=world.headers)
    assert r.status_code == 200
    flow = await world.get(
        "/analytics/cash-flow", **{"from": "2024-01-01", "to": "2024-01-31", "group_by": "account"}
    )
    (jan,) = flow["periods"]
    assert (D(jan["values"]["income"]), D(jan["values"]["spending"])) == (2500, -550)
    names = {g["name"]: D(g["values"]["net"]) for g in jan["groups"]}
    assert names == {"Account cur": D("1450.00"), "Account sav": D("500.00")}
    await world.sync(date(2024, 2, 6))  # a re-sync never pairs a rejected transfer again
    assert [t["status"] for t in (await world.get("/transfers"))["items"]] == ["rejected"]
    assert (await world.get("/transfers", status="detected"))["items"] == []


async def test_income_splits_gross_withholding_and_net(world: World) -> None:
    await world.login()
    await world.fixings({date(2024, 1, 1): {"USD": "1.25"}})
    dividend = {"type": TransactionType.INCOME, "subtype": TransactionSubtype.DIVIDEND}
    world.bank.accounts = [account("isa", type=AccountType.ISA, currency="EUR")]
    world.bank.transactions = {
        "isa": [
            txn("d1", "100.00", date(2024, 1, 10), currency="USD", symbol="ACME", **dividend),
            txn(
                "t1",
                "-15.00",
                date(2024, 1, 10),
                currency="USD",
                symbol="ACME",
                type=TransactionType.TAX,
                subtype=TransactionSubtype.TAX,
            ),
            txn(
                "i1",
                "4.00",
                date(2024, 2, 1),
                currency="EUR",
                type=TransactionType.INCOME,
                subtype=TransactionSubtype.INTEREST,
            ),
        ]
    }
    await world.sync(date(2024, 2, 5))
    report = await world.get(
        "/analytics/income",
        **{
            "from": "2024-01-01",
            "to": "2024-12-31",
            "interval": "year",
            "group_by": "symbol",
            "currency": "EUR",
        },
    )
    (year,) = report["periods"]
    assert {k: D(v) for k, v in year["values"].items()} == {
        "gross": D("84.00"),
        "withholding_tax": D("-12.00"),
        "net": D("72.00"),
    }
    acme = next(g for g in year["groups"] if g["key"] == "ACME")
    assert {k: D(v) for k, v in acme["values"].items()} == {
        "gross": D("80.00"),
        "withholding_tax": D("-12.00"),
        "net": D("68.00"),
    }
    r = await world.client.get("/api/v1/analytics/income", headers=world.headers, params={"interval": "week"})
    assert r.status_code == 422


async def _isa_with_a_deposit(world: World, deposited: date) -> None:
    """An ISA worth 1,000 EUR on 1 January and 1,600 later, 500 of it deposited on ``deposited``."""
    await world.login()
    world.bank.accounts = [account("isa", type=AccountType.ISA, currency="EUR", balance=D("1000"))]
    await world.sync(date(2024, 1, 1))
    world.bank.accounts[0].balance = D("1600")
    world.bank.transactions = {
        "isa": [txn("dep", "500", deposited, currency="EUR", subtype=TransactionSubtype.DEPOSIT)]
    }


async def test_performance_from_snapshots_and_flows(world: World) -> None:
    await _isa_with_a_deposit(world, date(2024, 1, 16))
    world.bank.holdings = {
        "isa": [holding("ACME", currency="EUR", quantity=D(2), average_cost=D(10), market_value=D(50))]
    }
    await world.sync(date(2024, 1, 31))
    isa = await world.account_id("isa")
    perf = await world.get(
        "/analytics/performance", account_id=isa, **{"from": "2024-01-01", "to": "2024-01-31"}
    )
    # Modified Dietz: (1600 - 1000 - 500) / (1000 + 15/30 x 500) = 8 %
    assert D(perf["time_weighted_return"]["value"]) == D("0.08")
    assert perf["method"] == "modified-dietz-chained"
    assert D(perf["total_gain"]) == D("100.00")
    assert D(perf["net_flows"]) == D("500.00")
    assert perf["money_weighted_return"]["value"] is not None
    assert D(perf["unrealised_gain"]["value"]) == D("30.00")  # 2 at the provider's 25 - 2 x 10
    early = await world.get(
        "/analytics/performance", account_id=isa, **{"from": "2023-01-01", "to": "2023-12-31"}
    )
    assert early["time_weighted_return"]["value"] is None
    assert early["money_weighted_return"]["reason"]
    other = await world.client.get(
        "/api/v1/analytics/performance",
        headers=world.headers,
        params={"account_id": "00000000-0000-7000-8000-000000000000"},
    )
    assert other.status_code == 404


async def test_reconciliation_lists_the_period_a_transaction_is_missing_from(world: World) -> None:
    await world.login()
    # Statement 1: three debits (-1.25, -2.25, -3.25) and a balance of 100.00 on 10 January.
    r = await upload(world.client, world.headers, statement(range(1, 4), ledger="100.00", as_of="20240110"))
    assert r.status_code == 201, r.text
    account_id = r.json()["accounts"][0]["id"]
    # Statement 2: the bank's balance (53.00) counts F12 (-12.25), which the file leaves out.
    r = await upload(world.client, world.headers, statement([10, 11, 13], ledger="53.00", as_of="20240131"))
    assert r.status_code == 201, r.text
    report = await world.get(
        f"/accounts/{account_id}/reconciliation", **{"from": "2024-01-01", "to": "2024-02-01"}
    )
    assert report["periods_checked"] == 1
    (gap,) = report["gaps"]
    assert (gap["start"], gap["end"], gap["transactions"]) == ("2024-01-10", "2024-01-31", 3)
    assert D(gap["difference"]) == D("-12.25")
    # The memory bank also skipped one: 1,234.56 -> 1,200.00 with a single -12.34 in between.
    world.bank.accounts = [account("cur")]
    await world.sync(date(2024, 1, 1))
    world.bank.accounts[0].balance = D("1200.00")
    world.bank.transactions = {"cur": [txn("t1", "-12.34", date(2024, 1, 2))]}
    await world.sync(date(2024, 1, 3))
    cur = await world.account_id("cur")
    (gap,) = (
        await world.get(f"/accounts/{cur}/reconciliation", **{"from": "2024-01-01", "to": "2024-01-31"})
    )["gaps"]
    assert D(gap["difference"]) == D("-22.22")


async def test_performance_counts_the_flows_between_its_first_and_last_valuation(world: World) -> None:
    await _isa_with_a_deposit(world, date(2024, 1, 5))
    await world.sync(date(2024, 1, 31))
    isa = await world.account_id("isa")
    # from = 10 Jan opens at the 1 Jan valuation: the deposit of 5 Jan is in (1 Jan, 31 Jan].
    perf = await world.get(
        "/analytics/performance", account_id=isa, **{"from": "2024-01-10", "to": "2024-01-31"}
    )
    assert (perf["start_value"], perf["end_value"]) == ("1000.00", "1600.00")
    assert (D(perf["net_flows"]), D(perf["total_gain"])) == (D("500.00"), D("100.00"))
    # to = 27 Feb closes at the 31 Jan valuation: a deposit after it (25 Feb) is outside the period.
    world.bank.accounts[0].balance = D("2100")
    world.bank.transactions["isa"].append(
        txn("late", "500", date(2024, 2, 25), currency="EUR", subtype=TransactionSubtype.DEPOSIT)
    )
    await world.sync(date(2024, 2, 29))
    perf = await world.get(
        "/analytics/performance", account_id=isa, **{"from": "2024-01-01", "to": "2024-02-27"}
    )
    assert (perf["start_value"], perf["end_value"]) == ("1000.00", "1600.00")
    assert (D(perf["net_flows"]), D(perf["total_gain"])) == (D("500.00"), D("100.00"))


async def test_unrealised_gain_charges_each_account_its_own_cost(world: World) -> None:
    await world.login()
    world.bank.accounts = [
        account("a", type=AccountType.BROKERAGE, currency="EUR", balance=D("150")),
        account("b", type=AccountType.BROKERAGE, currency="EUR", balance=D("150")),
    ]
    buy = {"type": TransactionType.TRADE, "subtype": TransactionSubtype.BUY, "symbol": "ACME"}
    world.bank.transactions = {
        name: [txn(f"buy-{name}", "-100", date(2024, 1, 2), currency="EUR", quantity=D(10), **buy)]
        for name in ("a", "b")
    }
    world.bank.holdings = {
        name: [holding("ACME", currency="EUR", quantity=D(10), average_cost=None, market_value=D(150))]
        for name in ("a", "b")
    }
    await world.sync(date(2024, 1, 31))
    perf = await world.get(
        "/analytics/performance", **{"from": "2024-01-01", "to": "2024-01-31", "currency": "EUR"}
    )
    # Each account: 10 ACME worth 150 bought for 100 (its own cost, not both accounts' 200).
    assert D(perf["unrealised_gain"]["value"]) == D("100.00")


async def test_performance_values_cards_as_net_worth_does(world: World) -> None:
    await world.login()
    world.bank.accounts = [
        account("cur", currency="EUR", balance=D("1000")),
        account("card", type=AccountType.CREDIT_CARD, currency="EUR", balance=D("200")),  # owed, positive
    ]
    await world.sync(date(2024, 1, 1))
    world.bank.accounts[1].balance = D("400")  # 200 more spent on the card
    await world.sync(date(2024, 1, 31))
    period = {"from": "2024-01-01", "to": "2024-01-31", "currency": "EUR"}
    worth = await world.get("/net-worth/history", interval="month", **period)
    assert D(worth["points"][-1]["value"]) == D("600.00")
    perf = await world.get("/analytics/performance", **period)
    assert (D(perf["start_value"]), D(perf["end_value"])) == (D("800.00"), D("600.00"))
    assert D(perf["total_gain"]) == D("-200.00")
    card = await world.get("/analytics/performance", account_id=await world.account_id("card"), **period)
    assert (D(card["start_value"]), D(card["end_value"])) == (D("-200.00"), D("-400.00"))


async def test_reconciliation_signs_card_balances_as_net_worth_does(world: World) -> None:
    await world.login()
    world.bank.accounts = [
        account("plus", type=AccountType.CREDIT_CARD, currency="EUR", balance=D("200")),  # owed, positive
        account("minus", type=AccountType.CREDIT_CARD, currency="EUR", balance=D("-200")),
    ]
    await world.sync(date(2024, 1, 1))
    world.bank.accounts[0].balance, world.bank.accounts[1].balance = D("250"), D("-250")
    purchase = {"currency": "EUR", "type": TransactionType.OTHER, "subtype": TransactionSubtype.PURCHASE}
    world.bank.transactions = {
        "plus": [txn("p1", "-50.00", date(2024, 1, 2), **purchase)],
        "minus": [txn("m1", "-50.00", date(2024, 1, 2), **purchase)],
    }
    await world.sync(date(2024, 1, 3))
    period = {"from": "2024-01-01", "to": "2024-01-31"}
    for name in ("plus", "minus"):
        report = await world.get(f"/accounts/{await world.account_id(name)}/reconciliation", **period)
        assert (report["periods_checked"], report["gaps"]) == (1, []), name
    # A debit the card's provider left out still shows, as balances of -|balance|.
    world.bank.accounts[0].balance = D("300")
    await world.sync(date(2024, 1, 4))
    report = await world.get(f"/accounts/{await world.account_id('plus')}/reconciliation", **period)
    (gap,) = report["gaps"]
    assert (D(gap["start_balance"]), D(gap["end_balance"]), D(gap["difference"])) == (-250, -300, -50)


EXTREME_DATES = [
    ("/net-worth/history", {"from": "2024-01-01", "to": "9999-12-31"}, "to"),
    ("/net-worth/history", {"from": "0001-01-01", "to": "2024-01-31"}, "from"),
    ("/analytics/performance", {"from": "2024-01-01", "to": "9999-12-31"}, "to"),
    ("/analytics/income", {"from": "2024-01-01", "to": "9999-12-31", "interval": "month"}, "to"),
    ("/analytics/cash-flow", {"from": "0001-01-01", "to": "2024-01-31"}, "from"),
    ("/analytics/cash-flow", {"from": "1899-12-31", "to": "2024-01-31"}, "from"),
    ("/fx/rate", {"base": "USD", "quote": "GBP", "date": "0001-01-05"}, "date"),
    ("/fx/rate", {"base": "USD", "quote": "GBP", "date": "2201-01-01"}, "date"),
]


@pytest.mark.parametrize(("path", "params", "name"), EXTREME_DATES)
async def test_query_dates_outside_1900_to_2200_are_422_naming_the_parameter(
    world: World, path: str, params: dict[str, str], name: str
) -> None:
    """Near 0001-01-01 or 9999-12-31 the look-backs and the day after `to` overflowed (500)."""
    await world.login()
    r = await world.client.get(f"/api/v1{path}", headers=world.headers, params=params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["type"].endswith("/validation-error")
    assert [e["loc"] for e in problem["errors"]] == [["query", name]]
    assert f"query.{name}: " in problem["detail"]
    assert "between 1900-01-01 and 2200-12-31" in problem["detail"]


async def test_query_dates_at_the_ends_of_the_range_are_answered(world: World) -> None:
    await world.login()
    for path, params in [
        ("/net-worth/history", {"from": "1900-01-01", "to": "1900-01-31"}),
        ("/net-worth/history", {"from": "2200-12-01", "to": "2200-12-31"}),
        ("/analytics/performance", {"from": "1900-01-01", "to": "2200-12-31"}),
        ("/analytics/cash-flow", {"from": "1900-01-01", "to": "1900-12-31"}),
        ("/analytics/cash-flow", {"from": "2200-01-01", "to": "2200-12-31"}),
        ("/analytics/income", {"from": "2190-01-01", "to": "2200-12-31", "interval": "year"}),
    ]:
        await world.get(path, **params)
    r = await world.client.get(
        "/api/v1/fx/rate", headers=world.headers, params={"base": "USD", "quote": "GBP", "date": "1900-01-01"}
    )
    assert r.status_code == 404, r.text  # no fixing that early
    spec = (await world.client.get("/api/v1/openapi.json")).json()
    parameters = spec["paths"]["/api/v1/analytics/performance"]["get"]["parameters"]
    (to,) = (p for p in parameters if p["name"] == "to")
    assert any(s.get("pattern") == QUERY_DATE_PATTERN for s in to["schema"].get("anyOf", [to["schema"]]))


async def test_net_worth_totals_count_cards_and_loans_negative(world: World) -> None:
    """`totals` are the net worth per original currency: a card's debt (reported positive by
    its provider) and a loan subtract there as they do from `total`, never add."""
    await world.login()
    await world.fixings(EASTER)
    world.bank.accounts = [
        account("cur", currency="EUR", balance=D("1000.00")),
        account("card", type=AccountType.CREDIT_CARD, currency="EUR", balance=D("200.00")),
        account("loan", type=AccountType.LOAN, currency="USD", balance=D("300.00")),
    ]
    await world.sync(date(2024, 3, 28))
    worth = await world.get("/net-worth", currency="EUR")
    assert worth["totals"] == [
        {"currency": "EUR", "total": "800.00", "accounts": 2},
        {"currency": "USD", "total": "-300.00", "accounts": 1},
    ]
    eur = next(a for a in worth["accounts"] if a["currency"] == "EUR" and a["type"] == "checking")
    card = next(a for a in worth["accounts"] if a["type"] == "credit_card")
    assert D(eur["value"]["amount"]) + D(card["value"]["amount"]) == D("800.00")


async def test_history_follows_an_account_that_becomes_a_credit_card(world: World) -> None:
    """An account first reported as checking, then as a credit card (a provider's mapping
    corrected, a re-import with the right type): its 200 owed counts -200 in today's history
    point as in net worth now, not +200 carried from the deltas recorded with the old sign."""
    await world.login()
    world.bank.accounts = [account("card", currency="EUR", balance=D("200.00"))]
    await world.sync(date(2024, 3, 4))
    world.bank.accounts[0].type = AccountType.CREDIT_CARD
    await world.sync(date(2024, 3, 5))
    now = await world.get("/net-worth", currency="EUR")
    assert now["total"] == "-200.00"
    history = await world.get(
        "/net-worth/history", **{"from": "2024-03-04", "to": "2024-03-05", "currency": "EUR"}
    )
    assert [p["value"] for p in history["points"]] == ["-200.00", "-200.00"]
