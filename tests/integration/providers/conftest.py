"""Shared by every provider test: fresh rate-limit state and a virtual clock.

Buckets are shared per provider account for the life of the process (keyed by base URL
and key), and a fake server may get a port an earlier test's server had: without this,
a test could inherit another test's sends, stamped on that test's virtual clock. An
exchange's ban (Binance's 418) also lives as long as the process.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from finsync.providers.ccxt import limits
from finsync.providers.ratelimit import SHARED_BUCKETS
from tests.fakes.clock import VirtualClock


@pytest.fixture(autouse=True)
def _fresh_rate_limit_state() -> Iterator[None]:
    SHARED_BUCKETS.clear()
    limits.BANS.clear()
    yield
    SHARED_BUCKETS.clear()
    limits.BANS.clear()


@pytest.fixture
def clock() -> VirtualClock:
    """Each test's own virtual clock: rate-limit waits and retries cost no real time."""
    return VirtualClock()
