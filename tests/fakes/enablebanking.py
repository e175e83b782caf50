"""A fake Enable Banking API with a bank login page, speaking its wire format.

Enforces what a client must respect: every call carries an RS256 JWT signed with the
application's key (verified with its public key: ``kid``, issuer, audience, at most 24 h
of life); consents no longer than the bank's ``maximum_consent_validity``; one-time
authorisation codes; account ``uid``s valid for one session only (``identification_hash``
stays); transactions in pages joined by ``continuation_key``; the bank's four unattended
calls a day per account and endpoint (429 ``ASPSP_RATE_LIMIT_EXCEEDED``), calls carrying
the PSU headers (the person present) not counted, and those headers all-or-none of the
ASPSP's ``required_psu_headers`` (422 ``PSU_HEADER_NOT_PROVIDED``); expired and closed
sessions (401 ``EXPIRED_SESSION`` / ``CLOSED_SESSION``).
"""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from finsync.providers.http import Clock
from tests.fakes.consent import consent_page, redirect_back

APPLICATION_ID = "0b4c6a3e-7f1d-4c55-9a2e-1f0e5d3c2b1a"
DAY = 86400.0
BANK = "Sandbox Bank"
COUNTRY = "FI"
INSTITUTION = f"{COUNTRY}:{BANK}"


def new_key() -> tuple[bytes, Any]:
    """A fresh application key: (private PEM as the deployment stores it, public key for the fake)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, key.public_key()


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"message": message, "code": status, "error": code, "detail": None}, status)


@dataclass
class FakeBankAccount:
    iban: str | None
    identification_hash: str
    currency: str = "EUR"
    name: str = "Current account"
    cash_account_type: str = "CACC"
    balances: list[dict[str, Any]] = field(default_factory=list)
    transactions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakeEnableBanking:
    clock: Clock
    public_key: Any
    application_id: str = APPLICATION_ID
    daily_limit: int = 4
    page_size: int = 2
    aspsps: list[dict[str, Any]] = field(default_factory=list)
    bank_accounts: list[FakeBankAccount] = field(default_factory=list)
    authorizations: dict[str, dict[str, Any]] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)  # code → authorization id (one use)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    uids: dict[str, tuple[str, FakeBankAccount]] = field(default_factory=dict)  # uid → (session, account)
    successes: defaultdict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    calls: Counter[str] = field(default_factory=Counter)
    tokens: set[str] = field(default_factory=set)  # distinct JWTs seen
    # Per data call (first pages): (kind, the PSU headers it carried, lower-case names).
    psu_seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def today(self) -> date:
        return datetime.fromtimestamp(self.clock.now(), UTC).date()

    def _iso(self, at: float) -> str:
        return datetime.fromtimestamp(at, UTC).isoformat()

    @property
    def app(self) -> FastAPI:
        app = FastAPI()
        app.add_api_route("/aspsps", self.list_aspsps, methods=["GET"])
        app.add_api_route("/auth", self.start_auth, methods=["POST"])
        app.add_api_route("/sessions", self.create_session, methods=["POST"])
        app.add_api_route("/sessions/{sid}", self.get_session, methods=["GET"])
        app.add_api_route("/sessions/{sid}", self.delete_session, methods=["DELETE"])
        app.add_api_route("/accounts/{uid}/balances", self.balances, methods=["GET"])
        app.add_api_route("/accounts/{uid}/transactions", self.transactions, methods=["GET"])
        app.add_api_route("/bank/{aid}", self.consent_page, methods=["GET"], name="bank")
        app.add_api_route("/bank/{aid}", self.consent_decision, methods=["POST"])
        return app

    # --- test hooks ------------------------------------------------------------------------------

    def book_pending(self, account: FakeBankAccount, index: int = 0) -> dict[str, Any]:
        """The bank books a pending item: status BOOK, a booking date and a new entry_reference."""
        pending = [t for t in account.transactions if t["status"] == "PDNG"]
        item = pending[index]
        item["status"] = "BOOK"
        item["booking_date"] = item.get("value_date") or self.today().isoformat()
        item["entry_reference"] = f"ref-{uuid.uuid4().hex[:10]}"
        item["transaction_id"] = uuid.uuid4().hex
        return item

    # --- auth ------------------------------------------------------------------------------------

    def _denied(self, request: Request) -> Response | None:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token,
                self.public_key,
                algorithms=["RS256"],
                audience="api.enablebanking.com",
                issuer="enablebanking.com",
                options={"verify_exp": False, "verify_iat": False, "require": ["iat", "exp"]},
            )
        except jwt.PyJWTError as exc:
            return _error(401, "UNAUTHORIZED", f"Invalid application JWT: {exc}")
        now = self.clock.now()
        if header.get("kid") != self.application_id or header.get("typ") != "JWT":
            return _error(401, "UNAUTHORIZED", "Unknown application (kid)")
        if not claims["iat"] - 60 <= now < claims["exp"] or claims["exp"] - claims["iat"] > DAY:
            return _error(401, "UNAUTHORIZED", "JWT expired, not yet valid or living over 24 hours")
        self.tokens.add(token)
        return None

    # --- link flow -------------------------------------------------------------------------------

    async def list_aspsps(self, request: Request) -> Response:
        self.calls["aspsps"] += 1
        if (denied := self._denied(request)) is not None:
            return denied
        country = request.query_params.get("country", "").upper()
        return JSONResponse({"aspsps": [a for a in self.aspsps if not country or a["country"] == country]})

    async def start_auth(self, request: Request) -> Response:
        self.calls["auth"] += 1
        if (denied := self._denied(request)) is not None:
            return denied
        body = await request.json()
        wanted = body.get("aspsp") or {}
        aspsp = next(
            (
                a
                for a in self.aspsps
                if a["name"] == wanted.get("name") and a["country"] == wanted.get("country")
            ),
            None,
        )
        if aspsp is None:
            return _error(404, "ASPSP_NOT_FOUND", "ASPSP not found")
        try:
            until = datetime.fromisoformat(body["access"]["valid_until"]).timestamp()
        except (KeyError, TypeError, ValueError):
            return _error(422, "WRONG_REQUEST_PARAMETERS", "access.valid_until must be an ISO time")
        if until > self.clock.now() + aspsp["maximum_consent_validity"] + 60:
            return _error(
                422, "WRONG_CONSENT_VALIDITY", "valid_until beyond the ASPSP's maximum_consent_validity"
            )
        if (
            not body.get("redirect_url")
            or not body.get("state")
            or body.get("psu_type") not in ("personal", "business")
        ):
            return _error(422, "WRONG_REQUEST_PARAMETERS", "redirect_url, state and psu_type are required")
        aid = str(uuid.uuid4())
        self.authorizations[aid] = {"aspsp": aspsp, "valid_until": until, "state": body["state"],
                                    "redirect_url": body["redirect_url"]}  # fmt: skip
        return JSONResponse({"url": str(request.url_for("bank", aid=aid)), "authorization_id": aid})

    async def consent_page(self, aid: str) -> Response:
        auth = self.authorizations.get(aid)
        if auth is None:
            return HTMLResponse("<h1>Unknown authorisation</h1>", 404)
        return consent_page(title="Bank login (fake)", heading=auth["aspsp"]["name"],
                            intro="Share your accounts with this application?", action=aid)  # fmt: skip

    async def consent_decision(self, request: Request, aid: str) -> Response:
        auth = self.authorizations.get(aid)
        if auth is None:
            return HTMLResponse("<h1>Unknown authorisation</h1>", 404)
        if (await request.form()).get("decision") == "allow":
            code = secrets.token_urlsafe(16)
            self.codes[code] = aid
            return redirect_back(auth["redirect_url"], {"code": code, "state": auth["state"]})
        return redirect_back(
            auth["redirect_url"],
            {"error": "access_denied", "error_description": "User cancelled", "state": auth["state"]},
        )

    async def create_session(self, request: Request) -> Response:
        self.calls["sessions"] += 1
        if (denied := self._denied(request)) is not None:
            return denied
        aid = self.codes.pop(str((await request.json()).get("code") or ""), None)
        if aid is None:
            return _error(422, "WRONG_AUTHORIZATION_CODE", "Unknown or already used authorization code")
        auth = self.authorizations[aid]
        sid = str(uuid.uuid4())
        accounts = []
        for account in self.bank_accounts:
            uid = str(uuid.uuid4())  # new for every session
            self.uids[uid] = (sid, account)
            accounts.append({"uid": uid, "account_id": {"iban": account.iban} if account.iban else {},
                             "name": account.name, "currency": account.currency,
                             "cash_account_type": account.cash_account_type,
                             "identification_hash": account.identification_hash})  # fmt: skip
        aspsp = {"name": auth["aspsp"]["name"], "country": auth["aspsp"]["country"]}
        self.sessions[sid] = {"status": "AUTHORIZED", "valid_until": auth["valid_until"], "aspsp": aspsp,
                              "accounts": [a["uid"] for a in accounts]}  # fmt: skip
        return JSONResponse({"session_id": sid, "accounts": accounts, "aspsp": aspsp,
                             "psu_type": "personal",
                             "access": {"valid_until": self._iso(auth["valid_until"])}})  # fmt: skip

    async def get_session(self, request: Request, sid: str) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        found = self.sessions.get(sid)
        if found is None:
            return _error(404, "SESSION_DOES_NOT_EXIST", "Session not found")
        return JSONResponse({**found, "access": {"valid_until": self._iso(found["valid_until"])}})

    async def delete_session(self, request: Request, sid: str) -> Response:
        self.calls["delete_session"] += 1
        if (denied := self._denied(request)) is not None:
            return denied
        found = self.sessions.get(sid)
        if found is None:
            return _error(404, "SESSION_DOES_NOT_EXIST", "Session not found")
        found["status"] = "CLOSED"
        return JSONResponse({"message": "OK"})

    # --- account data ----------------------------------------------------------------------------

    def _psu(self, request: Request, session: dict[str, Any]) -> dict[str, str] | Response:
        """The PSU headers sent: all of the ASPSP's ``required_psu_headers`` or none of them
        (``PSU_HEADER_NOT_PROVIDED``), an IP address that is one (``PSU_HEADER_INVALID``)."""
        sent = {k.lower(): v for k, v in request.headers.items() if k.lower().startswith("psu-")}
        aspsp = next(
            a
            for a in self.aspsps
            if (a["name"], a["country"]) == (session["aspsp"]["name"], session["aspsp"]["country"])
        )
        required = {h.lower() for h in aspsp.get("required_psu_headers") or []}
        if sent and not required <= set(sent):
            missing = sorted(required - set(sent))
            return _error(422, "PSU_HEADER_NOT_PROVIDED", f"PSU header {missing[0]} is not provided")
        if "psu-ip-address" in sent:
            try:
                ipaddress.ip_address(sent["psu-ip-address"])
            except ValueError:
                return _error(422, "PSU_HEADER_INVALID", "Psu-Ip-Address is not an IP address")
        return sent

    def _account(self, request: Request, uid: str, kind: str, first_page: bool) -> FakeBankAccount | Response:
        found = self.uids.get(uid)
        if found is None:
            return _error(404, "ACCOUNT_DOES_NOT_EXIST", "Account not found")
        session = self.sessions[found[0]]
        if session["status"] == "CLOSED":
            return _error(401, "CLOSED_SESSION", "Session is closed")
        if session["valid_until"] <= self.clock.now():
            return _error(401, "EXPIRED_SESSION", "Session has expired")
        psu = self._psu(request, session)
        if isinstance(psu, Response):
            return psu
        if first_page:
            self.psu_seen.append((kind, psu))
        # The bank counts requests, not the pages Enable Banking serves from them; and only
        # unattended ones: with the person present (PSU headers) there is no daily limit.
        if first_page and not psu:
            now = self.clock.now()
            log = self.successes[(found[1].identification_hash, kind)]
            log[:] = [t for t in log if t > now - DAY]
            if len(log) >= self.daily_limit:
                return _error(429, "ASPSP_RATE_LIMIT_EXCEEDED", "ASPSP rate limit exceeded")
            log.append(now)
        return found[1]

    async def balances(self, request: Request, uid: str) -> Response:
        self.calls["balances"] += 1
        if (denied := self._denied(request)) is not None:
            return denied
        account = self._account(request, uid, "balances", True)
        if isinstance(account, Response):
            return account
        return JSONResponse({"balances": account.balances})

    async def transactions(self, request: Request, uid: str) -> Response:
        self.calls["transactions"] += 1
        if (denied := self._denied(request)) is not None:
            return denied
        query = request.query_params
        offset = 0
        if query.get("continuation_key"):
            try:
                offset = int(query["continuation_key"].removeprefix("ck-"))
            except ValueError:
                return _error(422, "WRONG_CONTINUATION_KEY", "Unknown continuation_key")
        account = self._account(request, uid, "transactions", offset == 0)
        if isinstance(account, Response):
            return account
        try:
            start = date.fromisoformat(query["date_from"])
            end = date.fromisoformat(query.get("date_to") or self.today().isoformat())
        except (KeyError, ValueError):
            return _error(422, "WRONG_REQUEST_PARAMETERS", "date_from (YYYY-MM-DD) is required")

        def within(item: dict[str, Any]) -> bool:
            return start <= date.fromisoformat(item.get("booking_date") or item["value_date"]) <= end

        chosen = [{**t, "transaction_id": uuid.uuid4().hex} for t in account.transactions if within(t)]
        page = chosen[offset : offset + self.page_size]
        body: dict[str, Any] = {"transactions": page}
        if offset + self.page_size < len(chosen):
            body["continuation_key"] = f"ck-{offset + self.page_size}"
        return JSONResponse(body)


def tx(
    day: date, amount: str, text: str, *, debit: bool = True, status: str = "BOOK", **extra: Any
) -> dict[str, Any]:
    """One transaction as Enable Banking sends it (a positive amount and an indicator)."""
    party = {"creditor": {"name": text.title()}} if debit else {"debtor": {"name": text.title()}}
    item: dict[str, Any] = {
        "transaction_amount": {"amount": amount, "currency": "EUR"},
        "credit_debit_indicator": "DBIT" if debit else "CRDT",
        "status": status,
        "value_date": day.isoformat(),
        "transaction_date": day.isoformat(),
        "remittance_information": [text],
        **party,
        **extra,
    }
    if status == "BOOK":
        item["booking_date"] = day.isoformat()
    return item


def with_sample_data(fake: FakeEnableBanking) -> FakeEnableBanking:
    """Sandbox Bank (FI, 180-day consents) with a current account (references, none, twins,
    pending, more than a page) and a card without IBAN; a business-only bank beside it."""
    today = fake.today()

    def d(days_ago: int) -> date:
        return today - timedelta(days=days_ago)

    fake.aspsps = [
        {"name": BANK, "country": COUNTRY, "logo": "https://example.test/s.png", "bic": "SANDFIHH",
         "psu_types": ["personal", "business"], "auth_methods": [], "maximum_consent_validity": 180 * 86400,
         "required_psu_headers": ["Psu-Ip-Address", "Psu-User-Agent"]},
        {"name": "Corporate Bank", "country": COUNTRY, "logo": "https://example.test/c.png",
         "bic": "CORPFIHH",
         "psu_types": ["business"], "auth_methods": [], "maximum_consent_validity": 90 * 86400},
        {"name": "Other Bank", "country": "SE", "logo": "https://example.test/o.png", "bic": "OTHRSESS",
         "psu_types": ["personal"], "auth_methods": [], "maximum_consent_validity": 90 * 86400},
    ]  # fmt: skip
    current = FakeBankAccount("FI2112345600000785", "hash-current-1", name="Everyday")
    current.balances = [
        {"name": "Available", "balance_amount": {"amount": "950.10", "currency": "EUR"},
         "balance_type": "ITAV"},
        {"name": "Booked", "balance_amount": {"amount": "1000.00", "currency": "EUR"},
         "balance_type": "CLBD", "reference_date": d(1).isoformat()},
        {"name": "Expected", "balance_amount": {"amount": "990.00", "currency": "EUR"},
         "balance_type": "XPCD"},
    ]  # fmt: skip
    current.transactions = [
        tx(d(3), "12.50", "COFFEE SHOP", entry_reference="e-1"),
        tx(d(2), "4.50", "BUS FARE"),
        tx(d(2), "4.50", "BUS FARE"),
        tx(d(10), "2500.00", "SALARY", debit=False, entry_reference="e-2"),
        tx(d(60), "100.00", "RENT", entry_reference="e-0"),
        tx(d(0), "4.50", "COFFEE", status="PDNG"),
        tx(d(1), "20.00", "GROCER", status="PDNG", entry_reference="p-7"),
        tx(d(5), "9.99", "REFUNDED", status="CNCL"),
    ]
    card = FakeBankAccount(None, "hash-card-2", name="Credit card", cash_account_type="CARD")
    card.balances = [
        {"name": "Booked", "balance_amount": {"amount": "-250.00", "currency": "EUR"}, "balance_type": "ITBD"}
    ]
    card.transactions = [tx(d(4), "250.00", "AIRLINE")]
    fake.bank_accounts = [current, card]
    return fake
