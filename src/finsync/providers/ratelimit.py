"""Client-side rate limits for ``ProviderHttp``: one sliding-window bucket per endpoint budget.

A bucket counts only requests that reached the provider: an attempt refused before it
was sent (connection refused, DNS failure) gives its slot back, so recovering from an
outage never waits for slots spent on nothing. Server headers can only make a bucket
stricter. A reset the server reports in whole seconds is waited for with a margin.

A budget lives in this process (``LocalBucket``) unless a ``BucketStore`` is set around
adapter construction (``BUCKET_STORE``): with several processes (workers syncing, an API
validating a key) the store keeps one budget for all of them (PostgreSQL:
``infrastructure.ratelimits``).
"""

from __future__ import annotations

import asyncio
import bisect
import contextvars
import hashlib
import math
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from finsync.domain.errors import RateLimited

SHARED_BUCKET = "*"
"""``limits`` key for one budget shared by every endpoint without its own entry (e.g. Alpaca)."""

# Slack added to local window expiry so float rounding never makes us early by a hair.
WINDOW_MARGIN = 0.001
# ``x-ratelimit-reset`` is whole seconds: a server may truncate a reset at 30.6 s to 30 s, and
# its clock may be a little behind ours. Waiting this much longer never earns a second 429.
RESET_MARGIN = 1.0


class Clock(Protocol):
    """Time source; tests pass a virtual clock so rate-limit waits cost no real time."""

    def now(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``limit`` requests in any ``period`` seconds."""

    limit: int
    period: float


class Bucket(Protocol):
    """One rate budget: a ``LocalBucket`` in this process, or a shared one (``BucketStore``)."""

    async def acquire(self, clock: Clock, max_wait: float, label: str) -> float: ...
    async def try_acquire(self, clock: Clock) -> float | None:
        """A slot if one is free now and nobody is waiting for one; else None, at once:
        never queues behind a waiting caller (nor overtakes it)."""
        ...

    async def answered(self, stamp: float, now: float, remaining: int | None, reset: float | None) -> None:
        """Bookkeeping after an answer: ``settle`` the send time, then ``observe`` the headers."""
        ...

    async def give_back(self, stamp: float) -> None:
        """The attempt never reached the provider: its slot was spent on nothing."""
        ...

    async def block_until(self, until: float) -> None: ...
    async def flush(self) -> None:
        """Store what is still only in memory (the client is closing); a shared bucket may
        keep settlements until its next change."""
        ...


class BucketStore(Protocol):
    """Where budgets live when several processes share them. ``key`` names the provider, a
    digest of the account and the endpoint budget; an ``account`` that is a constant (e.g. an
    exchange limiting per IP) makes one budget for the whole deployment."""

    def bucket(self, key: str, rate: RateLimit) -> Bucket: ...


BUCKET_STORE: contextvars.ContextVar[BucketStore | None] = contextvars.ContextVar(
    "bucket_store", default=None
)


@dataclass(slots=True)
class LocalBucket:
    """Sliding-window log of send times; server headers can only make it stricter."""

    rate: RateLimit
    sent: list[float] = field(default_factory=list)  # sorted
    blocked_until: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def _prune(self, now: float) -> None:
        if self.sent and self.sent[-1] > now:  # the wall clock went back: no send is in the future
            cut = bisect.bisect_right(self.sent, now)
            self.sent[cut:] = [now] * (len(self.sent) - cut)
        horizon = now - self.rate.period - WINDOW_MARGIN
        cut = bisect.bisect_right(self.sent, horizon)
        if cut:
            del self.sent[:cut]

    def wait_time(self, now: float) -> float:
        self._prune(now)
        wait = self.blocked_until - now
        if len(self.sent) >= self.rate.limit:
            oldest = self.sent[len(self.sent) - self.rate.limit]
            wait = max(wait, oldest + self.rate.period + WINDOW_MARGIN - now)
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

    async def try_acquire(self, clock: Clock) -> float | None:
        if self.lock.locked() or self.wait_time(clock.now()) > 0:  # no await: nobody slips in
            return None
        stamp = clock.now()
        bisect.insort(self.sent, stamp)
        return stamp

    async def answered(self, stamp: float, now: float, remaining: int | None, reset: float | None) -> None:
        self.settle(stamp, now)
        self.observe(remaining, reset, now)

    async def give_back(self, stamp: float) -> None:
        self.release(stamp)

    async def block_until(self, until: float) -> None:
        self.blocked_until = max(self.blocked_until, until)

    async def flush(self) -> None:
        """Nothing to store: this process's memory is the only copy."""

    def release(self, stamp: float) -> None:
        """Give a slot back: the attempt never reached the provider, so it spent nothing there."""
        idx = bisect.bisect_left(self.sent, stamp)
        if idx < len(self.sent) and self.sent[idx] == stamp:
            del self.sent[idx]

    def settle(self, stamp: float, now: float) -> None:
        """Move a send time to when the answer arrived: the server saw it no earlier."""
        idx = bisect.bisect_left(self.sent, stamp)
        if idx < len(self.sent) and self.sent[idx] == stamp and now > stamp:
            del self.sent[idx]
            bisect.insort(self.sent, now)

    def tightened_by(self, remaining: int | None, reset: float | None, now: float) -> bool:
        """Whether ``observe`` would change this window (without changing it)."""
        if remaining is None or reset is None:
            return False
        if remaining <= 0:
            return reset + RESET_MARGIN > self.blocked_until
        live = len(self.sent) - bisect.bisect_right(self.sent, now - self.rate.period - WINDOW_MARGIN)
        return (self.rate.limit - live) - remaining > 0

    def observe(self, remaining: int | None, reset: float | None, now: float) -> None:
        """Adopt the server's view when it is stricter than ours (other clients share the budget)."""
        if remaining is None or reset is None:
            return
        reset += RESET_MARGIN
        if remaining <= 0:
            self.blocked_until = max(self.blocked_until, reset)
            return
        self._prune(now)
        missing = (self.rate.limit - len(self.sent)) - remaining
        for _ in range(max(0, missing)):
            bisect.insort(self.sent, min(now, reset - self.rate.period))


def header_number(headers: httpx.Headers, name: str) -> float | None:
    value = headers.get(name)  # httpx headers are case-insensitive
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def reset_wait(headers: httpx.Headers, now: float) -> float | None:
    """Seconds until ``x-ratelimit-reset`` (Unix time) plus the margin; None without a future reset."""
    reset = header_number(headers, "x-ratelimit-reset")
    if reset is None or reset <= now:
        return None
    return reset + RESET_MARGIN - now


# Budgets per provider account in this process, keyed by a hash so no credential is a dict key.
SHARED_BUCKETS: dict[str, dict[str, LocalBucket]] = {}


def account_key(provider: str, base_url: str, account: str) -> str:
    digest = hashlib.sha256(f"{base_url}\x1f{account}".encode()).hexdigest()[:32]
    return f"{provider}:{digest}"


def account_buckets(provider: str, base_url: str, account: str) -> dict[str, LocalBucket]:
    return SHARED_BUCKETS.setdefault(account_key(provider, base_url, account), {})
