"""A fake GoCardless Bank Account Data v2 API with a bank consent page.

Enforces what a sync must respect: bearer tokens from ``token/new`` (calls counted),
a bank's budget of 4 successful calls per account per endpoint per rolling day
(``HTTP_X_RATELIMIT_ACCOUNT_SUCCESS_*`` headers, 429 body above it), agreement
history limits, and requisition statuses. The consent page at the requisition
``link`` is a plain HTML form (Allow / Deny) that redirects to ``redirect?ref=...``.
"""

from __future__ import annotations

import secrets
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from finsync.providers.http import Clock
from tests.fakes.consent import consent_page, redirect_back

SECRET_ID = "fake-secret-id"
SECRET_KEY = "fake-secret-key"
SANDBOX = "SANDBOXFINANCE_SFIN0000"
DAY = 86400.0
DATA_KINDS = ("details", "balances", "transactions")


def _error(status: int, summary: str, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"summary": summary, "detail": detail, "status_code": status, **extra}, status)


@dataclass
class FakeBankAccount:
    institution_id: str
    iban: str
    currency: str = "GBP"
    name: str = "Main account"
    cash_account_type: str = "CACC"
    id: str = field(default_factory=lambda: str(uuid.uuid4()))  # GoCardless's: new on some re-consents
    resource_id: str | None = field(default_factory=lambda: f"res-{uuid.uuid4().hex[:12]}")  # the bank's
    balances: list[dict[str, Any]] = field(default_factory=list)
    booked: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakeGoCardless:
    clock: Clock
    secret_id: str = SECRET_ID
    secret_key: str = SECRET_KEY
    header_style: Literal["http", "x"] = "http"
    daily_limit: int = 4
    # GoCardless's own limit on all /accounts/* calls (per minute), told in every answer's
    # HTTP_X_RATELIMIT_LIMIT/REMAINING/RESET (reset: relative seconds); ``minute_429s`` counts refusals.
    minute_limit: int = 100
    minute_calls: list[float] = field(default_factory=list)
    minute_429s: int = 0
    institutions: list[dict[str, Any]] = field(default_factory=list)
    bank_accounts: list[FakeBankAccount] = field(default_factory=list)
    access: dict[str, float] = field(default_factory=dict)
    refresh: dict[str, float] = field(default_factory=dict)
    agreements: dict[str, dict[str, Any]] = field(default_factory=dict)
    requisitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    linked: dict[str, str] = field(default_factory=dict)  # account id → agreement id
    revoked: set[str] = field(default_factory=set)  # account ids whose access the user withdrew
    successes: defaultdict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    calls: Counter[str] = field(default_factory=Counter)  # "token_new", "balances:<account id>", ...
    # Test hook: awaited while a requisition is being created, i.e. in the middle of a link's start.
    on_requisition: Callable[[], Awaitable[None]] | None = None

    def _iso(self, offset: float = 0.0) -> str:
        return datetime.fromtimestamp(self.clock.now() + offset, UTC).isoformat().replace("+00:00", "Z")

    def today(self) -> date:
        return datetime.fromtimestamp(self.clock.now(), UTC).date()

    def account(self, account_id: str) -> FakeBankAccount | None:
        return next((a for a in self.bank_accounts if a.id == account_id), None)

    def book_pending(
        self, account_id: str, index: int = 0, transaction_id: str | None = None
    ) -> dict[str, Any]:
        """Test hook: the bank books a pending item, giving it an id and a booking date."""
        acc = self.account(account_id)
        assert acc is not None
        item = acc.pending.pop(index)
        item = {**item, "transactionId": transaction_id or f"tx-{uuid.uuid4().hex[:10]}"}
        item.setdefault("bookingDate", item.get("valueDate"))
        acc.booked.append(item)
        return item

    def revoke(self, account_id: str) -> None:
        """Test hook: the user withdrew access at the bank before the agreement ended."""
        self.revoked.add(account_id)

    def unlink(self, account_id: str) -> None:
        """Test hook: the bank link is gone (requisition deleted): the account id is unknown."""
        self.linked.pop(account_id, None)

    def renew_ids(self, *, resource_ids: bool = False) -> None:
        """Test hook: the next consent issues new GoCardless account ids (and bank ids if asked)."""
        for account in self.bank_accounts:
            account.id = str(uuid.uuid4())
            if resource_ids and account.resource_id is not None:
                account.resource_id = f"res-{uuid.uuid4().hex[:12]}"

    @property
    def app(self) -> FastAPI:
        app = FastAPI()
        api = "/api/v2"
        app.add_api_route(f"{api}/token/new/", self.token_new, methods=["POST"])
        app.add_api_route(f"{api}/token/refresh/", self.token_refresh, methods=["POST"])
        app.add_api_route(f"{api}/institutions/", self.list_institutions, methods=["GET"])
        app.add_api_route(f"{api}/institutions/{{iid}}/", self.get_institution, methods=["GET"])
        app.add_api_route(f"{api}/agreements/enduser/", self.create_agreement, methods=["POST"])
        app.add_api_route(f"{api}/agreements/enduser/{{aid}}/", self.get_agreement, methods=["GET"])
        app.add_api_route(f"{api}/requisitions/", self.create_requisition, methods=["POST"])
        app.add_api_route(f"{api}/requisitions/{{rid}}/", self.get_requisition, methods=["GET"])
        app.add_api_route(f"{api}/accounts/{{account_id}}/{{kind}}/", self.account_data, methods=["GET"])
        app.add_api_route("/link/{rid}", self.consent_page, methods=["GET"], name="consent")
        app.add_api_route("/link/{rid}", self.consent_decision, methods=["POST"])
        return app

    # --- tokens ----------------------------------------------------------------------------------

    def _pair(self, with_refresh: bool) -> dict[str, Any]:
        access = secrets.token_urlsafe(24)
        self.access[access] = self.clock.now() + DAY
        body: dict[str, Any] = {"access": access, "access_expires": int(DAY)}
        if with_refresh:
            refresh = secrets.token_urlsafe(24)
            self.refresh[refresh] = self.clock.now() + 30 * DAY
            body |= {"refresh": refresh, "refresh_expires": int(30 * DAY)}
        return body

    async def token_new(self, request: Request) -> Response:
        self.calls["token_new"] += 1
        body = await request.json()
        if body.get("secret_id") != self.secret_id or body.get("secret_key") != self.secret_key:
            return _error(401, "Authentication failed", "No active account found with the given credentials")
        return JSONResponse(self._pair(with_refresh=True))

    async def token_refresh(self, request: Request) -> Response:
        self.calls["token_refresh"] += 1
        refresh = (await request.json()).get("refresh", "")
        if self.refresh.get(refresh, 0) <= self.clock.now():
            return _error(401, "Invalid token", "Token is invalid or expired")
        return JSONResponse(self._pair(with_refresh=False))

    def _denied(self, request: Request) -> Response | None:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.access.get(token, 0) <= self.clock.now():
            return _error(401, "Invalid token", "Token is invalid or expired")
        return None

    # --- link flow -------------------------------------------------------------------------------

    async def list_institutions(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        country = request.query_params.get("country", "").upper()
        return JSONResponse([i for i in self.institutions if not country or country in i["countries"]])

    async def get_institution(self, request: Request, iid: str) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        found = next((i for i in self.institutions if i["id"] == iid), None)
        return JSONResponse(found) if found else _error(404, "Not found.", f"Institution {iid} not found")

    async def create_agreement(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        body = await request.json()
        inst = next((i for i in self.institutions if i["id"] == body.get("institution_id")), None)
        if inst is None:
            return _error(400, "Unknown institution", "institution_id is not a known institution")
        days, access = int(body.get("max_historical_days", 90)), int(body.get("access_valid_for_days", 90))
        if not 1 <= days <= int(inst["transaction_total_days"]):
            detail = {"summary": "Incorrect max_historical_days", "detail": "Beyond the bank's history"}
            return JSONResponse({"max_historical_days": detail, "status_code": 400}, 400)
        if not 1 <= access <= int(inst["max_access_valid_for_days"]):
            return _error(400, "Incorrect access_valid_for_days", "Must be between 1 and the bank's maximum")
        agreement = {"id": str(uuid.uuid4()), "created": self._iso(), "institution_id": inst["id"],
                     "max_historical_days": days, "access_valid_for_days": access,
                     "access_scope": body.get("access_scope"), "accepted": None}  # fmt: skip
        self.agreements[agreement["id"]] = agreement
        return JSONResponse(agreement, 201)

    async def get_agreement(self, request: Request, aid: str) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        found = self.agreements.get(aid)
        return JSONResponse(found) if found else _error(404, "Not found.", "Agreement not found")

    async def create_requisition(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        if self.on_requisition is not None:
            await self.on_requisition()
        body = await request.json()
        agreement = self.agreements.get(body.get("agreement", ""))
        if (
            not body.get("redirect")
            or agreement is None
            or agreement["institution_id"] != body.get("institution_id")
        ):
            return _error(
                400, "Invalid requisition", "redirect, institution_id and a matching agreement required"
            )
        if any(r["reference"] == body.get("reference") for r in self.requisitions.values()):
            detail = {"summary": "Client reference must be unique", "detail": "Reference already used"}
            return JSONResponse({"reference": detail, "status_code": 400}, 400)
        rid = str(uuid.uuid4())
        self.requisitions[rid] = {"id": rid, "created": self._iso(), "redirect": body["redirect"],
                                  "status": "CR",
                                  "institution_id": body["institution_id"], "agreement": agreement["id"],
                                  "reference": body.get("reference") or rid, "accounts": [],
                                  "user_language": body.get("user_language", "EN"),
                                  "link": str(request.url_for("consent", rid=rid))}  # fmt: skip
        return JSONResponse(self.requisitions[rid], 201)

    async def get_requisition(self, request: Request, rid: str) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        found = self.requisitions.get(rid)
        return JSONResponse(found) if found else _error(404, "Not found.", "Requisition not found")

    async def consent_page(self, rid: str) -> Response:
        req = self.requisitions.get(rid)
        if req is None:
            return HTMLResponse("<h1>Unknown link</h1>", 404)
        if req["status"] == "CR":
            req["status"] = "UA"
        return consent_page(
            title="Bank consent (fake)",
            heading=req["institution_id"],
            intro="Share your accounts with finsync?",
            action=rid,
        )

    async def consent_decision(self, request: Request, rid: str) -> Response:
        req = self.requisitions.get(rid)
        if req is None:
            return HTMLResponse("<h1>Unknown link</h1>", 404)
        back = {"ref": req["reference"]}
        if (await request.form()).get("decision") == "allow":
            req["status"] = "LN"
            req["accounts"] = [a.id for a in self.bank_accounts if a.institution_id == req["institution_id"]]
            self.agreements[req["agreement"]]["accepted"] = self._iso()
            self.linked.update(dict.fromkeys(req["accounts"], req["agreement"]))
        else:
            req["status"] = "RJ"
            back |= {"error": "UserCancelledSession", "details": "User cancelled the session"}
        return redirect_back(req["redirect"], back)

    # --- account data ----------------------------------------------------------------------------

    def _headers(self, remaining: int, reset: float) -> dict[str, str]:
        values = {"LIMIT": self.daily_limit, "REMAINING": remaining, "RESET": int(reset)}
        if self.header_style == "http":
            return {f"HTTP_X_RATELIMIT_ACCOUNT_SUCCESS_{k}": str(v) for k, v in values.items()}
        return {f"x-ratelimit-account-success-{k.lower()}": str(v) for k, v in values.items()}

    def _minute_headers(self, now: float) -> dict[str, str]:
        calls = self.minute_calls
        reset = calls[0] + 60 - now if calls else 60.0
        values = {"LIMIT": self.minute_limit, "REMAINING": max(0, self.minute_limit - len(calls)),
                  "RESET": max(1, round(reset))}  # fmt: skip
        if self.header_style == "http":
            return {f"HTTP_X_RATELIMIT_{k}": str(v) for k, v in values.items()}
        return {f"x-ratelimit-{k.lower()}": str(v) for k, v in values.items()}

    async def account_data(self, request: Request, account_id: str, kind: str) -> Response:
        now = self.clock.now()
        self.minute_calls[:] = [t for t in self.minute_calls if t > now - 60]
        if len(self.minute_calls) >= self.minute_limit:
            self.minute_429s += 1
            wait = int(self.minute_calls[0] + 60 - now) + 1
            body = {"summary": "Rate limit exceeded", "status_code": 429,
                    "detail": f"Request was throttled. Expected available in {wait} seconds."}  # fmt: skip
            return JSONResponse(body, 429, headers=self._minute_headers(now))
        self.minute_calls.append(now)
        response = await self._account_data(request, account_id, kind)
        response.headers.update(self._minute_headers(now))
        return response

    async def _account_data(self, request: Request, account_id: str, kind: str) -> Response:
        self.calls[f"{kind}:{account_id}"] += 1
        if (denied := self._denied(request)) is not None:
            return denied
        acc = self.account(account_id)
        if kind not in DATA_KINDS or acc is None or account_id not in self.linked:
            return _error(404, "Not found.", "Account not found")
        agreement = self.agreements[self.linked[account_id]]
        accepted = datetime.fromisoformat(agreement["accepted"]).timestamp()
        ends = accepted + agreement["access_valid_for_days"] * DAY
        if ends <= self.clock.now():
            ended = datetime.fromtimestamp(ends, UTC).isoformat(sep=" ")
            return _error(401, f"End User Agreement (EUA) {agreement['id']} has expired",
                          f"EUA was valid for {agreement['access_valid_for_days']} days and it expired at "
                          f"{ended}. The end user must connect the account once more with new EUA and "
                          "Requisition")  # fmt: skip
        if account_id in self.revoked:
            detail = "Access has expired or it has been revoked. To restore access reconnect the account."
            return _error(401, f"Couldn't update account {kind}", detail, type="AccessExpiredError")
        now = self.clock.now()
        log = self.successes[(account_id, kind)]
        log[:] = [t for t in log if t > now - DAY]
        if len(log) >= self.daily_limit:
            reset = log[0] + DAY - now
            detail = f"Daily limit set by the institution exceeded. Try again in {int(reset)} seconds"
            body = {"summary": "Rate limit exceeded", "detail": detail, "status_code": 429}
            return JSONResponse(body, 429, headers=self._headers(0, reset))
        if kind == "transactions":
            body = self._transactions(acc, agreement, request.query_params)
            if isinstance(body, JSONResponse):
                return body
        elif kind == "balances":
            body = {"balances": acc.balances}
        else:
            details = {"resourceId": acc.resource_id, "iban": acc.iban, "currency": acc.currency,
                       "name": acc.name, "cashAccountType": acc.cash_account_type}  # fmt: skip
            body = {"account": {k: v for k, v in details.items() if v}}  # banks omit what they lack
        log.append(now)
        return JSONResponse(body, headers=self._headers(self.daily_limit - len(log), log[0] + DAY - now))

    def _transactions(self, acc: FakeBankAccount, agreement: dict[str, Any], query: Any) -> Any:
        try:
            start = date.fromisoformat(query.get("date_from") or "1970-01-01")
            end = date.fromisoformat(query.get("date_to") or self.today().isoformat())
        except ValueError:
            detail = {"summary": "Invalid date", "detail": "Use YYYY-MM-DD"}
            return JSONResponse({"date_from": detail, "status_code": 400}, 400)
        if start < self.today() - timedelta(days=agreement["max_historical_days"]):
            detail = {"summary": "Date too early", "detail": "date_from is beyond max_historical_days"}
            return JSONResponse({"date_from": detail, "status_code": 400}, 400)

        def within(item: dict[str, Any]) -> bool:
            return start <= date.fromisoformat(item.get("bookingDate") or item["valueDate"]) <= end

        return {"transactions": {"booked": [t for t in acc.booked if within(t)],
                                 "pending": [t for t in acc.pending if within(t)]}}  # fmt: skip


def _tx(day: date, amount: str, text: str, currency: str = "GBP", **ids: str) -> dict[str, Any]:
    side = "creditorName" if amount.startswith("-") else "debtorName"
    return {"bookingDate": day.isoformat(), "valueDate": day.isoformat(), side: text.title(),
            "transactionAmount": {"amount": amount, "currency": currency},
            "remittanceInformationUnstructured": text, **ids}  # fmt: skip


def with_sample_data(fake: FakeGoCardless) -> FakeGoCardless:
    """The sandbox bank with a GBP current account (ids, no ids, duplicates, pending) and a EUR saver."""
    today = fake.today()
    fake.institutions = [
        {"id": SANDBOX, "name": "Sandbox Finance", "bic": "SFIN0000", "transaction_total_days": "90",
         "max_access_valid_for_days": "180", "countries": ["XX", "GB"], "logo": "https://example.test/s.png"},
        {"id": "FAKEBANK_FKBKGB2L", "name": "Fake Bank", "bic": "FKBKGB2L", "transaction_total_days": "730",
         "max_access_valid_for_days": "180", "countries": ["GB"], "logo": "https://example.test/f.png"},
    ]  # fmt: skip

    def d(days_ago: int) -> date:
        return today - timedelta(days=days_ago)

    current = FakeBankAccount(SANDBOX, "GB33BUKB20201555555555", name="Everyday")
    current.balances = [
        {"balanceAmount": {"amount": "1000.00", "currency": "GBP"}, "balanceType": "closingBooked",
         "referenceDate": d(1).isoformat()},
        {"balanceAmount": {"amount": "950.10", "currency": "GBP"}, "balanceType": "interimAvailable"},
        {"balanceAmount": {"amount": "990.00", "currency": "GBP"}, "balanceType": "expected"},
    ]  # fmt: skip
    current.booked = [
        _tx(d(3), "-12.50", "COFFEE SHOP", transactionId="b-1"),
        _tx(d(2), "-4.50", "BUS FARE"),
        _tx(d(2), "-4.50", "BUS FARE"),
        _tx(d(10), "2500.00", "SALARY", internalTransactionId="int-77"),
        _tx(d(60), "-100.00", "RENT", transactionId="b-0"),
    ]
    current.pending = [
        {k: v for k, v in _tx(d(0), "-4.50", "COFFEE").items() if k != "bookingDate"},
        {k: v for k, v in _tx(d(1), "-20.00", "GROCER").items() if k != "bookingDate"},
    ]
    saver = FakeBankAccount(
        SANDBOX, "DE89370400440532013000", currency="EUR", name="", cash_account_type="SVGS"
    )
    saver.balances = [
        {"balanceAmount": {"amount": "5000.00", "currency": "EUR"}, "balanceType": "interimBooked"}
    ]
    fake.bank_accounts = [current, saver]
    return fake
