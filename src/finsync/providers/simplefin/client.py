"""SimpleFIN's wire calls: claim a setup token (``POST`` to its claim URL, once) and
``GET <access URL>/accounts`` over one date range. The access URL carries HTTP Basic
credentials: they travel as ``auth``, never in a URL we log or repeat."""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from finsync.domain.errors import InvalidInput, ProviderAuthError, ProviderError
from finsync.providers.common import JsonClient, Reword
from finsync.providers.http import SHARED_BUCKET, AccessRevoked, ProviderHttp, RateLimit

# The bridge asks for at most 24 requests a day per access URL; past it, warnings and then a
# disabled URL. The budget is the URL's, shared by every adapter of it in this process.
LIMITS: Mapping[str, RateLimit] = {SHARED_BUCKET: RateLimit(24, 86_400.0)}
NEW_TOKEN = "make a new one at your SimpleFIN Bridge (Apps → New connection) and paste it"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: httpx.URL, allowed_hosts: frozenset[str], what: str) -> None:
    """The bridge's URLs must point at an allowed host over https (plain http on loopback only):
    a setup token is user input, and finsync POSTs to whatever it names."""
    host = url.host.lower()
    if "*" not in allowed_hosts and host not in allowed_hosts:
        raise InvalidInput(
            f"the SimpleFIN {what} points at {host or 'no host'}, which this server does not allow "
            "(FINSYNC_SIMPLEFIN_ALLOWED_HOSTS)"
        )
    if url.scheme != "https" and not (url.scheme == "http" and _loopback(host)):
        raise InvalidInput(f"the SimpleFIN {what} must use https")


def claim_url(setup_token: str) -> httpx.URL:
    """The claim URL a setup token encodes (base64, padding optional)."""
    text = "".join(setup_token.split())
    try:
        alt = b"-_" if "-" in text or "_" in text else None
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=alt, validate=True)
        url = httpx.URL(raw.decode("ascii"))
    except (binascii.Error, UnicodeDecodeError, ValueError, httpx.InvalidURL):
        raise InvalidInput("that is not a SimpleFIN setup token (it should be a long base64 text)") from None
    if not url.host or url.scheme not in ("http", "https"):
        raise InvalidInput("that is not a SimpleFIN setup token (it does not name a claim URL)")
    return url


@dataclass(frozen=True, slots=True)
class Access:
    """An access URL taken apart: where to call, and the Basic credentials to call with."""

    base_url: str
    username: str
    password: str

    @classmethod
    def parse(cls, access_url: str) -> Access:
        try:
            url = httpx.URL(access_url.strip())
        except httpx.InvalidURL:
            raise ProviderAuthError("the stored SimpleFIN access URL is unreadable; " + NEW_TOKEN) from None
        if not url.host or not url.username or url.scheme not in ("http", "https"):
            raise ProviderAuthError("the stored SimpleFIN access URL is incomplete; " + NEW_TOKEN)
        return cls(str(url.copy_with(userinfo=b"")).rstrip("/"), url.username, url.password)

    @property
    def url(self) -> httpx.URL:
        return httpx.URL(self.base_url)


def access_error(response: httpx.Response) -> type[ProviderError] | None:
    """403 on the access URL: revoked at the bridge or disabled for overuse → a new token."""
    return AccessRevoked if response.status_code == 403 else None


class SimpleFinClient(JsonClient):
    rewords: ClassVar[Mapping[type[ProviderError], Reword]] = {
        ProviderAuthError: lambda _, detail: (
            f"SimpleFIN Bridge refused finsync's access (revoked at the bridge, or disabled after too "
            f"many requests); {NEW_TOKEN} with PATCH /api/v1/connections/{{id}} ({detail})"
        ),
    }

    async def accounts(self, start: int, end: int) -> dict[str, Any]:
        """Accounts with their transactions (pending too) posted in [start, end), epoch seconds."""
        params = {"start-date": start, "end-date": end, "pending": 1}
        try:
            return await self.get_object("accounts", "accounts", params)
        except ProviderError as exc:
            if "HTTP 402" in exc.detail and not isinstance(exc, ProviderAuthError):
                raise ProviderError(
                    "your SimpleFIN Bridge subscription has lapsed (HTTP 402); renew it at the bridge, "
                    "then sync again"
                ) from None
            raise


async def claim(http: ProviderHttp, url: httpx.URL) -> str:
    """POST the claim URL once (never retried: a second claim is refused) → the access URL."""
    try:
        response = await http.request("POST", url.raw_path.decode("ascii"), endpoint="claim", retries=0)
    except ProviderError as exc:
        if "HTTP 403" in exc.detail:
            raise ProviderAuthError(
                "this SimpleFIN setup token was already used (a token can be claimed once); " + NEW_TOKEN
            ) from None
        raise
    return response.text.strip()
