"""One rate budget and one ban per exchange, shared by every connection of the deployment.

Exchanges limit per IP address (Binance: request weight per minute, a 429 ignored earns a
418 ban), so the budget belongs to the exchange, not to a key: ccxt's own throttler is
replaced by a bucket of ``providers/ratelimit.py`` keyed by the exchange alone (through the
``BucketStore`` when one is set, so API and workers share it), paced on the host's clock.
A ban the exchange announces blocks that bucket until it ends, and ``preflight`` refuses a
sync before any call while it lasts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from finsync.domain.errors import RateLimited
from finsync.providers.http import Clock
from finsync.providers.ratelimit import BUCKET_STORE, Bucket, LocalBucket, RateLimit, account_buckets

__all__ = ["ExchangeBudget", "banned_until", "budget"]

# Per exchange (per IP), epoch until which the exchange refuses us: read by preflight.
BANS: dict[str, float] = {}
_BANNED_UNTIL = re.compile(r"banned until (\d{10,13})", re.IGNORECASE)


def banned_until(message: str) -> float | None:
    """The end of an IP ban an exchange states (Binance: ``IP banned until 1732900000000``)."""
    found = _BANNED_UNTIL.search(message)
    if found is None:
        return None
    value = int(found.group(1))
    return value / 1000 if value > 10**11 else float(value)


@dataclass(slots=True)
class ExchangeBudget:
    slug: str
    name: str  # the exchange's display name, for messages
    bucket: Bucket
    clock: Clock
    unit: float  # seconds one cost unit holds the budget: ccxt's ``rateLimit``
    max_wait: float = 900.0

    async def spend(self, cost: float | None) -> None:
        """ccxt's ``throttle(cost)``: wait for the budget, then hold it for the request's cost
        (one wait per request, shared by every connection to this exchange)."""
        stamp = await self.bucket.acquire(self.clock, self.max_wait, self.name)
        await self.bucket.block_until(stamp + max(cost or 1.0, 0.1) * self.unit)

    async def ban(self, until: float) -> None:
        BANS[self.slug] = max(BANS.get(self.slug, 0.0), until)
        await self.bucket.block_until(until)

    def check(self) -> None:
        """Raise ``RateLimited`` while the exchange's ban lasts (no call is made)."""
        until, now = BANS.get(self.slug, 0.0), self.clock.now()
        if until > now:
            raise RateLimited(
                f"{self.name} has banned this server's IP address until "
                f"{datetime.fromtimestamp(until, UTC).isoformat()}",
                retry_after=until - now,
                retry_at=datetime.fromtimestamp(until, UTC),
            )


def budget(slug: str, name: str, rate_limit_ms: float, clock: Clock) -> ExchangeBudget:
    """The exchange's one budget, paced as ccxt paces: a request of cost ``c`` leaves
    ``c * rateLimit`` ms before the next one (no bursts, so nonces keep increasing)."""
    unit = max(rate_limit_ms, 1.0) / 1000
    rate = RateLimit(1, 0.001)  # one request at a time; its cost then blocks the bucket
    store = BUCKET_STORE.get()
    bucket: Bucket
    if store is not None:
        bucket = store.bucket(f"ccxt:{slug}:ip", rate)
    else:
        buckets = account_buckets(f"ccxt:{slug}", "ip", "*")
        bucket = buckets.setdefault("ip", LocalBucket(rate))
    return ExchangeBudget(slug, name, bucket, clock, unit)
