"""When a connection syncs next: provider defaults and bounds, jitter, back-off after failures.

Pure functions of the clock and a random source, so the scheduler, the sync outcome and
the tests agree on one set of rules.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from finsync.domain.errors import InvalidInput

DAY_MINUTES = 24 * 60
MAX_INTERVAL_MINUTES = 7 * DAY_MINUTES
MIN_INTERVAL_MINUTES = 15
# Spread a fleet's syncs: up to 10 % of the interval, at most 5 minutes (daily: 30 minutes).
JITTER_SHARE, JITTER_CAP, DAILY_JITTER = 0.1, timedelta(minutes=5), timedelta(minutes=30)
# After the n-th consecutive transient failure: 5, 10, 20, … minutes, at most a day.
BACKOFF_BASE, BACKOFF_CAP = timedelta(minutes=5), timedelta(days=1)
_JITTER_CAP_S = JITTER_CAP.total_seconds()

Random = Callable[[], float]
"""A number in [0, 1): ``random.random`` in production, a fixed one in tests."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncSchedule:
    """A provider's schedule: default and minimum interval in minutes (None: never scheduled,
    e.g. statement files). Daily providers (IBKR Flex) set ``daily_after``: their data is
    updated once a day, so a whole-day interval syncs once a day after that time (UTC)."""

    default_minutes: int | None
    minimum_minutes: int = MIN_INTERVAL_MINUTES
    daily_after: time | None = None

    def problems(self) -> list[str]:
        if self.default_minutes is None:
            return []
        issues = []
        if not MIN_INTERVAL_MINUTES <= self.minimum_minutes <= self.default_minutes <= MAX_INTERVAL_MINUTES:
            issues.append("schedule needs 15 <= minimum_minutes <= default_minutes <= 7 days")
        if self.daily_after is not None and self.default_minutes % DAY_MINUTES:
            issues.append("a daily schedule's default interval must be whole days")
        return issues

    def check(self, minutes: int) -> int:
        """A user's interval, refused with the bounds when outside them."""
        if self.default_minutes is None:
            raise InvalidInput("this connection is updated by uploading files; it has no sync schedule")
        if not self.minimum_minutes <= minutes <= MAX_INTERVAL_MINUTES:
            raise InvalidInput(
                f"sync_interval_minutes must be between {self.minimum_minutes} and "
                f"{MAX_INTERVAL_MINUTES} (7 days) for this provider"
            )
        return minutes

    def interval(self, custom: int | None) -> int | None:
        return self.default_minutes if custom is None or self.default_minutes is None else custom

    def next_at(self, now: datetime, custom: int | None, rand: Random = random.random) -> datetime | None:
        """The next sync after one at ``now``, jittered forward so a fleet never fires on the minute."""
        minutes = self.interval(custom)
        if minutes is None:
            return None
        if self.daily_after is not None and minutes % DAY_MINUTES == 0:
            # The first update time at least (interval - 1 day) from now: daily = next update.
            base = now + timedelta(minutes=minutes - DAY_MINUTES)
            at = base.replace(
                hour=self.daily_after.hour, minute=self.daily_after.minute, second=0, microsecond=0
            )
            if at <= base:
                at += timedelta(days=1)
            return at + DAILY_JITTER * rand()
        # In float seconds, one timedelta at the end: timedelta * float is exact rational
        # arithmetic, and a tick computes this a thousand times (same instants to the µs).
        seconds = minutes * 60
        return now + timedelta(seconds=seconds + min(seconds * JITTER_SHARE, _JITTER_CAP_S) * rand())


def first_schedule(
    schedule: SyncSchedule, now: datetime, rand: Random = random.random
) -> tuple[int | None, datetime | None]:
    """A new connection's interval (the provider default, stored so the API shows it) and first
    scheduled sync (a safety net should the initial sync be lost)."""
    return schedule.default_minutes, schedule.next_at(now, None, rand)


def retry_at(
    now: datetime, failures: int, not_before: datetime | None = None, rand: Random = random.random
) -> datetime:
    """When to try again after ``failures`` consecutive transient failures: exponential back-off
    with jitter over the upper half, never before the provider's own ``not_before`` (a
    rate limit's reset)."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * (1 << max(0, min(failures, 20) - 1)))
    at = now + ceiling / 2 + ceiling / 2 * rand()
    if not_before is not None and not_before > at:
        at = not_before + JITTER_CAP * rand()
    return at
