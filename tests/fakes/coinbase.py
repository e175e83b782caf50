"""A fake Coinbase API (Advanced Trade v3 and the v2 account history) that verifies CDP key auth.

Private calls carry ``Authorization: Bearer <JWT>``: an ES256 JWT (header ``alg`` ES256,
``kid`` the key name, a ``nonce``; claims ``sub`` the key name, ``iss`` ``coinbase-cloud``,
``aud`` ``["retail_rest_api_proxy"]``, ``nbf``/``iat``/``exp`` of at most two minutes, and
``uri`` = ``"<METHOD> <host><path>"`` without the query), signed with the key's EC P-256
private key as raw ``r||s``; the fake verifies it with the public key (and the time against
the wall clock: ccxt signs with it). On loopback ccxt leaves ``http://`` in ``uri`` (it strips
only ``https://``): the fake accepts the host with or without it.

Answers are Coinbase's: v3 ``brokerage/accounts`` (``accounts``, ``has_next``, ``cursor``),
``brokerage/orders/historical/fills`` newest first with an opaque ``cursor`` (empty on the
last page) and ``start_sequence_timestamp``/``end_sequence_timestamp``, public
``brokerage/market/products`` (also the tickers, ``product_ids`` repeated); v2
``accounts/{id}/transactions`` newest first, ``limit`` (25 by default, 100 at most) and
``starting_after`` with ``pagination.next_starting_after``. Errors: v3 refuses auth with a
bare ``401 Unauthorized`` text, v2 with ``{"errors": [{"id": "authentication_error", ...}]}``;
``429`` with ``rate_limit_exceeded``. ``store.inject(path, fault)`` makes the next call to a
path (``"api/v3/brokerage/accounts"``, ``"v2/accounts/<id>/transactions"``) fail with
``"401"``, ``"404"``, ``"429"`` or ``"503"``.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from finsync.providers.http import Clock

DAY_MS = 86_400_000
TX_PAGE, TX_MAX = 25, 100
FILLS_PAGE = 100
ACCOUNTS_PAGE = 250
_NS = uuid.UUID("00000000-0000-5000-8000-0000000c0b1e")


def fake_key() -> tuple[str, str]:
    """An obviously fake CDP key: its name and a freshly generated EC P-256 private key (PEM),
    made for the test run and never valid anywhere."""
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    return "organizations/fake-org-0000/apiKeys/fake-key-0001", pem


def account_uuid(currency: str) -> str:
    return str(uuid.uuid5(_NS, currency))


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class CoinbaseStore:
    key_name: str = ""
    private_pem: str = ""
    # product id → (base, quote, price)
    products: dict[str, tuple[str, str, str]] = field(
        default_factory=lambda: {
            "BTC-USD": ("BTC", "USD", "60000.01"),
            "ETH-USD": ("ETH", "USD", "3000.5"),
            "SOL-USD": ("SOL", "USD", "150.25"),
            "BTC-EUR": ("BTC", "EUR", "55000"),
            "USDC-EUR": ("USDC", "EUR", "0.92"),
        }
    )
    # currency → (available, hold); an account exists for each (zero balances too, as Coinbase lists them)
    balances: dict[str, tuple[str, str]] = field(default_factory=dict)
    permissions: dict[str, bool] = field(
        default_factory=lambda: {"can_view": True, "can_trade": False, "can_transfer": False}
    )
    fills: list[dict[str, Any]] = field(default_factory=list)
    # account uuid → v2 transactions
    transactions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    accounts_page: int = ACCOUNTS_PAGE
    fills_page: int = FILLS_PAGE
    faults: dict[str, list[str]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.private_pem:
            self.key_name, self.private_pem = fake_key()

    def inject(self, path: str, fault: str) -> None:
        self.faults.setdefault(path, []).append(fault)

    def add_fill(
        self, product: str, *, trade_id: str, ts: int, side: str, price: str, size: str, commission: str
    ) -> None:
        self.fills.append(
            {
                "entry_id": f"entry-{trade_id}",
                "trade_id": trade_id,
                "order_id": f"order-{trade_id}",
                "trade_time": iso(ts).replace("Z", ".123456Z"),
                "trade_type": "FILL",
                "price": price,
                "size": size,
                "commission": commission,
                "product_id": product,
                "sequence_timestamp": iso(ts).replace("Z", ".123456Z"),
                "liquidity_indicator": "TAKER",
                "size_in_quote": False,
                "user_id": "fake-user-0001",
                "side": side.upper(),
                "retail_portfolio_id": "fake-portfolio-0001",
                "_ts": ts,
            }
        )

    def add_transaction(
        self,
        currency: str,
        *,
        tx_id: str,
        ts: int,
        kind: str,
        amount: str,
        fee: str | None = None,
        sent: str | None = None,
    ) -> None:
        """A v2 transaction of ``currency``'s account: ``amount`` signed (negative: out); a
        crypto ``send`` carries its network fee and the amount that reached the chain."""
        account = account_uuid(currency)
        item: dict[str, Any] = {
            "id": tx_id,
            "type": kind,
            "status": "completed",
            "amount": {"amount": amount, "currency": currency},
            "native_amount": {"amount": amount, "currency": "USD"},
            "description": None,
            "created_at": iso(ts),
            "updated_at": iso(ts),
            "resource": "transaction",
            "resource_path": f"/v2/accounts/{account}/transactions/{tx_id}",
            "instant_exchange": False,
            "details": {"title": kind, "subtitle": ""},
            "_ts": ts,
        }
        if kind == "send":
            item["network"] = {
                "status": "confirmed",
                "hash": f"fakehash{tx_id}",
                "network_name": currency.lower(),
            }
            if fee is not None:
                item["network"]["transaction_fee"] = {"amount": fee, "currency": currency}
                item["network"]["transaction_amount"] = {
                    "amount": sent or amount.lstrip("-"),
                    "currency": currency,
                }
                item["to"] = {"resource": "address", "address": f"fake-address-{tx_id}"}
                item["idem"] = f"idem-{tx_id}"
            else:
                item["from"] = {"resource": f"{currency.lower()}_network", "currency": currency}
        self.transactions.setdefault(account, []).append(item)


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json")


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not k.startswith("_")}


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _fault(path: str, fault: str) -> Response:
    v2 = path.startswith("v2/")
    if fault == "401":
        if v2:
            return _json({"errors": [{"id": "authentication_error", "message": "invalid signature"}]}, 401)
        return Response("Unauthorized\n", status_code=401, media_type="text/plain")
    if fault == "429":
        if v2:
            return _json({"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]}, 429)
        return _json(
            {
                "error": "rate_limit_exceeded",
                "error_details": "Too many requests",
                "message": "Too many requests",
            },
            429,
        )
    if fault == "404":
        return _json({"errors": [{"id": "not_found", "message": "Not found"}]}, 404)
    return Response("upstream connect error", status_code=503, media_type="text/plain")


def create_app(clock: Clock, store: CoinbaseStore) -> Starlette:
    public_key = serialization.load_pem_private_key(store.private_pem.encode(), password=None).public_key()

    def verify(request: Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        parts = token.split(".")
        if scheme != "Bearer" or len(parts) != 3:
            return False
        try:
            header, claims, signature = json.loads(_b64(parts[0])), json.loads(_b64(parts[1])), _b64(parts[2])
        except ValueError:
            return False
        if header.get("alg") != "ES256" or header.get("kid") != store.key_name or not header.get("nonce"):
            return False
        now = time.time()  # ccxt signs with the wall clock
        uri = str(claims.get("uri", "")).replace("http://", "", 1)
        if (
            claims.get("sub") != store.key_name
            or claims.get("iss") != "coinbase-cloud"
            or claims.get("aud") != ["retail_rest_api_proxy"]
            or uri != f"{request.method} {request.url.netloc}{request.url.path}"
            or not int(claims.get("nbf", 0)) - 5 <= now < int(claims.get("exp", 0))
            or int(claims["exp"]) - int(claims["nbf"]) > 120
            or len(signature) != 64
        ):
            return False
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        try:
            public_key.verify(der, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    def record(request: Request) -> tuple[str, dict[str, Any]]:
        path = request.url.path.lstrip("/")
        params: dict[str, Any] = dict(request.query_params)
        if "product_ids" in request.query_params:
            params["product_ids"] = request.query_params.getlist("product_ids")
        store.requests.append((path, params))
        return path, params

    def refused(request: Request, path: str) -> Response | None:
        queued = store.faults.get(path)
        if queued:
            return _fault(path, queued.pop(0))
        if not verify(request):
            return _fault(path, "401")
        return None

    async def products(request: Request) -> Response:
        path, params = record(request)
        if (bad := store.faults.get(path)) and bad:
            return _fault(path, bad.pop(0))
        if params.get("product_type") == "FUTURE":
            return _json({"products": [], "num_products": 0})
        wanted = params.get("product_ids")
        items = [
            {
                "product_id": pid,
                "price": price,
                "price_percentage_change_24h": "0",
                "volume_24h": "1000",
                "volume_percentage_change_24h": "0",
                "base_increment": "0.00000001",
                "quote_increment": "0.01",
                "quote_min_size": "1",
                "quote_max_size": "150000000",
                "base_min_size": "0.00000001",
                "base_max_size": "3400",
                "base_name": base,
                "quote_name": quote,
                "watched": False,
                "is_disabled": False,
                "new": False,
                "status": "online",
                "cancel_only": False,
                "limit_only": False,
                "post_only": False,
                "trading_disabled": False,
                "auction_mode": False,
                "product_type": "SPOT",
                "quote_currency_id": quote,
                "base_currency_id": base,
                "fcm_trading_session_details": None,
                "mid_market_price": "",
                "alias": "",
                "alias_to": [],
                "base_display_symbol": base,
                "quote_display_symbol": quote,
                "view_only": False,
                "price_increment": "0.01",
                "display_name": pid,
                "product_venue": "CBE",
            }
            for pid, (base, quote, price) in store.products.items()
            if not wanted or pid in wanted
        ]
        return _json({"products": items, "num_products": len(items)})

    async def transaction_summary(request: Request) -> Response:
        path, _ = record(request)
        if (bad := refused(request, path)) is not None:
            return bad
        return _json(
            {
                "total_volume": 0,
                "total_fees": 0,
                "fee_tier": {
                    "pricing_tier": "Advanced 1",
                    "usd_from": "0",
                    "usd_to": "1000",
                    "taker_fee_rate": "0.012",
                    "maker_fee_rate": "0.006",
                },
                "margin_rate": None,
                "goods_and_services_tax": None,
                "advanced_trade_only_volume": 0,
                "advanced_trade_only_fees": 0,
                "coinbase_pro_volume": 0,
                "coinbase_pro_fees": 0,
            }
        )

    async def accounts(request: Request) -> Response:
        path, params = record(request)
        if (bad := refused(request, path)) is not None:
            return bad
        limit = min(int(params.get("limit") or 49), store.accounts_page)
        start = int(base64.b64decode(params["cursor"]).decode()) if params.get("cursor") else 0
        everything = [
            {
                "uuid": account_uuid(ccy),
                "name": f"{ccy} Wallet",
                "currency": ccy,
                "available_balance": {"value": available, "currency": ccy},
                "default": True,
                "active": True,
                "created_at": "2023-01-04T06:20:06.456Z",
                "updated_at": "2023-01-04T06:20:07.181Z",
                "deleted_at": None,
                "type": "ACCOUNT_TYPE_FIAT" if ccy in ("USD", "EUR", "GBP") else "ACCOUNT_TYPE_CRYPTO",
                "ready": True,
                "hold": {"value": hold, "currency": ccy},
                "retail_portfolio_id": "fake-portfolio-0001",
                "platform": "ACCOUNT_PLATFORM_CONSUMER",
            }
            for ccy, (available, hold) in sorted(store.balances.items())
        ]
        page = everything[start : start + limit]
        more = start + limit < len(everything)
        cursor = base64.b64encode(str(start + limit).encode()).decode() if more else ""
        return _json({"accounts": page, "has_next": more, "cursor": cursor, "size": len(page)})

    async def key_permissions(request: Request) -> Response:
        path, _ = record(request)
        if (bad := refused(request, path)) is not None:
            return bad
        return _json(
            store.permissions | {"portfolio_uuid": "fake-portfolio-0001", "portfolio_type": "DEFAULT"}
        )

    async def fills(request: Request) -> Response:
        path, params = record(request)
        if (bad := refused(request, path)) is not None:
            return bad

        def ms(name: str) -> int | None:
            text = params.get(name)
            return (
                int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000) if text else None
            )

        low, high = ms("start_sequence_timestamp"), ms("end_sequence_timestamp")
        items = [
            f
            for f in store.fills
            if (low is None or f["_ts"] >= low)
            and (high is None or f["_ts"] <= high)
            and (not params.get("product_id") or f["product_id"] == params["product_id"])
        ]
        items.sort(key=lambda f: (f["_ts"], f["trade_id"]), reverse=True)
        limit = min(int(params.get("limit") or store.fills_page), store.fills_page)
        start = int(base64.b64decode(params["cursor"]).decode()) if params.get("cursor") else 0
        page = items[start : start + limit]
        more = start + limit < len(items)
        cursor = base64.b64encode(str(start + limit).encode()).decode() if more else ""
        return _json({"fills": [_public(f) for f in page], "cursor": cursor})

    async def transactions(request: Request) -> Response:
        path, params = record(request)
        if (bad := refused(request, path)) is not None:
            return bad
        account = request.path_params["account_id"]
        if account not in {account_uuid(c) for c in store.balances}:
            return _json({"errors": [{"id": "not_found", "message": "Not found"}]}, 404)
        limit = int(params.get("limit") or TX_PAGE)
        if not 1 <= limit <= TX_MAX:
            return _json(
                {"errors": [{"id": "invalid_request", "message": "limit must be between 1 and 100"}]}, 400
            )
        items = sorted(store.transactions.get(account, []), key=lambda t: (t["_ts"], t["id"]), reverse=True)
        if after := params.get("starting_after"):
            ids = [t["id"] for t in items]
            if after not in ids:
                return _json(
                    {"errors": [{"id": "invalid_request", "message": "starting_after not found"}]}, 400
                )
            items = items[ids.index(after) + 1 :]
        page, more = items[:limit], len(items) > limit
        following = page[-1]["id"] if more else None
        base = f"/v2/accounts/{account}/transactions?limit={limit}"
        return _json(
            {
                "pagination": {
                    "ending_before": None,
                    "starting_after": after or None,
                    "previous_ending_before": None,
                    "next_starting_after": following,
                    "limit": limit,
                    "order": "desc",
                    "previous_uri": None,
                    "next_uri": f"{base}&starting_after={following}" if following else None,
                },
                "data": [_public(t) for t in page],
            }
        )

    async def v2_accounts(request: Request) -> Response:
        """ccxt's default balance call (one page of v2 accounts): served so that an adapter
        which does not ask for the Advanced Trade accounts still gets a balance."""
        path, params = record(request)
        if (bad := refused(request, path)) is not None:
            return bad
        data = [
            {
                "id": account_uuid(ccy),
                "name": f"{ccy} Wallet",
                "primary": False,
                "type": "fiat" if ccy in ("USD", "EUR", "GBP") else "wallet",
                "currency": {"code": ccy, "name": ccy, "type": "fiat" if ccy in ("USD", "EUR") else "crypto"},
                "balance": {"amount": str(Decimal(available) + Decimal(hold)), "currency": ccy},
                "created_at": "2023-01-04T06:20:06Z",
                "updated_at": "2023-01-04T06:20:07Z",
                "resource": "account",
                "resource_path": f"/v2/accounts/{account_uuid(ccy)}",
                "allow_deposits": True,
                "allow_withdrawals": True,
            }
            for ccy, (available, hold) in sorted(store.balances.items())
        ]
        limit = int(params.get("limit") or TX_PAGE)
        return _json(
            {
                "pagination": {
                    "ending_before": None,
                    "starting_after": None,
                    "limit": limit,
                    "order": "desc",
                    "previous_uri": None,
                    "next_uri": None,
                    "next_starting_after": None,
                },
                "data": data[:limit],
            }
        )

    async def v2_public(request: Request) -> Response:
        record(request)
        path = request.url.path
        if path.endswith("exchange-rates"):
            rates = {base: price for _, (base, quote, price) in store.products.items() if quote == "USD"}
            return _json({"data": {"currency": "USD", "rates": rates}})
        if path.endswith("crypto"):
            codes = sorted({b for b, _, _ in store.products.values()} - {"USD", "EUR"})
            return _json(
                {
                    "data": [
                        {
                            "asset_id": account_uuid(code),
                            "code": code,
                            "name": code,
                            "color": "#000000",
                            "sort_index": i,
                            "exponent": 8,
                            "type": "crypto",
                            "address_regex": ".*",
                        }
                        for i, code in enumerate(codes)
                    ]
                }
            )
        return _json(
            {
                "data": [
                    {"id": "USD", "name": "US Dollar", "min_size": "0.01"},
                    {"id": "EUR", "name": "Euro", "min_size": "0.01"},
                ]
            }
        )

    return Starlette(
        routes=[
            Route("/api/v3/brokerage/market/products", products),
            Route("/api/v3/brokerage/transaction_summary", transaction_summary),
            Route("/api/v3/brokerage/accounts", accounts),
            Route("/api/v3/brokerage/key_permissions", key_permissions),
            Route("/api/v3/brokerage/orders/historical/fills", fills),
            Route("/v2/accounts", v2_accounts),
            Route("/v2/accounts/{account_id}/transactions", transactions),
            Route("/v2/currencies", v2_public),
            Route("/v2/currencies/crypto", v2_public),
            Route("/v2/exchange-rates", v2_public),
        ]
    )


def api_urls(url: str) -> dict[str, str]:
    """ccxt's Coinbase API group pointed at the fake."""
    return {"rest": url}


def seed(store: CoinbaseStore, now: float) -> None:
    """BTC, ETH and USD held, USDC empty and never used; fills, a fiat deposit, a crypto
    deposit and withdrawal (with its network fee), a staking reward, and the entries that
    are neither (advanced-trade fills, a staking transfer)."""
    t = int(now * 1000)
    store.balances = {
        "BTC": ("0.4", "0.1"),
        "ETH": ("2.01", "0"),
        "USD": ("1000", "0"),
        "USDC": ("0", "0"),
    }
    store.add_fill(
        "BTC-USD", trade_id="b1", ts=t - 10 * DAY_MS, side="buy", price="40000", size="0.5", commission="120"
    )
    store.add_fill(
        "ETH-USD", trade_id="e1", ts=t - 8 * DAY_MS, side="buy", price="2500", size="2", commission="30"
    )
    store.add_transaction(
        "USD", tx_id="tx-usd-dep", ts=t - 30 * DAY_MS, kind="fiat_deposit", amount="26150.00"
    )
    store.add_transaction(
        "USD", tx_id="tx-usd-fill", ts=t - 10 * DAY_MS, kind="advanced_trade_fill", amount="-20120"
    )
    store.add_transaction(
        "BTC", tx_id="tx-btc-fill", ts=t - 10 * DAY_MS, kind="advanced_trade_fill", amount="0.5"
    )
    store.add_transaction("BTC", tx_id="tx-btc-in", ts=t - 6 * DAY_MS, kind="send", amount="0.1")
    store.add_transaction(
        "BTC", tx_id="tx-btc-out", ts=t - 5 * DAY_MS, kind="send", amount="-0.1", fee="0.0001", sent="0.0999"
    )
    store.add_transaction(
        "ETH", tx_id="tx-eth-fill", ts=t - 8 * DAY_MS, kind="advanced_trade_fill", amount="2"
    )
    store.add_transaction(
        "ETH", tx_id="tx-eth-stake", ts=t - 3 * DAY_MS, kind="staking_transfer", amount="-1"
    )
    store.add_transaction(
        "ETH", tx_id="tx-eth-reward", ts=t - 2 * DAY_MS, kind="staking_reward", amount="0.01"
    )
