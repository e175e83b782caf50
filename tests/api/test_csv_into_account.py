"""Years of Trading 212 CSV history loaded into the account the API syncs (fake Trading 212 server):
rows the API already brought are matched by the cross-source fingerprint, older ones are added."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from finsync.bootstrap import Container
from tests.api.helpers import register_and_login
from tests.conftest import api_client, built, make_settings
from tests.fakes.clock import VirtualClock
from tests.fakes.server import serve
from tests.fakes.trading212 import Trading212Store
from tests.fakes.trading212 import create_app as t212_app

pytestmark = pytest.mark.e2e
KEY, SECRET = "fake-t212-key-for-tests", "fake-t212-secret-for-tests"
HEADER = (
    "Action,Time,ISIN,Ticker,Name,No. of shares,Price / share,Currency (Price / share),Exchange rate,"
    "Total,Currency (Total),Currency conversion fee,Currency (Currency conversion fee),Notes,ID\n"
)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def t212(clock: VirtualClock) -> Iterator[tuple[Trading212Store, str]]:
    store = Trading212Store()
    store.seed(clock.now(), orders=12, dividends=3, transactions=3)
    with serve(t212_app(clock, api_key=KEY, api_secret=SECRET, store=store)) as url:
        yield store, url


@pytest.fixture
async def api(
    database_url: str, tmp_path: Path, clock: VirtualClock, t212: tuple[Trading212Store, str]
) -> AsyncIterator[tuple[httpx.AsyncClient, Container]]:
    settings = make_settings(
        database_url, tmp_path, trading212_live_url=t212[1], provider_timeout_seconds=1.0
    )
    async with (
        built(settings, adapter_options={"clock": clock}) as container,
        api_client(container) as client,
    ):
        yield client, container


def _export_rows(store: Trading212Store) -> list[str]:
    """The store's history as the CSV export writes it: plain tickers, positive totals, own ids."""
    rows = []
    for n, item in enumerate(store.orders):
        order, fill = item["order"], item["fill"]
        if fill is None:
            continue
        wallet = fill["walletImpact"]
        action = "Market buy" if order["side"] == "BUY" else "Market sell"
        fee = wallet["taxes"][0]["quantity"]
        rows.append(
            f"{action},{fill['filledAt'][:19].replace('T', ' ')},US0378331005,"
            f"{order['ticker'].split('_')[0]},"
            f"Apple,{fill['quantity']},{fill['price']},USD,{wallet['fxRate']},{abs(wallet['netValue']):.2f},GBP,"
            f"{fee},GBP,,EOF{n:010d}\n"
        )
    for item in store.dividends:
        rows.append(
            f"Dividend (Ordinary),{item['paidOn'][:19].replace('T', ' ')},US0378331005,"
            f"{item['ticker'].split('_')[0]},Apple,{item['quantity']},0.25,USD,,{item['amount']:.2f},GBP,,,,\n"
        )
    for item in store.transactions:
        if item["type"] == "DEPOSIT":
            rows.append(
                f"Deposit,{item['dateTime'][:19].replace('T', ' ')},,,,,,,,{item['amount']:.2f},GBP,,,,"
                f"{item['reference']}-csv\n"
            )
    return rows


OLDER = (  # history the API no longer pages back to
    "Deposit,2019-05-02 09:00:00,,,,,,,,2000.00,GBP,,,,D-2019-1\n"
    "Market buy,2019-05-03 14:30:00,US0378331005,AAPL,Apple,3,210.00,USD,1.30,484.62,GBP,0.73,GBP,,"
    "EOF2019000001\n"
    "Dividend (Ordinary),2019-08-15 10:00:00,US0378331005,AAPL,Apple,3,0.77,USD,,1.51,GBP,,,,\n"
)


async def _all(client: httpx.AsyncClient, headers: dict[str, str], path: str) -> list[dict[str, Any]]:
    return list((await client.get(path, headers=headers, params={"limit": 500})).json()["items"])


async def test_csv_history_joins_the_synced_account_without_doubles(
    api: tuple[httpx.AsyncClient, Container], t212: tuple[Trading212Store, str]
) -> None:
    client, container = api
    store, _ = t212
    headers = await register_and_login(client)
    body = {"provider": "trading212", "name": "ISA", "environment": "live",
            "credentials": {"api_key": KEY, "api_secret": SECRET}}  # fmt: skip
    created = (await client.post("/api/v1/connections", headers=headers, json=body)).json()
    await container.jobs.drain()
    (account,) = await _all(client, headers, "/api/v1/accounts")
    synced = await _all(client, headers, "/api/v1/transactions")
    overlap = _export_rows(store)
    assert len(overlap) >= 10
    data = (HEADER + OLDER + "".join(overlap)).encode()

    r = await client.post(
        "/api/v1/imports", headers=headers, params={"account_id": account["id"]},
        files={"file": ("from_2019.csv", data, "text/csv")},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    result = r.json()
    assert result["format"] == "csv:trading212"
    assert [a["id"] for a in result["accounts"]] == [account["id"]]
    assert result["connection_id"] == created["id"]
    assert result["counts"]["transactions_inserted"] == 3  # only the 2019 rows are new
    assert result["counts"]["transactions_already_present"] == len(overlap)
    txns = await _all(client, headers, "/api/v1/transactions")
    assert len(txns) == len(synced) + 3
    assert len(await _all(client, headers, "/api/v1/accounts")) == 1  # no file account was made

    again = (
        await client.post(
            "/api/v1/imports", headers=headers, params={"account_id": account["id"]},
            files={"file": ("from_2019.csv", data, "text/csv")},
        )
    ).json()  # fmt: skip
    assert again["counts"]["transactions_inserted"] == 0
    assert len(await _all(client, headers, "/api/v1/transactions")) == len(synced) + 3


async def test_target_account_must_be_yours_and_in_the_files_currency(
    api: tuple[httpx.AsyncClient, Container],
) -> None:
    client, _ = api
    owner = await register_and_login(client, "owner@example.com")
    ofx_like = (HEADER + OLDER).encode()
    first = await client.post(
        "/api/v1/imports", headers=owner, files={"file": ("a.csv", ofx_like, "text/csv")}
    )
    account_id = first.json()["accounts"][0]["id"]
    other = await register_and_login(client, "other@example.com")
    r = await client.post(
        "/api/v1/imports", headers=other, params={"account_id": account_id},
        files={"file": ("a.csv", ofx_like, "text/csv")},
    )  # fmt: skip
    assert r.status_code == 404
    assert await _all(client, other, "/api/v1/transactions") == []
    usd = ofx_like.replace(b",GBP,", b",USD,")
    r = await client.post(
        "/api/v1/imports",
        headers=owner,
        params={"account_id": account_id},
        files={"file": ("b.csv", usd, "text/csv")},
    )
    assert r.status_code == 422
    assert "GBP" in r.json()["detail"]
    assert len(await _all(client, owner, "/api/v1/transactions")) == 3
