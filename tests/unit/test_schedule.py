"""Schedule rules and job policies: pure functions of a clock and a random source."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from uuid import uuid4

import pytest

from finsync.domain.errors import InvalidInput, RateLimited, Unavailable
from finsync.domain.jobs import RetryPolicy, SyncConnection, decode, encode
from finsync.domain.schedule import MAX_INTERVAL_MINUTES, SyncSchedule, retry_at
from finsync.providers.registry import ProviderRegistry

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
HOURLY = SyncSchedule(default_minutes=60)


def test_next_sync_is_one_interval_later_plus_bounded_jitter() -> None:
    assert HOURLY.next_at(NOW, None, lambda: 0.0) == NOW + timedelta(minutes=60)
    # 10 % of an hour (6 min) is capped at 5 minutes.
    assert HOURLY.next_at(NOW, None, lambda: 0.999999) < NOW + timedelta(minutes=65)
    assert HOURLY.next_at(NOW, 240, lambda: 0.5) == NOW + timedelta(minutes=242, seconds=30)


def test_daily_providers_sync_once_a_day_after_their_update_time() -> None:
    daily = SyncSchedule(default_minutes=1440, minimum_minutes=1440, daily_after=time(6, 0))
    assert daily.next_at(NOW, None, lambda: 0.0) == datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    early = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)
    assert daily.next_at(early, None, lambda: 0.0) == datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
    assert daily.next_at(NOW, 2880, lambda: 0.0) == datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    assert daily.next_at(NOW, None, lambda: 0.5) == datetime(2026, 11, 30, 6, 15, tzinfo=UTC)


def test_interval_bounds_are_the_providers_minimum_and_seven_days() -> None:
    bank = SyncSchedule(default_minutes=480, minimum_minutes=360)
    assert bank.check(360) == 360
    assert bank.check(MAX_INTERVAL_MINUTES) == MAX_INTERVAL_MINUTES
    with pytest.raises(InvalidInput, match="between 360 and 10080"):
        bank.check(359)
    with pytest.raises(InvalidInput):
        bank.check(MAX_INTERVAL_MINUTES + 1)
    with pytest.raises(InvalidInput, match="uploading files"):
        SyncSchedule(default_minutes=None).check(60)
    assert SyncSchedule(default_minutes=None).next_at(NOW, None) is None


def test_provider_defaults_come_from_metadata() -> None:
    registry = ProviderRegistry.default()
    schedules = {meta.slug: meta.sync_schedule for meta in registry.all()}
    assert schedules["gocardless"].default_minutes == 480
    assert schedules["trading212"].default_minutes == 60
    assert schedules["schwab"].default_minutes == 60
    assert schedules["ofx"].default_minutes is None  # files: never
    assert SyncSchedule(default_minutes=90, daily_after=time(6)).problems()  # daily needs whole days
    assert SyncSchedule(default_minutes=10).problems()


def test_transient_failures_back_off_exponentially_with_jitter() -> None:
    windows = [(retry_at(NOW, n, rand=lambda: 0.0), retry_at(NOW, n, rand=lambda: 0.999)) for n in (1, 2, 3)]
    assert windows[0][0] == NOW + timedelta(minutes=2, seconds=30)
    assert windows[0][1] < NOW + timedelta(minutes=5)
    assert windows[1][0] == NOW + timedelta(minutes=5)
    assert windows[2][0] == NOW + timedelta(minutes=10)
    assert retry_at(NOW, 50, rand=lambda: 0.999) <= NOW + timedelta(days=1)


def test_a_rate_limit_reset_is_honoured() -> None:
    reset = NOW + timedelta(hours=3)
    assert retry_at(NOW, 0, reset, rand=lambda: 0.0) == reset
    assert retry_at(NOW, 0, NOW + timedelta(seconds=10), rand=lambda: 0.0) == NOW + timedelta(minutes=2.5)


def test_retry_policy_backs_off_then_gives_up() -> None:
    policy = RetryPolicy(max_attempts=3, base_seconds=2, cap_seconds=5)
    error = Unavailable("down")
    assert policy.delay(0, error, NOW, lambda: 0.0) == 1.0
    assert policy.delay(1, error, NOW, lambda: 0.999) == pytest.approx(4.0, abs=0.01)
    assert policy.delay(2, error, NOW) is None  # third attempt was the last
    later = NOW + timedelta(seconds=30)
    assert policy.delay(0, RateLimited("slow down", retry_after=30, retry_at=later), NOW, lambda: 0.0) == 30.0
    waited = RateLimited("budget spent", retry_after=3600)  # how long, not when
    assert policy.delay(0, waited, NOW, lambda: 0.0) == 3600.0
    assert waited.reset_at(NOW) == NOW + timedelta(hours=1)
    assert RateLimited("nonsense", retry_after=1e12).reset_at(NOW) == NOW + timedelta(days=7)
    assert RetryPolicy(retry_on=(KeyError,)).delay(0, error, NOW) is None


def test_jobs_round_trip_through_json_arguments() -> None:
    job = SyncConnection(connection_id=uuid4(), run_id=uuid4(), provider="trading212")
    args = encode(job)
    assert args == {
        "connection_id": str(job.connection_id),
        "run_id": str(job.run_id),
        "provider": "trading212",
        "present_ip": None,
        "present_user_agent": None,
    }
    assert decode(SyncConnection, args) == job
    # A job queued before the person's address travelled with it: decoded with the defaults.
    older = {k: v for k, v in args.items() if not k.startswith("present_")}
    assert decode(SyncConnection, older) == job
    attended = SyncConnection(job.connection_id, job.run_id, "enablebanking", "192.0.2.1", "Mozilla/5.0")
    assert decode(SyncConnection, encode(attended)) == attended
