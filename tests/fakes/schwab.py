"""A fake Schwab: OAuth consent page + token endpoint and the Trader API paths finsync reads.

It speaks Schwab's wire format (JSON doubles, hashValue paths, gateway 401 shape,
``invalid_grant``) and enforces what the real one does: HTTP Basic client auth,
single-use codes valid 30 s, PKCE S256, 30-minute access and 7-day refresh tokens,
transaction windows of at most a year. The consent page is a plain HTML form, so a
headless browser can click "Allow" without JavaScript.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from finsync.providers.http import Clock
from tests.fakes.consent import consent_page, redirect_back

APP_KEY = "fake-app-key"
APP_SECRET = "fake-app-secret"
CODE_TTL = 30.0
ACCESS_TTL = 1800
REFRESH_TTL = 7 * 86400


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str | None
    method: str | None
    issued_at: float
    used: bool = False


@dataclass
class FakeSchwab:
    clock: Clock
    app_key: str = APP_KEY
    app_secret: str = APP_SECRET
    rotate_every: int = 0  # every n-th refresh hands out a new refresh token (0: never)
    omit_refresh_token: bool = False  # refresh answers without refresh_token
    accounts: list[dict[str, Any]] = field(default_factory=list)  # accounts?fields=positions items
    transactions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # accountNumber → items
    grants: dict[str, Grant] = field(default_factory=dict)
    access_tokens: dict[str, float] = field(default_factory=dict)  # token → expiry
    refresh_tokens: dict[str, float] = field(default_factory=dict)
    faults: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # next API answers
    calls: Counter[str] = field(default_factory=Counter)
    windows: list[tuple[datetime, datetime]] = field(default_factory=list)
    refreshes: int = 0
    # Called (in a worker thread, so it may block) before GET /accounts/{hash} answers.
    on_account: Callable[[], None] | None = None

    def hash_of(self, number: str) -> str:
        return hashlib.sha256(f"hash:{number}".encode()).hexdigest().upper()

    def fail_next(self, status: int, *, retry_after: float | None = None, count: int = 1) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self.faults.extend([(status, headers)] * count)

    def issue_tokens(self) -> dict[str, Any]:
        """Mint a pair directly (tests that start from an already-connected state)."""
        now = self.clock.now()
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.access_tokens[access] = now + ACCESS_TTL
        self.refresh_tokens[refresh] = now + REFRESH_TTL
        return {"access_token": access, "refresh_token": refresh, "token_type": "Bearer",
                "expires_in": ACCESS_TTL, "scope": "api"}  # fmt: skip

    @property
    def app(self) -> FastAPI:
        app = FastAPI()
        app.add_api_route("/v1/oauth/authorize", self.authorize_page, methods=["GET"])
        app.add_api_route("/v1/oauth/authorize", self.authorize_decision, methods=["POST"])
        app.add_api_route("/v1/oauth/token", self.token, methods=["POST"])
        app.add_api_route("/trader/v1/accounts/accountNumbers", self.account_numbers, methods=["GET"])
        app.add_api_route("/trader/v1/accounts", self.list_accounts, methods=["GET"])
        app.add_api_route("/trader/v1/accounts/{account_hash}", self.one_account, methods=["GET"])
        app.add_api_route("/trader/v1/accounts/{account_hash}/transactions", self.list_tx, methods=["GET"])
        return app

    # --- OAuth ---------------------------------------------------------------------------------

    async def authorize_page(self, request: Request) -> Response:
        q = request.query_params
        if (
            q.get("client_id") != self.app_key
            or q.get("response_type") != "code"
            or not q.get("redirect_uri")
        ):
            return HTMLResponse("<h1>Invalid client or request</h1>", status_code=400)
        return consent_page(
            title="Schwab login (fake)",
            heading="Log in to Schwab",
            action="authorize",
            hidden=dict(q.items()),
            inputs="<label>Login ID <input name='login' value='demo'></label>",
        )

    async def authorize_decision(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        if form.get("client_id") != self.app_key or not form.get("redirect_uri"):
            return HTMLResponse("<h1>Invalid client</h1>", status_code=400)
        back: dict[str, str] = {"state": form.get("state", "")}
        if form.get("decision") == "allow":
            code = f"C0.{secrets.token_urlsafe(24)}@"  # real codes end in "@": callers must URL-decode
            self.grants[code] = Grant(
                client_id=form["client_id"],
                redirect_uri=form["redirect_uri"],
                challenge=form.get("code_challenge"),
                method=form.get("code_challenge_method"),
                issued_at=self.clock.now(),
            )
            back = {"code": code, "session": secrets.token_hex(8), **back}
        else:
            back = {"error": "access_denied", **back}
        return redirect_back(form["redirect_uri"], back)

    def _oauth_error(self, error: str, description: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": error, "error_description": description}, status_code=status)

    async def token(self, request: Request) -> Response:
        self.calls["token"] += 1
        expected = base64.b64encode(f"{self.app_key}:{self.app_secret}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return self._oauth_error("invalid_client", "Client authentication failed", 401)
        if self.faults:
            status, headers = self.faults.pop(0)
            return JSONResponse({"error": "server_error"}, status_code=status, headers=headers)
        form = {k: str(v) for k, v in (await request.form()).items()}
        now = self.clock.now()
        if form.get("grant_type") == "authorization_code":
            grant = self.grants.get(form.get("code", ""))
            if grant is None or grant.used:
                return self._oauth_error("invalid_grant", "Authorization code is invalid or already used")
            grant.used = True
            if now - grant.issued_at > CODE_TTL:
                return self._oauth_error("invalid_grant", "Authorization code expired")
            if form.get("redirect_uri") != grant.redirect_uri:
                return self._oauth_error("invalid_grant", "redirect_uri mismatch")
            if grant.challenge is not None:
                verifier = form.get("code_verifier", "")
                digest = hashlib.sha256(verifier.encode()).digest()
                if grant.method != "S256" or base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != (
                    grant.challenge
                ):
                    return self._oauth_error("invalid_grant", "PKCE verification failed")
            return JSONResponse(self.issue_tokens())
        if form.get("grant_type") == "refresh_token":
            old = form.get("refresh_token", "")
            expiry = self.refresh_tokens.get(old)
            if expiry is None or expiry <= now:
                return self._oauth_error("invalid_grant", "Refresh token expired or revoked")
            self.refreshes += 1
            access = secrets.token_urlsafe(24)
            self.access_tokens[access] = now + ACCESS_TTL
            body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": ACCESS_TTL}
            if self.rotate_every and self.refreshes % self.rotate_every == 0:
                new = secrets.token_urlsafe(24)
                self.refresh_tokens[new] = expiry  # rotation does not extend the 7-day login
                del self.refresh_tokens[old]
                body["refresh_token"] = new
            elif not self.omit_refresh_token:
                body["refresh_token"] = old
            return JSONResponse(body)
        return self._oauth_error("unsupported_grant_type", "grant_type not supported")

    # --- Trader API ----------------------------------------------------------------------------

    def _guard(self, request: Request, name: str) -> Response | None:
        self.calls[name] += 1
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        expiry = self.access_tokens.get(token)
        if expiry is None or expiry <= self.clock.now():
            error = {"id": secrets.token_hex(8), "status": 401, "title": "Unauthorized",
                     "detail": "Access token is invalid or expired"}  # fmt: skip
            return JSONResponse({"errors": [error]}, status_code=401)
        if self.faults:
            status, headers = self.faults.pop(0)
            return JSONResponse(
                {"message": "Fault injected", "errors": []}, status_code=status, headers=headers
            )
        return None

    def _number(self, account_hash: str) -> str | None:
        for acc in self.accounts:
            number = str(acc["securitiesAccount"]["accountNumber"])
            if self.hash_of(number) == account_hash:
                return number
        return None

    @staticmethod
    def _view(account: dict[str, Any], fields: str | None) -> dict[str, Any]:
        if fields == "positions":
            return account
        sec = {k: v for k, v in account["securitiesAccount"].items() if k != "positions"}
        return {**account, "securitiesAccount": sec}

    async def account_numbers(self, request: Request) -> Response:
        if (denied := self._guard(request, "accountNumbers")) is not None:
            return denied
        numbers = [str(a["securitiesAccount"]["accountNumber"]) for a in self.accounts]
        return JSONResponse([{"accountNumber": n, "hashValue": self.hash_of(n)} for n in numbers])

    async def list_accounts(self, request: Request) -> Response:
        if (denied := self._guard(request, "accounts")) is not None:
            return denied
        fields = request.query_params.get("fields")
        return JSONResponse([self._view(a, fields) for a in self.accounts])

    async def one_account(self, request: Request, account_hash: str) -> Response:
        if (denied := self._guard(request, "account")) is not None:
            return denied
        if self.on_account is not None:
            await asyncio.to_thread(self.on_account)
        number = self._number(account_hash)
        if number is None:
            return JSONResponse({"message": "Invalid account hash", "errors": []}, status_code=400)
        account = next(a for a in self.accounts if str(a["securitiesAccount"]["accountNumber"]) == number)
        return JSONResponse(self._view(account, request.query_params.get("fields")))

    async def list_tx(self, request: Request, account_hash: str) -> Response:
        if (denied := self._guard(request, "transactions")) is not None:
            return denied
        number = self._number(account_hash)
        if number is None:
            return JSONResponse({"message": "Invalid account hash", "errors": []}, status_code=400)
        try:
            start = datetime.strptime(request.query_params["startDate"], "%Y-%m-%dT%H:%M:%S.%f%z")
            end = datetime.strptime(request.query_params["endDate"], "%Y-%m-%dT%H:%M:%S.%f%z")
        except (KeyError, ValueError):
            msg = "startDate and endDate must be ISO-8601 like 2024-03-29T00:00:00.000Z"
            return JSONResponse({"message": msg, "errors": [msg]}, status_code=400)
        if end < start or end - start > timedelta(days=365):
            msg = "Date range must be at most one year"
            return JSONResponse({"message": msg, "errors": [msg]}, status_code=400)
        self.windows.append((start, end))
        items = [
            t
            for t in self.transactions.get(number, [])
            if start <= datetime.fromisoformat(t["time"]).astimezone(UTC) <= end
        ]
        return JSONResponse(items)


def _at(clock: Clock, days_ago: float) -> str:
    return datetime.fromtimestamp(clock.now() - days_ago * 86400, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _instrument(symbol: str, cusip: str, kind: str = "EQUITY", **extra: str) -> dict[str, Any]:
    return {"assetType": kind, "cusip": cusip, "symbol": symbol, "description": symbol, **extra}


def _position(
    instrument: dict[str, Any], long: float, short: float, avg: float, value: float
) -> dict[str, Any]:
    pnl = "shortOpenProfitLoss" if short else "longOpenProfitLoss"
    return {"longQuantity": long, "shortQuantity": short, "averagePrice": avg, "marketValue": value,
            pnl: round(value - (long - short) * avg, 2), "instrument": instrument}  # fmt: skip


def _fee(fee_type: str, cost: float) -> dict[str, Any]:
    currency = {"assetType": "CURRENCY", "symbol": "CURRENCY_USD", "description": "USD currency"}
    return {"instrument": currency, "amount": abs(cost), "cost": cost, "feeType": fee_type}


def _activity(
    clock: Clock,
    activity_id: int,
    days_ago: float,
    kind: str,
    description: str,
    net: float,
    *items: dict[str, Any],
) -> dict[str, Any]:
    when = _at(clock, days_ago)
    settles = _at(clock, days_ago - 1)
    return {"activityId": activity_id, "time": when, "tradeDate": when, "settlementDate": settles,
            "type": kind, "status": "VALID", "description": description, "netAmount": net,
            "transferItems": list(items)}  # fmt: skip


def with_sample_data(fake: FakeSchwab) -> FakeSchwab:
    """A margin account with long/short positions and 400 days of activity, plus a cash account."""
    clock = fake.clock
    aapl = _instrument("AAPL", "037833100")
    spy = _instrument("SPY", "78462F103", "COLLECTIVE_INVESTMENT", type="EXCHANGE_TRADED_FUND")
    tsla = _instrument("TSLA", "88160R101")
    positions = [
        _position(aapl, 10.0, 0.0, 150.1, 1700.3),
        _position(spy, 2.5, 0.0, 400.0, 1250.75),
        _position(tsla, 0.0, 3.0, 250.0, -600.0),
    ]
    margin_balances = {"cashBalance": 1000.1, "availableFunds": 900.2, "buyingPower": 1800.4,
                       "equity": 3351.15, "liquidationValue": 3351.15}  # fmt: skip
    cash_balances = {"cashAvailableForTrading": 0.3, "cashAvailableForWithdrawal": 0.3,
                     "totalCash": 0.3, "unsettledCash": 0.0}  # fmt: skip
    fake.accounts = [
        {"securitiesAccount": {"type": "MARGIN", "accountNumber": "12345678", "positions": positions,
                               "currentBalances": margin_balances},
         "aggregatedBalance": {"currentLiquidationValue": 3351.15, "liquidationValue": 3351.15}},
        {"securitiesAccount": {"type": "CASH", "accountNumber": "87654321", "positions": [],
                               "currentBalances": cash_balances},
         "aggregatedBalance": {"currentLiquidationValue": 0.3, "liquidationValue": 0.3}},
    ]  # fmt: skip
    buy = {"instrument": aapl, "amount": 10.0, "cost": -1700.3, "price": 170.03, "positionEffect": "OPENING"}
    short = {"instrument": tsla, "amount": -3.0, "cost": 750.0, "price": 250.0, "positionEffect": "OPENING"}
    fake.transactions["12345678"] = [
        _activity(
            clock,
            9001,
            10,
            "TRADE",
            "BUY TRADE",
            -1700.6,
            _fee("COMMISSION", -0.1),
            _fee("SEC_FEE", -0.2),
            buy,
        ),
        _activity(clock, 9002, 5, "TRADE", "SELL SHORT", 749.9, _fee("COMMISSION", -0.1), short),
        _activity(clock, 9003, 100, "DIVIDEND_OR_INTEREST", "ORDINARY DIVIDEND", 2.4, {"instrument": aapl}),
        _activity(clock, 9004, 130, "DIVIDEND_OR_INTEREST", "CREDIT INTEREST", 0.01),
        _activity(clock, 9005, 200, "ACH_RECEIPT", "ACH IN", 5000.0),
        _activity(clock, 9006, 300, "WIRE_OUT", "WIRE OUT", -100.0),
        _activity(clock, 9007, 400, "JOURNAL", "OLD JOURNAL", 1.0),
    ]
    fake.transactions["87654321"] = []
    return fake
