"""A fake Example Bank on real loopback HTTP, built from finsync's shared fake-broker pipeline
(tests/fakes/broker.py): auth check, injected faults, a 60-a-minute window on the virtual clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from tests.fakes.broker import BrokerStore, Window, Wire, create_broker_app, iso

from finsync.providers.http import Clock

KEY = "fake-examplebank-key-0001"
PATHS = {"accounts": "/v1/accounts", "transactions": "/v1/accounts/{account_id}/transactions"}
PAGE = 2  # small pages, so a sync follows the cursor


@dataclass
class BankStore(BrokerStore):
    endpoints: ClassVar[frozenset[str]] = frozenset(PATHS)

    accounts: list[dict[str, Any]] = field(default_factory=list)
    transactions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # oldest first
    seen_after: list[str | None] = field(default_factory=list)  # the ``after`` each call sent

    def add_account(self, account_id: str, currency: str, balance: str, kind: str = "current") -> None:
        self.accounts.append(
            {"id": account_id, "name": f"{kind.title()} {account_id}", "type": kind, "currency": currency,
             "balance": balance, "available": balance}
        )  # fmt: skip
        self.transactions[account_id] = []

    def add_transaction(self, account_id: str, amount: str, when: float, text: str) -> None:
        items = self.transactions[account_id]
        items.append({"id": f"{account_id}-tx{len(items) + 1}", "amount": amount, "booked_at": iso(when),
                      "description": text, "pending": False})  # fmt: skip


def create_app(clock: Clock, store: BankStore) -> Starlette:
    def transactions(request: Request) -> dict[str, Any]:
        items = store.transactions[request.path_params["account_id"]]
        after = request.query_params.get("after")
        store.seen_after.append(after)
        start = int(after.removeprefix("c")) if after else 0
        page = items[start : start + PAGE]
        return {
            "transactions": page,
            "cursor": f"c{start + len(page)}",
            "has_more": start + PAGE < len(items),
        }

    wire = Wire(
        authorized=lambda request: request.headers.get("authorization") == f"Bearer {KEY}",
        unauthorized={"error": "invalid api key"},
        too_many={"error": "slow down"},
        injected=lambda status: {"error": f"injected {status}"},
    )
    return create_broker_app(
        clock,
        store,
        wire,
        paths=PATHS,
        windows=dict.fromkeys(PATHS, Window(60, 60.0)),  # one budget for the whole API
        bodies={"accounts": lambda _: {"accounts": store.accounts}, "transactions": transactions},
    )
