"""Every JSON response of the main flows keeps the wire format: UTC timestamps with Z, fixed-point
decimals. Driven through Trading 212, Alpaca, Schwab and GoCardless fakes and OFX imports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api.helpers import register_and_login
from tests.api.wire import WireReport, wire_problems
from tests.api.world import ALPACA, BANK, SCHWAB, T212, World, world

pytestmark = pytest.mark.e2e


@pytest.fixture
async def w(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(database_url, tmp_path) as it:
        yield it


def test_the_walker_finds_offsets_and_exponents() -> None:
    body = {
        "ok": ["2026-11-21T09:00:00Z", "430", "0.00001", "-6.60", "2026-11-21", "Shop 2026-01-01T10:00"],
        "raw": {"price": "4.3E+2", "at": "2026-11-21T09:00:00+00:00"},  # the provider's, as received
        "items": [{"balance_at": "2012-09-08T03:30:34-04:00", "price": "4.3E+2", "fee": "1e-5"}],
    }
    assert wire_problems(body) == [
        "$.items[0].balance_at: timestamp '2012-09-08T03:30:34-04:00' is not UTC with Z",
        "$.items[0].price: decimal '4.3E+2' is in exponent notation",
        "$.items[0].fee: decimal '1e-5' is in exponent notation",
    ]
    report = WireReport().walk(body)
    assert (report.timestamps, report.decimals) == (2, 5)


async def test_every_response_of_the_main_flows_keeps_the_wire_format(w: World) -> None:
    headers = await register_and_login(w.client)
    for body in (T212, ALPACA, SCHWAB, BANK):
        await w.connect(headers, body)
    imported = [await w.upload(headers, name) for name in ("bank_medium.ofx", "fidelity.ofx", "checking.ofx")]
    connections = await w.all(headers, "/api/v1/connections")
    assert {c["provider"] for c in connections} == {"trading212", "alpaca", "schwab", "gocardless", "ofx"}
    t212 = next(c for c in connections if c["provider"] == "trading212")
    r = await w.client.post(f"/api/v1/connections/{t212['id']}/sync", headers=headers)
    assert r.status_code == 202, r.text
    await w.container.jobs.drain()
    for connection in connections:
        assert (await w.client.get(f"/api/v1/connections/{connection['id']}", headers=headers)).is_success
        runs = await w.all(headers, f"/api/v1/connections/{connection['id']}/sync-runs")
        assert all(run["status"] == "succeeded" for run in runs), runs
        assert (await w.client.get(f"/api/v1/sync-runs/{runs[0]['id']}", headers=headers)).is_success
    accounts = await w.all(headers, "/api/v1/accounts")
    for account in accounts:
        base = f"/api/v1/accounts/{account['id']}"
        assert (await w.client.get(base, headers=headers)).is_success
        for part in ("transactions", "holdings", "balance-snapshots"):
            await w.all(headers, f"{base}/{part}")
    holdings = await w.all(headers, "/api/v1/holdings")
    await w.all(headers, "/api/v1/transactions")
    for path in ("/api/v1/net-worth", "/api/v1/providers", "/api/v1/imports/formats", "/api/v1/users/me"):
        assert (await w.client.get(path, headers=headers)).is_success, path

    assert w.wire.report.problems == []
    assert w.wire.responses > 50
    assert w.wire.report.timestamps > 200
    assert w.wire.report.decimals > 200
    # The cases the issue named: a Schwab price that normalised to 2E+2, and an import's balance_at
    # in the statement's own offset (-4:EDT) while GET /accounts answered UTC.
    schwab_prices = {h["symbol"]: h["current_price"] for h in holdings if h["symbol"] in {"TSLA", "SPY"}}
    assert schwab_prices == {"TSLA": "200", "SPY": "500.3"}
    fidelity = imported[1]["accounts"][0]
    stored = next(a for a in accounts if a["id"] == fidelity["id"])
    assert fidelity["balance_at"] == stored["balance_at"] == "2012-09-08T07:30:34Z"
