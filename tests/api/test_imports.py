"""Statement uploads through HTTP into SQLite and PostgreSQL, with the real-world fixtures."""

from __future__ import annotations

import httpx
import pytest

from finsync.bootstrap import Container
from tests.api.helpers import register_and_login
from tests.conftest import SHARED

pytestmark = pytest.mark.e2e
OFX = SHARED / "fixtures" / "ofx"


async def upload(
    client: httpx.AsyncClient, headers: dict[str, str], data: bytes, name: str = "statement.ofx"
) -> httpx.Response:
    return await client.post(
        "/api/v1/imports", headers=headers, files={"file": (name, data, "application/x-ofx")}
    )


async def _all(client: httpx.AsyncClient, headers: dict[str, str], path: str) -> list[dict]:
    return list((await client.get(path, headers=headers, params={"limit": 500})).json()["items"])


def statement(fitids: range, *, ledger: str = "100.00", as_of: str = "20240131") -> bytes:
    """A small SGML bank statement (no closing tags on leaves, as banks send them)."""
    rows = "".join(
        f"<STMTTRN><TRNTYPE>DEBIT<DTPOSTED>202401{1 + i % 28:02d}<TRNAMT>-{i}.25<FITID>F{i:05d}"
        f"<NAME>Shop {i}<MEMO>card</STMTTRN>\n"
        for i in fitids
    )
    return (
        "OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\nSECURITY:NONE\nENCODING:USASCII\nCHARSET:1252\n"
        "COMPRESSION:NONE\nOLDFILEUID:NONE\nNEWFILEUID:NONE\n\n<OFX><SIGNONMSGSRSV1><SONRS><STATUS><CODE>0"
        "<SEVERITY>INFO</STATUS><DTSERVER>20240131<LANGUAGE>ENG<FI><ORG>Test Bank<FID>999</FI></SONRS>"
        "</SIGNONMSGSRSV1><BANKMSGSRSV1><STMTTRNRS><TRNUID>1<STATUS><CODE>0<SEVERITY>INFO</STATUS><STMTRS>"
        "<CURDEF>USD<BANKACCTFROM><BANKID>021000021<ACCTID>55501234<ACCTTYPE>CHECKING</BANKACCTFROM>"
        f"<BANKTRANLIST><DTSTART>20240101<DTEND>20240131\n{rows}</BANKTRANLIST>"
        f"<LEDGERBAL><BALAMT>{ledger}<DTASOF>{as_of}</LEDGERBAL></STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>\n"
    ).encode()


async def test_bank_statement_import_and_reupload(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    data = (OFX / "bank_medium.ofx").read_bytes()
    r = await upload(client, headers, data)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["format"] == "ofx"
    assert body["counts"]["accounts_created"] == 1
    assert body["counts"]["transactions_inserted"] == 3
    (account,) = body["accounts"]
    assert account["type"] == "checking"
    assert account["balance"] == "382.34"
    assert account["available_balance"] == "682.34"
    txns = await _all(client, headers, f"/api/v1/accounts/{account['id']}/transactions")
    assert len(txns) == 3
    assert any(t["description"].startswith("MCDONALD'S #112") and t["amount"] == "-6.60" for t in txns)
    snaps = await _all(client, headers, f"/api/v1/accounts/{account['id']}/balance-snapshots")
    assert [(s["source"], s["taken_at"][:10]) for s in snaps] == [("import", "2009-05-23")]

    again = (await upload(client, headers, data)).json()
    assert again["counts"]["transactions_inserted"] == 0
    assert again["counts"]["transactions_already_present"] == 3
    assert again["counts"]["accounts_created"] == 0
    assert [a["id"] for a in again["accounts"]] == [account["id"]]
    assert len(await _all(client, headers, "/api/v1/transactions")) == 3
    runs = await _all(client, headers, f"/api/v1/connections/{body['connection_id']}/sync-runs")
    assert [r["trigger"] for r in runs] == ["import", "import"]


async def test_overlapping_statement_inserts_only_new(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    first = await upload(client, headers, statement(range(0, 60), ledger="500.00", as_of="20240131"))
    assert first.json()["counts"]["transactions_inserted"] == 60
    later = await upload(client, headers, statement(range(40, 100), ledger="250.00", as_of="20240229"))
    counts = later.json()["counts"]
    assert counts["transactions_inserted"] == 40
    assert counts["transactions_already_present"] == 20
    assert (
        len(
            (await client.get("/api/v1/transactions", headers=headers, params={"limit": 500})).json()["items"]
        )
        == 100
    )
    assert later.json()["accounts"][0]["balance"] == "250.00"
    # An older statement uploaded last adds nothing and does not roll the balance back.
    older = await upload(client, headers, statement(range(0, 10), ledger="999.99", as_of="20231231"))
    assert older.json()["counts"]["transactions_inserted"] == 0
    assert older.json()["accounts"][0]["balance"] == "250.00"


async def test_investment_statement_replaces_holdings(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    r = await upload(client, headers, (OFX / "fidelity.ofx").read_bytes(), "fidelity.qfx")
    assert r.status_code == 201, r.text
    (account,) = r.json()["accounts"]
    assert account["type"] in {"brokerage", "retirement"}
    holdings = await _all(client, headers, f"/api/v1/accounts/{account['id']}/holdings")
    assert len(holdings) == 6
    assert r.json()["counts"]["holdings"] == 6


async def test_several_accounts_in_one_file(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    r = await upload(client, headers, (OFX / "multiple_accounts2.ofx").read_bytes())
    assert r.status_code == 201, r.text
    types = sorted(a["type"] for a in r.json()["accounts"])
    assert types == ["checking", "savings"]


@pytest.mark.parametrize(
    ("data", "status", "kind"),
    [
        (b"Dear bank,\nplease send my statement.\n", 415, "unsupported-format"),
        (b"Date,Amount,Payee\n2024-01-01,x,x\n", 422, "no-usable-rows"),  # CSV, but no readable row
        (b"", 415, "unsupported-format"),
        (
            b"OFXHEADER:100\nDATA:OFXSGML\n\n<OFX><BANKMSGSRSV1><STMTTRNRS><STMTRS><BANKTRANLIST><STMTTRN><TRNAMT>abc",
            422,
            "malformed-file",
        ),
    ],
)
async def test_rejected_files_write_nothing(
    client: httpx.AsyncClient, data: bytes, status: int, kind: str
) -> None:
    headers = await register_and_login(client)
    r = await upload(client, headers, data)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith(f"/{kind}")
    assert r.json()["detail"]
    assert await _all(client, headers, "/api/v1/connections") == []
    assert await _all(client, headers, "/api/v1/accounts") == []


async def test_institution_error_file_is_rejected_with_its_message(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    r = await upload(client, headers, (OFX / "signon_fail.ofx").read_bytes())
    assert r.status_code == 422
    assert r.json()["detail"]
    assert await _all(client, headers, "/api/v1/accounts") == []


async def test_too_large_is_413_and_writes_nothing(client: httpx.AsyncClient, container: Container) -> None:
    headers = await register_and_login(client)
    container.imports.limit_bytes = 1000
    r = await upload(client, headers, (OFX / "bank_medium.ofx").read_bytes())
    assert r.status_code == 413
    assert r.json()["type"].endswith("/file-too-large")
    assert await _all(client, headers, "/api/v1/accounts") == []


async def test_formats_and_registry_listing(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    formats = (await client.get("/api/v1/imports/formats", headers=headers)).json()
    assert [f["name"] for f in formats if not f["name"].startswith("csv")] == ["ofx"]
    assert ".qfx" in next(f for f in formats if f["name"] == "ofx")["extensions"]
    providers = {p["slug"]: p for p in (await client.get("/api/v1/providers", headers=headers)).json()}
    assert providers["ofx"]["auth_type"] == "file"
    r = await client.post("/api/v1/connections", headers=headers, json={"provider": "ofx"})
    assert r.status_code == 422
    assert "imports" in r.json()["detail"]


async def test_reused_fitid_keeps_every_distinct_transaction(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    data = statement(range(3)).replace(b"<FITID>F00001", b"<FITID>F00000")
    body = (await upload(client, headers, data)).json()
    assert body["counts"]["transactions_inserted"] == 3
    assert any("F00000" in w for w in body["warnings"])
    again = (await upload(client, headers, data)).json()
    assert again["counts"]["transactions_inserted"] == 0


async def test_two_statements_of_one_account_in_one_file(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    january = statement(range(0, 5), ledger="10.00", as_of="20240131").decode()
    february = statement(range(5, 9), ledger="20.00", as_of="20240229").decode()
    body_of = lambda text: text[text.index("<STMTTRNRS>") : text.index("</BANKMSGSRSV1>")]  # noqa: E731
    combined = february.replace("</BANKMSGSRSV1>", body_of(january) + "</BANKMSGSRSV1>").encode()
    r = await upload(client, headers, combined)
    assert r.status_code == 201, r.text
    (account,) = r.json()["accounts"]
    assert r.json()["counts"]["transactions_inserted"] == 9
    assert account["balance"] == "20.00"  # the newest statement's balance


async def test_a_file_of_several_accounts_is_not_loaded_into_one_account(client: httpx.AsyncClient) -> None:
    """``account_id`` loads one account's rows into an existing account: a file whose statements
    are of two accounts (two checking accounts, both in USD, with FITIDs of the same form) would
    mix the second account's money into the first, so it is refused and writes nothing."""
    headers = await register_and_login(client)
    first = await upload(client, headers, statement(range(3)))
    (account,) = first.json()["accounts"]
    january = statement(range(0, 2), ledger="10.00", as_of="20240131").decode()
    other = statement(range(2, 4)).decode().replace("<ACCTID>55501234", "<ACCTID>55509999")
    body_of = lambda text: text[text.index("<STMTTRNRS>") : text.index("</BANKMSGSRSV1>")]  # noqa: E731
    two_accounts = january.replace("</BANKMSGSRSV1>", body_of(other) + "</BANKMSGSRSV1>").encode()
    r = await client.post(
        "/api/v1/imports", headers=headers, params={"account_id": account["id"]},
        files={"file": ("two.ofx", two_accounts, "application/x-ofx")},
    )  # fmt: skip
    assert r.status_code == 422, r.text
    assert "2 accounts" in r.json()["detail"]
    assert len(await _all(client, headers, f"/api/v1/accounts/{account['id']}/transactions")) == 3
    runs = await _all(client, headers, f"/api/v1/connections/{first.json()['connection_id']}/sync-runs")
    assert len(runs) == 1
    # Two statements (periods) of one account are still one account's rows.
    february = statement(range(5, 7), ledger="20.00", as_of="20240229").decode()
    periods = february.replace("</BANKMSGSRSV1>", body_of(january) + "</BANKMSGSRSV1>").encode()
    r = await client.post(
        "/api/v1/imports", headers=headers, params={"account_id": account["id"]},
        files={"file": ("periods.ofx", periods, "application/x-ofx")},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    counts = r.json()["counts"]
    # F00000 and F00001 are already in the account (from the first upload): F00005, F00006 are new
    assert (counts["transactions_inserted"], counts["transactions_already_present"]) == (2, 2)


async def test_an_older_investment_statement_keeps_newer_holdings(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    newer = (OFX / "vanguard401k.ofx").read_text()  # DTASOF 2014-10-17, 117.506 units worth 5171.44
    older = newer.replace("<DTASOF>20141017160000", "<DTASOF>20140917160000").replace(
        "<UNITS>117.506<UNITPRICE>44.01<MKTVAL>5171.44", "<UNITS>90.0<UNITPRICE>45.00<MKTVAL>4050.00"
    )
    assert "4050.00" in older
    assert "<DTASOF>20140917160000" in older
    await upload(client, headers, newer.encode())
    r = await upload(client, headers, older.encode())
    assert r.status_code == 201, r.text
    (account,) = r.json()["accounts"]
    assert (account["balance"], account["holdings_value"]) == ("5171.44", "5171.44")
    holdings = await _all(client, headers, f"/api/v1/accounts/{account['id']}/holdings")
    assert [(h["quantity"], h["market_value"]) for h in holdings] == [("117.506", "5171.44")]
    assert any("positions were not applied" in w for w in r.json()["warnings"])
    snaps = await _all(client, headers, f"/api/v1/accounts/{account['id']}/balance-snapshots")
    assert sorted(s["balance"] for s in snaps) == ["4050.00", "5171.44"]


async def test_older_statement_snapshot_records_its_own_balance(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    await upload(client, headers, statement(range(3), ledger="20.00", as_of="20240229"))
    r = await upload(client, headers, statement(range(3), ledger="10.00", as_of="20240131"))
    account = r.json()["accounts"][0]
    assert account["balance"] == "20.00"
    snaps = await _all(client, headers, f"/api/v1/accounts/{account['id']}/balance-snapshots")
    assert [(s["taken_at"][:10], s["balance"]) for s in snaps] == [
        ("2024-02-29", "20.00"),
        ("2024-01-31", "10.00"),
    ]


async def test_over_long_ids_are_a_clear_422(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    data = statement(range(2)).replace(b"<FITID>F00001", b"<FITID>" + b"X" * 300)
    r = await upload(client, headers, data)
    assert r.status_code == 422, r.text
    assert "255" in r.json()["detail"]
    assert await _all(client, headers, "/api/v1/accounts") == []


async def test_odd_query_values_are_422_not_500(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    await upload(client, headers, statement(range(2)))
    account = (await _all(client, headers, "/api/v1/accounts"))[0]
    r = await client.get("/api/v1/transactions", headers=headers, params={"q": "a\x00b"})
    assert r.status_code == 422
    path = f"/api/v1/accounts/{account['id']}/balance-snapshots"
    r = await client.get(path, headers=headers, params={"since": "9999-12-31T23:59:59-05:00"})
    assert r.status_code == 422


async def test_a_corrected_statement_updates_only_the_changed_transaction(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    original = statement(range(0, 30))
    assert (await upload(client, headers, original)).json()["counts"]["transactions_inserted"] == 30
    corrected = original.replace(b"<NAME>Shop 7<MEMO>card", b"<NAME>Shop 7<MEMO>card refund reversed")
    counts = (await upload(client, headers, corrected)).json()["counts"]
    assert (counts["transactions_inserted"], counts["transactions_updated"]) == (0, 1)
    assert counts["transactions_already_present"] == 29
    (row,) = [t for t in await _all(client, headers, "/api/v1/transactions") if t["raw"]["FITID"] == "F00007"]
    assert row["description"] == "Shop 7 / card refund reversed"


async def test_an_unreadable_transaction_is_reported_on_every_upload(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    data = statement(range(0, 20)).replace(b"<TRNAMT>-5.25", b"<TRNAMT>five")
    for inserted, present in ((19, 0), (0, 19)):
        body = (await upload(client, headers, data)).json()
        assert (body["counts"]["transactions_inserted"], body["counts"]["transactions_already_present"]) == (
            inserted,
            present,
        )
        assert any("F00005" in w and "skipped" in w and "TRNAMT" in w for w in body["warnings"]), body[
            "warnings"
        ]


async def test_two_lots_of_one_security_keep_their_ids_on_reupload(client: httpx.AsyncClient) -> None:
    """OFX carries no lot id: two positions of one CUSIP are told apart by their place in the list."""
    data = (OFX / "fidelity.ofx").read_bytes()
    start = data.index(b"<POSSTOCK>")
    first = data[start : data.index(b"</POSSTOCK>", start) + len(b"</POSSTOCK>")]
    second_lot = first.replace(b"<UNITS>128.00000", b"<UNITS>7.00000").replace(
        b"<MKTVAL>+00000005231.36", b"<MKTVAL>+00000000286.09"
    )
    data = data.replace(first, first + second_lot, 1)
    headers = await register_and_login(client)
    r = await upload(client, headers, data, "lots.qfx")
    assert r.status_code == 201, r.text
    (account,) = r.json()["accounts"]
    path = f"/api/v1/accounts/{account['id']}/holdings"
    before = {(h["id"], h["quantity"]) for h in await _all(client, headers, path)}
    assert {q for _, q in before if q in ("128.00000", "7.00000")} == {"128.00000", "7.00000"}
    for _ in range(2):  # each re-upload keeps both lots as they were, ids included
        r = await upload(client, headers, data, "lots.qfx")
        assert r.status_code == 201, r.text
        assert {(h["id"], h["quantity"]) for h in await _all(client, headers, path)} == before


def investment_statement(entries: int) -> bytes:
    """An investment statement of ``entries`` buys, sells and incomes with unique FITIDs, two
    FITID-less ones and a bank leg, and the SECLIST naming their securities."""
    rows = []
    for i in range(entries):
        fitid = f"<FITID>T{i:05d}" if i not in (3, 4) else ""
        tran = f"<INVTRAN>{fitid}<DTTRADE>202401{1 + i % 28:02d}<MEMO>Order {i}</INVTRAN>"
        secid = f"<SECID><UNIQUEID>{i % 7:09d}<UNIQUEIDTYPE>CUSIP</SECID>"
        if i % 3 == 0:
            rows.append(
                f"<BUYSTOCK><INVBUY>{tran}{secid}<UNITS>{i + 1}<UNITPRICE>10.50<COMMISSION>1.00"
                f"<TOTAL>-{(i + 1) * 10.5 + 1:.2f}<SUBACCTSEC>CASH<SUBACCTFUND>CASH</INVBUY>"
                "<BUYTYPE>BUY</BUYSTOCK>"
            )
        elif i % 3 == 1:
            rows.append(
                f"<SELLMF><INVSELL>{tran}{secid}<UNITS>-{i}<UNITPRICE>20<TOTAL>{i * 20}"
                "<SUBACCTSEC>CASH<SUBACCTFUND>CASH</INVSELL><SELLTYPE>SELL</SELLMF>"
            )
        else:
            rows.append(f"<INCOME>{tran}{secid}<INCOMETYPE>DIV<TOTAL>{i}.25<SUBACCTSEC>CASH</INCOME>")
    rows.append(
        "<INVBANKTRAN><STMTTRN><TRNTYPE>CREDIT<DTPOSTED>20240120<TRNAMT>100<FITID>C1<NAME>Deposit"
        "</STMTTRN><SUBACCTFUND>CASH</INVBANKTRAN>"
    )
    secs = "".join(
        f"<STOCKINFO><SECINFO><SECID><UNIQUEID>{i:09d}<UNIQUEIDTYPE>CUSIP</SECID><SECNAME>Stock {i}"
        f"<TICKER>S{i}</SECINFO></STOCKINFO>"
        for i in range(7)
    )
    return (
        "OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\nSECURITY:NONE\nENCODING:USASCII\nCHARSET:1252\n"
        "COMPRESSION:NONE\nOLDFILEUID:NONE\nNEWFILEUID:NONE\n\n<OFX><SIGNONMSGSRSV1><SONRS><STATUS><CODE>0"
        "<SEVERITY>INFO</STATUS><DTSERVER>20240131<LANGUAGE>ENG<FI><ORG>Broker<FID>77</FI></SONRS>"
        "</SIGNONMSGSRSV1><INVSTMTMSGSRSV1><INVSTMTTRNRS><TRNUID>1<STATUS><CODE>0<SEVERITY>INFO</STATUS>"
        "<INVSTMTRS><DTASOF>20240131<CURDEF>USD<INVACCTFROM><BROKERID>b.example<ACCTID>9876</INVACCTFROM>"
        "<INVTRANLIST><DTSTART>20240101<DTEND>20240131\n" + "\n".join(rows) + "\n</INVTRANLIST>"
        "<INVBAL><AVAILCASH>50</INVBAL></INVSTMTRS></INVSTMTTRNRS></INVSTMTMSGSRSV1>"
        f"<SECLISTMSGSRSV1><SECLIST>{secs}</SECLIST></SECLISTMSGSRSV1></OFX>\n"
    ).encode()


@pytest.mark.parametrize("name", ["generated", "fidelity.ofx", "vanguard.ofx", "investment_401k.ofx"])
async def test_reimporting_an_investment_file_finds_everything_unchanged(
    client: httpx.AsyncClient, name: str
) -> None:
    """Investment entries are named by FITID + a fingerprint of their text, without mapping
    them: a second upload of the file writes nothing and stores the same rows."""
    data = investment_statement(120) if name == "generated" else (OFX / name).read_bytes()
    headers = await register_and_login(client)
    first = await upload(client, headers, data)
    assert first.status_code == 201, first.text
    inserted = first.json()["counts"]["transactions_inserted"]
    assert inserted >= (121 if name == "generated" else 1)
    stored = sorted(await _all(client, headers, "/api/v1/transactions"), key=lambda t: t["id"])
    for _ in range(2):
        again = await upload(client, headers, data)
        assert again.status_code == 201, again.text
        counts = again.json()["counts"]
        assert (counts["transactions_inserted"], counts["transactions_updated"]) == (0, 0), counts
        assert counts["transactions_already_present"] == inserted
        assert sorted(await _all(client, headers, "/api/v1/transactions"), key=lambda t: t["id"]) == stored
    if name == "generated":
        rows = {t["raw"].get("FITID"): t for t in stored}
        assert rows["T00000"]["symbol"] == "S0"
        assert rows["T00000"]["description"] == "Order 0 / Stock 0"
        assert rows["T00001"]["subtype"] == "sell"
        assert rows["T00001"]["amount"] == "20"
        assert rows["C1"]["amount"] == "100"


async def test_a_changed_investment_entry_is_updated_alone(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    data = investment_statement(30)
    assert (await upload(client, headers, data)).json()["counts"]["transactions_inserted"] == 31
    changed = data.replace(b"<MEMO>Order 7<", b"<MEMO>Order 7 corrected<")
    counts = (await upload(client, headers, changed)).json()["counts"]
    assert (counts["transactions_inserted"], counts["transactions_updated"]) == (0, 1)
    assert counts["transactions_already_present"] == 30
    stored = await _all(client, headers, "/api/v1/transactions")
    (row,) = [t for t in stored if t["raw"].get("FITID") == "T00007"]
    assert row["description"] == "Order 7 corrected / Stock 0"
