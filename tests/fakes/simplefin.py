"""A fake SimpleFIN Bridge on real loopback HTTP, speaking the protocol's wire format.

- ``POST /simplefin/claim/{token}``: the claim URL a setup token encodes (base64). A token is
  claimed once; a second claim (or an unknown token) answers 403. The body is the access URL,
  ``http://USER:PASS@127.0.0.1:port/simplefin``.
- ``GET /simplefin/accounts?start-date&end-date&pending=1`` with HTTP Basic from the access
  URL: every account with its transactions posted in [start, end) (pending ones by
  ``transacted_at``), ``errors`` (version 1, ``org`` per account) or ``errlist`` plus
  ``connections`` and ``conn_id`` (version 2). A range over 90 days is capped with a warning.
  Past 24 requests a rolling day a warning appears; past 48 the access URL is disabled (403).
- Revoked access → 403; ``inject("402")`` etc. answers the next request with that status.
"""

from __future__ import annotations

import base64
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from finsync.providers.http import Clock

DAY = 86_400
CAP_DAYS = 90
DAILY = 24
CAPPED = "Requested date range exceeds limit of 90 days and was capped."


@dataclass
class SimpleFinStore:
    version: int = 1
    tokens: dict[str, bool] = field(default_factory=dict)  # claim token → claimed
    users: dict[str, str] = field(default_factory=dict)  # access username → password
    revoked: set[str] = field(default_factory=set)
    accounts: list[dict[str, Any]] = field(default_factory=list)
    transactions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)  # the bridge's words for the person
    ranges: list[tuple[int, int]] = field(default_factory=list)  # (start, end) of each /accounts
    claims: int = 0
    sent: dict[str, deque[float]] = field(default_factory=dict)  # per user: request times
    faults: deque[int] = field(default_factory=deque)

    def setup_token(self, base_url: str) -> str:
        token = secrets.token_hex(16)
        self.tokens[token] = False
        return base64.b64encode(f"{base_url}/simplefin/claim/{token}".encode()).decode()

    def add_account(
        self, account_id: str, name: str, balance: str, *, currency: str = "USD", org: str = "Demo Bank"
    ) -> None:
        self.accounts.append(
            {"id": account_id, "name": name, "currency": currency, "balance": balance,
             "available-balance": balance, "balance-date": 0, "org_name": org}
        )  # fmt: skip
        self.transactions[account_id] = []

    def add_transaction(
        self, account_id: str, txn_id: str, amount: str, when: float, text: str, *, pending: bool = False
    ) -> None:
        self.transactions[account_id].append(
            {"id": txn_id, "posted": 0 if pending else int(when), "amount": amount, "description": text,
             "payee": text.split()[0], "memo": "", "transacted_at": int(when), "pending": pending}
        )  # fmt: skip

    def post(self, account_id: str, pending_id: str, new_id: str, when: float) -> None:
        """The bank books a pending item: it reappears posted, under a new id."""
        items = self.transactions[account_id]
        (old,) = [t for t in items if t["id"] == pending_id]
        items.remove(old)
        items.append(old | {"id": new_id, "posted": int(when), "pending": False})


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user, password


def create_app(clock: Clock, store: SimpleFinStore) -> Starlette:
    async def claim(request: Request) -> Response:
        store.claims += 1
        token = request.path_params["token"]
        if store.tokens.get(token, True):  # unknown or already claimed
            return PlainTextResponse("Forbidden", status_code=403)
        store.tokens[token] = True
        user, password = f"user{len(store.users) + 1}", secrets.token_hex(12)
        store.users[user] = password
        host = request.url.netloc
        return PlainTextResponse(f"{request.url.scheme}://{user}:{password}@{host}/simplefin")

    async def info(_: Request) -> Response:
        return JSONResponse({"versions": ["1.0"] if store.version == 1 else ["1.0", "2.0"]})

    def body(start: int, end: int, pending: bool, notes: list[str]) -> dict[str, Any]:
        conns: dict[str, str] = {}
        accounts = []
        for account in store.accounts:
            org = account["org_name"]
            item = {k: v for k, v in account.items() if k != "org_name"}
            item["balance-date"] = int(clock.now())
            txns = []
            for t in store.transactions[account["id"]]:
                when = t["transacted_at"] if t["pending"] else t["posted"]
                if start <= when < end and (pending or not t["pending"]):
                    txns.append(t)
            item["transactions"] = txns
            if "holdings" in account:
                item["holdings"] = account["holdings"]
            if store.version == 1:
                item["org"] = {"domain": "demo.example", "sfin-url": "https://bridge.invalid/", "name": org}
            else:
                item["conn_id"] = conns.setdefault(org, f"CON-{len(conns) + 1}")
            accounts.append(item)
        if store.version == 1:
            return {"errors": notes, "accounts": accounts}
        return {
            "errlist": [{"code": "gen.warn", "msg": m, "conn_id": "CON-1"} for m in notes],
            "connections": [
                {"conn_id": cid, "name": org, "org_id": cid.lower(), "org_url": "https://demo.example"}
                for org, cid in conns.items()
            ],
            "accounts": accounts,
        }

    async def accounts(request: Request) -> Response:
        auth = _basic(request)
        if auth is None or store.users.get(auth[0]) != auth[1]:
            return PlainTextResponse("Unauthorized", status_code=401)
        user = auth[0]
        if user in store.revoked:
            return PlainTextResponse("Forbidden", status_code=403)
        now = clock.now()
        sent = store.sent.setdefault(user, deque())
        while sent and sent[0] <= now - DAY:
            sent.popleft()
        sent.append(now)
        if len(sent) > 2 * DAILY:
            store.revoked.add(user)
            return PlainTextResponse("Forbidden", status_code=403)
        if store.faults:
            status = store.faults.popleft()
            return PlainTextResponse(f"injected {status}", status_code=status)
        query = request.query_params
        end = int(query.get("end-date") or now)
        start = int(query.get("start-date") or end - CAP_DAYS * DAY)
        notes = list(store.messages)
        if end - start > CAP_DAYS * DAY:
            start = end - CAP_DAYS * DAY
            notes.append(CAPPED)
        if len(sent) > DAILY:
            notes.append(f"You have made more than {DAILY} requests today; access may be disabled.")
        store.ranges.append((start, end))
        return JSONResponse(body(start, end, query.get("pending") == "1", notes))

    return Starlette(
        routes=[
            Route("/simplefin/claim/{token}", claim, methods=["POST"]),
            Route("/simplefin/info", info),
            Route("/simplefin/accounts", accounts),
        ]
    )


def seed_household(store: SimpleFinStore, now: float, *, old_purchase: bool = False) -> None:
    """The tests' bridge: a checking account (payroll, a coffee, a pending grocery) and a card
    at another institution; ``old_purchase``: one more card row 150 days back, beyond a first
    sync's 90 days."""
    store.add_account("ACT-1", "Everyday Checking", "1520.10")
    store.add_account("ACT-2", "Rewards Visa Card", "-312.45", org="Card Co")
    store.add_transaction("ACT-1", "TRN-1", "2500.00", now - 40 * DAY, "PAYROLL ACME")
    store.add_transaction("ACT-1", "TRN-2", "-12.34", now - 3 * DAY, "COFFEE SHOP")
    store.add_transaction("ACT-1", "PEND-1", "-64.99", now - DAY, "GROCER MARKET", pending=True)
    if old_purchase:
        store.add_transaction("ACT-2", "TRN-3", "-100.00", now - 150 * DAY, "OLD PURCHASE")
    store.add_transaction("ACT-2", "TRN-4", "-5.00", now - 2 * DAY, "PARKING")
