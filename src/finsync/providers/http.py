"""The one HTTP layer every provider client uses.

It owns the cross-cutting rules so adapters do not re-implement them: client-side
rate limits per endpoint bucket (corrected by the provider's rate-limit headers),
429 handling, bounded jittered retries for transient faults, status → typed
``ProviderError`` mapping, one bearer-token renewal after a 401, exact JSON decimals,
and logs that never carry secrets.
"""

from __future__ import annotations

import asyncio
import functools
import json as jsonlib
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

import httpx
import structlog

from finsync.domain.errors import (
    BadData,
    ProviderAuthError,
    ProviderError,
    RateLimited,
    ScopeError,
    Unavailable,
)
from finsync.domain.ports import SendSlot
from finsync.providers.ratelimit import (
    BUCKET_STORE,
    SHARED_BUCKET,
    Bucket,
    Clock,
    LocalBucket,
    RateLimit,
    account_buckets,
    account_key,
    header_number,
    reset_wait,
)
from finsync.providers.transport import NOT_SENT, describe_failure

__all__ = [
    "SHARED_BUCKET",
    "AccessRevoked",
    "Clock",
    "ErrorType",
    "ProviderHttp",
    "RateLimit",
    "SystemClock",
    "TokenSource",
    "default_error_message",
    "describe_failure",
]

log = structlog.get_logger(__name__)

TokenSource = Callable[[str | None], Awaitable[str]]
"""(token the provider just rejected, or None) → bearer token to send; see ``bearer_request``."""

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_TRANSIENT_STATUS = frozenset({408, 500, 502, 503, 504})
_SECRET_HEADER_WORDS = ("auth", "key", "secret", "token", "cookie", "signature", "password")
# Retry back-off: jittered, doubling from _BACKOFF_BASE seconds, at most _BACKOFF_CAP.
_BACKOFF_BASE, _BACKOFF_CAP = 0.5, 30.0


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context per process: building one loads the CA bundle (~25-50 ms of CPU), which
    a client per sync, per authorisation or per exchange would otherwise pay every time."""
    return httpx.create_ssl_context()


def http_transport() -> httpx.AsyncHTTPTransport:
    """A plain transport on the process's TLS context, for a client that wraps its own
    (``httpx.AsyncHTTPTransport()`` would load the CA bundle again)."""
    return httpx.AsyncHTTPTransport(verify=tls_context())


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class AccessRevoked(ProviderAuthError):
    """The provider refused the *grant* (consent expired or revoked, key withdrawn), not the
    bearer token: renewing the token cannot help, so ``bearer_request`` does not try."""


ErrorType = Callable[[httpx.Response], type[ProviderError] | None]
"""A provider's reading of a 4xx answer: the error class to raise, or None for the default."""


def default_error_message(response: httpx.Response) -> str:
    """Best-effort provider reason: a JSON ``message``/``error``/``detail`` or short text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200]
    if isinstance(body, dict):
        for key in ("message", "error_description", "error", "detail", "title"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])[:200]
    return response.text.strip()[:200]


@dataclass(slots=True, eq=False)
class Slot:
    """A send reserved on an endpoint's rate budget ahead of the request that spends it, so
    the reservation's round trip can overlap other work (an order's insert). Spent by the
    first attempt of the request given it; ``release`` gives back one that was never spent."""

    bucket: Bucket
    stamp: float
    spent: bool = False

    def spend(self, bucket: Bucket | None) -> float | None:
        """The reserved stamp, once, for a request on the same budget."""
        if self.spent or bucket is not self.bucket:
            return None
        self.spent = True
        return self.stamp

    async def release(self) -> None:
        if not self.spent:
            self.spent = True
            await self.bucket.give_back(self.stamp)


class ProviderHttp:
    """An ``httpx.AsyncClient`` plus finsync's provider rules; one per adapter instance."""

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        auth: httpx.Auth | None = None,
        headers: dict[str, str] | None = None,
        limits: Mapping[str, RateLimit] | None = None,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        error_message: Callable[[httpx.Response], str] | None = None,
        error_type: ErrorType | None = None,
        secrets: Iterable[str] = (),
        max_wait: float = 900.0,
        account: str | None = None,
    ) -> None:
        self.provider = provider
        self.clock: Clock = clock or SystemClock()
        self.max_retries, self.max_wait = max_retries, max_wait
        self._error_message = error_message or default_error_message
        self._error_type = error_type
        self._limits = dict(limits or {})
        # Limits are per provider account, not per adapter: adapters given the same ``account``
        # (e.g. the API key) at the same base URL share buckets (validation, then the first sync),
        # across processes when a store is set (see ratelimit.BUCKET_STORE).
        self._buckets: dict[str, Bucket] = {}
        self._store = BUCKET_STORE.get() if account else None
        self._account_key = account_key(provider, base_url, account) if account else ""
        if account and self._store is None:
            self._buckets = account_buckets(provider, base_url, account)  # type: ignore[assignment]
        # Values scrubbed from any provider text we repeat in exceptions.
        self._secrets = [s for s in secrets if s and len(s) >= 4]
        self._keep_secret(headers)
        self._client = httpx.AsyncClient(
            base_url=base_url,
            auth=auth,
            headers=headers,
            transport=transport,
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            verify=tls_context(),
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        try:
            for bucket in self._buckets.values():
                await bucket.flush()
        except Exception:  # a settlement only refines a send time; the send itself is stored
            log.warning("rate_budget_not_settled", provider=self.provider, exc_info=True)
        finally:
            await self._client.aclose()

    def _bucket(self, endpoint: str) -> Bucket | None:
        key = endpoint if endpoint in self._limits else SHARED_BUCKET
        rate = self._limits.get(key)
        if rate is None:
            return None
        if key not in self._buckets:
            shared = self._store
            self._buckets[key] = (
                LocalBucket(rate) if shared is None else shared.bucket(f"{self._account_key}:{key}", rate)
            )
        return self._buckets[key]

    async def reserve(self, endpoint: str) -> Slot | None:
        """A send on ``endpoint``'s budget if one is free now, for a request made later with
        ``slot=`` (``Slot.release`` it if that request is not made); None when the budget is
        spent or another caller waits for it: that request then waits its turn as any other.
        Never waits itself (at most the budget's one round trip)."""
        bucket = self._bucket(endpoint)
        if bucket is None:
            return None
        stamp = await bucket.try_acquire(self.clock)
        return None if stamp is None else Slot(bucket, stamp)

    def _keep_secret(self, headers: Mapping[str, str] | None) -> None:
        for name, value in (headers or {}).items():
            secret = any(word in name.lower() for word in _SECRET_HEADER_WORDS)
            if secret and len(value) >= 4 and value not in self._secrets:
                self._secrets.append(value)
                if value.lower().startswith("bearer "):
                    self._secrets.append(value[7:])  # a provider may echo the bare token

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _host(self, url: str) -> str:
        target = self._client.base_url.join(url)
        return f"{target.host}:{target.port}" if target.port else target.host

    def _delay(self, attempt: int) -> float:
        ceiling: float = min(_BACKOFF_CAP, _BACKOFF_BASE * 2.0**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    async def _answered(self, bucket: Bucket, stamp: float, response: httpx.Response) -> None:
        remaining = header_number(response.headers, "x-ratelimit-remaining")
        reset = header_number(response.headers, "x-ratelimit-reset")
        now = self.clock.now()
        await bucket.answered(stamp, now, None if remaining is None else int(remaining), reset)

    def _retry_wait(self, response: httpx.Response, attempt: int) -> float:
        wait = reset_wait(response.headers, self.clock.now())
        if wait is not None:
            return wait
        retry_after = header_number(response.headers, "retry-after")
        if retry_after is not None and retry_after >= 0:
            return retry_after
        return self._delay(attempt)

    async def request(
        self,
        method: str,
        url: str,
        *,
        endpoint: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool | None = None,
        retries: int | None = None,
        slot: SendSlot | None = None,
    ) -> httpx.Response:
        """Send with limits and retries; return a 2xx response or raise a ``ProviderError``.

        ``retry`` defaults to True for idempotent methods only: a POST that timed out
        may have been executed (an order), so callers opt in (e.g. token refresh).
        ``retries`` overrides ``max_retries`` for this call: 0 fails fast (a person waits
        on a credential check; a refused connection will not be back in seconds).
        ``slot``: a send reserved with ``reserve`` on this budget, spent by the first attempt.
        """
        method = method.upper()
        self._keep_secret(headers)  # per-request credentials (a bearer token) are scrubbed too
        may_retry = method in _IDEMPOTENT if retry is None else retry
        max_retries = self.max_retries if retries is None else retries
        bucket = self._bucket(endpoint)
        label = f"{self.provider} {endpoint}"
        # Never log query strings (they may carry secrets), nor a path that does (a claim URL).
        path = self._scrub(httpx.URL(url).path)
        started, attempt, status = time.perf_counter(), 0, None
        try:
            while True:
                reserved = slot.spend(bucket) if isinstance(slot, Slot) else None
                if reserved is not None:
                    stamp = reserved
                else:
                    stamp = await bucket.acquire(self.clock, self.max_wait, label) if bucket else 0.0
                try:
                    response = await self._client.request(
                        method, url, params=params, json=json, data=data, content=content, headers=headers
                    )
                except httpx.TransportError as exc:
                    failure = describe_failure(exc, self._host(url))  # never str(exc): it may hold URLs
                    # Not sent: the provider saw nothing, so no slot is spent and a retry is always safe.
                    retryable = may_retry or isinstance(exc, NOT_SENT)
                    if bucket and isinstance(exc, NOT_SENT):
                        await bucket.give_back(stamp)
                else:
                    status = response.status_code
                    if bucket:
                        await self._answered(bucket, stamp, response)
                    if response.is_success:
                        return response
                    if status == 429:
                        await self._wait_after_429(response, bucket, attempt, max_retries, label)
                        attempt += 1
                        continue
                    if status not in _TRANSIENT_STATUS and status < 500:
                        raise self._client_error(response, endpoint)
                    failure, retryable = f"HTTP {status}", may_retry
                if not retryable or attempt >= max_retries:
                    tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
                    raise Unavailable(f"{label} unavailable after {tries}: {failure}")
                await self.clock.sleep(self._delay(attempt))
                attempt += 1
        finally:
            log.info(
                "provider_request",
                provider=self.provider,
                endpoint=endpoint,
                method=method,
                path=path,
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                retries=attempt,
            )

    async def _wait_after_429(
        self, response: httpx.Response, bucket: Bucket | None, attempt: int, max_retries: int, label: str
    ) -> None:
        wait = self._retry_wait(response, attempt)
        if attempt >= max_retries or wait > self.max_wait:
            try:
                retry_at: datetime | None = datetime.fromtimestamp(self.clock.now() + wait, UTC)
            except (ValueError, OverflowError, OSError):  # a nonsense reset header
                retry_at = None
            raise RateLimited(f"{label} rate limit reached", retry_after=wait, retry_at=retry_at)
        if bucket is None:
            await self.clock.sleep(wait)
        else:  # every caller of this bucket waits, not just this one
            await bucket.block_until(self.clock.now() + wait)

    def _client_error(self, response: httpx.Response, endpoint: str) -> ProviderError:
        status = response.status_code
        try:
            reason = self._scrub(self._error_message(response)) or response.reason_phrase
        except Exception:  # a broken hook must not hide the status
            reason = response.reason_phrase
        text = f"{self.provider} {endpoint} answered HTTP {status}: {reason}"
        kind: type[ProviderError] | None = None
        if self._error_type is not None:
            try:
                kind = self._error_type(response)
            except Exception:  # an unreadable body falls back to the status
                kind = None
        if kind is None:
            kind = ProviderAuthError if status == 401 else ScopeError if status == 403 else ProviderError
        return kind(text)

    async def bearer_request(
        self, token_source: TokenSource, method: str, url: str, *, endpoint: str, **kwargs: Any
    ) -> httpx.Response:
        """``request`` with ``Authorization: Bearer <token>``; after a 401 (``ProviderAuthError``) ask
        ``token_source`` again, passing the rejected token, and retry once (a token can die
        before its expiry). A second 401 is raised, and so is ``AccessRevoked`` at once."""
        extra = kwargs.pop("headers", None) or {}
        rejected: str | None = None
        while True:
            token = await token_source(rejected)
            headers = {**extra, "Authorization": f"Bearer {token}"}
            try:
                return await self.request(method, url, endpoint=endpoint, headers=headers, **kwargs)
            except AccessRevoked:
                raise
            except ProviderAuthError:
                if rejected is not None:
                    raise
                rejected = token

    def decode(self, response: httpx.Response, endpoint: str) -> Any:
        """JSON with every number exact (doubles become ``Decimal``, never float)."""
        try:
            return jsonlib.loads(response.content, parse_float=Decimal)
        except ValueError:
            raise BadData(f"{self.provider} {endpoint} sent malformed JSON") from None

    async def get_json(
        self,
        url: str,
        *,
        endpoint: str,
        params: Mapping[str, Any] | None = None,
        retries: int | None = None,
    ) -> Any:
        """GET and ``decode``."""
        response = await self.request("GET", url, endpoint=endpoint, params=params, retries=retries)
        return self.decode(response, endpoint)
