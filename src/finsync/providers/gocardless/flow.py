"""The GoCardless bank-link flow: end-user agreement → requisition → bank consent → linked accounts.

The bank sends the browser back to ``redirect?ref=<reference>``; we set
``reference`` to finsync's ``state``, so the callback must read ``ref`` as the state.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from finsync.domain.errors import BadData, ConsentDenied, InvalidInput, ProviderAuthError
from finsync.domain.ports import AuthorizationResult, AuthorizationStart
from finsync.providers.gocardless.client import GoCardlessClient

DEFAULT_ACCESS_DAYS = 90
_INSTITUTION_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
STATUS_MEANINGS = {
    "CR": "the bank link was created but never opened",
    "GC": "consent is still being given",
    "UA": "the bank is still authenticating you",
    "RJ": "the bank rejected the link or consent was refused",
    "SA": "accounts are still being selected",
    "GA": "access is still being granted",
    "EX": "the bank link expired before it was completed",
}


def _parse_instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_institution_id(value: Any) -> str:
    if not isinstance(value, str) or not _INSTITUTION_ID.match(value):
        raise InvalidInput("Choose a bank: options.institution_id must be a GoCardless institution id")
    return value


class GoCardlessFlow:
    """One link attempt's provider half. ``institution_id`` is needed by ``start`` only."""

    def __init__(
        self,
        *,
        client: Callable[[], GoCardlessClient],
        institution_id: str | None = None,
        access_valid_for_days: int = DEFAULT_ACCESS_DAYS,
        user_language: str | None = None,
    ) -> None:
        self._client = client  # a new client per call, on the process-wide token manager
        self.institution_id = institution_id
        self.access_valid_for_days = access_valid_for_days
        self.user_language = user_language

    async def start(self, *, state: str, redirect_uri: str) -> AuthorizationStart:
        institution_id = check_institution_id(self.institution_id)
        client = self._client()
        try:
            institution = await client.institution(institution_id)
            history = int(institution.get("transaction_total_days") or 90)
            access_cap = int(institution.get("max_access_valid_for_days") or 180)
            access_days = max(1, min(self.access_valid_for_days, access_cap))
            agreement = await client.create_agreement(institution_id, history, access_days)
            payload: dict[str, Any] = {
                "redirect": redirect_uri,
                "institution_id": institution_id,
                "reference": state,
                "agreement": agreement["id"],
            }
            if self.user_language:
                payload["user_language"] = self.user_language
            requisition = await client.create_requisition(payload)
        finally:
            await client.aclose()
        if not requisition.get("link") or not requisition.get("id"):
            raise BadData("GoCardless created a requisition without id or link")
        return AuthorizationStart(
            url=str(requisition["link"]),
            flow_data={
                "requisition_id": requisition["id"],
                "agreement_id": agreement["id"],
                "institution_id": institution_id,
                "access_valid_for_days": access_days,
                "max_historical_days": history,
            },
        )

    async def complete(
        self, *, params: dict[str, str], flow_data: dict[str, Any], redirect_uri: str
    ) -> AuthorizationResult:
        requisition_id = flow_data.get("requisition_id")
        if not requisition_id:
            raise ProviderAuthError("GoCardless link data is missing; start the connection again")
        client = self._client()
        try:
            requisition = await client.requisition(str(requisition_id))
            status = str(requisition.get("status") or "")
            error = params.get("error")  # the bank's refusal: ?error=UserCancelledSession&details=...
            if status != "LN" or error:
                meaning = STATUS_MEANINGS.get(status, "the bank link is not complete")
                bank_says = f" ({error})" if error else ""
                message = f"GoCardless bank link not completed: {meaning} [{status}]{bank_says}"
                if error:
                    raise ConsentDenied(message, params.get("details") or error)
                raise ProviderAuthError(message)
            accounts = [str(a) for a in requisition.get("accounts") or []]
            if not accounts:
                raise ProviderAuthError("The bank link completed but no account was shared")
            agreement_id = str(flow_data.get("agreement_id") or requisition.get("agreement") or "")
            agreement = await client.agreement(agreement_id) if agreement_id else {}
        finally:
            await client.aclose()
        days = int(flow_data.get("access_valid_for_days") or agreement.get("access_valid_for_days") or 90)
        since = _parse_instant(agreement.get("accepted")) or _parse_instant(requisition.get("created"))
        expires_at = since + timedelta(days=days) if since else None
        credentials: dict[str, Any] = {
            "requisition_id": str(requisition_id),
            "agreement_id": agreement_id,
            "institution_id": str(flow_data.get("institution_id") or requisition.get("institution_id")),
            "accounts": accounts,
            "max_historical_days": int(
                flow_data.get("max_historical_days") or agreement.get("max_historical_days") or 90
            ),
            "access_expires_at": expires_at.timestamp() if expires_at else None,
        }
        return AuthorizationResult(credentials=credentials, expires_at=expires_at)


async def list_institutions(client: GoCardlessClient, country: str) -> list[dict[str, Any]]:
    """Banks of one country, trimmed to what a bank picker shows."""
    if not _COUNTRY.match(country):
        raise InvalidInput("country must be a two-letter ISO 3166 code")
    keep = ("id", "name", "bic", "transaction_total_days", "max_access_valid_for_days", "countries", "logo")
    return [{k: item.get(k) for k in keep if k in item} for item in await client.institutions(country)]
