"""The Enable Banking bank-link flow: ``POST /auth`` → the bank's login → ``POST /sessions``.

The person picks a bank (ASPSP: name + country) from ``GET /aspsps``; the consent asks
for as long as the bank allows (``maximum_consent_validity``, in seconds), or less when
the person asks for fewer days. The bank returns to ``redirect_url?code=…&state=…`` (or
``error=…``); the code opens a session whose ``access.valid_until`` ends the consent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from finsync.domain.errors import BadData, ConsentDenied, InvalidInput, ProviderAuthError
from finsync.domain.ports import AuthorizationResult, AuthorizationStart
from finsync.providers.common import Wire
from finsync.providers.enablebanking.client import EnableBankingClient
from finsync.providers.enablebanking.mappers import session_account
from finsync.providers.http import Clock, SystemClock

DEFAULT_CONSENT_SECONDS = 90 * 86400  # a bank that states no maximum: PSD2's common 90 days
MARGIN = 300
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
WIRE = Wire("Enable Banking")


def check_country(value: Any) -> str:
    if not isinstance(value, str) or not _COUNTRY.match(value):
        raise InvalidInput("country must be a two-letter ISO 3166 code")
    return value.upper()


def institution_id(aspsp: dict[str, Any]) -> str:
    """The picker's id of a bank: ``<country>:<name>`` (Enable Banking names a bank by both)."""
    return f"{str(aspsp.get('country') or '').upper()}:{aspsp.get('name') or ''}"


def parse_institution(value: Any) -> tuple[str, str]:
    """``institution_id`` → (name, country), refusing anything else precisely."""
    if not isinstance(value, str) or ":" not in value:
        raise InvalidInput(
            "Choose a bank: options.institution_id must be an id from "
            "GET /providers/enablebanking/institutions (e.g. 'FI:Nordea')"
        )
    country, name = value.split(":", 1)
    if not _COUNTRY.match(country) or not name.strip() or len(name) > 200:
        raise InvalidInput("options.institution_id must look like '<country>:<bank name>', e.g. 'FI:Nordea'")
    return name, country.upper()


class EnableBankingFlow:
    """One link attempt's provider half. ``institution`` is needed by ``start`` only."""

    def __init__(
        self,
        *,
        client: Callable[[], EnableBankingClient],
        institution: str | None = None,
        consent_days: int | None = None,
        psu_type: str = "personal",
        clock: Clock | None = None,
    ) -> None:
        self._client = client
        self.institution = institution
        self.consent_days = consent_days
        self.psu_type = psu_type
        self._clock: Clock = clock or SystemClock()

    async def start(self, *, state: str, redirect_uri: str) -> AuthorizationStart:
        name, country = parse_institution(self.institution)
        client = self._client()
        try:
            aspsp = next((a for a in await client.aspsps(country) if a.get("name") == name), None)
            if aspsp is None:
                raise InvalidInput(f"Enable Banking offers no bank named {name!r} in {country}")
            # A few minutes short of the maximum: the bank measures it from its own, later clock.
            allowed = int(aspsp.get("maximum_consent_validity") or DEFAULT_CONSENT_SECONDS) - MARGIN
            wanted = allowed if self.consent_days is None else min(allowed, self.consent_days * 86400)
            now = datetime.fromtimestamp(self._clock.now(), UTC)
            valid_until = now + timedelta(seconds=max(3600, wanted))
            body = await client.start_auth(
                {
                    "access": {"valid_until": valid_until.isoformat()},
                    "aspsp": {"name": name, "country": country},
                    "state": state,
                    "redirect_url": redirect_uri,
                    "psu_type": self.psu_type,
                }
            )
        finally:
            await client.aclose()
        if not body.get("url"):
            raise BadData("Enable Banking started an authorisation without a bank URL")
        required = aspsp.get("required_psu_headers")
        return AuthorizationStart(
            url=str(body["url"]),
            flow_data={
                "aspsp": {"name": name, "country": country},
                "required_psu_headers": [str(h) for h in required] if isinstance(required, list) else None,
                "authorization_id": str(body.get("authorization_id") or ""),
                "valid_until": valid_until.isoformat(),
            },
        )

    async def complete(
        self, *, params: dict[str, str], flow_data: dict[str, Any], redirect_uri: str
    ) -> AuthorizationResult:
        if params.get("error"):  # the bank's refusal: ?error=access_denied&error_description=...
            reason = params.get("error_description") or params["error"]
            raise ConsentDenied(f"Enable Banking bank link not completed ({params['error']})", reason)
        code = params.get("code")
        if not code:
            raise ProviderAuthError("The bank sent no authorisation code back; start the connection again")
        client = self._client()
        try:
            session = await client.create_session(code)
        finally:
            await client.aclose()
        accounts = [session_account(a) for a in session.get("accounts") or [] if isinstance(a, dict)]
        accounts = [a for a in accounts if a["uid"]]
        if not session.get("session_id"):
            raise BadData("Enable Banking opened a session without an id")
        if not accounts:
            raise ProviderAuthError("The bank link completed but no account was shared")
        access = session.get("access") or {}
        until = access.get("valid_until") if isinstance(access, dict) else None
        expires_at = WIRE.instant(until) if until else None
        aspsp = session.get("aspsp") if isinstance(session.get("aspsp"), dict) else flow_data.get("aspsp")
        credentials: dict[str, Any] = {
            "session_id": str(session["session_id"]),
            "aspsp": {
                "name": str((aspsp or {}).get("name") or ""),
                "country": str((aspsp or {}).get("country") or ""),
            },
            "accounts": accounts,
            "valid_until": expires_at.timestamp() if expires_at else None,
            # What the bank wants to see to count a data call as made with the person present.
            "required_psu_headers": flow_data.get("required_psu_headers"),
        }
        return AuthorizationResult(credentials=credentials, expires_at=expires_at)
