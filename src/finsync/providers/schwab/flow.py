"""Schwab's OAuth 2.0 authorization-code flow (PKCE S256) and token refresh, through authlib.

Credentials stored per connection (all epochs in seconds)::

    {access_token, refresh_token, access_expires_at, refresh_expires_at}

Schwab's refresh token lives 7 days from the browser login and is *not* extendable.
When a refresh answer carries a different refresh token we store it, but we keep the
original ``refresh_expires_at``: rotation does not restart Schwab's 7-day clock, and
assuming it did would let a connection look healthy until the first failing sync.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from typing import Any

import httpx

from finsync.domain.errors import (
    BadData,
    ConsentDenied,
    ProviderAuthError,
    ProviderError,
    RateLimited,
    Unavailable,
)
from finsync.domain.ports import AuthorizationResult, AuthorizationStart
from finsync.providers.http import Clock, SystemClock, tls_context

with warnings.catch_warnings():
    # authlib 1.9 prefers the "httpx2" package and warns when it falls back to httpx, which
    # works. Its deprecate module installs an "always" filter on import, so load it first.
    import authlib.deprecate  # noqa: F401

    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.common.security import generate_token
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.httpx_client import AsyncOAuth2Client

ACCESS_LIFETIME = 1800  # used when the token answer has no expires_in
REFRESH_LIFETIME = 7 * 24 * 3600
REFRESH_MARGIN = 300  # refresh this many seconds before the access token expires
_REAUTH_ERRORS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client", "access_denied"})


def needs_refresh(credentials: dict[str, Any], now: float, margin: float = REFRESH_MARGIN) -> bool:
    return float(credentials.get("access_expires_at") or 0) - margin <= now


def _check_token_response(response: httpx.Response) -> httpx.Response:
    """authlib hook: map statuses that are not OAuth errors before authlib parses the body."""
    status = response.status_code
    if status == 429:
        try:
            wait = max(0.0, float(response.headers.get("retry-after", "60")))
        except ValueError:
            wait = 60.0
        raise RateLimited("Schwab token endpoint rate limit reached", retry_after=wait)
    if status >= 500:
        raise Unavailable(f"Schwab token endpoint answered HTTP {status}")
    return response


class SchwabFlow:
    """The provider half of Schwab's redirect flow; the lead's code owns ``state`` and storage."""

    def __init__(
        self,
        *,
        app_key: str,
        app_secret: str,
        auth_url: str,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._app_key = app_key
        self._app_secret = app_secret
        self._auth_url = auth_url.rstrip("/")
        self._clock: Clock = clock or SystemClock()
        self._transport = transport
        self._timeout = timeout

    @property
    def token_url(self) -> str:
        return f"{self._auth_url}/token"

    def _client(self) -> Any:
        client = AsyncOAuth2Client(
            client_id=self._app_key,
            client_secret=self._app_secret,
            token_endpoint_auth_method="client_secret_basic",
            code_challenge_method="S256",
            transport=self._transport,
            verify=tls_context(),  # no transport of its own: httpx keeps honouring proxy variables
            timeout=self._timeout,
        )
        client.register_compliance_hook("access_token_response", _check_token_response)
        client.register_compliance_hook("refresh_token_response", _check_token_response)
        return client

    async def start(self, *, state: str, redirect_uri: str) -> AuthorizationStart:
        verifier = generate_token(64)  # RFC 7636: 43-128 unreserved characters
        async with self._client() as client:
            url, _ = client.create_authorization_url(
                f"{self._auth_url}/authorize",
                state=state,
                code_verifier=verifier,
                redirect_uri=redirect_uri,
            )
        return AuthorizationStart(url=url, flow_data={"code_verifier": verifier})

    async def complete(
        self, *, params: dict[str, str], flow_data: dict[str, Any], redirect_uri: str
    ) -> AuthorizationResult:
        if params.get("error"):  # RFC 6749 4.1.2.1: no code, only why
            reason = params.get("error_description") or params["error"]
            if params["error"] == "access_denied":
                raise ConsentDenied("Access to Schwab was declined on the consent page", reason)
            raise ConsentDenied(f"Schwab authorization failed: {reason}", reason)
        code = params.get("code")
        if not code:
            raise ProviderAuthError("Schwab redirected back without an authorization code")
        verifier = flow_data.get("code_verifier")
        if not verifier:
            raise ProviderAuthError("PKCE verifier missing for this Schwab authorization; start again")
        now = self._clock.now()
        token = await self._call(
            "fetch_token",
            self.token_url,
            grant_type="authorization_code",
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=verifier,
        )
        if not token.get("refresh_token"):
            raise BadData("Schwab issued no refresh token")
        credentials = {
            "access_token": token["access_token"],
            "refresh_token": token["refresh_token"],
            "access_expires_at": int(now) + int(token.get("expires_in") or ACCESS_LIFETIME),
            "refresh_expires_at": int(now) + REFRESH_LIFETIME,
        }
        expires_at = datetime.fromtimestamp(credentials["refresh_expires_at"], UTC)
        return AuthorizationResult(credentials=credentials, expires_at=expires_at)

    async def refresh(self, credentials: dict[str, Any], *, force: bool = False) -> dict[str, Any]:
        """Return fresh credentials (the same dict when still valid); ProviderAuthError means re-auth."""
        now = self._clock.now()
        if not force and not needs_refresh(credentials, now):
            return credentials
        old_refresh = credentials.get("refresh_token")
        if not old_refresh or float(credentials.get("refresh_expires_at") or 0) <= now:
            raise ProviderAuthError("Schwab authorization expired (7-day limit); reconnect Schwab")
        token = await self._call("refresh_token", self.token_url, refresh_token=old_refresh)
        return {
            **credentials,
            "access_token": token["access_token"],
            "refresh_token": token.get("refresh_token") or old_refresh,
            "access_expires_at": int(now) + int(token.get("expires_in") or ACCESS_LIFETIME),
        }

    async def _call(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """Run one authlib token request and translate its failures into ProviderErrors."""
        try:
            async with self._client() as client:
                token = await getattr(client, method)(url, **kwargs)
        except OAuthError as exc:
            error = str(exc.error)
            if error in _REAUTH_ERRORS:
                raise ProviderAuthError(
                    f"Schwab rejected the authorization ({error}): {exc.description}"
                ) from None
            raise ProviderError(f"Schwab token endpoint error ({error}): {exc.description}") from None
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            kind = ProviderAuthError if status in (400, 401) else ProviderError
            raise kind(f"Schwab token endpoint answered HTTP {status}") from None
        except httpx.TransportError as exc:
            raise Unavailable(f"Schwab token endpoint unreachable: {type(exc).__name__}") from None
        except ValueError as exc:
            raise BadData(f"Schwab token endpoint sent an unreadable answer: {exc}") from None
        if not isinstance(token, dict) or not token.get("access_token"):
            raise BadData("Schwab token endpoint answered without an access token")
        return dict(token)
