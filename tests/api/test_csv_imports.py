"""CSV uploads through HTTP into SQLite and PostgreSQL: presets, dedupe, bad rows, rejected files."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import register_and_login

pytestmark = pytest.mark.e2e
CSV = Path(__file__).parents[1] / "fixtures" / "csv"


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    data: bytes,
    name: str = "export.csv",
    params: dict[str, str] | None = None,
) -> httpx.Response:
    return await client.post(
        "/api/v1/imports", headers=headers, params=params or {}, files={"file": (name, data, "text/csv")}
    )


async def _all(client: httpx.AsyncClient, headers: dict[str, str], path: str) -> list[dict]:
    return list((await client.get(path, headers=headers, params={"limit": 500})).json()["items"])


async def _counts(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[int, int, int]:
    connections = (await client.get("/api/v1/connections", headers=headers)).json()
    accounts = await _all(client, headers, "/api/v1/accounts")
    txns = await _all(client, headers, "/api/v1/transactions")
    return (
        len(connections["items"] if isinstance(connections, dict) else connections),
        len(accounts),
        len(txns),
    )


async def test_formats_list_csv_presets(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    names = [f["name"] for f in (await client.get("/api/v1/imports/formats", headers=headers)).json()]
    presets = ("trading212", "revolut", "monzo", "chase_card", "amex", "vanguard_uk")
    assert {"ofx", "csv", *(f"csv:{name}" for name in presets)} <= set(names)


async def test_trading212_history_both_generations(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    new = await upload(client, headers, (CSV / "trading212_2024.csv").read_bytes())
    assert new.status_code == 201, new.text
    body = new.json()
    assert body["format"] == "csv:trading212"
    assert body["counts"]["transactions_inserted"] == 9
    (account,) = body["accounts"]
    assert (account["type"], account["currency"]) == ("brokerage", "GBP")
    old = (await upload(client, headers, (CSV / "trading212_2021.csv").read_bytes())).json()
    assert old["counts"]["transactions_inserted"] == 5
    assert [a["id"] for a in old["accounts"]] == [account["id"]]  # the same account, years apart
    txns = await _all(client, headers, f"/api/v1/accounts/{account['id']}/transactions")
    kinds = sorted((t["type"], t["subtype"]) for t in txns)
    assert kinds.count(("trade", "buy")) == 3
    assert kinds.count(("trade", "sell")) == 2
    assert kinds.count(("income", "dividend")) == 3
    buy = next(t for t in txns if t["symbol"] == "AAPL" and t["subtype"] == "buy")
    assert (buy["amount"], buy["currency"], buy["quantity"], buy["fees"]) == (
        "-365.31",
        "GBP",
        "2.5000000000",
        "0.55",
    )
    sell = next(t for t in txns if t["symbol"] == "MSFT" and t["subtype"] == "sell")
    assert (sell["amount"], sell["fees"]) == ("36.15", "0.01")  # Finra fee (GBP) of the old generation
    withdrawal = next(
        t for t in txns if t["subtype"] == "withdrawal" and t["transaction_date"] == "2024-03-05"
    )
    assert withdrawal["amount"] == "-200.00"


async def test_reimport_and_overlap_insert_only_new(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    lines = (CSV / "chase_card.csv").read_bytes().splitlines(keepends=True)
    first = await upload(client, headers, b"".join(lines[:4]))  # header + 3 rows
    assert first.json()["counts"]["transactions_inserted"] == 3
    again = (await upload(client, headers, b"".join(lines[:4]))).json()["counts"]
    assert (again["transactions_inserted"], again["transactions_already_present"]) == (0, 3)
    overlap = (await upload(client, headers, lines[0] + b"".join(lines[2:]))).json()["counts"]
    assert (overlap["transactions_inserted"], overlap["transactions_already_present"]) == (2, 2)
    assert (await _counts(client, headers))[1:] == (1, 5)


async def test_identical_rows_stay_two_and_pending_completes_in_place(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    data = (CSV / "revolut.csv").read_bytes()
    body = (await upload(client, headers, data)).json()
    assert body["format"] == "csv:revolut"
    assert body["counts"]["transactions_inserted"] == 7  # two identical coffees; the declined one skipped
    assert any("declined" in w for w in body["warnings"])
    assert len(body["accounts"]) == 3  # Current GBP, Current EUR, Savings GBP
    completed = data.replace(
        b"2024-03-07 18:20:00,,Tesco,-23.10,0.00,GBP,PENDING,",
        b"2024-03-07 18:20:00,2024-03-08 06:00:00,Tesco,-23.10,0.00,GBP,COMPLETED,367.40",
    )
    counts = (await upload(client, headers, completed)).json()["counts"]
    assert (counts["transactions_inserted"], counts["transactions_updated"]) == (0, 1)
    tesco = [t for t in await _all(client, headers, "/api/v1/transactions") if t["description"] == "Tesco"]
    assert [(t["status"], t["settlement_date"]) for t in tesco] == [("settled", "2024-03-08")]


async def test_bad_rows_are_reported_by_line_and_the_rest_imported(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    data = (
        b"Date,Description,Amount,Currency\n"
        b"2024-01-05,Coffee,-3.20,EUR\n"
        b"2024-01-06,Broken,abc,EUR\n"
        b"not a date,Rent,-900.00,EUR\n"
        b"2024-01-07,Salary,2500.00,EUR\n"
    )
    r = await upload(client, headers, data)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["format"] == "csv"
    assert body["counts"]["transactions_inserted"] == 2
    assert any(w.startswith("line 3:") and "'abc'" in w for w in body["warnings"])
    assert any(w.startswith("line 4:") for w in body["warnings"])


async def test_file_without_usable_rows_is_422_and_writes_nothing(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    data = b"Date,Description,Amount,Currency\nsoon,Coffee,-3.20,EUR\n2024-01-06,Broken,abc,EUR\n"
    r = await upload(client, headers, data)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["type"].endswith("no-usable-rows")
    assert "line 2" in problem["detail"]
    assert await _counts(client, headers) == (0, 0, 0)
    header_only = await upload(client, headers, b"Date,Description,Amount,Currency\n")
    assert header_only.status_code == 422
    unknown = await upload(client, headers, b"colour,size,weight\nred,10,3\nblue,11,4\n")
    assert unknown.status_code == 415
    assert "import-mappings" in unknown.json()["detail"]
    assert await _counts(client, headers) == (0, 0, 0)


async def test_a_quote_never_closed_is_422_naming_its_line_not_rows_lost(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    before = "".join(f"2024-01-{1 + i % 28:02d},Shop {i},-{i}.50,EUR\n" for i in range(300))
    after = "".join(f"2024-02-{1 + i % 28:02d},Later {i},-{i}.25,EUR\n" for i in range(100))
    data = ("Date,Description,Amount,Currency\n" + before + '2024-01-31,"Coffee,-2.50,EUR\n' + after).encode()
    r = await upload(client, headers, data)  # the 100 rows after the quote were one cell
    assert r.status_code == 422, r.text
    assert r.json()["type"].endswith("malformed-file")
    assert r.json()["detail"].startswith("line 302: a quoted field opened on this line is not closed")
    closed_later = data.replace(b"Later 50,", b'Later 50",')  # a stray quote closes it: still refused
    r = await upload(client, headers, closed_later)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("line 302: ")
    assert await _counts(client, headers) == (0, 0, 0)
    # A description legitimately quoted over two lines is still one row.
    good = b'Date,Description,Amount,Currency\n2024-01-31,"Coffee\nshop, main st",-2.50,EUR\n'
    r = await upload(client, headers, good)
    assert r.status_code == 201, r.text
    assert r.json()["counts"]["transactions_inserted"] == 1


async def test_european_export_semicolons_decimal_comma_cp1252_debit_credit(
    client: httpx.AsyncClient,
) -> None:
    headers = await register_and_login(client)
    text = (
        "Buchungstag;Description;Debit;Credit;Currency\r\n"
        '02.01.2024;"Café; Bäckerei";3,20;;EUR\r\n'
        "03.01.2024;Gehalt;;2.500,00;EUR\r\n"
        "04.01.2024;Miete;1.200,00;;EUR\r\n"
    )
    # "Buchungstag" is no known date name: the file needs a mapping, which the next test covers;
    # here the common names are used so that detection alone reads it.
    text = text.replace("Buchungstag", "Date")
    for encoding in ("cp1252", "utf-8-sig", "utf-16"):
        body = (await upload(client, headers, text.encode(encoding))).json()
        assert (
            body["counts"]["transactions_inserted"] + body["counts"]["transactions_already_present"] == 3
        ), body
    txns = await _all(client, headers, "/api/v1/transactions")
    assert sorted(t["amount"] for t in txns) == ["-1200.00", "-3.20", "2500.00"]
    assert any(t["description"] == "Café; Bäckerei" for t in txns)


BANK = (
    "Buchungstag;Verwendungszweck;Betrag;Saldo\n"
    "02.01.2024;Bäckerei;-3,20;996,80\n"
    "03.01.2024;Gehalt;2.500,00;3.496,80\n"
    "04.01.2024;Miete;-1.200,00;2.296,80\n"
).encode("cp1252")


async def test_preview_detects_and_writes_nothing(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    r = await client.post(
        "/api/v1/imports/preview",
        headers=headers,
        files={"file": ("x.csv", (CSV / "monzo.csv").read_bytes())},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["format"] == "csv:monzo"
    assert body["settings"] == {
        "encoding": "utf-8", "delimiter": ",", "quote": '"',
        "date_format": "DD/MM/YYYY", "number_format": "1,234.56",
    }  # fmt: skip
    assert (body["rows_total"], body["rows_usable"]) == (4, 4)
    assert body["rows"][2]["amount"] == "-12.90"
    assert body["rows"][2]["line"] == 4
    broken = (CSV / "chase_card.csv").read_bytes().replace(b"-15.49", b"fifteen")
    problems = await client.post(
        "/api/v1/imports/preview", headers=headers, files={"file": ("c.csv", broken)}
    )
    assert any(p.startswith("line 3:") for p in problems.json()["problems"])
    unknown = await client.post("/api/v1/imports/preview", headers=headers, files={"file": ("b.csv", BANK)})
    assert unknown.status_code == 415
    ofx = b"OFXHEADER:100\nDATA:OFXSGML\n\n<OFX></OFX>"
    assert (
        await client.post("/api/v1/imports/preview", headers=headers, files={"file": ("a.ofx", ofx)})
    ).status_code == 415
    assert await _counts(client, headers) == (0, 0, 0)


NATIONWIDE = (  # a UK export: account details above the header, Windows-1252 pound signs
    '"Account Name:","FlexAccount ****12345"\r\n"Account Balance:","\xa31,234.56"\r\n'
    '"Available Balance: ","\xa31,234.56"\r\n\r\n'
    '"Date","Transaction type","Description","Paid out","Paid in","Balance"\r\n'
    '"30/01/2024","Contactless payment","COFFEE","\xa32.50","","\xa31,232.06"\r\n'
    '"30/01/2024","Contactless payment","COFFEE","\xa32.50","","\xa31,229.56"\r\n'
    '"01/02/2024","Bank credit","SALARY","","\xa31,000.00","\xa32,229.56"\r\n'
).encode("cp1252")


async def test_lines_above_the_header_are_skipped_and_a_mapping_finds_the_header(
    client: httpx.AsyncClient,
) -> None:
    headers = await register_and_login(client)
    preview = (await upload_preview(client, headers, NATIONWIDE)).json()
    assert preview["header"][:3] == ["Date", "Transaction type", "Description"]
    assert preview["problems"][0].startswith("the header is on line 5: the 3 line(s) above it")
    assert [(r["line"], r["amount"]) for r in preview["rows"]] == [(6, "-2.50"), (7, "-2.50"), (8, "1000.00")]
    body = {
        "name": "Nationwide",
        "header": preview["header"],
        "columns": {"date": "Date", "debit": "Paid out", "credit": "Paid in", "description": ["Description"]},
        "default_currency": "GBP",
    }
    assert (await client.post("/api/v1/import-mappings", headers=headers, json=body)).status_code == 201
    r = await upload(client, headers, NATIONWIDE)
    assert r.status_code == 201, r.text
    assert (r.json()["format"], r.json()["counts"]["transactions_inserted"]) == ("csv:mapping", 3)
    again = (await upload(client, headers, NATIONWIDE)).json()["counts"]
    assert (again["transactions_inserted"], again["transactions_already_present"]) == (0, 3)
    txns = await _all(client, headers, "/api/v1/transactions")
    assert sorted((t["amount"], t["currency"]) for t in txns) == [
        ("-2.50", "GBP"), ("-2.50", "GBP"), ("1000.00", "GBP"),
    ]  # fmt: skip


async def upload_preview(client: httpx.AsyncClient, headers: dict[str, str], data: bytes) -> httpx.Response:
    return await client.post("/api/v1/imports/preview", headers=headers, files={"file": ("x.csv", data)})


async def test_saved_mapping_reads_later_files_by_header(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    header = ["Buchungstag", "Verwendungszweck", "Betrag", "Saldo"]
    body = {
        "name": "Sparkasse Giro",
        "header": header,
        "columns": {"date": "Buchungstag", "amount": "Betrag", "description": ["Verwendungszweck"]},
        "date_format": "DD.MM.YYYY",
        "default_currency": "eur",
    }
    r = await client.post("/api/v1/import-mappings", headers=headers, json=body)
    assert r.status_code == 201, r.text
    mapping = r.json()
    assert mapping["mapping"]["default_currency"] == "EUR"
    assert (await client.post("/api/v1/import-mappings", headers=headers, json=body)).status_code == 409
    preview = (
        await client.post("/api/v1/imports/preview", headers=headers, files={"file": ("b.csv", BANK)})
    ).json()
    assert (preview["format"], preview["mapping_id"]) == ("csv:mapping", mapping["id"])
    assert preview["settings"]["number_format"] == "1.234,56"
    imported = (await upload(client, headers, BANK)).json()  # matched by header, no id needed
    assert imported["format"] == "csv:mapping"
    assert imported["counts"]["transactions_inserted"] == 3
    (account,) = imported["accounts"]
    assert (account["name"], account["currency"]) == ("Sparkasse Giro (EUR)", "EUR")
    named = (await upload(client, headers, BANK, params={"mapping_id": mapping["id"]})).json()
    assert named["counts"]["transactions_already_present"] == 3
    txns = await _all(client, headers, "/api/v1/transactions")
    assert sorted(t["amount"] for t in txns) == ["-1200.00", "-3.20", "2500.00"]
    assert [m["id"] for m in (await client.get("/api/v1/import-mappings", headers=headers)).json()] == [
        mapping["id"]
    ]
    missing = await upload(
        client, headers, BANK, params={"mapping_id": "0190f0f0-0000-7000-8000-000000000000"}
    )
    assert missing.status_code == 404
    assert (
        await client.delete(f"/api/v1/import-mappings/{mapping['id']}", headers=headers)
    ).status_code == 204
    assert (
        await client.delete(f"/api/v1/import-mappings/{mapping['id']}", headers=headers)
    ).status_code == 404


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"columns": {"date": "Buchungstag"}}, "amount column"),
        ({"columns": {"date": "Buchungstag", "amount": "Value"}}, "not in the header: Value"),
        ({"date_format": "someday"}, "unknown date format"),
        ({"default_currency": None}, "currency"),
        ({"columns": {"date": "Buchungstag", "amount": "Betrag", "debit": "Saldo"}}, "not both"),
    ],
)
async def test_bad_mappings_are_refused(client: httpx.AsyncClient, change: dict, words: str) -> None:
    headers = await register_and_login(client)
    body = {
        "name": "x",
        "header": ["Buchungstag", "Verwendungszweck", "Betrag", "Saldo"],
        "columns": {"date": "Buchungstag", "amount": "Betrag"},
        "default_currency": "EUR",
    } | change
    r = await client.post("/api/v1/import-mappings", headers=headers, json=body)
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"]
    assert (await client.get("/api/v1/import-mappings", headers=headers)).json() == []


async def test_other_users_mapping_and_account_ids_answer_404(client: httpx.AsyncClient) -> None:
    owner = await register_and_login(client, "owner@example.com")
    imported = (await upload(client, owner, (CSV / "monzo.csv").read_bytes())).json()
    body = {
        "name": "mine",
        "header": ["Buchungstag", "Verwendungszweck", "Betrag", "Saldo"],
        "columns": {"date": "Buchungstag", "amount": "Betrag"},
        "default_currency": "EUR",
        "account_id": imported["accounts"][0]["id"],
    }
    mapping = (await client.post("/api/v1/import-mappings", headers=owner, json=body)).json()
    intruder = await register_and_login(client, "intruder@example.com")
    r = await upload(client, intruder, BANK, params={"mapping_id": mapping["id"]})
    assert r.status_code == 404
    preview = await client.post(
        "/api/v1/imports/preview",
        headers=intruder,
        params={"mapping_id": mapping["id"]},
        files={"file": ("b", BANK)},
    )
    assert preview.status_code == 404
    stolen = await client.post("/api/v1/import-mappings", headers=intruder, json=body)
    assert stolen.status_code == 404
    assert (await client.get("/api/v1/import-mappings", headers=intruder)).json() == []
    # The intruder's own upload of the same header is not read with the owner's mapping.
    assert (await upload(client, intruder, BANK)).status_code == 415
    assert await _counts(client, intruder) == (0, 0, 0)


async def test_debit_credit_marker_column_signs_unsigned_amounts(client: httpx.AsyncClient) -> None:
    """``12.50`` marked ``DR`` is money out: detected, previewed, and nameable in a saved mapping."""
    headers = await register_and_login(client)
    data = (
        b"Date,Description,Amount,CR/DR,Currency,Transaction ID\n"
        b"2024-01-05,Coffee,12.50,DR,EUR,t1\n"
        b"2024-01-06,Salary,2500.00,CR,EUR,t2\n"
        b"2024-01-07,Refund,-3.00,dr,EUR,t3\n"
        b"2024-01-08,Odd,9.99,??,EUR,t4\n"
    )
    preview = (
        await client.post("/api/v1/imports/preview", headers=headers, files={"file": ("s.csv", data)})
    ).json()
    assert preview["mapping"]["direction"] == "CR/DR"
    assert [r["amount"] for r in preview["rows"]] == ["-12.50", "2500.00", "-3.00"]
    assert any(p.startswith("line 5:") for p in preview["problems"])
    r = await upload(client, headers, data)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["counts"]["transactions_inserted"] == 3
    assert any(w.startswith("line 5:") and "'??'" in w for w in body["warnings"])
    txns = await _all(client, headers, "/api/v1/transactions")
    assert sorted(Decimal(t["amount"]) for t in txns) == [
        Decimal("-12.50"),
        Decimal("-3.00"),
        Decimal("2500.00"),
    ]
    mapping = {
        "name": "Kontor",
        "header": ["Booked", "Sum", "Kind", "Text"],
        "columns": {"date": "Booked", "amount": "Sum", "direction": "Kind", "description": ["Text"]},
        "default_currency": "EUR",
    }
    saved = await client.post("/api/v1/import-mappings", headers=headers, json=mapping)
    assert saved.status_code == 201, saved.text
    assert saved.json()["mapping"]["direction"] == "Kind"
    kontor = b"Booked;Sum;Kind;Text\n05.01.2024;4,50;D;Bakery\n06.01.2024;20,00;C;Gift\n"
    imported = (await upload(client, headers, kontor)).json()
    assert (imported["format"], imported["counts"]["transactions_inserted"]) == ("csv:mapping", 2)
    txns = await _all(client, headers, "/api/v1/transactions")
    assert {Decimal("-4.50"), Decimal("20.00")} <= {Decimal(t["amount"]) for t in txns}
    no_amount = mapping | {"name": "y", "columns": {"date": "Booked", "debit": "Sum", "direction": "Kind"}}
    refused = await client.post("/api/v1/import-mappings", headers=headers, json=no_amount)
    assert refused.status_code == 422
    assert "direction" in refused.json()["detail"]


async def test_bad_row_with_an_id_is_reported_when_written_and_again_on_reimport(
    client: httpx.AsyncClient,
) -> None:
    """Rows with an id are mapped as the writer takes them: a bad one still comes back by line."""
    headers = await register_and_login(client)
    data = (
        b"Date,Description,Amount,Currency,Transaction ID\n"
        b"2024-01-05,Coffee,-3.20,EUR,t1\n"
        b"2024-01-06,Broken,abc,EUR,t2\n"
        b"2024-01-07,Salary,2500.00,EUR,t3\n"
    )
    first = (await upload(client, headers, data)).json()
    assert first["counts"]["transactions_inserted"] == 2
    assert [w for w in first["warnings"] if w.startswith("line")] == [
        "line 3: amount 'abc' is not a number; the row was not imported"
    ]
    again = (await upload(client, headers, data + b"2024-01-08,Rent,-900.00,EUR,t4\n")).json()
    assert (again["counts"]["transactions_inserted"], again["counts"]["transactions_already_present"]) == (
        1,
        2,
    )
    assert any(w.startswith("line 3:") for w in again["warnings"])
    assert (await _counts(client, headers))[1:] == (1, 3)


async def test_vanguard_uk_cash_transactions_and_reimport(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    data = (CSV / "vanguard_uk.csv").read_bytes()
    body = (await upload(client, headers, data)).json()
    assert (body["format"], body["counts"]["transactions_inserted"]) == ("csv:vanguard_uk", 11)
    (account,) = body["accounts"]
    assert (account["name"], account["type"], account["currency"]) == ("Vanguard UK", "brokerage", "GBP")
    txns = await _all(client, headers, f"/api/v1/accounts/{account['id']}/transactions")
    sell = next(t for t in txns if t["subtype"] == "sell")
    assert (sell["amount"], sell["symbol"], Decimal(sell["quantity"])) == ("1701.44", "VUSA", Decimal(20))
    again = (await upload(client, headers, data)).json()["counts"]
    assert (again["transactions_inserted"], again["transactions_already_present"]) == (0, 11)
