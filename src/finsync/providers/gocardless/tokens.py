"""The deployment's GoCardless API token: one ``GoCardlessTokens`` per process, shared by all users.

``token/new`` is limited to 100 per hour per secret, so a token is never minted per
request or per sync: the access token (24 h) is cached, renewed through
``token/refresh`` (refresh token 30 days) a few minutes before it lapses, and only
minted again when the refresh token is gone. The bootstrap creates one instance per
process and hands it to the GoCardless factories (``tokens=``); it holds no open
connection, so there is nothing to close.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from finsync.domain.errors import BadData, ProviderAuthError, ProviderNotAvailable, Unavailable
from finsync.providers.http import Clock, ProviderHttp, SystemClock
from finsync.providers.spec import ProviderSettings


def gocardless_error_message(response: httpx.Response) -> str:
    """``{summary, detail}``, or per-field ``{"date_from": {summary, detail}}`` objects."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200]
    if not isinstance(body, dict):
        return ""
    parts = [str(body[k]) for k in ("summary", "detail") if isinstance(body.get(k), str) and body[k]]
    for key, value in body.items():
        if isinstance(value, dict) and ("summary" in value or "detail" in value):
            parts.append(f"{key}: {value.get('detail') or value.get('summary')}")
    return " — ".join(parts)[:300]


class GoCardlessSettings(ProviderSettings):
    """``FINSYNC_GOCARDLESS_*``: the deployment's Bank Account Data secret id/key and host."""

    model_config = SettingsConfigDict(env_prefix="FINSYNC_GOCARDLESS_")
    required = ("secret_id", "secret_key")

    url: str = "https://bankaccountdata.gocardless.com/api/v2"
    secret_id: SecretStr | None = None
    secret_key: SecretStr | None = None


class GoCardlessTokens:
    def __init__(
        self,
        *,
        base_url: str,
        secret_id: str,
        secret_key: str,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        margin: float = 300.0,
    ) -> None:
        self._secret = {"secret_id": secret_id, "secret_key": secret_key}
        self._clock: Clock = clock or SystemClock()
        self._margin = margin
        # A client per renewal (about once a day): the instance owns no connection to close.
        self._http_args: dict[str, Any] = {
            "provider": "gocardless",
            "base_url": base_url.rstrip("/") + "/",
            "clock": clock,
            "transport": transport,
            "timeout": timeout,
            "error_message": gocardless_error_message,
            "secrets": (secret_id, secret_key),
        }
        self._lock = asyncio.Lock()
        self._access: str | None = None
        self._access_until = 0.0
        self._refresh: str | None = None
        self._refresh_until = 0.0
        self.minted = 0  # token/new calls made by this instance (observability, tests)

    @classmethod
    def from_settings(
        cls,
        settings: GoCardlessSettings,
        *,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> GoCardlessTokens:
        if settings.secret_id is None or settings.secret_key is None:
            raise ProviderNotAvailable(
                "GoCardless is not configured (FINSYNC_GOCARDLESS_SECRET_ID / _SECRET_KEY)"
            )
        return cls(
            base_url=settings.url,
            secret_id=settings.secret_id.get_secret_value(),
            secret_key=settings.secret_key.get_secret_value(),
            clock=clock,
            transport=transport,
            timeout=settings.timeout_seconds,
        )

    def invalidate(self, access: str) -> None:
        """Forget ``access`` after a 401 (unless another caller already replaced it)."""
        if self._access == access:
            self._access, self._access_until = None, 0.0

    async def access_token(self) -> str:
        async with self._lock:  # concurrent syncs share one renewal
            now = self._clock.now()
            if self._access and self._access_until - self._margin > now:
                return self._access
            if self._refresh and self._refresh_until - self._margin > now:
                try:
                    body = await self._post("token/refresh/", "token_refresh", {"refresh": self._refresh})
                    return self._store(body, now)
                except ProviderAuthError:
                    self._refresh = None  # revoked: fall through to a new pair
            body = await self._post("token/new/", "token_new", self._secret)
            self.minted += 1
            return self._store(body, now)

    async def _post(self, url: str, endpoint: str, payload: dict[str, str]) -> dict[str, Any]:
        try:
            async with ProviderHttp(**self._http_args) as http:
                response = await http.request("POST", url, endpoint=endpoint, json=payload, retry=True)
                body = http.decode(response, endpoint)
        except ProviderAuthError as exc:
            if endpoint == "token_refresh":
                raise
            # The deployment's secret is wrong: no user connection can fix that by re-consenting.
            raise Unavailable(f"GoCardless rejected this deployment's secret id/key: {exc.detail}") from None
        if not isinstance(body, dict) or not isinstance(body.get("access"), str):
            raise BadData(f"gocardless {endpoint} answered without an access token")
        return body

    def _store(self, body: dict[str, Any], now: float) -> str:
        access: str = body["access"]
        self._access = access
        self._access_until = now + float(body.get("access_expires") or 86400)
        if isinstance(body.get("refresh"), str):
            self._refresh = body["refresh"]
            self._refresh_until = now + float(body.get("refresh_expires") or 2592000)
        return access
