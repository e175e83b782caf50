"""The one HTTP layer every provider client uses.

It owns the cross-cutting rules so adapters do not re-implement them: client-side
rate limits per endpoint bucket (corrected by the provider's rate-limit headers),
429 handling, bounded jittered retries for transient faults, status → typed
``ProviderError`` mapping, one bearer-token renewal after a 401, exact JSON decimals,
and logs that never carry secrets.
"""

from __future__ import annotations

import asyncio
import bisect
import contextvars
import functools
import hashlib
import json as jsonlib
import math
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Protocol, Self

import httpx
import structlog

from finsync.domain.errors import AuthError, BadData, ProviderError, RateLimited, ScopeError, Unavailable

log = structlog.get_logger(__name__)

SHARED_BUCKET = "*"
"""``limits`` key for one budget shared by every endpoint without its own entry (e.g. Alpaca)."""

TokenSource = Callable[[str | None], Awaitable[str]]
"""(token the provider just rejected, or None) → bearer token to send; see ``bearer_request``."""

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_TRANSIENT_STATUS = frozenset({408, 500, 502, 503, 504})
_SECRET_HEADER_WORDS = ("auth", "key", "secret", "token", "cookie", "signature", "password")
# Retry back-off: jittered, doubling from _BACKOFF_BASE seconds, at most _BACKOFF_CAP.
_BACKOFF_BASE, _BACKOFF_CAP = 0.5, 30.0
# Slack added to local window expiry so float rounding never makes us early by a hair.
_WINDOW_MARGIN = 0.001


class Clock(Protocol):
    """Time source; tests pass a virtual clock so rate-limit waits cost no real time."""

    def now(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``limit`` requests in any ``period`` seconds."""

    limit: int
    period: float


@dataclass(slots=True)
class _Bucket:
    """Sliding-window log of send times; server headers can only make it stricter."""

    rate: RateLimit
    sent: list[float] = field(default_factory=list)  # sorted
    blocked_until: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def _prune(self, now: float) -> None:
        horizon = now - self.rate.period - _WINDOW_MARGIN
        cut = bisect.bisect_right(self.sent, horizon)
        if cut:
            del self.sent[:cut]

    def wait_time(self, now: float) -> float:
        self._prune(now)
        wait = self.blocked_until - now
        if len(self.sent) >= self.rate.limit:
            oldest = self.sent[len(self.sent) - self.rate.limit]
            wait = max(wait, oldest + self.rate.period + _WINDOW_MARGIN - now)
        return wait

    async def acquire(self, clock: Clock, max_wait: float, label: str) -> float:
        async with self.lock:  # FIFO among callers of this bucket
            while (wait := self.wait_time(clock.now())) > 0:
                if wait > max_wait:  # let the job queue retry later rather than hold a worker
                    raise RateLimited(f"{label} rate limit reached", retry_after=wait)
                await clock.sleep(wait)
            stamp = clock.now()
            bisect.insort(self.sent, stamp)
            return stamp

    async def answered(self, stamp: float, now: float, remaining: int | None, reset: float | None) -> None:
        """Bookkeeping after an answer: ``settle`` the send time, then ``observe`` the headers."""
        self.settle(stamp, now)
        self.observe(remaining, reset, now)

    async def block_until(self, until: float) -> None:
        self.blocked_until = max(self.blocked_until, until)

    def settle(self, stamp: float, now: float) -> None:
        """Move a send time to when the answer arrived: the server saw it no earlier."""
        idx = bisect.bisect_left(self.sent, stamp)
        if idx < len(self.sent) and self.sent[idx] == stamp and now > stamp:
            del self.sent[idx]
            bisect.insort(self.sent, now)

    def observe(self, remaining: int | None, reset: float | None, now: float) -> None:
        """Adopt the server's view when it is stricter than ours (other clients share the budget)."""
        if remaining is None or reset is None:
            return
        if remaining <= 0:
            self.blocked_until = max(self.blocked_until, reset)
            return
        self._prune(now)
        missing = (self.rate.limit - len(self.sent)) - remaining
        for _ in range(max(0, missing)):
            bisect.insort(self.sent, min(now, reset - self.rate.period))


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process: building one loads the CA bundle (~50 ms of CPU), which a
    client per sync would otherwise pay on every sync."""
    return httpx.create_ssl_context()


def _header_number(headers: httpx.Headers, name: str) -> float | None:
    value = headers.get(name)  # httpx headers are case-insensitive
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


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


class Bucket(Protocol):
    """One rate budget: ``_Bucket`` in this process, or a shared one (see ``BucketStore``)."""

    async def acquire(self, clock: Clock, max_wait: float, label: str) -> float: ...
    async def answered(
        self, stamp: float, now: float, remaining: int | None, reset: float | None
    ) -> None: ...
    async def block_until(self, until: float) -> None: ...


class BucketStore(Protocol):
    """Where the budgets of provider accounts live when several processes share them (a worker
    syncing, an API validating a key): bootstrap sets one in ``BUCKET_STORE`` around adapter
    construction (PostgreSQL: ``infrastructure.ratelimits``). ``key`` names the provider, a digest
    of the account and the endpoint bucket; an ``account`` that is a constant (e.g. an exchange
    limiting per IP) makes one budget for the whole deployment."""

    def bucket(self, key: str, rate: RateLimit) -> Bucket: ...


BUCKET_STORE: contextvars.ContextVar[BucketStore | None] = contextvars.ContextVar(
    "bucket_store", default=None
)

# Buckets per provider account, keyed by a hash so no credential is kept as a dict key.
_SHARED_BUCKETS: dict[str, dict[str, _Bucket]] = {}


def _account_key(provider: str, base_url: str, account: str) -> str:
    digest = hashlib.sha256(f"{base_url}\x1f{account}".encode()).hexdigest()[:32]
    return f"{provider}:{digest}"


def _account_buckets(provider: str, base_url: str, account: str) -> dict[str, _Bucket]:
    return _SHARED_BUCKETS.setdefault(_account_key(provider, base_url, account), {})


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
        secrets: Iterable[str] = (),
        max_wait: float = 900.0,
        account: str | None = None,
    ) -> None:
        self.provider = provider
        self.clock: Clock = clock or SystemClock()
        self.max_retries, self.max_wait = max_retries, max_wait
        self._error_message = error_message or default_error_message
        self._limits = dict(limits or {})
        # Limits are per provider account, not per adapter: adapters given the same ``account``
        # (e.g. the API key) at the same base URL share buckets (validation, then the first sync).
        self._buckets: dict[str, Bucket] = {}
        self._store = BUCKET_STORE.get() if account else None
        self._account_key = _account_key(provider, base_url, account) if account else ""
        if account and self._store is None:
            self._buckets = _account_buckets(provider, base_url, account)  # type: ignore[assignment]
        # Values scrubbed from any provider text we repeat in exceptions.
        self._secrets = [s for s in secrets if s and len(s) >= 4]
        for name, value in (headers or {}).items():
            if any(word in name.lower() for word in _SECRET_HEADER_WORDS) and len(value) >= 4:
                self._secrets.append(value)
        self._client = httpx.AsyncClient(
            base_url=base_url,
            auth=auth,
            headers=headers,
            transport=transport,
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            verify=_tls(),
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    def _bucket(self, endpoint: str) -> Bucket | None:
        key = endpoint if endpoint in self._limits else SHARED_BUCKET
        rate = self._limits.get(key)
        if rate is None:
            return None
        if key not in self._buckets:
            shared = self._store
            self._buckets[key] = (
                _Bucket(rate) if shared is None else shared.bucket(f"{self._account_key}:{key}", rate)
            )
        return self._buckets[key]

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _delay(self, attempt: int) -> float:
        ceiling: float = min(_BACKOFF_CAP, _BACKOFF_BASE * 2.0**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    async def _answered(self, bucket: Bucket, stamp: float, response: httpx.Response) -> None:
        remaining = _header_number(response.headers, "x-ratelimit-remaining")
        reset = _header_number(response.headers, "x-ratelimit-reset")
        now = self.clock.now()
        await bucket.answered(stamp, now, None if remaining is None else int(remaining), reset)

    def _retry_wait(self, response: httpx.Response, attempt: int) -> float:
        now = self.clock.now()
        reset = _header_number(response.headers, "x-ratelimit-reset")
        if reset is not None and reset > now:
            return reset - now
        retry_after = _header_number(response.headers, "retry-after")
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
        headers: Mapping[str, str] | None = None,
        retry: bool | None = None,
    ) -> httpx.Response:
        """Send with limits and retries; return a 2xx response or raise a ``ProviderError``.

        ``retry`` defaults to True for idempotent methods only: a POST that timed out
        may have been executed (an order), so callers opt in (e.g. token refresh).
        """
        method = method.upper()
        may_retry = method in _IDEMPOTENT if retry is None else retry
        bucket = self._bucket(endpoint)
        label = f"{self.provider} {endpoint}"
        path = httpx.URL(url).path  # never log query strings: they may carry secrets
        started, attempt, status = time.perf_counter(), 0, None
        try:
            while True:
                stamp = await bucket.acquire(self.clock, self.max_wait, label) if bucket else 0.0
                try:
                    response = await self._client.request(
                        method, url, params=params, json=json, data=data, headers=headers
                    )
                except httpx.TransportError as exc:
                    failure = type(exc).__name__  # never str(exc): keep URLs out of messages
                    # A refused connection never reached the provider, so it is always safe to retry.
                    retryable = may_retry or isinstance(exc, httpx.ConnectError)
                else:
                    status = response.status_code
                    if bucket:
                        await self._answered(bucket, stamp, response)
                    if response.is_success:
                        return response
                    if status == 429:
                        await self._wait_after_429(response, bucket, attempt, label)
                        attempt += 1
                        continue
                    if status not in _TRANSIENT_STATUS and status < 500:
                        raise self._client_error(response, endpoint)
                    failure, retryable = f"HTTP {status}", may_retry
                if not retryable or attempt >= self.max_retries:
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
        self, response: httpx.Response, bucket: Bucket | None, attempt: int, label: str
    ) -> None:
        wait = self._retry_wait(response, attempt)
        if attempt >= self.max_retries or wait > self.max_wait:
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
        if status == 401:
            return AuthError(text)
        if status == 403:
            return ScopeError(text)
        return ProviderError(text)

    async def bearer_request(
        self, token_source: TokenSource, method: str, url: str, *, endpoint: str, **kwargs: Any
    ) -> httpx.Response:
        """``request`` with ``Authorization: Bearer <token>``; after a 401 (``AuthError``) ask
        ``token_source`` again, passing the rejected token, and retry once (a token can die
        before its expiry). A second 401 is raised."""
        extra = kwargs.pop("headers", None) or {}
        rejected: str | None = None
        while True:
            token = await token_source(rejected)
            headers = {**extra, "Authorization": f"Bearer {token}"}
            try:
                return await self.request(method, url, endpoint=endpoint, headers=headers, **kwargs)
            except AuthError:
                if rejected is not None:
                    raise
                rejected = token

    def decode(self, response: httpx.Response, endpoint: str) -> Any:
        """JSON with every number exact (doubles become ``Decimal``, never float)."""
        try:
            return jsonlib.loads(response.content, parse_float=Decimal)
        except ValueError:
            raise BadData(f"{self.provider} {endpoint} sent malformed JSON") from None

    async def get_json(self, url: str, *, endpoint: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET and ``decode``."""
        return self.decode(await self.request("GET", url, endpoint=endpoint, params=params), endpoint)
