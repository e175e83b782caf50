"""A fake Kraken REST API that verifies the real request signing.

Private calls are ``POST /0/private/<Method>`` with a form body holding ``nonce``; headers
``API-Key`` and ``API-Sign`` = base64(HMAC-SHA512(path + SHA256(nonce + body), base64-decoded
secret)). The nonce must grow for each key. Errors come as Kraken sends them: HTTP 200 with
``{"error": ["EAPI:Invalid nonce"], "result": {}}``. ``TradesHistory`` and ``Ledgers`` page
by ``ofs``, 50 a page, newest first, with ``count``; ``DepositStatus`` / ``WithdrawStatus``
answer the newest 25 from ``start`` to ``end`` (seconds). ``store.inject(method, error)``
makes the next call to a method answer that error (``"429"`` answers HTTP 429).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from finsync.providers.http import Clock

PAGE = 50
TRANSFERS_PAGE = 25


@dataclass
class KrakenStore:
    key: str = "fake-kraken-key-0001"
    secret: str = base64.b64encode(b"fake-kraken-secret-0001").decode()
    # pair id → (altname, base id, quote id, ws name)
    pairs: dict[str, tuple[str, str, str, str]] = field(
        default_factory=lambda: {
            "XXBTZUSD": ("XBTUSD", "XXBT", "ZUSD", "XBT/USD"),
            "XETHZUSD": ("ETHUSD", "XETH", "ZUSD", "ETH/USD"),
            "SOLUSD": ("SOLUSD", "SOL", "ZUSD", "SOL/USD"),
        }
    )
    assets: dict[str, str] = field(
        default_factory=lambda: {"XXBT": "XBT", "XETH": "ETH", "ZUSD": "USD", "SOL": "SOL", "SOL.S": "SOL.S"}
    )
    prices: dict[str, str] = field(
        default_factory=lambda: {"XXBTZUSD": "60000.0", "XETHZUSD": "3000.00", "SOLUSD": "150.00"}
    )
    balances: dict[str, str] = field(default_factory=dict)
    trades: dict[str, dict[str, Any]] = field(default_factory=dict)
    ledger: dict[str, dict[str, Any]] = field(default_factory=dict)
    deposits: list[dict[str, Any]] = field(default_factory=list)
    withdrawals: list[dict[str, Any]] = field(default_factory=list)
    faults: dict[str, list[str]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    last_nonce: int = 0

    def inject(self, method: str, error: str) -> None:
        self.faults.setdefault(method, []).append(error)


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json")


def _error(*messages: str) -> Response:
    return _json({"error": list(messages), "result": {}})


def _ok(result: Any) -> Response:
    return _json({"error": [], "result": result})


def _newest(items: list[dict[str, Any]], form: dict[str, str]) -> list[dict[str, Any]]:
    start = float(form.get("start", "0"))
    end = float(form.get("end", "1e12"))
    chosen = [i for i in items if start < float(i["time"]) <= end]
    return sorted(chosen, key=lambda i: -float(i["time"]))


def create_app(clock: Clock, store: KrakenStore) -> Starlette:
    async def public(request: Request) -> Response:
        method = request.path_params["method"]
        store.requests.append((method, dict(request.query_params)))
        if method == "Assets":
            return _ok(
                {
                    aid: {
                        "aclass": "currency",
                        "altname": alt,
                        "decimals": 10,
                        "display_decimals": 5,
                        "status": "enabled",
                    }
                    for aid, alt in store.assets.items()
                }
            )
        if method == "AssetPairs":
            return _ok(
                {
                    pid: {
                        "altname": alt,
                        "wsname": ws,
                        "aclass_base": "currency",
                        "base": base,
                        "aclass_quote": "currency",
                        "quote": quote,
                        "lot": "unit",
                        "cost_decimals": 5,
                        "pair_decimals": 2,
                        "lot_decimals": 8,
                        "lot_multiplier": 1,
                        "leverage_buy": [],
                        "leverage_sell": [],
                        "fees": [[0, 0.26]],
                        "fees_maker": [[0, 0.16]],
                        "fee_volume_currency": "ZUSD",
                        "margin_call": 80,
                        "margin_stop": 40,
                        "ordermin": "0.0001",
                        "costmin": "0.5",
                        "tick_size": "0.01",
                        "status": "online",
                    }
                    for pid, (alt, base, quote, ws) in store.pairs.items()
                }
            )
        if method == "Ticker":
            wanted = request.query_params.get("pair", "").split(",")
            unknown = [p for p in wanted if p not in store.prices]
            if unknown:
                return _error("EQuery:Unknown asset pair")
            return _ok(
                {
                    p: {
                        "a": [store.prices[p], "1", "1.000"],
                        "b": [store.prices[p], "1", "1.000"],
                        "c": [store.prices[p], "0.1"],
                        "v": ["1", "1"],
                        "p": [store.prices[p]] * 2,
                        "t": [1, 1],
                        "l": [store.prices[p]] * 2,
                        "h": [store.prices[p]] * 2,
                        "o": store.prices[p],
                    }
                    for p in wanted
                }
            )
        return _error("EGeneral:Unknown method")

    async def private(request: Request) -> Response:
        method = request.path_params["method"]
        body = (await request.body()).decode()
        form = dict(parse_qsl(body, keep_blank_values=True))
        store.requests.append((method, form))
        queued = store.faults.get(method) or store.faults.get("*")
        if queued:
            fault = queued.pop(0)
            if fault == "429":
                return _json({"error": ["EAPI:Rate limit exceeded"]}, status=429)
            return _error(fault)
        if request.headers.get("API-Key") != store.key:
            return _error("EAPI:Invalid key")
        nonce = form.get("nonce", "")
        digest = hashlib.sha256((nonce + body).encode()).digest()
        expected = base64.b64encode(
            hmac.new(
                base64.b64decode(store.secret), request.url.path.encode() + digest, hashlib.sha512
            ).digest()
        ).decode()
        if not hmac.compare_digest(request.headers.get("API-Sign", ""), expected):
            return _error("EAPI:Invalid signature")
        if not nonce.isdigit() or int(nonce) <= store.last_nonce:
            return _error("EAPI:Invalid nonce")
        store.last_nonce = int(nonce)
        if method == "BalanceEx":
            return _ok({a: {"balance": v, "hold_trade": "0.0000"} for a, v in store.balances.items()})
        if method in ("TradesHistory", "Ledgers"):
            items, name = (store.trades, "trades") if method == "TradesHistory" else (store.ledger, "ledger")
            listed = [dict(v, _id=k) for k, v in items.items()]
            chosen = _newest(listed, form)
            ofs = int(form.get("ofs", "0"))
            page = chosen[ofs : ofs + PAGE]
            return _ok({name: {i.pop("_id"): i for i in page}, "count": len(chosen)})
        if method in ("DepositStatus", "WithdrawStatus"):
            items = store.deposits if method == "DepositStatus" else store.withdrawals
            return _ok(_newest(items, form)[:TRANSFERS_PAGE])
        return _error("EGeneral:Unknown method")

    return Starlette(
        routes=[Route("/0/public/{method}", public), Route("/0/private/{method}", private, methods=["POST"])]
    )


def api_urls(url: str) -> dict[str, str]:
    return {"public": url, "private": url}


def seed(store: KrakenStore, now: float, *, trades: int = 3, deposits: int = 2) -> None:
    """BTC, ETH, staked SOL and USD cash; trades, deposits, a withdrawal, staking rewards."""
    day = 86_400.0
    store.balances = {
        "XXBT": "0.5000000000",
        "XETH": "2.0000000000",
        "SOL.S": "10.0000000000",
        "ZUSD": "1250.5000",
        "SOL": "0.0000000000",
    }
    for i in range(trades):
        store.trades[f"TQ{i:04d}-AAAAA-BBBBBB"] = {
            "ordertxid": f"O{i:05d}-CCCCC-DDDDDD",
            "postxid": "TKH2SE-M7IF5-CFI7LT",
            "pair": "XXBTZUSD",
            "time": now - 20 * day + i * 60.0,
            "type": "buy",
            "ordertype": "limit",
            "price": "30000.00000",
            "cost": "300.00000",
            "fee": "0.78000",
            "vol": "0.01000000",
            "margin": "0.00000",
            "leverage": "0",
            "misc": "",
            "trade_id": 1000 + i,
            "maker": True,
        }
    for i in range(deposits):
        store.deposits.append(
            {
                "method": "Bitcoin",
                "aclass": "currency",
                "asset": "XXBT",
                "refid": f"FTQ{i:04d}",
                "txid": f"{i:064x}",
                "info": "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh",
                "amount": "0.1000000000",
                "fee": "0.0000000000",
                "time": int(now - 30 * day) + i,
                "status": "Success",
            }
        )
    store.withdrawals.append(
        {
            "method": "Ether",
            "aclass": "currency",
            "asset": "XETH",
            "refid": "AGBZNBO",
            "txid": "0x" + "ab" * 32,
            "info": "0x94df8b352de7f46f64b01d3666bf6e936e44ce60",
            "amount": "0.5000000000",
            "fee": "0.0040000000",
            "time": int(now - 2 * day),
            "status": "Success",
        }
    )
    store.ledger["LSTAKE-00001-AAAAAA"] = {
        "refid": "RSTAKE1",
        "time": now - day,
        "type": "staking",
        "subtype": "",
        "aclass": "currency",
        "asset": "SOL.S",
        "amount": "0.0500000000",
        "fee": "0.0000000000",
        "balance": "10.0000000000",
    }
    store.ledger["LTRADE-00001-AAAAAA"] = {
        "refid": "TQ0000-AAAAA-BBBBBB",
        "time": now - 20 * day,
        "type": "trade",
        "subtype": "",
        "aclass": "currency",
        "asset": "XXBT",
        "amount": "0.0100000000",
        "fee": "0.0000000000",
        "balance": "0.01",
    }
